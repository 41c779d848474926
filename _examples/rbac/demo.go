package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// demoPolicy is Stytch's default policy plus three custom roles on the
// resource "documents": viewer reads, editor reads and writes, admin may do
// every action ("*").
func demoPolicy() stytchtest.Policy {
	p := stytchtest.DefaultPolicy()
	p.Resources = append(p.Resources, stytchtest.Resource{ID: "documents", Description: "Documents of an organization", Actions: []string{"read", "write", "delete"}})
	p.Roles = append(p.Roles,
		stytchtest.Role{ID: "viewer", Description: "Reads documents", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read"}}}},
		stytchtest.Role{ID: "editor", Description: "Reads and writes documents", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read", "write"}}}},
		stytchtest.Role{ID: "admin", Description: "Manages documents", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"*"}}}},
	)
	return p
}

// demoOrg is a demo organization and its members' sessions, by role.
type demoOrg struct {
	org      stytchtest.Organization
	sessions map[string]stytchtest.Session // viewer, editor, admin
}

// demoData holds the demo organizations.
type demoData struct {
	emulatorURL  string
	acme, globex demoOrg
}

var demoRoles = []string{"viewer", "editor", "admin"}

// createDemo creates two organizations, acme and globex, each with a
// viewer, an editor and an admin whose sessions last 24 hours.
func createDemo(emu *stytchtest.Server) (*demoData, error) {
	d := &demoData{emulatorURL: emu.URL()}
	for _, o := range []struct {
		name, slug string
		into       *demoOrg
	}{{"Acme Corp", "acme", &d.acme}, {"Globex", "globex", &d.globex}} {
		org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: o.name, Slug: o.slug})
		*o.into = demoOrg{org: org, sessions: map[string]stytchtest.Session{}}
		for _, role := range demoRoles {
			m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: role + "@" + o.slug + ".test", Name: role, Roles: []string{role}})
			if err != nil {
				return nil, err
			}
			s, err := emu.CreateSession(m.ID, stytchtest.SessionParams{Duration: 24 * time.Hour})
			if err != nil {
				return nil, err
			}
			o.into.sessions[role] = s
		}
	}
	return d, nil
}

// seed adds a document to each demo organization.
func (d *demoData) seed(st *store) {
	st.add(d.acme.org.ID, "Acme roadmap", d.acme.sessions["admin"].MemberID)
	st.add(d.globex.org.ID, "Globex budget", d.globex.sessions["admin"].MemberID)
}

func (d *demoData) print(w io.Writer, base, projectID string) {
	var b strings.Builder
	fmt.Fprintf(&b, `
Demo mode: no STYTCH_PROJECT_ID, so the embedded Stytch emulator answers at %s
(project %s) with a demo RBAC policy:

  viewer   documents: read
  editor   documents: read, write
  admin    documents: * (every action)

Two organizations, each with a viewer, an editor and an admin:

  acme     %s
  globex   %s

Their members' session tokens, valid for 24 hours:

`, d.emulatorURL, projectID, d.acme.org.ID, d.globex.org.ID)
	for _, o := range []demoOrg{d.acme, d.globex} {
		for _, role := range demoRoles {
			fmt.Fprintf(&b, "  export %s_%s='%s'\n", strings.ToUpper(o.org.Slug), strings.ToUpper(role), o.sessions[role].Token)
		}
	}
	docs := base + "/orgs/acme/documents"
	auth := func(v string) string { return `-H "Authorization: Bearer $` + v + `" ` }
	js := `-H 'Content-Type: application/json' `
	fmt.Fprintf(&b, `
Try:

  # read: every role; the organization is named by slug or by ID
  curl %s%s
  curl %s%s/orgs/%s/documents
  # write: editors and admins
  curl -X POST %s%s-d '{"title":"Launch plan"}' %s
  # delete: admins (the "*" action); doc-1 is the seeded Acme document
  curl -X DELETE %s%s/doc-1
  # refused with 403: a viewer writes, an editor deletes
  curl -X POST %s%s-d '{"title":"Nope"}' %s
  curl -X DELETE %s%s/doc-1
  # refused with 403: another organization's documents, even for its admin
  curl %s%s

`, auth("ACME_VIEWER"), docs,
		auth("ACME_VIEWER"), base, d.acme.org.ID,
		auth("ACME_EDITOR"), js, docs,
		auth("ACME_ADMIN"), docs,
		auth("ACME_VIEWER"), js, docs,
		auth("ACME_EDITOR"), docs,
		auth("GLOBEX_ADMIN"), docs)
	_, _ = io.WriteString(w, b.String())
}

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// demoData holds the demo members' sessions.
type demoData struct {
	emulatorURL          string
	plain, admin, mfa    stytchtest.Session
	plainEmail, mfaEmail string
}

// createDemo creates an organization with three members in the emulator:
// a plain member, one whose session carries the custom claim "admin", and
// one who completed a second factor (TOTP).
func createDemo(emu *stytchtest.Server) (*demoData, error) {
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Demo Inc", Slug: "demo"})
	type spec struct {
		email, name string
		params      stytchtest.SessionParams
	}
	day := 24 * time.Hour
	specs := []spec{
		{"ada@demo.test", "Ada Lovelace", stytchtest.SessionParams{Duration: day}},
		{"grace@demo.test", "Grace Hopper", stytchtest.SessionParams{Duration: day, CustomClaims: map[string]any{"admin": true}}},
		{"alan@demo.test", "Alan Turing", stytchtest.SessionParams{Duration: day, Factors: []stytchtest.Factor{
			{Type: "magic_link", DeliveryMethod: "email"},
			{Type: "totp", DeliveryMethod: "authenticator_app"},
		}}},
	}
	sessions := make([]stytchtest.Session, len(specs))
	for i, sp := range specs {
		m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: sp.email, Name: sp.name})
		if err != nil {
			return nil, err
		}
		if sessions[i], err = emu.CreateSession(m.ID, sp.params); err != nil {
			return nil, err
		}
	}
	return &demoData{emulatorURL: emu.URL(), plain: sessions[0], admin: sessions[1], mfa: sessions[2],
		plainEmail: specs[0].email, mfaEmail: specs[2].email}, nil
}

func (d *demoData) print(w io.Writer, base, projectID string) {
	bearer := func(tok string) string { return "curl -H 'Authorization: Bearer " + tok + "' " }
	fmt.Fprintf(w, `
Demo mode: no STYTCH_PROJECT_ID, so the embedded Stytch emulator answers at %s
(project %s). Demo sessions last 24 hours. Try:

  curl %s/healthz
  # a plain member (%s)
  %s%s/protected
  %s%s/user-info
  %s%s/optional-auth
  curl %s/optional-auth
  # a member whose session has the custom claim "admin"
  %s%s/admin
  # a member who completed MFA (TOTP), by session JWT cookie (the JWT expires in 5 minutes;
  # after that the middleware asks Stytch, which vouches for the live session)
  curl --cookie 'stytch_session_jwt=%s' %s/sensitive
  %s%s/sensitive
  # refused: no MFA, no admin claim
  %s%s/sensitive
  %s%s/admin
  # log out (revokes the session at Stytch and in every cache tier), then try again
  curl -X POST %s%s/logout
  %s%s/protected

`, d.emulatorURL, projectID,
		base, d.plainEmail,
		bearer(d.plain.Token), base, bearer(d.plain.Token), base, bearer(d.plain.Token), base, base,
		bearer(d.admin.Token), base,
		d.mfa.JWT, base, bearer(d.mfa.Token), base,
		bearer(d.plain.Token), base, bearer(d.plain.Token), base,
		"-H 'Authorization: Bearer "+d.plain.Token+"' ", base, bearer(d.plain.Token), base)
}

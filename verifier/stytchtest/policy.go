package stytchtest

import "slices"

// Policy is a project's RBAC policy, served at GET /v1/b2b/rbac/policy and
// used to evaluate the authorization_check of an authenticate request.
type Policy struct {
	Roles     []Role     `json:"roles"`
	Resources []Resource `json:"resources"`
	Scopes    []Scope    `json:"scopes"`
}

// Role is an RBAC role and the permissions it grants.
type Role struct {
	ID          string       `json:"role_id"`
	Description string       `json:"description"`
	Permissions []Permission `json:"permissions"`
}

// Permission grants Actions on the resource ResourceID. The action "*"
// means every action.
type Permission struct {
	ResourceID string   `json:"resource_id"`
	Actions    []string `json:"actions"`
}

// Resource is an RBAC resource and the actions defined on it.
type Resource struct {
	ID          string   `json:"resource_id"`
	Description string   `json:"description"`
	Actions     []string `json:"actions"`
}

// Scope is an OAuth scope of the policy. Scopes play no part in session
// authorization; they are served for completeness.
type Scope struct {
	Scope       string       `json:"scope"`
	Description string       `json:"description"`
	Permissions []Permission `json:"permissions"`
}

// DefaultPolicy returns the policy a new Server serves: Stytch's reserved
// roles stytch_member (every action on stytch.self) and stytch_admin (every
// action on every stytch.* resource), and the reserved stytch.* resources.
// Extend it and pass it to [Server.SetPolicy] to add your own roles.
func DefaultPolicy() Policy {
	all := []string{"*"}
	return Policy{
		Roles: []Role{
			{
				ID:          "stytch_member",
				Description: "Granted to all Members upon creation; grants permissions already implicitly granted to logged in Members via the SDK.",
				Permissions: []Permission{{ResourceID: "stytch.self", Actions: all}},
			},
			{
				ID:          "stytch_admin",
				Description: "Granted to Members who create an Organization through the Stytch discovery flow. Admins have full access to all Stytch resources within the Organization.",
				Permissions: []Permission{
					{ResourceID: "stytch.organization", Actions: all},
					{ResourceID: "stytch.member", Actions: all},
					{ResourceID: "stytch.sso", Actions: all},
					{ResourceID: "stytch.scim", Actions: all},
					{ResourceID: "stytch.self", Actions: all},
				},
			},
		},
		Resources: []Resource{
			{ID: "stytch.organization", Description: "Stytch Organization", Actions: []string{"update.info.name", "update.info.slug", "update.settings.sso-jit-provisioning", "delete"}},
			{ID: "stytch.member", Description: "Stytch Members", Actions: []string{"create", "search", "update.info.name", "update.info.roles", "delete", "revoke-sessions"}},
			{ID: "stytch.sso", Description: "Stytch SSO connections", Actions: []string{"create", "get", "update", "delete"}},
			{ID: "stytch.scim", Description: "Stytch SCIM connections", Actions: []string{"create", "get", "update", "delete"}},
			{ID: "stytch.self", Description: "The logged-in Member", Actions: []string{"update.info.name", "update.info.email", "revoke-sessions", "delete"}},
		},
		Scopes: []Scope{},
	}
}

// clone returns a deep copy of p with nil slices replaced by empty ones, so
// the JSON carries [] and never null.
func (p Policy) clone() Policy {
	perms := func(in []Permission) []Permission {
		out := make([]Permission, 0, len(in))
		for _, q := range in {
			out = append(out, Permission{ResourceID: q.ResourceID, Actions: cloneStrings(q.Actions)})
		}
		return out
	}
	out := Policy{
		Roles:     make([]Role, 0, len(p.Roles)),
		Resources: make([]Resource, 0, len(p.Resources)),
		Scopes:    make([]Scope, 0, len(p.Scopes)),
	}
	for _, r := range p.Roles {
		out.Roles = append(out.Roles, Role{ID: r.ID, Description: r.Description, Permissions: perms(r.Permissions)})
	}
	for _, r := range p.Resources {
		out.Resources = append(out.Resources, Resource{ID: r.ID, Description: r.Description, Actions: cloneStrings(r.Actions)})
	}
	for _, s := range p.Scopes {
		out.Scopes = append(out.Scopes, Scope{Scope: s.Scope, Description: s.Description, Permissions: perms(s.Permissions)})
	}
	return out
}

// grantingRoles returns, in policy order, the roles among sessionRoles that
// grant action on resourceID.
func (p Policy) grantingRoles(sessionRoles []string, resourceID, action string) []string {
	var out []string
	for _, r := range p.Roles {
		if !slices.Contains(sessionRoles, r.ID) || slices.Contains(out, r.ID) {
			continue
		}
		for _, perm := range r.Permissions {
			if perm.ResourceID == resourceID && (slices.Contains(perm.Actions, "*") || slices.Contains(perm.Actions, action)) {
				out = append(out, r.ID)
				break
			}
		}
	}
	return out
}

func cloneStrings(in []string) []string {
	if in == nil {
		return []string{}
	}
	return slices.Clone(in)
}

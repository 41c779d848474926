package stytchtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Errors returned by the Server's Go methods.
var (
	// ErrOrganizationNotFound: no organization has the given ID.
	ErrOrganizationNotFound = errors.New("stytchtest: organization not found")
	// ErrMemberNotFound: no member has the given ID.
	ErrMemberNotFound = errors.New("stytchtest: member not found")
	// ErrSessionNotFound: no session has the given ID.
	ErrSessionNotFound = errors.New("stytchtest: session not found")
	// ErrInvalidParams: the parameters are invalid (e.g. an empty or
	// duplicate email, a reserved custom claim).
	ErrInvalidParams = errors.New("stytchtest: invalid parameters")
	// ErrNoSigningKey: every signing key has been retired.
	ErrNoSigningKey = errors.New("stytchtest: no signing key (all keys retired)")
)

// OrganizationParams describes an organization to create.
type OrganizationParams struct {
	// Name is organization_name; default "Organization <n>".
	Name string
	// Slug is organization_slug; default derived from Name. Slugs are not
	// checked for uniqueness.
	Slug string
}

// Organization is an organization held by the emulator.
type Organization struct {
	ID        string // "organization-test-<uuid>"
	Name      string
	Slug      string
	CreatedAt time.Time
}

// MemberParams describes a member to create.
type MemberParams struct {
	// Email is the member's email_address. Required, unique within the
	// organization (case-insensitively).
	Email string
	// Name is the member's name.
	Name string
	// Roles are explicitly assigned role IDs, in addition to the implicit
	// stytch_member. Assign "stytch_admin" to make an admin (is_admin).
	Roles []string
}

// Member is a member held by the emulator.
type Member struct {
	ID             string // "member-test-<uuid>"
	OrganizationID string
	Email          string
	Name           string
	// Roles are the member's explicit roles (MemberParams.Roles).
	Roles     []string
	CreatedAt time.Time
}

// Factor is an authentication factor of a session.
type Factor struct {
	// Type is the factor type: magic_link, email_otp, password, sso, oauth,
	// otp, totp, recovery_codes, impersonated, ...
	Type string
	// DeliveryMethod is email, sms, knowledge, sso_saml, sso_oidc,
	// authenticator_app, recovery_code, oauth_google, ...
	DeliveryMethod string
	// LastAuthenticatedAt defaults to the session's start. It is also used
	// as the factor's created_at and updated_at.
	LastAuthenticatedAt time.Time
	// EmailAddress fills email_factor {email_id, email_address}. It
	// defaults to the member's email when DeliveryMethod is "email".
	EmailAddress string
	// Extra holds additional keys of the factor object, e.g.
	// {"saml_sso_factor": {"id": "...", "provider_id": "...", "external_id": "..."}}.
	// Extra never overrides type, delivery_method or the timestamps.
	Extra map[string]any
}

// SessionParams describes a session to create. The zero value is a
// 60-minute session with one magic_link/email factor, started now.
type SessionParams struct {
	// Factors default to one {Type: "magic_link", DeliveryMethod: "email"}.
	Factors []Factor
	// CustomClaims become the session's custom_claims and top-level JWT
	// claims. Registered claim names (iss sub aud exp nbf iat jti) are
	// dropped; names starting with "https://stytch.com/" are an error.
	CustomClaims map[string]any
	// Roles are the session's roles (member_session.roles, the JWT's
	// session roles). nil means "stytch_member" plus the member's roles;
	// an empty non-nil slice gives a session without roles.
	Roles []string
	// Duration is the session lifetime from StartedAt; default 60 minutes.
	Duration time.Duration
	// ExpiresAt, when set, overrides Duration. It may be in the past.
	ExpiresAt time.Time
	// StartedAt defaults to now.
	StartedAt time.Time
	// IPAddress and UserAgent fill the JWT's session attributes.
	IPAddress, UserAgent string
}

// Session is a member session held by the emulator.
type Session struct {
	ID             string // "member-session-test-<uuid>"
	Token          string // 44-character opaque session token
	JWT            string // a session JWT minted when the Session was returned; empty from [Server.Session]
	MemberID       string
	OrganizationID string
	Roles          []string
	StartedAt      time.Time
	LastAccessedAt time.Time
	ExpiresAt      time.Time
	Revoked        bool
}

type organization struct {
	id, name, slug string
	createdAt      time.Time
}

type member struct {
	id, orgID, email, emailID, name string
	roles                           []string
	createdAt                       time.Time
}

type session struct {
	id, token, memberID, orgID       string
	startedAt, lastAccessed, expires time.Time
	factors                          []Factor
	customClaims                     map[string]any
	roles                            []string
	ip, userAgent                    string
	revoked                          bool
}

var slugInvalid = regexp.MustCompile(`[^a-z0-9._~-]+`)

// CreateOrganization adds an organization.
func (s *Server) CreateOrganization(p OrganizationParams) Organization {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := p.Name
	if name == "" {
		name = fmt.Sprintf("Organization %d", len(s.orgs)+1)
	}
	slug := p.Slug
	if slug == "" {
		slug = strings.Trim(slugInvalid.ReplaceAllString(strings.ToLower(name), "-"), "-")
		if slug == "" {
			slug = "org-" + newUUID()[:8]
		}
	}
	o := &organization{id: "organization-test-" + newUUID(), name: name, slug: slug, createdAt: s.stamp()}
	s.orgs[o.id] = o
	return o.public()
}

// CreateMember adds an active member to the organization orgID.
func (s *Server) CreateMember(orgID string, p MemberParams) (Member, error) {
	email := strings.TrimSpace(p.Email)
	if email == "" || !strings.Contains(email, "@") {
		return Member{}, fmt.Errorf("%w: invalid email %q", ErrInvalidParams, p.Email)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.orgs[orgID]; !ok {
		return Member{}, fmt.Errorf("%w: %q", ErrOrganizationNotFound, orgID)
	}
	for _, m := range s.members {
		if m.orgID == orgID && strings.EqualFold(m.email, email) {
			return Member{}, fmt.Errorf("%w: duplicate email %q in organization", ErrInvalidParams, email)
		}
	}
	var roles []string
	for _, r := range p.Roles {
		if r != "" && r != "stytch_member" && !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	m := &member{
		id:        "member-test-" + newUUID(),
		orgID:     orgID,
		email:     email,
		emailID:   "member-email-test-" + newUUID(),
		name:      p.Name,
		roles:     roles,
		createdAt: s.stamp(),
	}
	s.members[m.id] = m
	return m.public(), nil
}

// reservedClaims are dropped from custom claims, as Stytch does.
var reservedClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

const maxCustomClaimsBytes = 4096

// sanitizeClaims copies claims through JSON (so that the stored values are
// plain JSON values), dropping reserved names and rejecting Stytch's
// namespace.
func sanitizeClaims(claims map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range claims {
		if strings.HasPrefix(k, "https://stytch.com/") {
			return nil, fmt.Errorf("%w: custom claim %q is in Stytch's namespace", ErrInvalidParams, k)
		}
		if slices.Contains(reservedClaims, k) {
			continue
		}
		out[k] = v
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%w: custom claims: %v", ErrInvalidParams, err)
	}
	if len(b) > maxCustomClaimsBytes {
		return nil, fmt.Errorf("%w: custom claims exceed %d bytes", ErrInvalidParams, maxCustomClaimsBytes)
	}
	var cp map[string]any
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, fmt.Errorf("%w: custom claims: %v", ErrInvalidParams, err)
	}
	return cp, nil
}

// CreateSession starts a session for the member and returns it with a
// freshly minted JWT.
func (s *Server) CreateSession(memberID string, p SessionParams) (Session, error) {
	claims, err := sanitizeClaims(p.CustomClaims)
	if err != nil {
		return Session{}, err
	}
	var extras []map[string]any
	for _, f := range p.Factors {
		if f.Type == "" {
			return Session{}, fmt.Errorf("%w: factor without a type", ErrInvalidParams)
		}
		if len(f.Extra) > 0 {
			b, err := json.Marshal(f.Extra)
			if err != nil {
				return Session{}, fmt.Errorf("%w: factor extra: %v", ErrInvalidParams, err)
			}
			var cp map[string]any
			_ = json.Unmarshal(b, &cp)
			extras = append(extras, cp)
		} else {
			extras = append(extras, nil)
		}
	}

	s.mu.Lock()
	m, ok := s.members[memberID]
	if !ok {
		s.mu.Unlock()
		return Session{}, fmt.Errorf("%w: %q", ErrMemberNotFound, memberID)
	}
	now := s.stamp()
	start := now
	if !p.StartedAt.IsZero() {
		start = p.StartedAt.UTC().Truncate(time.Second)
	}
	exp := start.Add(60 * time.Minute)
	if p.Duration > 0 {
		exp = start.Add(p.Duration).Truncate(time.Second)
	}
	if !p.ExpiresAt.IsZero() {
		exp = p.ExpiresAt.UTC().Truncate(time.Second)
	}
	roles := p.Roles
	if roles == nil {
		roles = append([]string{"stytch_member"}, m.roles...)
	}
	factors := make([]Factor, 0, max(len(p.Factors), 1))
	for i, f := range p.Factors {
		f.Extra = extras[i]
		factors = append(factors, f)
	}
	if len(factors) == 0 {
		factors = append(factors, Factor{Type: "magic_link", DeliveryMethod: "email"})
	}
	for i := range factors {
		f := &factors[i]
		if f.LastAuthenticatedAt.IsZero() {
			f.LastAuthenticatedAt = start
		}
		f.LastAuthenticatedAt = f.LastAuthenticatedAt.UTC().Truncate(time.Second)
		if f.EmailAddress == "" && f.DeliveryMethod == "email" {
			f.EmailAddress = m.email
		}
	}
	sess := &session{
		id:           "member-session-test-" + newUUID(),
		token:        newSessionToken(),
		memberID:     m.id,
		orgID:        m.orgID,
		startedAt:    start,
		lastAccessed: start,
		expires:      exp,
		factors:      factors,
		customClaims: claims,
		roles:        slices.Clone(roles),
		ip:           p.IPAddress,
		userAgent:    p.UserAgent,
	}
	s.sessions[sess.id] = sess
	s.tokens[sess.token] = sess.id
	out := sess.public()
	s.mu.Unlock()

	tok, err := s.MintJWT(out.ID)
	if err != nil {
		return out, err
	}
	out.JWT = tok
	return out, nil
}

// Session returns the current state of a session (its JWT field is empty;
// use [Server.MintJWT]).
func (s *Server) Session(sessionID string) (Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[sessionID]
	if !ok {
		return Session{}, fmt.Errorf("%w: %q", ErrSessionNotFound, sessionID)
	}
	return sess.public(), nil
}

// Revoke revokes a session as the revoke endpoint does: its token stops
// working at once and the API refuses its JWTs, but JWTs already minted
// still verify locally (against the JWKS) until their exp. Unknown IDs are
// ignored.
func (s *Server) Revoke(sessionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.sessions[sessionID]; ok {
		sess.revoked = true
	}
}

// SetPolicy replaces the RBAC policy served at GET /v1/b2b/rbac/policy and
// used for authorization checks.
func (s *Server) SetPolicy(p Policy) {
	cp := p.clone()
	s.mu.Lock()
	s.policy = cp
	s.mu.Unlock()
}

// Policy returns a copy of the current RBAC policy.
func (s *Server) Policy() Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policy.clone()
}

// liveLocked reports whether the session may be authenticated now.
func (s *Server) liveLocked(sess *session) bool {
	return sess != nil && !sess.revoked && s.now().Before(sess.expires)
}

func (o *organization) public() Organization {
	return Organization{ID: o.id, Name: o.name, Slug: o.slug, CreatedAt: o.createdAt}
}

func (m *member) public() Member {
	return Member{ID: m.id, OrganizationID: m.orgID, Email: m.email, Name: m.name, Roles: slices.Clone(m.roles), CreatedAt: m.createdAt}
}

func (sess *session) public() Session {
	return Session{
		ID:             sess.id,
		Token:          sess.token,
		MemberID:       sess.memberID,
		OrganizationID: sess.orgID,
		Roles:          slices.Clone(sess.roles),
		StartedAt:      sess.startedAt,
		LastAccessedAt: sess.lastAccessed,
		ExpiresAt:      sess.expires,
		Revoked:        sess.revoked,
	}
}

// Wire representations (Stytch JSON).

const rfc3339 = time.RFC3339

func ts(t time.Time) string { return t.UTC().Format(rfc3339) }

// wire renders a factor as Stytch's AuthenticationFactor object.
func (f Factor) wire(emailID string) map[string]any {
	out := map[string]any{}
	maps.Copy(out, f.Extra)
	out["type"] = f.Type
	out["delivery_method"] = f.DeliveryMethod
	out["last_authenticated_at"] = ts(f.LastAuthenticatedAt)
	out["created_at"] = ts(f.LastAuthenticatedAt)
	out["updated_at"] = ts(f.LastAuthenticatedAt)
	if f.EmailAddress != "" {
		out["email_factor"] = map[string]any{"email_id": emailID, "email_address": f.EmailAddress}
	}
	return out
}

func (s *Server) factorsJSONLocked(sess *session) []map[string]any {
	emailID := ""
	if m, ok := s.members[sess.memberID]; ok {
		emailID = m.emailID
	}
	out := make([]map[string]any, 0, len(sess.factors))
	for _, f := range sess.factors {
		out = append(out, f.wire(emailID))
	}
	return out
}

type memberSessionJSON struct {
	MemberSessionID       string           `json:"member_session_id"`
	MemberID              string           `json:"member_id"`
	StartedAt             string           `json:"started_at"`
	LastAccessedAt        string           `json:"last_accessed_at"`
	ExpiresAt             string           `json:"expires_at"`
	AuthenticationFactors []map[string]any `json:"authentication_factors"`
	OrganizationID        string           `json:"organization_id"`
	Roles                 []string         `json:"roles"`
	OrganizationSlug      string           `json:"organization_slug"`
	CustomClaims          map[string]any   `json:"custom_claims"`
}

func (s *Server) memberSessionJSONLocked(sess *session) memberSessionJSON {
	slug := ""
	if o, ok := s.orgs[sess.orgID]; ok {
		slug = o.slug
	}
	claims := maps.Clone(sess.customClaims)
	if claims == nil {
		claims = map[string]any{}
	}
	return memberSessionJSON{
		MemberSessionID:       sess.id,
		MemberID:              sess.memberID,
		StartedAt:             ts(sess.startedAt),
		LastAccessedAt:        ts(sess.lastAccessed),
		ExpiresAt:             ts(sess.expires),
		AuthenticationFactors: s.factorsJSONLocked(sess),
		OrganizationID:        sess.orgID,
		Roles:                 cloneStrings(sess.roles),
		OrganizationSlug:      slug,
		CustomClaims:          claims,
	}
}

type roleSourceJSON struct {
	Type    string         `json:"type"`
	Details map[string]any `json:"details"`
}

type memberRoleJSON struct {
	RoleID  string           `json:"role_id"`
	Sources []roleSourceJSON `json:"sources"`
}

func (m *member) wire() map[string]any {
	roles := []memberRoleJSON{{RoleID: "stytch_member", Sources: []roleSourceJSON{{Type: "direct_assignment", Details: map[string]any{}}}}}
	for _, r := range m.roles {
		roles = append(roles, memberRoleJSON{RoleID: r, Sources: []roleSourceJSON{{Type: "direct_assignment", Details: map[string]any{}}}})
	}
	return map[string]any{
		"organization_id":           m.orgID,
		"member_id":                 m.id,
		"email_address":             m.email,
		"status":                    "active",
		"name":                      m.name,
		"sso_registrations":         []any{},
		"is_breakglass":             false,
		"member_password_id":        "",
		"oauth_registrations":       []any{},
		"email_address_verified":    true,
		"mfa_phone_number_verified": false,
		"is_admin":                  slices.Contains(m.roles, "stytch_admin"),
		"totp_registration_id":      "",
		"retired_email_addresses":   []any{},
		"is_locked":                 false,
		"mfa_enrolled":              false,
		"mfa_phone_number":          "",
		"default_mfa_method":        "",
		"roles":                     roles,
		"trusted_metadata":          map[string]any{},
		"untrusted_metadata":        map[string]any{},
		"created_at":                ts(m.createdAt),
		"updated_at":                ts(m.createdAt),
		"external_id":               "",
	}
}

func (o *organization) wire() map[string]any {
	return map[string]any{
		"organization_id":                          o.id,
		"organization_name":                        o.name,
		"organization_slug":                        o.slug,
		"organization_logo_url":                    "",
		"organization_external_id":                 "",
		"trusted_metadata":                         map[string]any{},
		"created_at":                               ts(o.createdAt),
		"updated_at":                               ts(o.createdAt),
		"sso_default_connection_id":                nil,
		"sso_jit_provisioning":                     "NOT_ALLOWED",
		"sso_jit_provisioning_allowed_connections": []any{},
		"sso_active_connections":                   []any{},
		"email_allowed_domains":                    []any{},
		"email_jit_provisioning":                   "NOT_ALLOWED",
		"email_invites":                            "ALL_ALLOWED",
		"auth_methods":                             "ALL_ALLOWED",
		"allowed_auth_methods":                     []any{},
		"mfa_policy":                               "OPTIONAL",
		"mfa_methods":                              "ALL_ALLOWED",
		"allowed_mfa_methods":                      []any{},
		"rbac_email_implicit_role_assignments":     []any{},
		"custom_roles":                             []any{},
		"scim_active_connection":                   nil,
	}
}

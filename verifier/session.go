package verifier

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// Verifier verifies a session token or session JWT and returns the session
// it belongs to.
//
// Implementations return an error that matches (errors.Is) one of
// ErrMalformedToken, ErrInvalidSession, ErrUnavailable or ErrMisconfigured.
type Verifier interface {
	Verify(ctx context.Context, token string) (*Session, error)
}

// Revoker revokes the session a token belongs to.
type Revoker interface {
	Revoke(ctx context.Context, token string) error
}

// Factor is one authentication factor of a session.
type Factor struct {
	// Type is Stytch's factor type: magic_link, email_otp, password, sso,
	// oauth, otp, totp, recovery_codes, impersonated, ...
	Type string `json:"type"`
	// DeliveryMethod is how the factor was delivered: email, sms,
	// authenticator_app, sso_saml, knowledge, ...
	DeliveryMethod string `json:"delivery_method,omitempty"`
	// LastAuthenticatedAt is when the member last completed this factor.
	LastAuthenticatedAt time.Time `json:"last_authenticated_at,omitzero"`
}

// Session is a verified Stytch B2B member session: what the Python original
// calls StytchContext, plus what B2B applications need (organization slug
// and name, roles, factor details).
//
// A Session never holds a session token or JWT. Sessions returned by a
// Verifier may be shared between requests: treat them as read-only.
type Session struct {
	MemberID         string `json:"member_id"`
	SessionID        string `json:"session_id"`
	OrganizationID   string `json:"organization_id"`
	OrganizationSlug string `json:"organization_slug,omitempty"`
	OrganizationName string `json:"organization_name,omitempty"`
	MemberEmail      string `json:"member_email,omitempty"`
	MemberName       string `json:"member_name,omitempty"`

	StartedAt      time.Time `json:"session_started_at,omitzero"`
	LastAccessedAt time.Time `json:"session_last_accessed_at,omitzero"`
	ExpiresAt      time.Time `json:"session_expires_at,omitzero"`
	// AuthenticatedAt is when Stytch (or a verified JWT) last vouched for the
	// session. A cache hit does not move it.
	AuthenticatedAt time.Time `json:"authenticated_at,omitzero"`

	// Roles are the session's roles (member_session.roles): explicit and
	// implicit assignments valid for this session.
	Roles []string `json:"roles"`
	// CustomClaims are the session's custom claims (top-level JWT claims).
	CustomClaims map[string]any `json:"session_custom_claims"`
	// AuthenticationFactors lists the factor types, e.g. "magic_link", "totp".
	AuthenticationFactors []string `json:"authentication_factors"`
	// Factors holds the details of each factor.
	Factors []Factor `json:"factors"`
	// Raw is Stytch's member_session, member and organization objects as
	// received, as {"member_session":…,"member":…,"organization":…}. It never
	// contains session_token or session_jwt.
	Raw json.RawMessage `json:"raw_session_data,omitempty"`

	// SessionJWT is a fresh session JWT returned by the Stytch API when it
	// verified the session, so the caller may hand it back to the client
	// (e.g. re-set the stytch_session_jwt cookie). It is never serialised
	// and never cached.
	SessionJWT string `json:"-"`
}

// IsExpired reports whether the session has expired. A session without an
// expiry is treated as expired.
func (s *Session) IsExpired() bool { return s.isExpiredAt(time.Now()) }

func (s *Session) isExpiredAt(now time.Time) bool {
	return s.ExpiresAt.IsZero() || !now.Before(s.ExpiresAt)
}

// TimeUntilExpiry returns how long the session has left, or 0 when it has
// expired or has no expiry.
func (s *Session) TimeUntilExpiry() time.Duration {
	if s.ExpiresAt.IsZero() {
		return 0
	}
	return max(time.Until(s.ExpiresAt), 0)
}

// HasRole reports whether the session carries the role.
func (s *Session) HasRole(role string) bool { return slices.Contains(s.Roles, role) }

// MissingClaims returns the required claims that are not top-level keys of
// the session's custom claims, in the order given. A claim is present even
// when its value is false or null, as in the Python original.
func (s *Session) MissingClaims(required ...string) []string {
	var missing []string
	for _, c := range required {
		if _, ok := s.CustomClaims[c]; !ok {
			missing = append(missing, c)
		}
	}
	return missing
}

// MFAFactorTypes are the factor types that satisfy the "mfa" alias: a
// second factor.
var mfaFactorTypes = []string{"otp", "totp", "recovery_codes"}

// HasFactor reports whether the session has a factor whose type or delivery
// method is name. The alias "mfa" is satisfied by a second factor (type otp,
// totp or recovery_codes).
func (s *Session) HasFactor(name string) bool {
	if name == "mfa" {
		for _, t := range mfaFactorTypes {
			if s.HasFactor(t) {
				return true
			}
		}
		return false
	}
	if slices.Contains(s.AuthenticationFactors, name) {
		return true
	}
	for _, f := range s.Factors {
		if f.Type == name || f.DeliveryMethod == name {
			return true
		}
	}
	return false
}

// MissingFactors returns the required factors the session lacks (see
// HasFactor), in the order given.
func (s *Session) MissingFactors(required ...string) []string {
	var missing []string
	for _, f := range required {
		if !s.HasFactor(f) {
			missing = append(missing, f)
		}
	}
	return missing
}

// String identifies the session without personal data.
func (s *Session) String() string {
	return "Session(member_id=" + s.MemberID + ", organization_id=" + s.OrganizationID +
		", expires_at=" + s.ExpiresAt.UTC().Format(time.RFC3339) + ")"
}

// MarshalJSON renders the session as the Python original's to_dict does:
// RFC 3339 timestamps, empty lists and objects rather than null, and never a
// session token or JWT. It has a value receiver so that a Session and a
// *Session (and structs embedding either) marshal alike.
func (s Session) MarshalJSON() ([]byte, error) {
	type plain Session // no methods: avoids recursion
	c := plain(s)
	if c.Roles == nil {
		c.Roles = []string{}
	}
	if c.CustomClaims == nil {
		c.CustomClaims = map[string]any{}
	}
	if c.AuthenticationFactors == nil {
		c.AuthenticationFactors = []string{}
	}
	if c.Factors == nil {
		c.Factors = []Factor{}
	}
	return json.Marshal(c)
}

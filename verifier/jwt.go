package verifier

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claim names used by Stytch session JWTs.
const (
	ClaimSession      = "https://stytch.com/session"
	ClaimOrganization = "https://stytch.com/organization"
	stytchClaimPrefix = "https://stytch.com/"
)

// registeredClaims are dropped from custom claims (Node and Python drop jti
// too).
var registeredClaims = map[string]bool{"iss": true, "aud": true, "sub": true, "iat": true, "nbf": true, "exp": true, "jti": true}

// sessionClaim is the https://stytch.com/session claim.
type sessionClaim struct {
	ID                    string                 `json:"id"`
	StartedAt             string                 `json:"started_at"`
	LastAccessedAt        string                 `json:"last_accessed_at"`
	ExpiresAt             string                 `json:"expires_at"`
	AuthenticationFactors []AuthenticationFactor `json:"authentication_factors"`
	Roles                 []string               `json:"roles"`
}

// orgClaim is the https://stytch.com/organization claim.
type orgClaim struct {
	OrganizationID string `json:"organization_id"`
	Slug           string `json:"slug"`
}

// SessionFromClaims maps the claims of a verified Stytch session JWT to a
// Session: sub is the member, the session claim gives the session ID,
// timestamps, factors and roles, the organization claim the organization,
// and every other non-registered, non-Stytch top-level claim is a custom
// claim. It checks nothing about the token's validity.
func SessionFromClaims(claims jwt.MapClaims) (*Session, error) {
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, errors.New("claim sub is missing")
	}
	var sc sessionClaim
	if err := remarshal(claims[ClaimSession], &sc); err != nil || sc.ID == "" {
		return nil, errors.New("claim " + ClaimSession + " is missing or malformed")
	}
	var oc orgClaim
	if err := remarshal(claims[ClaimOrganization], &oc); err != nil || oc.OrganizationID == "" {
		return nil, errors.New("claim " + ClaimOrganization + " is missing or malformed")
	}
	s := &Session{
		MemberID:         sub,
		SessionID:        sc.ID,
		OrganizationID:   oc.OrganizationID,
		OrganizationSlug: oc.Slug,
		Roles:            sc.Roles,
		CustomClaims:     map[string]any{},
	}
	var err error
	if s.StartedAt, err = parseClaimTime(sc.StartedAt, "started_at"); err != nil {
		return nil, err
	}
	if s.LastAccessedAt, err = parseClaimTime(sc.LastAccessedAt, "last_accessed_at"); err != nil {
		return nil, err
	}
	if sc.ExpiresAt != "" {
		if s.ExpiresAt, err = parseClaimTime(sc.ExpiresAt, "expires_at"); err != nil {
			return nil, err
		}
	} else if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		s.ExpiresAt = exp.UTC() // older JWTs lack session.expires_at
	}
	if iat, err := claims.GetIssuedAt(); err == nil && iat != nil {
		s.AuthenticatedAt = iat.UTC()
	}
	applyFactors(s, sc.AuthenticationFactors)
	for k, v := range claims {
		if registeredClaims[k] || strings.HasPrefix(k, stytchClaimPrefix) {
			continue
		}
		s.CustomClaims[k] = v
	}
	s.Raw, _ = json.Marshal(map[string]any{"member_session": claims[ClaimSession], "organization": claims[ClaimOrganization]})
	return s, nil
}

// sessionFromResponse maps an authenticate answer to a Session.
func sessionFromResponse(r *AuthenticateResponse, now time.Time) *Session {
	ms := r.MemberSession
	s := &Session{
		MemberID:         firstNonEmpty(r.Member.MemberID, ms.MemberID),
		SessionID:        ms.MemberSessionID,
		OrganizationID:   firstNonEmpty(r.Organization.OrganizationID, ms.OrganizationID),
		OrganizationSlug: firstNonEmpty(r.Organization.OrganizationSlug, ms.OrganizationSlug),
		OrganizationName: r.Organization.OrganizationName,
		MemberEmail:      r.Member.EmailAddress,
		MemberName:       r.Member.Name,
		StartedAt:        ms.StartedAt.UTC(),
		LastAccessedAt:   ms.LastAccessedAt.UTC(),
		ExpiresAt:        ms.ExpiresAt.UTC(),
		AuthenticatedAt:  now.UTC(),
		Roles:            ms.Roles,
		CustomClaims:     ms.CustomClaims,
		Raw:              r.Raw,
		SessionJWT:       r.SessionJWT,
	}
	if s.CustomClaims == nil {
		s.CustomClaims = map[string]any{}
	}
	applyFactors(s, ms.AuthenticationFactors)
	return s
}

func applyFactors(s *Session, fs []AuthenticationFactor) {
	s.AuthenticationFactors = make([]string, 0, len(fs))
	s.Factors = make([]Factor, 0, len(fs))
	for _, f := range fs {
		t := f.Type
		if t == "" {
			t = "unknown"
		}
		s.AuthenticationFactors = append(s.AuthenticationFactors, t)
		s.Factors = append(s.Factors, Factor{Type: t, DeliveryMethod: f.DeliveryMethod, LastAuthenticatedAt: f.LastAuthenticatedAt.UTC()})
		if s.MemberEmail == "" && f.EmailFactor != nil {
			s.MemberEmail = f.EmailFactor.EmailAddress
		}
	}
}

func parseClaimTime(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errors.New("session claim " + name + " is not RFC 3339")
	}
	return t.UTC(), nil
}

func remarshal(v any, dst any) error {
	if v == nil {
		return errors.New("missing")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

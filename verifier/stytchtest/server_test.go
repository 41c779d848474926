package stytchtest_test

import (
	"crypto/rsa"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

func TestNewDefaults(t *testing.T) {
	srv := stytchtest.New() // generates its own key
	defer srv.Close()

	u, err := url.Parse(srv.URL())
	require.NoError(t, err)
	assert.Equal(t, "http", u.Scheme)
	host, _, err := net.SplitHostPort(u.Host)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
	assert.False(t, strings.HasSuffix(srv.URL(), "/"))
	assert.Regexp(t, `^project-test-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, srv.ProjectID())
	assert.True(t, strings.HasPrefix(srv.Secret(), "secret-test-"))
	assert.Equal(t, "stytch.com/"+srv.ProjectID(), srv.Issuer())
	assert.Equal(t, srv.URL()+"/v1/b2b/sessions/jwks/"+srv.ProjectID(), srv.JWKSURL())
	require.Len(t, srv.KIDs(), 1)
	assert.Regexp(t, `^jwk-test-`, srv.KIDs()[0])

	other := stytchtest.New(stytchtest.WithKey(testKey()))
	defer other.Close()
	assert.NotEqual(t, srv.ProjectID(), other.ProjectID())
	assert.NotEqual(t, srv.Secret(), other.Secret())
}

func TestWithProject(t *testing.T) {
	srv := newServer(t, stytchtest.WithProject("project-test-fixed", "secret-test-fixed"))
	assert.Equal(t, "project-test-fixed", srv.ProjectID())
	assert.Equal(t, "secret-test-fixed", srv.Secret())
	status, body := call(t, srv, http.MethodGet, "/v1/b2b/rbac/policy", nil, basicAuth("project-test-fixed", "secret-test-fixed"))
	requireOK(t, status, body)
}

func TestCloseIsIdempotentAndStopsServing(t *testing.T) {
	srv := stytchtest.New(stytchtest.WithKey(testKey()))
	url := srv.URL()
	srv.Close()
	srv.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	_, err := client.Get(url + "/v1/b2b/rbac/policy")
	require.Error(t, err)
	// State stays usable after Close.
	org := srv.CreateOrganization(stytchtest.OrganizationParams{})
	assert.NotEmpty(t, org.ID)
}

func TestCreateObjects(t *testing.T) {
	srv := newServer(t)
	org := srv.CreateOrganization(stytchtest.OrganizationParams{Name: "Big Co. Ltd"})
	assert.Regexp(t, `^organization-test-[0-9a-f-]{36}$`, org.ID)
	assert.Equal(t, "Big Co. Ltd", org.Name)
	assert.Equal(t, "big-co.-ltd", org.Slug)
	unnamed := srv.CreateOrganization(stytchtest.OrganizationParams{})
	assert.NotEmpty(t, unnamed.Name)
	assert.NotEmpty(t, unnamed.Slug)

	m, err := srv.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@b.test", Name: "A", Roles: []string{"editor", "editor", "stytch_member"}})
	require.NoError(t, err)
	assert.Regexp(t, `^member-test-[0-9a-f-]{36}$`, m.ID)
	assert.Equal(t, org.ID, m.OrganizationID)
	assert.Equal(t, []string{"editor"}, m.Roles)

	sess, err := srv.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	assert.Regexp(t, `^member-session-test-[0-9a-f-]{36}$`, sess.ID)
	assert.Regexp(t, `^[A-Za-z0-9_-]{44}$`, sess.Token)
	assert.Len(t, strings.Split(sess.JWT, "."), 3)
	assert.Equal(t, m.ID, sess.MemberID)
	assert.Equal(t, org.ID, sess.OrganizationID)
	assert.Equal(t, []string{"stytch_member", "editor"}, sess.Roles)
	assert.Equal(t, 60*time.Minute, sess.ExpiresAt.Sub(sess.StartedAt))

	got, err := srv.Session(sess.ID)
	require.NoError(t, err)
	assert.Equal(t, sess.Token, got.Token)
	assert.Empty(t, got.JWT)

	sess2, err := srv.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	assert.NotEqual(t, sess.Token, sess2.Token)
}

func TestCreateErrors(t *testing.T) {
	srv := newServer(t)
	org := srv.CreateOrganization(stytchtest.OrganizationParams{Name: "x"})
	_, err := srv.CreateMember("organization-test-nope", stytchtest.MemberParams{Email: "a@b.test"})
	assert.ErrorIs(t, err, stytchtest.ErrOrganizationNotFound)
	_, err = srv.CreateMember(org.ID, stytchtest.MemberParams{Email: "not-an-email"})
	assert.ErrorIs(t, err, stytchtest.ErrInvalidParams)
	m, err := srv.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@b.test"})
	require.NoError(t, err)
	_, err = srv.CreateMember(org.ID, stytchtest.MemberParams{Email: "A@B.test"})
	assert.ErrorIs(t, err, stytchtest.ErrInvalidParams)

	_, err = srv.CreateSession("member-test-nope", stytchtest.SessionParams{})
	assert.ErrorIs(t, err, stytchtest.ErrMemberNotFound)
	_, err = srv.CreateSession(m.ID, stytchtest.SessionParams{CustomClaims: map[string]any{"https://stytch.com/session": 1}})
	assert.ErrorIs(t, err, stytchtest.ErrInvalidParams)
	_, err = srv.CreateSession(m.ID, stytchtest.SessionParams{CustomClaims: map[string]any{"big": strings.Repeat("x", 5000)}})
	assert.ErrorIs(t, err, stytchtest.ErrInvalidParams)
	_, err = srv.CreateSession(m.ID, stytchtest.SessionParams{CustomClaims: map[string]any{"ch": make(chan int)}})
	assert.ErrorIs(t, err, stytchtest.ErrInvalidParams)
	_, err = srv.CreateSession(m.ID, stytchtest.SessionParams{Factors: []stytchtest.Factor{{}}})
	assert.ErrorIs(t, err, stytchtest.ErrInvalidParams)

	_, err = srv.MintJWT("member-session-test-nope")
	assert.ErrorIs(t, err, stytchtest.ErrSessionNotFound)
	_, err = srv.Session("member-session-test-nope")
	assert.ErrorIs(t, err, stytchtest.ErrSessionNotFound)
	srv.Revoke("member-session-test-nope") // ignored
}

func TestBasicAuthEnforcement(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	endpoints := []struct {
		name, method, path string
		body               any
	}{
		{"authenticate", http.MethodPost, "/v1/b2b/sessions/authenticate", map[string]any{"session_token": f.plainSess.Token}},
		{"revoke", http.MethodPost, "/v1/b2b/sessions/revoke", map[string]any{"member_session_id": f.plainSess.ID}},
		{"list", http.MethodGet, "/v1/b2b/sessions?organization_id=" + f.org.ID + "&member_id=" + f.plain.ID, nil},
		{"policy", http.MethodGet, "/v1/b2b/rbac/policy", nil},
		{"org policy", http.MethodGet, "/v1/b2b/rbac/organizations/" + f.org.ID, nil},
	}
	creds := []struct {
		name string
		opt  reqOpt
	}{
		{"none", noAuth()},
		{"wrong secret", basicAuth(srv.ProjectID(), "secret-test-wrong")},
		{"wrong project", basicAuth("project-test-wrong", srv.Secret())},
		{"empty", basicAuth("", "")},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+srv.Secret()) }},
		{"garbage basic", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }},
	}
	for _, ep := range endpoints {
		for _, c := range creds {
			t.Run(ep.name+"/"+c.name, func(t *testing.T) {
				status, body := call(t, srv, ep.method, ep.path, ep.body, c.opt)
				requireError(t, status, body, http.StatusUnauthorized, "unauthorized_credentials")
			})
		}
	}
	// Nothing was revoked by the refused calls.
	status, body := authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
	requireOK(t, status, body)

	t.Run("jwks without auth", func(t *testing.T) {
		status, body := call(t, srv, http.MethodGet, "/v1/b2b/sessions/jwks/"+srv.ProjectID(), nil, noAuth())
		requireOK(t, status, body)
	})
	t.Run("jwks with auth", func(t *testing.T) {
		status, body := call(t, srv, http.MethodGet, "/v1/b2b/sessions/jwks/"+srv.ProjectID(), nil)
		requireOK(t, status, body)
	})
	t.Run("jwks with bad auth", func(t *testing.T) {
		status, body := call(t, srv, http.MethodGet, "/v1/b2b/sessions/jwks/"+srv.ProjectID(), nil, basicAuth(srv.ProjectID(), "nope"))
		requireError(t, status, body, http.StatusUnauthorized, "unauthorized_credentials")
	})
}

func TestRoutingErrors(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name, method, path string
		status             int
		errType            string
	}{
		{"unknown path", http.MethodGet, "/v1/nope", http.StatusNotFound, "route_not_found"},
		{"root", http.MethodGet, "/", http.StatusNotFound, "route_not_found"},
		{"consumer jwks path", http.MethodGet, "/v1/sessions/jwks/" + srv.ProjectID(), http.StatusNotFound, "route_not_found"},
		{"trailing slash", http.MethodPost, "/v1/b2b/sessions/authenticate/", http.StatusNotFound, "route_not_found"},
		{"jwks of other project", http.MethodGet, "/v1/b2b/sessions/jwks/project-test-other", http.StatusNotFound, "project_not_found"},
		{"jwks without project", http.MethodGet, "/v1/b2b/sessions/jwks/", http.StatusNotFound, "project_not_found"},
		{"GET authenticate", http.MethodGet, "/v1/b2b/sessions/authenticate", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"POST policy", http.MethodPost, "/v1/b2b/rbac/policy", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"DELETE sessions", http.MethodDelete, "/v1/b2b/sessions", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"org policy unknown org", http.MethodGet, "/v1/b2b/rbac/organizations/organization-test-nope", http.StatusNotFound, "organization_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, srv, tc.method, tc.path, nil)
			requireError(t, status, body, tc.status, tc.errType)
		})
	}
}

func TestAuthenticateSuccessShape(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, stytchtest.WithClock(clock.Now))
	srv := f.srv
	created := clock.Now()
	clock.Advance(90 * time.Second)

	for _, via := range []string{"session_token", "session_jwt"} {
		t.Run(via, func(t *testing.T) {
			cred := f.adminSess.Token
			if via == "session_jwt" {
				cred = f.adminSess.JWT
			}
			status, body := authenticate(t, srv, map[string]any{via: cred})
			requireOK(t, status, body)
			assert.Equal(t, f.adminSess.Token, body["session_token"])
			assert.NotEmpty(t, body["session_jwt"])
			assert.NotContains(t, body, "verdict")

			ms := body["member_session"].(map[string]any)
			assert.Equal(t, f.adminSess.ID, ms["member_session_id"])
			assert.Equal(t, f.admin.ID, ms["member_id"])
			assert.Equal(t, f.org.ID, ms["organization_id"])
			assert.Equal(t, "acme", ms["organization_slug"])
			assert.Equal(t, []any{"stytch_member", "stytch_admin"}, ms["roles"])
			assert.Equal(t, map[string]any{}, ms["custom_claims"])
			assert.Equal(t, created.Format(time.RFC3339), ms["started_at"])
			assert.Equal(t, clock.Now().Format(time.RFC3339), ms["last_accessed_at"])
			assert.Equal(t, created.Add(time.Hour).Format(time.RFC3339), ms["expires_at"])
			for _, k := range []string{"started_at", "last_accessed_at", "expires_at"} {
				assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, ms[k])
			}
			factors := ms["authentication_factors"].([]any)
			require.Len(t, factors, 1)
			fac := factors[0].(map[string]any)
			assert.Equal(t, "magic_link", fac["type"])
			assert.Equal(t, "email", fac["delivery_method"])
			assert.Equal(t, created.Format(time.RFC3339), fac["last_authenticated_at"])
			ef := fac["email_factor"].(map[string]any)
			assert.Equal(t, "ada@acme.test", ef["email_address"])
			assert.Regexp(t, `^member-email-test-`, ef["email_id"])

			m := body["member"].(map[string]any)
			assert.Equal(t, f.admin.ID, m["member_id"])
			assert.Equal(t, f.org.ID, m["organization_id"])
			assert.Equal(t, "ada@acme.test", m["email_address"])
			assert.Equal(t, "Ada", m["name"])
			assert.Equal(t, "active", m["status"])
			assert.Equal(t, true, m["is_admin"])
			roles := m["roles"].([]any)
			require.Len(t, roles, 2)
			assert.Equal(t, "stytch_admin", roles[1].(map[string]any)["role_id"])
			for _, k := range []string{"sso_registrations", "is_breakglass", "member_password_id", "oauth_registrations",
				"email_address_verified", "mfa_phone_number_verified", "totp_registration_id", "retired_email_addresses",
				"is_locked", "mfa_enrolled", "mfa_phone_number", "default_mfa_method"} {
				assert.Contains(t, m, k)
			}

			o := body["organization"].(map[string]any)
			assert.Equal(t, f.org.ID, o["organization_id"])
			assert.Equal(t, "Acme Corp", o["organization_name"])
			assert.Equal(t, "acme", o["organization_slug"])
		})
	}
}

func TestAuthenticateErrors(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, stytchtest.WithClock(clock.Now))
	srv := f.srv
	expired, err := srv.CreateSession(f.plain.ID, stytchtest.SessionParams{ExpiresAt: clock.Now().Add(-time.Minute)})
	require.NoError(t, err)
	foreign, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithSigningKey(foreignKey()))
	require.NoError(t, err)
	badIss, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithIssuer("stytch.com/project-test-other"))
	require.NoError(t, err)
	badAud, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithAudience("project-test-other"))
	require.NoError(t, err)
	unknownKID, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithKID("jwk-test-unknown"))
	require.NoError(t, err)
	noKID, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithoutKID())
	require.NoError(t, err)
	hs256 := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": f.plain.ID})
	hsTok, err := hs256.SignedString([]byte(srv.Secret()))
	require.NoError(t, err)
	none, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithSigningMethod(jwt.SigningMethodNone))
	require.NoError(t, err)
	rs512, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithSigningMethod(jwt.SigningMethodRS512))
	require.NoError(t, err)
	noSession, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithoutClaim(stytchtest.SessionClaim))
	require.NoError(t, err)
	wrongSub, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithClaim("sub", f.admin.ID))
	require.NoError(t, err)
	parts := strings.Split(f.plainSess.JWT, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`)) + "." + parts[2]

	tests := []struct {
		name    string
		body    any
		status  int
		errType string
	}{
		{"both", map[string]any{"session_token": f.plainSess.Token, "session_jwt": f.plainSess.JWT}, 400, "too_many_session_arguments"},
		{"neither", map[string]any{}, 400, "bad_request"},
		{"empty strings", map[string]any{"session_token": "", "session_jwt": ""}, 400, "bad_request"},
		{"empty body", "", 400, "bad_request"},
		{"not json", "session_token=abc", 400, "bad_request"},
		{"json array", "[]", 400, "bad_request"},
		{"wrong type", `{"session_token": 42}`, 400, "bad_request"},
		{"trailing data", `{"session_token":"a"} {}`, 400, "bad_request"},
		{"duration too short", map[string]any{"session_token": f.plainSess.Token, "session_duration_minutes": 4}, 400, "bad_request"},
		{"duration too long", map[string]any{"session_token": f.plainSess.Token, "session_duration_minutes": 527041}, 400, "bad_request"},
		{"duration overflow", `{"session_token":"x","session_duration_minutes":99999999999}`, 400, "bad_request"},
		{"duration fraction", `{"session_token":"x","session_duration_minutes":5.5}`, 400, "bad_request"},
		{"authz check incomplete", map[string]any{"session_token": f.plainSess.Token, "authorization_check": map[string]any{"organization_id": f.org.ID}}, 400, "bad_request"},
		{"unknown token", map[string]any{"session_token": "59cnLELtq5cFVS6uYK9f-pAWzBkhqZl8AvLhbhOvKNWw"}, 404, "session_not_found"},
		{"odd token", map[string]any{"session_token": "\x00\"';<script>"}, 404, "session_not_found"},
		{"expired session token", map[string]any{"session_token": expired.Token}, 404, "session_not_found"},
		{"expired session jwt", map[string]any{"session_jwt": expired.JWT}, 404, "session_not_found"},
		{"garbage jwt", map[string]any{"session_jwt": "not.a.jwt"}, 400, "unable_to_parse_session_jwt"},
		{"one segment jwt", map[string]any{"session_jwt": "abc"}, 400, "unable_to_parse_session_jwt"},
		{"tampered payload", map[string]any{"session_jwt": tampered}, 400, "unable_to_parse_session_jwt"},
		{"foreign key", map[string]any{"session_jwt": foreign}, 400, "unable_to_parse_session_jwt"},
		{"unknown kid", map[string]any{"session_jwt": unknownKID}, 400, "unable_to_parse_session_jwt"},
		{"no kid", map[string]any{"session_jwt": noKID}, 400, "unable_to_parse_session_jwt"},
		{"HS256", map[string]any{"session_jwt": hsTok}, 400, "unable_to_parse_session_jwt"},
		{"alg none", map[string]any{"session_jwt": none}, 400, "unable_to_parse_session_jwt"},
		{"RS512", map[string]any{"session_jwt": rs512}, 400, "unable_to_parse_session_jwt"},
		{"wrong issuer", map[string]any{"session_jwt": badIss}, 400, "jwt_invalid_issuer"},
		{"wrong audience", map[string]any{"session_jwt": badAud}, 400, "jwt_invalid_audience"},
		{"no session claim", map[string]any{"session_jwt": noSession}, 400, "jwt_invalid_claims"},
		{"sub of another member", map[string]any{"session_jwt": wrongSub}, 400, "jwt_invalid_claims"},
		{"stytch claim update", map[string]any{"session_token": f.plainSess.Token, "session_custom_claims": map[string]any{"https://stytch.com/x": 1}}, 400, "stytch_claims_in_custom_claims"},
		{"claims too large", map[string]any{"session_token": f.plainSess.Token, "session_custom_claims": map[string]any{"big": strings.Repeat("x", 4100)}}, 400, "custom_claims_too_large"},
		{"body too large", `{"session_token":"` + strings.Repeat("x", stytchtest.MaxBodyBytes) + `"}`, 413, "request_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := authenticate(t, srv, tc.body)
			requireError(t, status, body, tc.status, tc.errType)
		})
	}
	// None of the failures touched the session.
	got, err := srv.Session(f.plainSess.ID)
	require.NoError(t, err)
	assert.Equal(t, f.plainSess.ExpiresAt, got.ExpiresAt)
	assert.Equal(t, f.plainSess.LastAccessedAt, got.LastAccessedAt)
}

func TestAuthenticateExtendsAndTouches(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, stytchtest.WithClock(clock.Now))
	srv := f.srv
	start := clock.Now()

	clock.Advance(10 * time.Minute)
	status, body := authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
	requireOK(t, status, body)
	ms := body["member_session"].(map[string]any)
	assert.Equal(t, clock.Now().Format(time.RFC3339), ms["last_accessed_at"])
	assert.Equal(t, start.Add(time.Hour).Format(time.RFC3339), ms["expires_at"], "not extended without session_duration_minutes")

	clock.Advance(10 * time.Minute)
	status, body = authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token, "session_duration_minutes": 120})
	requireOK(t, status, body)
	ms = body["member_session"].(map[string]any)
	assert.Equal(t, clock.Now().Add(2*time.Hour).Format(time.RFC3339), ms["expires_at"])

	// The returned JWT carries the new expiry and access time.
	keys, _ := fetchJWKS(t, srv)
	claims, err := verifyLocal(srv, keys, body["session_jwt"].(string), clock.Now())
	require.NoError(t, err)
	sc := claims[stytchtest.SessionClaim].(map[string]any)
	assert.Equal(t, ms["expires_at"], sc["expires_at"])
	assert.Equal(t, ms["last_accessed_at"], sc["last_accessed_at"])

	got, err := srv.Session(f.plainSess.ID)
	require.NoError(t, err)
	assert.Equal(t, clock.Now().Add(2*time.Hour), got.ExpiresAt)
	assert.Equal(t, clock.Now(), got.LastAccessedAt)

	// Shorter extension shortens too; past the expiry the session is gone.
	status, body = authenticate(t, srv, map[string]any{"session_jwt": f.plainSess.JWT, "session_duration_minutes": 5})
	requireOK(t, status, body)
	clock.Advance(5 * time.Minute)
	status, body = authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
	requireError(t, status, body, http.StatusNotFound, "session_not_found")
}

func TestExpiredJWTOfLiveSessionIsRefreshed(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, stytchtest.WithClock(clock.Now))
	srv := f.srv
	keys, _ := fetchJWKS(t, srv)
	old := f.plainSess.JWT

	clock.Advance(10 * time.Minute)
	_, err := verifyLocal(srv, keys, old, clock.Now())
	require.ErrorIs(t, err, jwt.ErrTokenExpired)

	status, body := authenticate(t, srv, map[string]any{"session_jwt": old})
	requireOK(t, status, body)
	fresh := body["session_jwt"].(string)
	assert.NotEqual(t, old, fresh)
	claims, err := verifyLocal(srv, keys, fresh, clock.Now())
	require.NoError(t, err)
	iat, err := claims.GetIssuedAt()
	require.NoError(t, err)
	assert.Equal(t, clock.Now(), iat.UTC())

	// Once the session itself has expired, the JWT is refused.
	clock.Advance(time.Hour)
	status, body = authenticate(t, srv, map[string]any{"session_jwt": fresh})
	requireError(t, status, body, http.StatusNotFound, "session_not_found")
}

func TestJWTVerifiesAgainstJWKS(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, stytchtest.WithClock(clock.Now))
	srv := f.srv
	sess, err := srv.CreateSession(f.admin.ID, stytchtest.SessionParams{
		CustomClaims: map[string]any{"tenant": "acme", "https://app.example/claim": map[string]any{"n": 1}, "iss": "ignored", "jti": "ignored"},
		Roles:        []string{"stytch_member", "editor"},
		Duration:     2 * time.Hour,
		IPAddress:    "203.0.113.7",
		UserAgent:    "test-agent",
		Factors: []stytchtest.Factor{
			{Type: "sso", DeliveryMethod: "sso_saml", Extra: map[string]any{"saml_sso_factor": map[string]any{"id": "saml-registration-test-1", "provider_id": "saml-connection-test-1", "external_id": "ext"}}},
			{Type: "totp", DeliveryMethod: "authenticator_app", LastAuthenticatedAt: clock.Now().Add(-time.Minute)},
		},
	})
	require.NoError(t, err)

	keys, raw := fetchJWKS(t, srv)
	require.Len(t, raw, 1)
	for _, k := range raw {
		assert.Equal(t, "RSA", k["kty"])
		assert.Equal(t, "sig", k["use"])
		assert.Equal(t, "RS256", k["alg"])
		assert.Equal(t, []any{"verify"}, k["key_ops"])
		assert.Equal(t, "AQAB", k["e"])
		assert.Equal(t, srv.KIDs()[0], k["kid"])
	}

	hdr := jwtHeader(t, sess.JWT)
	assert.Equal(t, map[string]any{"alg": "RS256", "kid": srv.KIDs()[0], "typ": "JWT"}, hdr)

	claims, err := verifyLocal(srv, keys, sess.JWT, clock.Now())
	require.NoError(t, err)
	now := clock.Now().Unix()
	assert.Equal(t, "stytch.com/"+srv.ProjectID(), claims["iss"])
	assert.Equal(t, []any{srv.ProjectID()}, claims["aud"])
	assert.Equal(t, f.admin.ID, claims["sub"])
	assert.Equal(t, float64(now), claims["iat"])
	assert.Equal(t, float64(now), claims["nbf"])
	assert.Equal(t, float64(now+300), claims["exp"])
	assert.Equal(t, "acme", claims["tenant"])
	assert.Equal(t, map[string]any{"n": float64(1)}, claims["https://app.example/claim"])
	assert.NotContains(t, claims, "jti")

	sc := claims[stytchtest.SessionClaim].(map[string]any)
	assert.Equal(t, sess.ID, sc["id"])
	assert.Equal(t, clock.Now().Format(time.RFC3339), sc["started_at"])
	assert.Equal(t, clock.Now().Format(time.RFC3339), sc["last_accessed_at"])
	assert.Equal(t, clock.Now().Add(2*time.Hour).Format(time.RFC3339), sc["expires_at"])
	assert.Equal(t, map[string]any{"ip_address": "203.0.113.7", "user_agent": "test-agent"}, sc["attributes"])
	assert.Equal(t, []any{"stytch_member", "editor"}, sc["roles"])
	factors := sc["authentication_factors"].([]any)
	require.Len(t, factors, 2)
	sso := factors[0].(map[string]any)
	assert.Equal(t, "sso", sso["type"])
	assert.Equal(t, "sso_saml", sso["delivery_method"])
	assert.Equal(t, "saml-connection-test-1", sso["saml_sso_factor"].(map[string]any)["provider_id"])
	assert.NotContains(t, sso, "email_factor")
	totp := factors[1].(map[string]any)
	assert.Equal(t, clock.Now().Add(-time.Minute).Format(time.RFC3339), totp["last_authenticated_at"])

	assert.Equal(t, map[string]any{"organization_id": f.org.ID, "slug": "acme"}, claims[stytchtest.OrganizationClaim])

	// The API view matches the JWT view.
	status, body := authenticate(t, srv, map[string]any{"session_token": sess.Token})
	requireOK(t, status, body)
	ms := body["member_session"].(map[string]any)
	assert.Equal(t, sc["authentication_factors"], ms["authentication_factors"])
	assert.Equal(t, map[string]any{"tenant": "acme", "https://app.example/claim": map[string]any{"n": float64(1)}}, ms["custom_claims"])
}

func TestMintJWTOptions(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, stytchtest.WithClock(clock.Now))
	srv := f.srv
	keys, _ := fetchJWKS(t, srv)
	now := clock.Now()
	id := f.plainSess.ID

	tests := []struct {
		name    string
		opts    []stytchtest.JWTOption
		wantErr error
		check   func(t *testing.T, claims jwt.MapClaims, hdr map[string]any)
	}{
		{name: "default"},
		{name: "issued in the past", opts: []stytchtest.JWTOption{stytchtest.WithIssuedAt(now.Add(-10 * time.Minute))}, wantErr: jwt.ErrTokenExpired},
		{name: "issued a bit ago", opts: []stytchtest.JWTOption{stytchtest.WithIssuedAt(now.Add(-time.Minute))},
			check: func(t *testing.T, c jwt.MapClaims, _ map[string]any) {
				assert.Equal(t, float64(now.Add(-time.Minute).Unix()), c["iat"])
				assert.Equal(t, float64(now.Add(-time.Minute).Unix()), c["nbf"])
				assert.Equal(t, float64(now.Add(4*time.Minute).Unix()), c["exp"])
			}},
		{name: "expired", opts: []stytchtest.JWTOption{stytchtest.WithExpiry(now.Add(-time.Second))}, wantErr: jwt.ErrTokenExpired},
		{name: "not yet valid", opts: []stytchtest.JWTOption{stytchtest.WithNotBefore(now.Add(time.Minute))}, wantErr: jwt.ErrTokenNotValidYet},
		{name: "wrong issuer", opts: []stytchtest.JWTOption{stytchtest.WithIssuer("evil")}, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "wrong audience", opts: []stytchtest.JWTOption{stytchtest.WithAudience("x", "y")}, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "unknown kid", opts: []stytchtest.JWTOption{stytchtest.WithKID("jwk-test-nope")}, wantErr: jwt.ErrTokenUnverifiable,
			check: func(t *testing.T, _ jwt.MapClaims, hdr map[string]any) { assert.Equal(t, "jwk-test-nope", hdr["kid"]) }},
		{name: "no kid", opts: []stytchtest.JWTOption{stytchtest.WithoutKID()}, wantErr: jwt.ErrTokenUnverifiable,
			check: func(t *testing.T, _ jwt.MapClaims, hdr map[string]any) { assert.NotContains(t, hdr, "kid") }},
		{name: "foreign key", opts: []stytchtest.JWTOption{stytchtest.WithSigningKey(foreignKey())}, wantErr: jwt.ErrTokenSignatureInvalid,
			check: func(t *testing.T, _ jwt.MapClaims, hdr map[string]any) { assert.Equal(t, srv.KIDs()[0], hdr["kid"]) }},
		{name: "RS512", opts: []stytchtest.JWTOption{stytchtest.WithSigningMethod(jwt.SigningMethodRS512)}, wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "no iat", opts: []stytchtest.JWTOption{stytchtest.WithoutClaim("iat")},
			check: func(t *testing.T, c jwt.MapClaims, _ map[string]any) { assert.NotContains(t, c, "iat") }},
		{name: "extra claim", opts: []stytchtest.JWTOption{stytchtest.WithClaim("x", "y")},
			check: func(t *testing.T, c jwt.MapClaims, _ map[string]any) { assert.Equal(t, "y", c["x"]) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := srv.MintJWT(id, tc.opts...)
			require.NoError(t, err)
			claims, err := verifyLocal(srv, keys, tok, now)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else if tc.name != "no iat" {
				require.NoError(t, err)
			}
			if tc.check != nil {
				unverified := jwt.MapClaims{}
				parsed, _, err := jwt.NewParser().ParseUnverified(tok, unverified)
				require.NoError(t, err)
				tc.check(t, unverified, parsed.Header)
			}
			_ = claims
		})
	}

	t.Run("url issuer", func(t *testing.T) {
		tok, err := srv.MintJWT(id, stytchtest.WithIssuer(srv.URL()))
		require.NoError(t, err)
		status, body := authenticate(t, srv, map[string]any{"session_jwt": tok})
		requireOK(t, status, body)
	})
	t.Run("expired mint still authenticates", func(t *testing.T) {
		tok, err := srv.MintJWT(id, stytchtest.WithIssuedAt(now.Add(-time.Hour)))
		require.NoError(t, err)
		status, body := authenticate(t, srv, map[string]any{"session_jwt": tok})
		requireOK(t, status, body)
	})
}

func TestWithURLIssuer(t *testing.T) {
	f := newFixture(t, stytchtest.WithURLIssuer())
	srv := f.srv
	assert.Equal(t, srv.URL(), srv.Issuer())
	claims := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(f.plainSess.JWT, claims)
	require.NoError(t, err)
	assert.Equal(t, srv.URL(), claims["iss"])
	status, body := authenticate(t, srv, map[string]any{"session_jwt": f.plainSess.JWT})
	requireOK(t, status, body)
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	oldKID := srv.KIDs()[0]
	oldJWT := f.plainSess.JWT

	newKID := srv.AddKey(foreignKey())
	require.NotEmpty(t, newKID)
	assert.NotEqual(t, oldKID, newKID)
	assert.Equal(t, []string{oldKID, newKID}, srv.KIDs())

	keys, raw := fetchJWKS(t, srv)
	require.Len(t, raw, 2)
	assert.Contains(t, keys, oldKID)
	assert.Contains(t, keys, newKID)

	fresh, err := srv.MintJWT(f.plainSess.ID)
	require.NoError(t, err)
	assert.Equal(t, newKID, jwtHeader(t, fresh)["kid"])
	_, err = verifyLocal(srv, keys, fresh, time.Now())
	require.NoError(t, err)
	_, err = verifyLocal(srv, keys, oldJWT, time.Now())
	require.NoError(t, err, "old JWTs still verify while the old key is served")

	status, body := authenticate(t, srv, map[string]any{"session_jwt": oldJWT})
	requireOK(t, status, body)
	assert.Equal(t, newKID, jwtHeader(t, body["session_jwt"].(string))["kid"], "the API issues JWTs with the new key")

	srv.RetireKey(oldKID)
	assert.Equal(t, []string{newKID}, srv.KIDs())
	keys, raw = fetchJWKS(t, srv)
	require.Len(t, raw, 1)
	assert.NotContains(t, keys, oldKID)
	status, body = authenticate(t, srv, map[string]any{"session_jwt": oldJWT})
	requireError(t, status, body, http.StatusBadRequest, "unable_to_parse_session_jwt")

	// A retired key can still sign on request.
	retiredTok, err := srv.MintJWT(f.plainSess.ID, stytchtest.WithKID(oldKID))
	require.NoError(t, err)
	assert.Equal(t, oldKID, jwtHeader(t, retiredTok)["kid"])
	_, err = verifyLocal(srv, map[string]*rsa.PublicKey{oldKID: &testKey().PublicKey}, retiredTok, time.Now())
	require.NoError(t, err)

	// RotateKey generates a key.
	rotated := srv.RotateKey()
	require.NotEmpty(t, rotated)
	assert.Equal(t, []string{newKID, rotated}, srv.KIDs())

	// With every key retired, minting fails and authenticate answers 500.
	srv.RetireKey(newKID)
	srv.RetireKey(rotated)
	assert.Empty(t, srv.KIDs())
	_, err = srv.MintJWT(f.plainSess.ID)
	require.ErrorIs(t, err, stytchtest.ErrNoSigningKey)
	status, body = authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
	requireError(t, status, body, http.StatusInternalServerError, "internal_server_error")
	_, raw = fetchJWKS(t, srv)
	assert.Empty(t, raw)
}

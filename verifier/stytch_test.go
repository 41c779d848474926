package verifier_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// fixture is an emulator with one organization, member and session, and a
// Stytch verifier pointed at it.
type fixture struct {
	emu  *stytchtest.Server
	v    *verifier.Stytch
	sess stytchtest.Session
}

func newFixture(t *testing.T, mutate ...func(*verifier.Config)) *fixture {
	t.Helper()
	emu := stytchtest.New(stytchtest.WithKey(testKey(t)))
	t.Cleanup(emu.Close)
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme", Slug: "acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test", Name: "Ada", Roles: []string{"editor"}})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{
		Factors: []stytchtest.Factor{
			{Type: "magic_link", DeliveryMethod: "email"},
			{Type: "totp", DeliveryMethod: "authenticator_app"},
		},
		CustomClaims: map[string]any{"admin": false, "tier": "gold", "nested": map[string]any{"a": 1.0}},
	})
	require.NoError(t, err)
	cfg := verifier.Config{
		ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(),
		Timeout: 2 * time.Second, MaxRetries: 3,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	v, err := verifier.NewStytch(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	// Let the background JWKS fetch land, so call counts below are exact.
	require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) >= 1 }, 5*time.Second, 5*time.Millisecond)
	return &fixture{emu: emu, v: v, sess: sess}
}

func TestVerifyOpaqueToken(t *testing.T) {
	f := newFixture(t)
	s, err := f.v.Verify(context.Background(), f.sess.Token)
	require.NoError(t, err)
	assert.Equal(t, f.sess.MemberID, s.MemberID)
	assert.Equal(t, f.sess.ID, s.SessionID)
	assert.Equal(t, f.sess.OrganizationID, s.OrganizationID)
	assert.Equal(t, "acme", s.OrganizationSlug)
	assert.Equal(t, "Acme", s.OrganizationName)
	assert.Equal(t, "ada@acme.test", s.MemberEmail)
	assert.Equal(t, "Ada", s.MemberName)
	assert.Equal(t, []string{"magic_link", "totp"}, s.AuthenticationFactors)
	assert.ElementsMatch(t, []string{"stytch_member", "editor"}, s.Roles)
	assert.True(t, s.HasFactor("mfa"))
	assert.False(t, s.IsExpired())
	assert.NotEmpty(t, s.SessionJWT, "the API's fresh JWT is kept")
	assert.Equal(t, 1, f.emu.Calls(stytchtest.Authenticate))

	js, err := s.MarshalJSON()
	require.NoError(t, err)
	assert.NotContains(t, string(js), "session_token")
	assert.NotContains(t, string(js), "session_jwt")
	assert.NotContains(t, string(js), f.sess.Token)
	assert.NotContains(t, string(js), s.SessionJWT)
}

func TestVerifyFreshJWTMakesNoCall(t *testing.T) {
	f := newFixture(t)
	s, err := f.v.Verify(context.Background(), f.sess.JWT)
	require.NoError(t, err)
	assert.Equal(t, 0, f.emu.Calls(stytchtest.Authenticate))
	assert.Equal(t, f.sess.MemberID, s.MemberID)
	assert.Equal(t, "ada@acme.test", s.MemberEmail, "from the email factor")
	assert.Empty(t, s.SessionJWT)
}

// TestSamePathsSameSession: custom claims, roles and factors are the same
// whichever path verified the token.
func TestSamePathsSameSession(t *testing.T) {
	f := newFixture(t)
	remote, err := f.v.Verify(context.Background(), f.sess.Token)
	require.NoError(t, err)
	local, err := f.v.Verify(context.Background(), f.sess.JWT)
	require.NoError(t, err)
	assert.Equal(t, remote.CustomClaims, local.CustomClaims)
	assert.Equal(t, map[string]any{"admin": false, "tier": "gold", "nested": map[string]any{"a": 1.0}}, local.CustomClaims)
	assert.ElementsMatch(t, remote.Roles, local.Roles)
	assert.Equal(t, remote.AuthenticationFactors, local.AuthenticationFactors)
	require.Len(t, local.Factors, 2)
	for i := range local.Factors {
		assert.Equal(t, remote.Factors[i].Type, local.Factors[i].Type)
		assert.Equal(t, remote.Factors[i].DeliveryMethod, local.Factors[i].DeliveryMethod)
		assert.WithinDuration(t, remote.Factors[i].LastAuthenticatedAt, local.Factors[i].LastAuthenticatedAt, time.Second)
	}
	assert.Equal(t, remote.SessionID, local.SessionID)
	assert.Equal(t, remote.OrganizationID, local.OrganizationID)
	assert.WithinDuration(t, remote.ExpiresAt, local.ExpiresAt, time.Second)
}

func TestExpiredJWTFallsBackAndKeepsFreshJWT(t *testing.T) {
	f := newFixture(t)
	old := time.Now().Add(-10 * time.Minute)
	expired, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithIssuedAt(old))
	require.NoError(t, err)
	s, err := f.v.Verify(context.Background(), expired)
	require.NoError(t, err)
	assert.Equal(t, 1, f.emu.Calls(stytchtest.Authenticate))
	require.NotEmpty(t, s.SessionJWT)
	assert.NotEqual(t, expired, s.SessionJWT)
	// The fresh JWT verifies locally: no further call.
	_, err = f.v.Verify(context.Background(), s.SessionJWT)
	require.NoError(t, err)
	assert.Equal(t, 1, f.emu.Calls(stytchtest.Authenticate))
}

func TestMaxTokenAgeGoesRemote(t *testing.T) {
	f := newFixture(t, func(c *verifier.Config) { c.MaxTokenAge = time.Minute })
	old, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithIssuedAt(time.Now().Add(-2*time.Minute)))
	require.NoError(t, err)
	_, err = f.v.Verify(context.Background(), old)
	require.NoError(t, err)
	assert.Equal(t, 1, f.emu.Calls(stytchtest.Authenticate))
}

func TestRevokedSession(t *testing.T) {
	f := newFixture(t)
	f.emu.Revoke(f.sess.ID)
	_, err := f.v.Verify(context.Background(), f.sess.Token)
	require.ErrorIs(t, err, verifier.ErrInvalidSession)
	var ae *verifier.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusNotFound, ae.StatusCode)
	assert.Equal(t, "session_not_found", ae.ErrorType)
	assert.NotEmpty(t, ae.RequestID)
	assert.Equal(t, 1, f.emu.Calls(stytchtest.Authenticate), "404 is not retried")
}

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.v.Revoke(context.Background(), f.sess.Token))
	_, err := f.v.Verify(context.Background(), f.sess.Token)
	require.ErrorIs(t, err, verifier.ErrInvalidSession)
	// Revoking again (unknown session) succeeds.
	require.NoError(t, f.v.Revoke(context.Background(), f.sess.Token))
	require.ErrorIs(t, f.v.Revoke(context.Background(), "bad token!"), verifier.ErrMalformedToken)
}

func TestErrorMappingAndRetries(t *testing.T) {
	cases := []struct {
		name      string
		fault     stytchtest.Fault
		kind      error
		calls     int // authenticate calls with MaxRetries = 3
		errorType string
	}{
		{"500 retried", stytchtest.Fault{Status: 500}, verifier.ErrUnavailable, 4, "internal_server_error"},
		{"503 retried", stytchtest.Fault{Status: 503}, verifier.ErrUnavailable, 4, ""},
		{"429 retried", stytchtest.Fault{Status: 429}, verifier.ErrUnavailable, 4, "too_many_requests"},
		{"non-JSON 502 retried", stytchtest.Fault{Status: 502, Body: "<html>bad gateway</html>"}, verifier.ErrUnavailable, 4, ""},
		{"connection reset retried", stytchtest.Fault{ResetConnection: true}, verifier.ErrUnavailable, 4, ""},
		{"reset mid-body retried", stytchtest.Fault{ResetConnection: true, Status: 200, Body: `{"status_code":200,"member_session":{}}`}, verifier.ErrUnavailable, 4, ""},
		{"garbled 200", stytchtest.Fault{Body: "not json"}, verifier.ErrUnavailable, 1, ""},
		{"401 credentials not retried", stytchtest.Fault{Status: 401, ErrorType: "unauthorized_credentials"}, verifier.ErrMisconfigured, 1, "unauthorized_credentials"},
		{"400 about the token not retried", stytchtest.Fault{Status: 400, ErrorType: "invalid_session_token"}, verifier.ErrInvalidSession, 1, "invalid_session_token"},
		{"404 not retried", stytchtest.Fault{Status: 404, ErrorType: "session_not_found"}, verifier.ErrInvalidSession, 1, "session_not_found"},
		{"401 about the JWT is the token's fault", stytchtest.Fault{Status: 401, ErrorType: "unable_to_parse_session_jwt"}, verifier.ErrInvalidSession, 1, "unable_to_parse_session_jwt"},
		{"401 jwt_invalid_audience", stytchtest.Fault{Status: 401, ErrorType: "jwt_invalid_audience"}, verifier.ErrInvalidSession, 1, "jwt_invalid_audience"},
		{"401 project ID refused is ours", stytchtest.Fault{Status: 401, ErrorType: "unauthorized_project_id_test"}, verifier.ErrMisconfigured, 1, "unauthorized_project_id_test"},
		{"401 of unknown type is ours", stytchtest.Fault{Status: 401, ErrorType: "something_new"}, verifier.ErrMisconfigured, 1, "something_new"},
		{"404 member gone", stytchtest.Fault{Status: 404, ErrorType: "member_not_found"}, verifier.ErrInvalidSession, 1, "member_not_found"},
		{"404 organization gone", stytchtest.Fault{Status: 404, ErrorType: "organization_not_found"}, verifier.ErrInvalidSession, 1, "organization_not_found"},
		{"404 of a wrong path is ours", stytchtest.Fault{Status: 404, ErrorType: "not_found"}, verifier.ErrMisconfigured, 1, "not_found"},
		{"403 https required is ours", stytchtest.Fault{Status: 403, ErrorType: "use_https"}, verifier.ErrMisconfigured, 1, "use_https"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.emu.InjectFault(stytchtest.Authenticate, tc.fault)
			_, err := f.v.Verify(context.Background(), f.sess.Token)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.kind)
			for _, other := range []error{verifier.ErrUnavailable, verifier.ErrMisconfigured, verifier.ErrInvalidSession, verifier.ErrMalformedToken} {
				if other != tc.kind {
					assert.NotErrorIs(t, err, other)
				}
			}
			var ae *verifier.APIError
			require.ErrorAs(t, err, &ae)
			if tc.errorType != "" {
				assert.Equal(t, tc.errorType, ae.ErrorType)
				assert.NotEmpty(t, ae.RequestID)
			}
			assert.Equal(t, tc.calls, f.emu.Calls(stytchtest.Authenticate))
			assert.NotContains(t, err.Error(), f.sess.Token)
		})
	}
}

func TestRetryRecovers(t *testing.T) {
	f := newFixture(t)
	f.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: 500, Times: 2})
	_, err := f.v.Verify(context.Background(), f.sess.Token)
	require.NoError(t, err)
	assert.Equal(t, 3, f.emu.Calls(stytchtest.Authenticate))
}

func TestCallerDeadlineBoundsRetries(t *testing.T) {
	f := newFixture(t, func(c *verifier.Config) { c.MaxRetries = 100; c.Timeout = 5 * time.Second })
	f.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.v.Verify(ctx, f.sess.Token)
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	assert.Less(t, time.Since(start), 2*time.Second, "the caller's deadline bounds the call")

	f.emu.ClearFaults()
	f.emu.ResetCalls()
	f.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: 500})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel2()
	start = time.Now()
	_, err = f.v.Verify(ctx2, f.sess.Token)
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Less(t, f.emu.Calls(stytchtest.Authenticate), 100, "retries stop at the deadline")
}

func TestPerAttemptTimeout(t *testing.T) {
	f := newFixture(t, func(c *verifier.Config) { c.Timeout = 100 * time.Millisecond; c.MaxRetries = 1 })
	f.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Hang: true})
	_, err := f.v.Verify(context.Background(), f.sess.Token)
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	assert.Equal(t, 2, f.emu.Calls(stytchtest.Authenticate))
}

func TestWrongCredentials(t *testing.T) {
	emu := stytchtest.New()
	t.Cleanup(emu.Close)
	v, err := verifier.NewStytch(verifier.Config{ProjectID: emu.ProjectID(), Secret: "secret-test-wrong", BaseURL: emu.URL(), MaxRetries: 3})
	require.NoError(t, err)
	defer v.Close()
	_, err = v.Verify(context.Background(), strings.Repeat("a", 44))
	require.ErrorIs(t, err, verifier.ErrMisconfigured)
	assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate))
}

// resign re-signs a valid token's header and claims with another method/key.
func claimsOf(t *testing.T, tok string) jwt.MapClaims {
	c := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(tok, c)
	require.NoError(t, err)
	return c
}

func TestAdversarialJWTsRejectedWithoutCall(t *testing.T) {
	f := newFixture(t)
	kid := f.emu.KIDs()[0]
	claims := claimsOf(t, f.sess.JWT)

	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	none.Header["kid"] = kid
	algNone, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)

	// HS256 keyed with the RSA public key (the classic confusion attack).
	jwksPub := publicPEMFromJWT(t, f)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	hs.Header["kid"] = kid
	hsTok, err := hs.SignedString(jwksPub)
	require.NoError(t, err)

	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	foreignTok, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithSigningKey(foreign), stytchtest.WithKID(kid))
	require.NoError(t, err)
	wrongIss, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithIssuer("stytch.com/project-test-other"))
	require.NoError(t, err)
	wrongAud, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithAudience("project-test-other"))
	require.NoError(t, err)
	expiredWrongAud, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithAudience("project-test-other"), stytchtest.WithIssuedAt(time.Now().Add(-time.Hour)))
	require.NoError(t, err)
	expiredWrongIss, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithIssuer("stytch.com/project-test-other"), stytchtest.WithIssuedAt(time.Now().Add(-time.Hour)))
	require.NoError(t, err)
	unknownKeyWrongAud, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithSigningKey(foreign), stytchtest.WithKID("jwk-test-unknown"), stytchtest.WithAudience("project-test-other"))
	require.NoError(t, err)
	pathKID, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithKID("../../etc/passwd"))
	require.NoError(t, err)
	urlKID, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithKID("https://evil.example/jwks"))
	require.NoError(t, err)
	noKID, err := f.emu.MintJWT(f.sess.ID, stytchtest.WithoutKID())
	require.NoError(t, err)
	parts := strings.Split(f.sess.JWT, ".")
	badSig := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))

	cases := map[string]string{
		"alg none": algNone, "HS256 with the RSA public key": hsTok, "foreign key, known kid": foreignTok,
		"wrong iss": wrongIss, "wrong aud": wrongAud,
		"expired, wrong aud": expiredWrongAud, "expired, wrong iss": expiredWrongIss, "unknown key, wrong aud": unknownKeyWrongAud,
		"kid is a path": pathKID, "kid is a URL": urlKID, "no kid": noKID, "bad signature": badSig,
	}
	jwksBefore := f.emu.Calls(stytchtest.JWKS)
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.v.Verify(context.Background(), tok)
			require.Error(t, err)
			assert.True(t, errors.Is(err, verifier.ErrInvalidSession) || errors.Is(err, verifier.ErrMalformedToken), "got %v", err)
		})
	}
	assert.Equal(t, 0, f.emu.Calls(stytchtest.Authenticate), "no API call for any of them")
	assert.LessOrEqual(t, f.emu.Calls(stytchtest.JWKS), jwksBefore+1, "at most the one rate-limited refetch for the unknown kid")
}

// TestClockSkewAsksAPI: a genuine JWT whose iat/nbf lie ahead of our clock
// (beyond the leeway) is not refused outright: the API decides.
func TestClockSkewAsksAPI(t *testing.T) {
	f := newFixture(t)
	for _, opt := range []stytchtest.JWTOption{
		stytchtest.WithIssuedAt(time.Now().Add(30 * time.Second)),
		stytchtest.WithNotBefore(time.Now().Add(time.Hour)),
	} {
		tok, err := f.emu.MintJWT(f.sess.ID, opt)
		require.NoError(t, err)
		s, err := f.v.Verify(context.Background(), tok)
		require.NoError(t, err)
		assert.Equal(t, f.sess.MemberID, s.MemberID)
	}
	assert.Equal(t, 2, f.emu.Calls(stytchtest.Authenticate))
}

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
)

// testKey is the emulator's first signing key, shared by the tests.
func testKey(t *testing.T) *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	return key
}

// publicPEMFromJWT returns the PEM of the emulator's first public key.
func publicPEMFromJWT(t *testing.T, _ *fixture) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&testKey(t).PublicKey)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t, func(c *verifier.Config) { c.JWKSRefetchInterval = time.Hour })
	_, err := f.v.Verify(context.Background(), f.sess.JWT)
	require.NoError(t, err)
	before := f.emu.Calls(stytchtest.JWKS)

	newKID := f.emu.RotateKey()
	fresh, err := f.emu.MintJWT(f.sess.ID)
	require.NoError(t, err)
	s, err := f.v.Verify(context.Background(), fresh)
	require.NoError(t, err, "the unknown kid triggers one refetch that finds the new key")
	assert.Equal(t, f.sess.MemberID, s.MemberID)
	assert.Equal(t, before+1, f.emu.Calls(stytchtest.JWKS))
	assert.Equal(t, 0, f.emu.Calls(stytchtest.Authenticate))

	// Another unknown kid within the period: no refetch; the API decides.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	unknownKID := f.emu.AddKey(other) // signs new JWTs, but we will not refetch
	_ = newKID
	tok, err := f.emu.MintJWT(f.sess.ID)
	require.NoError(t, err)
	for range 5 {
		_, err = f.v.Verify(context.Background(), tok)
		require.NoError(t, err, "the API vouches for it")
	}
	assert.Equal(t, before+1, f.emu.Calls(stytchtest.JWKS), "at most one refetch per period")
	assert.Equal(t, 5, f.emu.Calls(stytchtest.Authenticate))
	_ = unknownKID
}

func TestJWKSRefetchPeriodElapses(t *testing.T) {
	f := newFixture(t, func(c *verifier.Config) { c.JWKSRefetchInterval = 200 * time.Millisecond })
	before := f.emu.Calls(stytchtest.JWKS)
	f.emu.RotateKey()
	tok, err := f.emu.MintJWT(f.sess.ID)
	require.NoError(t, err)
	_, err = f.v.Verify(context.Background(), tok)
	require.NoError(t, err)
	f.emu.RotateKey()
	tok2, err := f.emu.MintJWT(f.sess.ID)
	require.NoError(t, err)
	time.Sleep(250 * time.Millisecond)
	_, err = f.v.Verify(context.Background(), tok2)
	require.NoError(t, err)
	assert.Equal(t, before+2, f.emu.Calls(stytchtest.JWKS))
	assert.Equal(t, 0, f.emu.Calls(stytchtest.Authenticate))
}

func TestJWKSDownFallsBackToAPI(t *testing.T) {
	emu := stytchtest.New()
	t.Cleanup(emu.Close)
	emu.InjectFault(stytchtest.JWKS, stytchtest.Fault{Status: 500})
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@acme.test"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	v, err := verifier.NewStytch(verifier.Config{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL()})
	require.NoError(t, err)
	defer v.Close()
	s, err := v.Verify(context.Background(), sess.JWT)
	require.NoError(t, err)
	assert.Equal(t, m.ID, s.MemberID)
	assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate))
}

func TestCustomDomainIssuer(t *testing.T) {
	emu := stytchtest.New(stytchtest.WithURLIssuer())
	t.Cleanup(emu.Close)
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@acme.test"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	v, err := verifier.NewStytch(verifier.Config{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL() + "/"})
	require.NoError(t, err)
	defer v.Close()
	_, err = v.Verify(context.Background(), sess.JWT)
	require.NoError(t, err)
	assert.Equal(t, 0, emu.Calls(stytchtest.Authenticate))
}

func TestMalformedTokensNeverLeave(t *testing.T) {
	f := newFixture(t)
	for _, tok := range []string{"", "short", "has space in it and is long enough", strings.Repeat("a", 300), "a.b", "a..b", strings.Repeat("x", 9000), "tok\x00en-with-nul-and-long-enough", "ünïcødé-token-long-enough-xx"} {
		_, err := f.v.Verify(context.Background(), tok)
		require.ErrorIs(t, err, verifier.ErrMalformedToken, "%q", tok)
	}
	assert.Equal(t, 0, f.emu.Calls(stytchtest.Authenticate))
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	v, err := verifier.NewStytch(verifier.Config{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL()})
	require.NoError(t, err)
	require.NoError(t, v.Close())
	require.NoError(t, v.Close())
}

// TestJWTDuringFirstFetchKeepsRotationAllowance: a JWT that arrives while
// the first JWKS fetch is slow does not use up the refetch allowance that a
// later key rotation needs.
func TestJWTDuringFirstFetchKeepsRotationAllowance(t *testing.T) {
	emu := stytchtest.New(stytchtest.WithKey(testKey(t)))
	t.Cleanup(emu.Close)
	emu.InjectFault(stytchtest.JWKS, stytchtest.Fault{Delay: 300 * time.Millisecond, Times: 1})
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@acme.test"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	v, err := verifier.NewStytch(verifier.Config{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(), JWKSRefetchInterval: time.Hour})
	require.NoError(t, err)
	defer v.Close()
	_, err = v.Verify(context.Background(), sess.JWT) // races the slow first fetch
	require.NoError(t, err)

	emu.RotateKey()
	tok, err := emu.MintJWT(sess.ID)
	require.NoError(t, err)
	calls := emu.Calls(stytchtest.Authenticate)
	_, err = v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, calls, emu.Calls(stytchtest.Authenticate), "the rotated key was fetched, not sent to the API")
}

// TestJWKSWaitBoundedByCaller: a caller waiting on a hanging JWKS fetch
// stops at its own deadline.
func TestJWKSWaitBoundedByCaller(t *testing.T) {
	emu := stytchtest.New(stytchtest.WithKey(testKey(t)))
	t.Cleanup(emu.Close)
	emu.InjectFault(stytchtest.JWKS, stytchtest.Fault{Hang: true})
	emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Hang: true})
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@acme.test"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	v, err := verifier.NewStytch(verifier.Config{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(), Timeout: 10 * time.Second})
	require.NoError(t, err)
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = v.Verify(ctx, sess.JWT)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second, "bounded by the caller's deadline, not the 10 s timeout")
}

package echostytch_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

var (
	advKeyOnce sync.Once
	advKey     *rsa.PrivateKey
)

// adversaryKey is the emulator's signing key, so that the tests can build
// HS256 tokens keyed with its public half.
func adversaryKey(t *testing.T) *rsa.PrivateKey {
	advKeyOnce.Do(func() {
		var err error
		advKey, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
	})
	return advKey
}

// advRig is a rig whose emulator signs with adversaryKey, with an extra
// route that requires the organization named in the path.
func advRig(t *testing.T, env map[string]string) *rig {
	t.Helper()
	emu := stytchtest.New(stytchtest.WithKey(adversaryKey(t)))
	t.Cleanup(emu.Close)
	r := newRig(t, emu, env)
	r.e.GET("/orgs/:org", func(c echo.Context) error { return c.String(200, "org ok") },
		echostytch.New(r.stack.Config), echostytch.RequireOrganization("org"))
	return r
}

func (r *rig) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r.e.ServeHTTP(rec, req)
	return rec
}

const bodyInvalid = `{"error":"authentication_failed","message":"Invalid or expired session token","type":"token_verification"}` + "\n"

// TestAdversarialJWTsThroughMiddleware: forged and foreign JWTs are a 401
// with the fixed body, cost no Stytch call and no JWKS refetch (except
// where the API could still say yes, noted per case), and never panic.
func TestAdversarialJWTsThroughMiddleware(t *testing.T) {
	r := advRig(t, nil)
	s := r.session(t, stytchtest.SessionParams{})
	kid := r.emu.KIDs()[0]
	claims := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(s.JWT, claims)
	require.NoError(t, err)

	mint := func(opts ...stytchtest.JWTOption) string {
		tok, err := r.emu.MintJWT(s.ID, opts...)
		require.NoError(t, err)
		return tok
	}
	algNone := mint(stytchtest.WithSigningMethod(jwt.SigningMethodNone))
	der, err := x509.MarshalPKIXPublicKey(&adversaryKey(t).PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	hs.Header["kid"] = kid
	hsPEM, err := hs.SignedString(pubPEM)
	require.NoError(t, err)
	hs = jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	hs.Header["kid"] = kid
	hsDER, err := hs.SignedString(der)
	require.NoError(t, err)
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	parts := strings.Split(s.JWT, ".")

	cases := map[string]string{
		"alg none":                        algNone,
		"alg none, signature stripped":    parts[0] + "." + parts[1] + ".x",
		"HS256 keyed with the public PEM": hsPEM,
		"HS256 keyed with the public DER": hsDER,
		"RS512 instead of RS256":          mint(stytchtest.WithSigningMethod(jwt.SigningMethodRS512)),
		"PS256 instead of RS256":          mint(stytchtest.WithSigningMethod(jwt.SigningMethodPS256)),
		"kid is a path":                   mint(stytchtest.WithKID("../../../../etc/passwd")),
		"kid is a URL":                    mint(stytchtest.WithKID("https://evil.example/.well-known/jwks.json")),
		"kid is a file URL":               mint(stytchtest.WithKID("file:///etc/passwd")),
		"no kid":                          mint(stytchtest.WithoutKID()),
		"foreign key under our kid":       mint(stytchtest.WithSigningKey(foreign), stytchtest.WithKID(kid)),
		"another project (aud)":           mint(stytchtest.WithAudience("project-test-00000000-0000-0000-0000-000000000000")),
		"no aud":                          mint(stytchtest.WithoutClaim("aud")),
		"another project (iss)":           mint(stytchtest.WithIssuer("stytch.com/project-test-00000000-0000-0000-0000-000000000000")),
		"issuer is a URL":                 mint(stytchtest.WithIssuer("https://evil.example")),
		"no exp":                          mint(stytchtest.WithoutClaim("exp")),
		"no session claim":                mint(stytchtest.WithoutClaim(stytchtest.SessionClaim)),
		"payload swapped":                 parts[0] + "." + strings.Split(mint(stytchtest.WithClaim("admin", true)), ".")[1] + "." + parts[2],
		"signature truncated":             parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])/2],
	}
	calls, jwks := r.calls(), r.emu.Calls(stytchtest.JWKS)
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			for _, req := range []*http.Request{
				get("/p", "Authorization", "Bearer "+tok),
				get("/p", "Cookie", "stytch_session_jwt="+tok),
			} {
				rec := r.serve(req)
				require.Equal(t, 401, rec.Code, rec.Body.String())
				b := decode(t, rec)
				assert.Equal(t, "authentication_failed", b.Error)
				assert.NotContains(t, rec.Body.String(), tok)
				assert.Equal(t, challengeInvalid, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	assert.Equal(t, calls, r.calls(), "no Authenticate call for any forged JWT")
	// (A genuine JWT whose nbf/iat lie ahead of our clock is not forged: the
	// API decides, as Stytch's SDKs do; see verifier.TestClockSkewAsksAPI.)
	assert.Equal(t, jwks, r.emu.Calls(stytchtest.JWKS), "no JWKS refetch either")

	// A genuine JWT of another project, signed by a key we do not know:
	// the API could still say yes (a key rotated in since our last JWKS
	// fetch), so it is asked once; it says no; the verdict is remembered.
	other := stytchtest.New()
	t.Cleanup(other.Close)
	oorg := other.CreateOrganization(stytchtest.OrganizationParams{Name: "Other"})
	om, err := other.CreateMember(oorg.ID, stytchtest.MemberParams{Email: "eve@other.test"})
	require.NoError(t, err)
	os, err := other.CreateSession(om.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	for range 5 {
		rec := r.serve(get("/p", "Authorization", "Bearer "+os.JWT))
		require.Equal(t, 401, rec.Code)
		require.Equal(t, bodyInvalid, rec.Body.String())
	}
	assert.LessOrEqual(t, r.calls()-calls, 1, "at most one API call, then the negative cache")
	assert.LessOrEqual(t, r.emu.Calls(stytchtest.JWKS)-jwks, 1, "at most one (rate-limited) JWKS refetch")
	// An opaque token of the other project: unknown here.
	rec := r.serve(get("/p", "Authorization", "Bearer "+os.Token))
	assert.Equal(t, 401, rec.Code)
	assert.Equal(t, bodyInvalid, rec.Body.String())
}

// TestOtherOrganization: a valid session of organization B authenticates,
// but a route that requires organization A answers 403, whether the token
// is an opaque token or a JWT, and whatever B's claims say.
func TestOtherOrganization(t *testing.T) {
	r := advRig(t, nil)
	orgB := r.emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Beta", Slug: "beta"})
	mb, err := r.emu.CreateMember(orgB.ID, stytchtest.MemberParams{Email: "bob@beta.test"})
	require.NoError(t, err)
	sb, err := r.emu.CreateSession(mb.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	// B's JWT claiming A in a custom claim changes nothing.
	spoof, err := r.emu.MintJWT(sb.ID, stytchtest.WithClaim("organization_id", r.org.ID))
	require.NoError(t, err)
	for _, tok := range []string{sb.Token, sb.JWT, spoof} {
		rec := r.serve(get("/orgs/"+r.org.ID, "Authorization", "Bearer "+tok))
		require.Equal(t, 403, rec.Code, rec.Body.String())
		assert.Equal(t, "insufficient_permissions", decode(t, rec).Error)
		rec = r.serve(get("/orgs/"+orgB.ID, "Authorization", "Bearer "+tok))
		require.Equal(t, 200, rec.Code, rec.Body.String())
	}
	// A JWT whose organization claim was edited is a bad signature.
	parts := strings.Split(sb.JWT, ".")
	forged := jwt.MapClaims{}
	_, _, err = jwt.NewParser().ParseUnverified(sb.JWT, forged)
	require.NoError(t, err)
	forged[stytchtest.OrganizationClaim] = map[string]any{"organization_id": r.org.ID, "slug": "acme"}
	payload, err := jwt.NewWithClaims(jwt.SigningMethodRS256, forged).SigningString()
	require.NoError(t, err)
	tok := parts[0] + "." + strings.Split(payload, ".")[1] + "." + parts[2]
	rec := r.serve(get("/orgs/"+r.org.ID, "Authorization", "Bearer "+tok))
	assert.Equal(t, 401, rec.Code)
}

// TestHostileHeaders: huge, repeated, non-ASCII and control-character
// headers and cookies are refused with the fixed messages (never echoing
// the input), before any Stytch call; unrelated huge headers do not get in
// the way of a valid token.
func TestHostileHeaders(t *testing.T) {
	r := advRig(t, nil)
	s := r.session(t, stytchtest.SessionParams{})
	huge := strings.Repeat("A", 64<<10)
	cases := []struct {
		name   string
		header []string
		msg    string
	}{
		{"huge Authorization", []string{"Authorization", "Bearer " + huge}, "Authorization header is too long"},
		{"Authorization just over the limit", []string{"Authorization", "Bearer " + strings.Repeat("A", echostytch.DefaultMaxHeaderLength)}, "Authorization header is too long"},
		{"huge JWT-shaped token", []string{"Authorization", "Bearer " + strings.Repeat("A", 5000) + "." + strings.Repeat("B", 3000) + "." + strings.Repeat("C", 300)}, "token is too long"},
		{"huge cookie", []string{"Cookie", "stytch_session=" + huge}, "token is too long"},
		{"huge JWT cookie", []string{"Cookie", "stytch_session_jwt=" + huge + "." + huge + "." + huge}, "token is too long"},
		{"two Authorization headers", []string{"Authorization", "Bearer " + s.Token, "Authorization", "Bearer " + s.Token}, "multiple Authorization headers are not allowed"},
		{"two Authorization headers, one junk", []string{"Authorization", "Bearer " + s.Token, "Authorization", "Basic x"}, "multiple Authorization headers are not allowed"},
		{"non-ASCII", []string{"Authorization", "Bearer " + s.Token + "é"}, "Authorization header contains non-ASCII characters"},
		{"non-ASCII homoglyph", []string{"Authorization", "Bеarer " + s.Token}, "Authorization header contains non-ASCII characters"},
		{"NUL", []string{"Authorization", "Bearer " + s.Token + "\x00"}, "Authorization header contains control characters"},
		{"NUL inside", []string{"Authorization", "Bearer " + s.Token[:10] + "\x00" + s.Token[10:]}, "Authorization header contains control characters"},
		{"CR LF injection", []string{"Authorization", "Bearer " + s.Token + "\r\nX-Admin: 1"}, "Authorization header contains control characters"},
		{"tab", []string{"Authorization", "Bearer\t" + s.Token}, "Authorization header contains control characters"},
		{"DEL", []string{"Authorization", "Bearer " + s.Token + "\x7f"}, "Authorization header contains control characters"},
		{"non-ASCII cookie", []string{"Cookie", "stytch_session=" + s.Token + "ü"}, "token contains invalid characters"},
		{"NUL cookie", []string{"Cookie", "stytch_session=" + s.Token + "\x00"}, "token contains invalid characters"},
		{"CR LF cookie", []string{"Cookie", "stytch_session=" + s.Token + "\r\n"}, "token contains invalid characters"},
		{"cookie with a path-like token", []string{"Cookie", "stytch_session=../../../../etc/passwd/aaaaaaaaaaaa"}, "token has an empty segment"},
		{"empty Bearer", []string{"Authorization", "Bearer "}, "Authorization header has no token after 'Bearer'"},
		{"only spaces", []string{"Authorization", strings.Repeat(" ", 1000)}, "Authorization header is empty"},
	}
	calls := r.calls()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := r.serve(get("/p", tc.header...))
			require.Equal(t, 401, rec.Code, rec.Body.String())
			b := decode(t, rec)
			assert.Equal(t, "token_extraction", b.Type)
			assert.Equal(t, tc.msg, b.Message)
			assert.NotContains(t, rec.Body.String(), s.Token)
			assert.Less(t, rec.Body.Len(), 200, "the body never grows with the input")
		})
	}
	assert.Equal(t, calls, r.calls(), "nothing malformed reaches Stytch")

	// Many cookies, and a huge unrelated header, around a valid token.
	var cookies []string
	for i := range 2000 {
		cookies = append(cookies, "c"+strings.Repeat("x", i%50)+"=v")
	}
	cookies = append(cookies, "stytch_session="+s.Token)
	rec := r.serve(get("/p", "Cookie", strings.Join(cookies, "; "), "X-Junk", huge))
	assert.Equal(t, 200, rec.Code, rec.Body.String())
	// The first stytch_session cookie wins; a second one is ignored.
	rec = r.serve(get("/p", "Cookie", "stytch_session=not_a_valid_token_but_well_formed_01; stytch_session="+s.Token))
	assert.Equal(t, 401, rec.Code)

	// Over real HTTP, Go's server refuses headers beyond MaxHeaderBytes
	// before the middleware runs.
	ts := httptest.NewUnstartedServer(r.e)
	ts.Config.MaxHeaderBytes = 16 << 10
	ts.Start()
	defer ts.Close()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/p", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+huge)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	ts.Client().CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}

// TestRevocationWindows: how soon a revocation is refused, for an opaque
// token and for a JWT, revoked through our Logout or at Stytch out of band.
//
//	opaque, Logout               refused at once (tombstone), on every instance sharing the store
//	opaque, out of band          refused at once if not cached; else when its cache entry ends (<= STYTCH_CACHE_TTL)
//	JWT, Logout                  refused at once (tombstone)
//	JWT, out of band             verifies locally until its exp (+ 5 s leeway), then the API refuses it;
//	                             a cached entry never outlives the JWT's exp
func TestRevocationWindows(t *testing.T) {
	const ttl = 2 * time.Second
	r := advRig(t, map[string]string{"STYTCH_CACHE_TTL": "2"})
	bound := stytchBound(r.stack.Settings)

	// Opaque, Logout: at once, no Stytch call.
	a := r.session(t, stytchtest.SessionParams{})
	r.expect(t, a.Token, 200, bound, "opaque, cached")
	require.Equal(t, 204, r.do(http.MethodPost, a.Token).code)
	calls := r.calls()
	r.expect(t, a.Token, 401, bound, "opaque after Logout")
	assert.Equal(t, calls, r.calls(), "refused by the tombstone")

	// Opaque, out of band, not cached: at once (Stytch says no).
	b := r.session(t, stytchtest.SessionParams{})
	r.emu.Revoke(b.ID)
	r.expect(t, b.Token, 401, bound, "opaque revoked out of band, never cached")

	// Opaque, out of band, cached: until the cache entry ends.
	c := r.session(t, stytchtest.SessionParams{})
	r.expect(t, c.Token, 200, bound, "opaque, cached")
	cachedAt := time.Now()
	r.emu.Revoke(c.ID)
	for {
		o := r.do(http.MethodGet, c.Token)
		if o.code == 401 {
			break
		}
		require.Equal(t, 200, o.code)
		require.Less(t, time.Since(cachedAt), ttl+time.Second, "served past STYTCH_CACHE_TTL")
		time.Sleep(50 * time.Millisecond)
	}

	// JWT, Logout: at once.
	d := r.session(t, stytchtest.SessionParams{})
	r.expect(t, d.JWT, 200, bound, "JWT")
	require.Equal(t, 204, r.do(http.MethodPost, d.JWT).code)
	calls = r.calls()
	r.expect(t, d.JWT, 401, bound, "JWT after Logout")
	assert.Equal(t, calls, r.calls())

	// JWT, out of band: still accepted locally until exp.
	e := r.session(t, stytchtest.SessionParams{})
	r.expect(t, e.JWT, 200, bound, "JWT")
	r.emu.Revoke(e.ID)
	calls = r.calls()
	r.expect(t, e.JWT, 200, bound, "JWT revoked out of band: the documented window")
	assert.Equal(t, calls, r.calls(), "verified locally or from the cache")
	// The API refuses it as soon as it is asked (e.g. once the JWT has
	// expired); a fresh one minted for the revoked session too.
	r.expect(t, e.Token, 401, bound, "its opaque token is refused at once")
}

// TestCachedJWTNeverOutlivesItsExp: a JWT verified (and cached) shortly
// before its exp must not be accepted from the cache after exp + leeway
// once its session is revoked: the cache entry of a JWT must end with the
// JWT, or the documented revocation window of JWTs ("until exp") grows to
// STYTCH_CACHE_TTL after the last verification.
func TestCachedJWTNeverOutlivesItsExp(t *testing.T) {
	t.Parallel()
	r := advRig(t, map[string]string{"STYTCH_CACHE_TTL": "60"})
	bound := stytchBound(r.stack.Settings)
	s := r.session(t, stytchtest.SessionParams{})
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	tok, err := r.emu.MintJWT(s.ID, stytchtest.WithExpiry(exp))
	require.NoError(t, err)
	r.expect(t, tok, 200, bound, "fresh JWT, cached")
	r.emu.Revoke(s.ID)
	const leeway = 5 * time.Second // verifier.DefaultJWTLeeway
	time.Sleep(time.Until(exp.Add(leeway + 500*time.Millisecond)))
	o := r.do(http.MethodGet, tok)
	assert.Equal(t, 401, o.code, "an expired JWT of a revoked session was served from the cache: %s", o.body)
}

package stytchtest_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testKey is generated once per test binary to keep tests quick.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// foreignKey is a key the emulator never serves.
var foreignKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newServer(t *testing.T, opts ...stytchtest.Option) *stytchtest.Server {
	t.Helper()
	srv := stytchtest.New(append([]stytchtest.Option{stytchtest.WithKey(testKey())}, opts...)...)
	t.Cleanup(srv.Close)
	return srv
}

// fixture is an organization with an admin and a plain member, each with
// a session.
type fixture struct {
	srv          *stytchtest.Server
	org          stytchtest.Organization
	admin, plain stytchtest.Member
	adminSess    stytchtest.Session
	plainSess    stytchtest.Session
}

func newFixture(t *testing.T, opts ...stytchtest.Option) *fixture {
	t.Helper()
	srv := newServer(t, opts...)
	f := &fixture{srv: srv}
	f.org = srv.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme Corp", Slug: "acme"})
	var err error
	f.admin, err = srv.CreateMember(f.org.ID, stytchtest.MemberParams{Email: "ada@acme.test", Name: "Ada", Roles: []string{"stytch_admin"}})
	require.NoError(t, err)
	f.plain, err = srv.CreateMember(f.org.ID, stytchtest.MemberParams{Email: "bob@acme.test", Name: "Bob"})
	require.NoError(t, err)
	f.adminSess, err = srv.CreateSession(f.admin.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	f.plainSess, err = srv.CreateSession(f.plain.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	return f
}

type reqOpt func(*http.Request)

func noAuth() reqOpt { return func(r *http.Request) { r.Header.Del("Authorization") } }

func basicAuth(user, pass string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// call sends a request with the server's credentials and decodes a JSON
// body. body may be nil, a string/[]byte (sent raw) or a value to marshal.
func call(t *testing.T, srv *stytchtest.Server, method, path string, body any, opts ...reqOpt) (int, map[string]any) {
	t.Helper()
	status, raw := callRaw(t, srv, method, path, body, opts...)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "body: %s", raw)
	return status, out
}

func callRaw(t *testing.T, srv *stytchtest.Server, method, path string, body any, opts ...reqOpt) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL()+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Stytch Go v18.1.0")
	req.SetBasicAuth(srv.ProjectID(), srv.Secret())
	for _, o := range opts {
		o(req)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if len(raw) > 0 && raw[0] == '{' {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, raw
}

func authenticate(t *testing.T, srv *stytchtest.Server, body any) (int, map[string]any) {
	t.Helper()
	return call(t, srv, http.MethodPost, "/v1/b2b/sessions/authenticate", body)
}

// requireError checks Stytch's error object (spec §4.1).
func requireError(t *testing.T, status int, body map[string]any, wantStatus int, wantType string) {
	t.Helper()
	require.Equal(t, wantStatus, status, "body: %v", body)
	require.Equal(t, float64(wantStatus), body["status_code"])
	require.Equal(t, wantType, body["error_type"])
	require.Regexp(t, `^request-id-test-[0-9a-f-]{36}$`, body["request_id"])
	require.NotEmpty(t, body["error_message"])
	require.Regexp(t, `^https://stytch\.com/docs/`, body["error_url"])
}

func requireOK(t *testing.T, status int, body map[string]any) {
	t.Helper()
	require.Equal(t, http.StatusOK, status, "body: %v", body)
	require.Equal(t, float64(200), body["status_code"])
	require.Regexp(t, `^request-id-test-[0-9a-f-]{36}$`, body["request_id"])
}

// fetchJWKS fetches the JWKS without credentials and builds the public
// keys from n and e.
func fetchJWKS(t *testing.T, srv *stytchtest.Server) (map[string]*rsa.PublicKey, []map[string]any) {
	t.Helper()
	status, body := call(t, srv, http.MethodGet, "/v1/b2b/sessions/jwks/"+srv.ProjectID(), nil, noAuth())
	requireOK(t, status, body)
	keys := map[string]*rsa.PublicKey{}
	var raw []map[string]any
	for _, k := range body["keys"].([]any) {
		m := k.(map[string]any)
		raw = append(raw, m)
		n, err := base64.RawURLEncoding.DecodeString(m["n"].(string))
		require.NoError(t, err)
		e, err := base64.RawURLEncoding.DecodeString(m["e"].(string))
		require.NoError(t, err)
		keys[m["kid"].(string)] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return keys, raw
}

// verifyLocal verifies a JWT the way an SDK does locally, at time now.
func verifyLocal(srv *stytchtest.Server, keys map[string]*rsa.PublicKey, token string, now time.Time) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, jwt.ErrTokenUnverifiable
		}
		return k, nil
	},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer("stytch.com/"+srv.ProjectID()),
		jwt.WithAudience(srv.ProjectID()),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
	)
	return claims, err
}

// jwtHeader decodes a JWT's header without verifying it.
func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	require.NoError(t, err)
	return tok.Header
}

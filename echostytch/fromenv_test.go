package echostytch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

func emulatorEnv(emu *stytchtest.Server, extra map[string]string) envconfig.Lookuper {
	m := map[string]string{
		"STYTCH_PROJECT_ID": emu.ProjectID(),
		"STYTCH_SECRET":     emu.Secret(),
		"STYTCH_BASE_URL":   emu.URL(),
		"STYTCH_LOG_LEVEL":  "ERROR",
	}
	for k, v := range extra {
		m[k] = v
	}
	return envconfig.MapLookuper(m)
}

func TestFromEnvBackends(t *testing.T) {
	srv := redistest.Start(t)
	cases := []struct {
		name    string
		env     map[string]string
		backend string
	}{
		{"memory by default", nil, "memory"},
		{"redis when a URL is set", map[string]string{"STYTCH_REDIS_URL": "redis://" + srv.Addr()}, "redis"},
		{"REDIS_URL fallback", map[string]string{"REDIS_URL": "redis://" + srv.Addr()}, "redis"},
		{"tiered", map[string]string{"STYTCH_REDIS_URL": "redis://" + srv.Addr(), "STYTCH_CACHE_BACKEND": "tiered"}, "tiered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := stytchtest.New()
			defer emu.Close()
			org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
			m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test"})
			require.NoError(t, err)
			sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
			require.NoError(t, err)

			stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, tc.env))
			require.NoError(t, err)
			defer stack.Close()
			assert.Equal(t, tc.backend, stack.Settings.CacheBackend)

			e := echo.New()
			auth := echostytch.New(stack.Config)
			e.GET("/p", func(c echo.Context) error { return c.String(200, echostytch.MustMember(c).MemberID) }, auth)
			e.POST("/logout", stack.Logout(), auth)
			do := func(method, path string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(method, path, nil)
				req.Header.Set("Authorization", "Bearer "+sess.Token)
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				return rec
			}
			for range 3 {
				rec := do("GET", "/p")
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.Equal(t, m.ID, rec.Body.String())
			}
			assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate))
			assert.Equal(t, http.StatusNoContent, do("POST", "/logout").Code)
			assert.Equal(t, 1, emu.Calls(stytchtest.Revoke))
			assert.Equal(t, http.StatusUnauthorized, do("GET", "/p").Code)
			require.NoError(t, stack.Close())
			require.NoError(t, stack.Close(), "Close is idempotent")
		})
	}
}

func TestFromEnvErrors(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	_, err := echostytch.FromEnv(context.Background(), envconfig.MapLookuper(map[string]string{}))
	var se *echostytch.SettingError
	require.ErrorAs(t, err, &se)

	// An unreachable Redis is not a start-up error (see faults_test.go);
	// a URL the Redis client cannot parse is.
	_, err = echostytch.FromEnv(context.Background(), emulatorEnv(emu, map[string]string{"STYTCH_REDIS_URL": "redis://127.0.0.1:1/notadb", "STYTCH_LOG_LEVEL": "ERROR"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STYTCH_REDIS_URL")
	assert.NotContains(t, err.Error(), emu.Secret())

	_, err = echostytch.NewStack(context.Background(), nil, nil)
	require.Error(t, err)
}

func TestLogoutWithoutToken(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, nil))
	require.NoError(t, err)
	defer stack.Close()
	e := echo.New()
	e.POST("/logout", stack.Logout())
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("POST", "/logout", nil))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)

	// Stytch down: the logout reports 503, the session is still refused
	// locally (tombstone).
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@acme.test"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	emu.InjectFault(stytchtest.Revoke, stytchtest.Fault{Status: 500})
	req := httptest.NewRequest("POST", "/logout", nil)
	req.AddCookie(&http.Cookie{Name: "stytch_session", Value: sess.Token})
	rec = httptest.NewRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.ServeHTTP(rec, req.WithContext(ctx))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	_, err = stack.Cache.Verify(context.Background(), sess.Token)
	assert.True(t, err != nil && !errors.Is(err, context.Canceled))
}

// TestLogoutIgnoresJunkTokens: a logged-in client sending random
// well-formed cookie tokens along costs no revoke call for them.
func TestLogoutIgnoresJunkTokens(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@acme.test"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, nil))
	require.NoError(t, err)
	defer stack.Close()
	e := echo.New()
	e.POST("/logout", stack.Logout(), echostytch.New(stack.Config))
	req := httptest.NewRequest("POST", "/logout", nil)
	req.Header.Set("Authorization", "Bearer "+sess.Token)
	req.AddCookie(&http.Cookie{Name: "stytch_session", Value: strings.Repeat("j", 44)})
	req.AddCookie(&http.Cookie{Name: "stytch_session_jwt", Value: "aaaa.bbbb.cccc"})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, 1, emu.Calls(stytchtest.Revoke), "only the live session is revoked")
}

// TestFromEnvRedisURLErrorNamesVariable: a Redis URL that the Redis client
// rejects is a start-up error naming the variable it was read from,
// including the REDIS_URL fallback (design.md §4).
func TestFromEnvRedisURLErrorNamesVariable(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	const bad = "redis://127.0.0.1:1/notadb"
	cases := []struct {
		name     string
		env      map[string]string
		variable string
	}{
		{"STYTCH_REDIS_URL", map[string]string{"STYTCH_REDIS_URL": bad}, "STYTCH_REDIS_URL"},
		{"REDIS_URL fallback", map[string]string{"REDIS_URL": bad}, "REDIS_URL"},
		{"REDIS_URL fallback, bad ?db", map[string]string{"REDIS_URL": "redis://127.0.0.1:1?db=x"}, "REDIS_URL"},
		{"STYTCH_REDIS_URL wins", map[string]string{"STYTCH_REDIS_URL": bad, "REDIS_URL": "redis://127.0.0.1:1"}, "STYTCH_REDIS_URL"},
		{"tiered from REDIS_URL", map[string]string{"REDIS_URL": bad, "STYTCH_CACHE_BACKEND": "tiered"}, "REDIS_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, tc.env))
			require.Error(t, err)
			var se *echostytch.SettingError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.variable, se.Variable)
			assert.True(t, strings.HasPrefix(err.Error(), "echostytch: "+tc.variable+": "), err.Error())
			if tc.variable == "REDIS_URL" {
				assert.NotContains(t, err.Error(), "STYTCH_REDIS_URL")
			}
			assert.NotContains(t, err.Error(), emu.Secret())
		})
	}

	// Settings built by hand (not loaded): the error names
	// STYTCH_REDIS_URL and does not reveal a password in an unparsable URL.
	s, err := echostytch.LoadSettings(context.Background(), emulatorEnv(emu, nil))
	require.NoError(t, err)
	s.RedisURL, s.CacheBackend = "redis://user:hunter2hunter2@h%zz:6379", echostytch.CacheRedis
	_, err = echostytch.NewStack(context.Background(), s, nil)
	var se *echostytch.SettingError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "STYTCH_REDIS_URL", se.Variable)
	assert.NotContains(t, err.Error(), "hunter2hunter2")
}

// TestRealStackErrorAnswers drives error rows of design.md §3 through Echo
// with the real stack (FromEnv against the emulator): Stytch rejecting our
// credentials is the 500 "misconfigured" answer, and Stytch refusing an
// authorization check (verifier.ErrForbidden) is a 403.
func TestRealStackErrorAnswers(t *testing.T) {
	const (
		misconfigured = `{"error":"internal_server_error","message":"Authentication service misconfigured","type":"configuration"}`
		forbidden     = `{"error":"insufficient_permissions","message":"Not authorized for this resource","type":"authorization"}`
	)
	cases := []struct {
		name   string
		secret bool // a wrong STYTCH_SECRET
		fault  *stytchtest.Fault
		jwt    bool // send the session JWT instead of the opaque token
		status int
		body   string
		kind   error
	}{
		{name: "wrong secret", secret: true, status: http.StatusInternalServerError, body: misconfigured,
			kind: echostytch.ErrMisconfigured},
		{name: "wrong secret, JWT", secret: true, jwt: true, status: http.StatusInternalServerError, body: misconfigured,
			kind: echostytch.ErrMisconfigured},
		{name: "authorization refused", status: http.StatusForbidden, body: forbidden, kind: echostytch.ErrInsufficientPermissions,
			fault: &stytchtest.Fault{Status: http.StatusForbidden, ErrorType: "session_authorization_error"}},
		{name: "authorization refused, tenancy", status: http.StatusForbidden, body: forbidden, kind: echostytch.ErrInsufficientPermissions,
			fault: &stytchtest.Fault{Status: http.StatusForbidden, ErrorType: "session_authorization_tenancy_error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := stytchtest.New()
			defer emu.Close()
			org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
			m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test"})
			require.NoError(t, err)
			sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
			require.NoError(t, err)
			env := map[string]string{"STYTCH_MAX_RETRIES": "0"}
			if tc.secret {
				env["STYTCH_SECRET"] = "secret-test-WRONGWRONGWRONGWRONGWRONG"
			}
			if tc.fault != nil {
				emu.InjectFault(stytchtest.Authenticate, *tc.fault)
			}
			stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, env))
			require.NoError(t, err)
			defer stack.Close()

			var handled error
			cfg := stack.Config
			cfg.ErrorHandler = func(c echo.Context, err error) error {
				handled = err
				return echostytch.WriteError(c, err, "")
			}
			optCfg := stack.Config
			optCfg.Optional = true
			e := echo.New()
			e.GET("/p", memberHandler, echostytch.New(cfg))
			e.GET("/o", memberHandler, echostytch.New(optCfg))
			tok := sess.Token
			if tc.jwt {
				tok = sess.JWT
			}
			req := httptest.NewRequest(http.MethodGet, "/p", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			assert.Equal(t, tc.status, rec.Code)
			assert.JSONEq(t, tc.body, rec.Body.String())
			assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
			assert.Empty(t, rec.Header().Get("Retry-After"))
			require.Error(t, handled)
			assert.ErrorIs(t, handled, tc.kind)
			if tc.fault != nil {
				assert.ErrorIs(t, handled, verifier.ErrForbidden)
			} else {
				assert.ErrorIs(t, handled, verifier.ErrMisconfigured)
			}
			assert.Positive(t, emu.Calls(stytchtest.Authenticate)+emu.Calls(stytchtest.JWKS), "Stytch was asked")

			// Optional authentication: a 403 is anonymous; a
			// misconfiguration too (degraded), never the caller's fault.
			req = httptest.NewRequest(http.MethodGet, "/o", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec = httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.JSONEq(t, `{"anonymous":true}`, rec.Body.String())
		})
	}
}

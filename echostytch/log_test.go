package echostytch_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

func TestTokenFingerprint(t *testing.T) {
	sum := sha256.Sum256([]byte(tokPlain))
	assert.Equal(t, hex.EncodeToString(sum[:])[:8], echostytch.TokenFingerprint(tokPlain))
	assert.Len(t, echostytch.TokenFingerprint(jwtPlain), 8)
	assert.Equal(t, "", echostytch.TokenFingerprint(""))
}

// requests exercises success and every failure path.
func logRun(t *testing.T, cfg echostytch.Config) string {
	t.Helper()
	var logs logBuffer
	cfg.Verifier = newFake()
	cfg.Logger = debugLogger(&logs)
	e := newEcho(t, cfg, func(e *echo.Echo) {
		e.GET("/admin", memberHandler, echostytch.RequireClaims("admin"))
		e.GET("/mfa", memberHandler, echostytch.RequireFactors("mfa"))
	})
	headers := [][]string{
		{"Authorization", "Bearer " + tokPlain},
		{"Authorization", "bearer  " + tokMFA + " "},
		{"Cookie", "stytch_session_jwt=" + jwtPlain},
		{"Cookie", "stytch_session=" + tokSMS},
		{"Authorization", "Bearer " + tokInvalid},
		{"Authorization", "Bearer " + tokDown},
		{"Authorization", "Bearer " + tokMisconf},
		{"Authorization", "Bearer " + tokBoom},
		{"Authorization", "Bearer " + tokVMalf},
		{"Authorization", "Basic " + tokPlain},
		{"Authorization", "Bearer " + tokPlain + "\t"},
		{"Authorization", "Bearer tok_plain_0123456789@abcdefghij"},
		{"Authorization", "Bearer " + tokPlain, "Authorization", "Bearer " + tokMFA},
		nil,
	}
	for _, path := range []string{"/r", "/admin", "/mfa"} {
		for _, h := range headers {
			serve(e, get(path, h...))
		}
	}
	return logs.String()
}

var (
	allTokens = []string{tokPlain, tokMFA, jwtPlain, tokSMS, tokInvalid, tokDown, tokMisconf, tokBoom, tokVMalf,
		"tok_plain_0123456789", "eyJ", "c2lnbmF0dXJl"}
	personal = []string{"plain@example.com", "mfa@example.com", "sms@example.com", "jwt@example.com",
		"member-plain-1", "member-mfa-3", "member-sms-4", "member-jwt-5", "session-1"}
)

func TestLogsNeverContainTokens(t *testing.T) {
	for _, optional := range []bool{false, true} {
		out := logRun(t, echostytch.Config{Optional: optional})
		require.NotEmpty(t, out)
		for _, tok := range allTokens {
			assert.NotContains(t, out, tok)
		}
		for _, p := range personal {
			assert.NotContains(t, out, p, "personal data without LogSensitiveData")
		}
		assert.NotContains(t, out, secretWord)
		assert.Contains(t, out, echostytch.TokenFingerprint(tokPlain))
		assert.Contains(t, out, `"level":"DEBUG"`)
		assert.Contains(t, out, `"level":"WARN"`)
		assert.Contains(t, out, `"level":"ERROR"`)
	}
}

func TestLogsWithSensitiveData(t *testing.T) {
	out := logRun(t, echostytch.Config{LogSensitiveData: true})
	for _, tok := range allTokens {
		assert.NotContains(t, out, tok)
	}
	assert.Contains(t, out, "plain@example.com")
	assert.Contains(t, out, "member-plain-1")
}

func TestLogLevels(t *testing.T) {
	var logs logBuffer
	e := newEcho(t, echostytch.Config{Verifier: newFake(),
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	serve(e, get("/r", "Authorization", "Bearer "+tokPlain))
	serve(e, get("/r", "Authorization", "Bearer "+tokInvalid))
	serve(e, get("/r"))
	assert.Empty(t, logs.String(), "outcomes are DEBUG")
	serve(e, get("/r", "Authorization", "Bearer "+tokDown))
	assert.Equal(t, 1, strings.Count(logs.String(), `"level":"WARN"`))
	assert.Contains(t, logs.String(), "internal_server_error", "the verifier's error is logged")
}

// TestSuccessPathAllocations checks that the middleware's own work on a
// success is one allocation (the request carrying the session) and that
// nothing is built for a disabled log level. Allocation counts, not time.
func TestSuccessPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	handler := func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
	noop := func(next echo.HandlerFunc) echo.HandlerFunc { return func(c echo.Context) error { return next(c) } }
	measure := func(mw echo.MiddlewareFunc, header ...string) float64 {
		e := echo.New()
		e.GET("/r", handler, mw)
		req := get("/r", header...)
		w := &nopWriter{h: make(http.Header)}
		return testing.AllocsPerRun(200, func() { e.ServeHTTP(w, req) })
	}
	// base: what Echo allocates for a route middleware that stores two
	// pointers with c.Set (its per-request closure and its context store).
	var p1, p2 int
	base := measure(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { c.Set("a", &p1); c.Set("b", &p2); return next(c) }
	})
	require.Greater(t, base, measure(noop), "c.Set allocates Echo's store")
	info := slog.New(slog.NewJSONHandler(&logBuffer{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mw := echostytch.New(echostytch.Config{Verifier: mapVerifier(sessions()), Logger: info})
	// No allocation of the middleware's own on success: only Echo's.
	assert.Equal(t, base, measure(mw, "Authorization", "Bearer "+tokPlain))
	assert.Equal(t, base, measure(mw, "Authorization", "bearer  "+tokPlain+" "), "slow header path")
	assert.Equal(t, base, measure(mw, "Cookie", "a=b; stytch_session="+tokPlain), "cookie path")
	assert.Equal(t, base, measure(mw, "Cookie", "stytch_session_jwt="+jwtPlain), "JWT cookie path")
	inCtx := echostytch.New(echostytch.Config{Verifier: mapVerifier(sessions()), Logger: info, SessionInContext: true})
	assert.Equal(t, base+1, measure(inCtx, "Authorization", "Bearer "+tokPlain), "SessionInContext: the request copy")
	assert.Greater(t, measure(mw, "Authorization", "Basic x"), base, "failure path may allocate")
}

// TestRealStackLogsNeverContainTokens builds the real stack (FromEnv against
// the emulator, STYTCH_LOG_LEVEL=DEBUG, its text logs collected) and drives
// every path that logs: valid opaque token, valid JWT in the header and in
// the cookie, a revoked token, malformed tokens, an outage (required and
// optional routes) and a logout. Neither the logs nor the printed settings
// may contain a token, a JWT or any of its segments, the secret or the Redis
// password; the logs must contain the tokens' fingerprints, so that the test
// fails if nothing is logged.
func TestRealStackLogsNeverContainTokens(t *testing.T) {
	const redisPass = "redis-pass-TOPSECRET-0123456789"
	srv := redistest.Start(t, redistest.WithArgs("--requirepass", redisPass))
	backends := []struct {
		name string
		env  map[string]string
	}{
		{"memory", nil},
		{"tiered", map[string]string{"STYTCH_REDIS_URL": "redis://:" + redisPass + "@" + srv.Addr(), "STYTCH_CACHE_BACKEND": "tiered"}},
		{"redis, password variable", map[string]string{"REDIS_URL": "redis://" + srv.Addr(), "STYTCH_REDIS_PASSWORD": redisPass}},
	}
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			emu := stytchtest.New()
			defer emu.Close()
			org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
			m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test", Name: "Ada Lovelace"})
			require.NoError(t, err)
			newSession := func() stytchtest.Session {
				s, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
				require.NoError(t, err)
				return s
			}
			live, revoked, down, loggedOut := newSession(), newSession(), newSession(), newSession()
			emu.Revoke(revoked.ID)
			cookieJWT := newSession().JWT
			require.NotEqual(t, live.JWT, cookieJWT)
			malformedOpaque := "tok*SENSITIVE*malformed*0123456789abcdef"
			malformedJWT := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJNQUxGT1JNRUQifQ" // two segments

			env := map[string]string{"STYTCH_LOG_LEVEL": "DEBUG", "STYTCH_MAX_RETRIES": "0", "STYTCH_REQUEST_TIMEOUT": "2"}
			for k, v := range bc.env {
				env[k] = v
			}
			var logs logBuffer
			stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, env), echostytch.WithLogOutput(&logs))
			require.NoError(t, err)
			defer stack.Close()
			require.Equal(t, slog.LevelDebug, stack.Settings.LogLevel)

			e := echo.New()
			auth := echostytch.New(stack.Config)
			optCfg := stack.Config
			optCfg.Optional = true
			e.GET("/p", memberHandler, auth)
			e.GET("/o", memberHandler, echostytch.New(optCfg))
			e.POST("/logout", stack.Logout(), auth)

			bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
			steps := []struct {
				name   string
				method string
				path   string
				header []string
				cookie *http.Cookie
				status int
				before func()
			}{
				{"opaque token", "GET", "/p", bearer(live.Token), nil, http.StatusOK, nil},
				{"opaque token, cached", "GET", "/p", bearer(live.Token), nil, http.StatusOK, nil},
				{"opaque token cookie", "GET", "/p", nil, &http.Cookie{Name: "stytch_session", Value: live.Token}, http.StatusOK, nil},
				{"JWT header", "GET", "/p", bearer(live.JWT), nil, http.StatusOK, nil},
				{"JWT cookie", "GET", "/p", nil, &http.Cookie{Name: "stytch_session_jwt", Value: cookieJWT}, http.StatusOK, nil},
				{"revoked token", "GET", "/p", bearer(revoked.Token), nil, http.StatusUnauthorized, nil},
				{"revoked token, optional", "GET", "/o", bearer(revoked.Token), nil, http.StatusOK, nil},
				{"malformed opaque token", "GET", "/p", bearer(malformedOpaque), nil, http.StatusUnauthorized, nil},
				{"malformed JWT cookie", "GET", "/p", nil, &http.Cookie{Name: "stytch_session_jwt", Value: malformedJWT}, http.StatusUnauthorized, nil},
				{"outage", "GET", "/p", bearer(down.Token), nil, http.StatusServiceUnavailable,
					func() {
						emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: http.StatusServiceUnavailable})
					}},
				{"outage, optional", "GET", "/o", bearer(down.Token), nil, http.StatusOK, nil},
				{"logout", "POST", "/logout", bearer(loggedOut.Token), nil, http.StatusNoContent, emu.ClearFaults},
				{"after logout", "GET", "/p", bearer(loggedOut.Token), nil, http.StatusUnauthorized, nil},
			}
			for _, st := range steps {
				if st.before != nil {
					st.before()
				}
				req := httptest.NewRequest(st.method, st.path, nil)
				for i := 0; i+1 < len(st.header); i += 2 {
					req.Header.Add(st.header[i], st.header[i+1])
				}
				if st.cookie != nil {
					req.AddCookie(st.cookie)
				}
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				require.Equal(t, st.status, rec.Code, "%s: %s", st.name, rec.Body.String())
			}
			require.NoError(t, stack.Close())

			settingsJSON, err := json.Marshal(stack.Settings)
			require.NoError(t, err)
			printed := strings.Join([]string{
				stack.Settings.String(), fmt.Sprint(stack.Settings), fmt.Sprintf("%v %+v %#v %s %q", stack.Settings,
					stack.Settings, stack.Settings, stack.Settings, stack.Settings),
				fmt.Sprint(*stack.Settings), string(settingsJSON),
			}, "\n")
			out := logs.String()
			t.Logf("%d bytes of logs", len(out))

			secrets := []string{emu.Secret(), redisPass}
			for _, tok := range []string{live.Token, revoked.Token, down.Token, loggedOut.Token, live.JWT, cookieJWT,
				malformedOpaque, malformedJWT} {
				secrets = append(secrets, tok)
				if strings.Contains(tok, ".") {
					secrets = append(secrets, strings.Split(tok, ".")...)
				}
			}
			for _, s := range secrets {
				require.NotEmpty(t, s)
				assert.NotContains(t, out, s, "logs")
				assert.NotContains(t, printed, s, "printed settings")
			}
			for _, p := range []string{"ada@acme.test", "Ada Lovelace", m.ID} {
				assert.NotContains(t, out, p, "personal data without STYTCH_LOG_SENSITIVE_DATA")
			}

			// Logging was on: the settings line, every level used, and a
			// fingerprint for each token presented.
			assert.Contains(t, out, "ayz-auth ready")
			assert.Contains(t, out, stack.Settings.ProjectID)
			assert.Contains(t, printed, stack.Settings.ProjectID)
			assert.Contains(t, out, "level=DEBUG")
			assert.Contains(t, out, "level=WARN")
			for name, tok := range map[string]string{"live": live.Token, "revoked": revoked.Token, "down": down.Token,
				"logged out": loggedOut.Token, "JWT header": live.JWT, "JWT cookie": cookieJWT,
				"malformed": malformedOpaque, "malformed JWT": malformedJWT} {
				assert.Contains(t, out, "token_fp="+echostytch.TokenFingerprint(tok), name)
			}
			if t.Failed() {
				t.Logf("logs:\n%s", out)
			}
		})
	}
}

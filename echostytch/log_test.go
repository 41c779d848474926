package echostytch_test

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
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

package echostytch_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ayzauth/ayzauth/echostytch"
)

var knownMessages = []string{
	"Authorization header is required", "Invalid or expired session token",
	"multiple Authorization headers are not allowed", "Authorization header is too long",
	"Authorization header contains control characters", "Authorization header contains non-ASCII characters",
	"Authorization header is empty", "Authorization header must use the Bearer scheme: 'Bearer <token>'",
	"Authorization header has no token after 'Bearer'",
	// verifier.Classify's reasons
	"token is empty", "token is too long", "token has an empty segment", "token contains invalid characters",
	"token is too short", "token is neither a session token nor a JWT",
}

// FuzzRequest feeds arbitrary Authorization and Cookie values through the
// middleware: it must never panic, never echo the input in a 401 body, and
// answer 200 or 401 only.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{"", "Bearer " + tokPlain, "bearer  " + jwtPlain, "Bearer", "Basic x", "Bearer \x00",
		"Bearer é", "Bearer a.b.c", "Bearer a..b", "stytch_session=" + tokPlain, `stytch_session_jwt="` + jwtPlain + `"`,
		"stytch_session=\"", ";;=;", "Bearer " + tokInvalid} {
		f.Add(s, s)
	}
	e := newEcho(f, echostytch.Config{Verifier: mapVerifier(sessions())})
	f.Fuzz(func(t *testing.T, auth, cookie string) {
		req := get("/r")
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		req.Header["Cookie"] = []string{cookie}
		rec := serve(e, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusUnauthorized:
			// The message is one of a fixed set: it cannot echo the input.
			assert.Contains(t, knownMessages, decode(t, rec).Message)
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

package echostytch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/verifier"
)

// mapVerifier is the trivial in-memory Verifier of the benchmark: one map
// lookup.
type mapVerifier map[string]*verifier.Session

func (m mapVerifier) Verify(_ context.Context, token string) (*verifier.Session, error) {
	if s, ok := m[token]; ok {
		return s, nil
	}
	return nil, verifier.ErrInvalidSession
}

// nopWriter is a ResponseWriter that allocates nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkMiddleware measures a request through e.ServeHTTP: without
// authentication (baseline), with the middleware on a cache-hit-like
// verifier (map lookup), and with a requirement on top. The difference to
// the baseline is the middleware's own cost.
func BenchmarkMiddleware(b *testing.B) {
	const token = "session-token-0123456789abcdefghijklmnopqrstuvwxyz"
	sess := &verifier.Session{MemberID: "member-1", OrganizationID: "org-1",
		ExpiresAt: time.Now().Add(time.Hour), CustomClaims: map[string]any{"admin": true}}
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtZW1iZXIifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
	v := mapVerifier{token: sess, jwt: sess}
	handler := func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
	member := func(c echo.Context) error {
		if _, ok := echostytch.Member(c); !ok {
			return echo.ErrUnauthorized
		}
		return c.NoContent(http.StatusNoContent)
	}

	noop := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return next(c) }
	}
	cases := []struct {
		name  string
		setup func(e *echo.Echo)
		auth  string
		hdr   string
	}{
		{"baseline-no-auth", func(e *echo.Echo) { e.GET("/r", handler) }, "", ""},
		// Echo allocates a closure per request for route middleware; this
		// baseline includes that cost, so bearer - baseline-noop-mw is ours.
		{"baseline-noop-mw", func(e *echo.Echo) { e.GET("/r", handler, noop) }, "", ""},
		{"bearer", func(e *echo.Echo) { e.GET("/r", member, echostytch.New(echostytch.Config{Verifier: v})) }, "Bearer " + token, ""},
		{"cookie-jwt", func(e *echo.Echo) { e.GET("/r", member, echostytch.New(echostytch.Config{Verifier: v})) },
			"other=1; stytch_session_jwt=" + jwt, "Cookie"},
		{"bearer+ContextKey", func(e *echo.Echo) {
			e.GET("/r", member, echostytch.New(echostytch.Config{Verifier: v, ContextKey: "user"}))
		}, "Bearer " + token, ""},
		{"bearer+RequireClaims", func(e *echo.Echo) {
			e.GET("/r", member, echostytch.New(echostytch.Config{Verifier: v}), echostytch.RequireClaims("admin"))
		}, "Bearer " + token, ""},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			e := echo.New()
			tc.setup(e)
			req := httptest.NewRequest(http.MethodGet, "/r", nil)
			if tc.auth != "" {
				if tc.hdr == "" {
					tc.hdr = "Authorization"
				}
				req.Header.Set(tc.hdr, tc.auth)
			}
			w := &nopWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				e.ServeHTTP(w, req)
			}
		})
	}
}

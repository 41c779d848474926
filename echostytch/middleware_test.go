package echostytch_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/verifier"
)

const (
	challengeMissing = `Bearer realm="api"`
	challengeInvalid = `Bearer realm="api", error="invalid_token"`
)

// TestErrorContract drives every row of design.md §3 that the middleware
// itself answers (the 403 rows are in require_test.go).
func TestErrorContract(t *testing.T) {
	tests := []struct {
		name      string
		header    []string
		status    int
		body      body
		challenge string
		retry     bool
		kind      error
		cause     error
	}{
		{"no token", nil, 401,
			body{"authentication_failed", "Authorization header is required", "token_extraction"},
			challengeMissing, false, echostytch.ErrTokenMissing, nil},
		{"malformed header", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401,
			body{"authentication_failed", "Authorization header must use the Bearer scheme: 'Bearer <token>'", "token_extraction"},
			challengeInvalid, false, echostytch.ErrTokenMalformed, verifier.ErrMalformedToken},
		{"malformed token (Classify)", []string{"Authorization", "Bearer short"}, 401,
			body{"authentication_failed", "token is too short", "token_extraction"},
			challengeInvalid, false, echostytch.ErrTokenMalformed, verifier.ErrMalformedToken},
		{"malformed token (verifier)", []string{"Authorization", "Bearer " + tokVMalf}, 401,
			body{"authentication_failed", "token is not a valid JWT", "token_extraction"},
			challengeInvalid, false, echostytch.ErrTokenMalformed, verifier.ErrMalformedToken},
		{"invalid session", []string{"Authorization", "Bearer " + tokInvalid}, 401,
			body{"authentication_failed", "Invalid or expired session token", "token_verification"},
			challengeInvalid, false, echostytch.ErrTokenInvalid, verifier.ErrInvalidSession},
		{"unknown token", []string{"Authorization", "Bearer unknown_token_0123456789abc"}, 401,
			body{"authentication_failed", "Invalid or expired session token", "token_verification"},
			challengeInvalid, false, echostytch.ErrTokenInvalid, verifier.ErrInvalidSession},
		{"outage", []string{"Authorization", "Bearer " + tokDown}, 503,
			body{"service_unavailable", "Authentication service temporarily unavailable", "stytch_api"},
			"", true, echostytch.ErrServiceUnavailable, verifier.ErrUnavailable},
		{"misconfigured", []string{"Authorization", "Bearer " + tokMisconf}, 500,
			body{"internal_server_error", "Authentication service misconfigured", "configuration"},
			"", false, echostytch.ErrMisconfigured, verifier.ErrMisconfigured},
		{"unexpected error", []string{"Authorization", "Bearer " + tokBoom}, 500,
			body{"internal_server_error", "An unexpected error occurred during authentication", "unknown"},
			"", false, echostytch.ErrInternal, errBoom},
		{"nil session, nil error", []string{"Authorization", "Bearer " + tokNil}, 500,
			body{"internal_server_error", "An unexpected error occurred during authentication", "unknown"},
			"", false, echostytch.ErrInternal, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Default writer.
			e := newEcho(t, echostytch.Config{Verifier: newFake()})
			rec := serve(e, get("/r", tc.header...))
			assert.Equal(t, tc.status, rec.Code)
			assert.Equal(t, tc.body, decode(t, rec))
			assert.Equal(t, tc.challenge, rec.Header().Get("WWW-Authenticate"))
			if tc.retry {
				assert.Equal(t, "5", rec.Header().Get("Retry-After"))
			} else {
				assert.Empty(t, rec.Header().Get("Retry-After"))
			}
			assert.Contains(t, rec.Header().Get("Content-Type"), "application/json")

			// Custom ErrorHandler sees a typed error.
			var got error
			e = newEcho(t, echostytch.Config{Verifier: newFake(), ErrorHandler: func(c echo.Context, err error) error {
				got = err
				return c.NoContent(http.StatusTeapot)
			}})
			rec = serve(e, get("/r", tc.header...))
			assert.Equal(t, http.StatusTeapot, rec.Code)
			require.Error(t, got)
			assert.ErrorIs(t, got, tc.kind)
			if tc.cause != nil {
				assert.ErrorIs(t, got, tc.cause)
			}
			var ee *echostytch.Error
			require.ErrorAs(t, got, &ee)
			assert.Equal(t, tc.status, ee.Status)
			assert.Equal(t, tc.body.Error, ee.Code)
			assert.Equal(t, tc.body.Type, ee.Type)
			assert.Equal(t, tc.body.Message, ee.Message)
			for _, other := range []error{echostytch.ErrTokenMissing, echostytch.ErrTokenMalformed, echostytch.ErrTokenInvalid,
				echostytch.ErrServiceUnavailable, echostytch.ErrMisconfigured, echostytch.ErrInternal,
				echostytch.ErrInsufficientPermissions, echostytch.ErrInsufficientAuthentication} {
				if other != tc.kind {
					assert.NotErrorIs(t, got, other)
				}
			}
		})
	}
}

func TestAPIErrorReachableThroughError(t *testing.T) {
	var got error
	e := newEcho(t, echostytch.Config{Verifier: newFake(), ErrorHandler: func(c echo.Context, err error) error {
		got = err
		return echostytch.WriteError(c, err, "")
	}})
	rec := serve(e, get("/r", "Authorization", "Bearer "+tokInvalid))
	assert.Equal(t, 401, rec.Code)
	var ae *verifier.APIError
	require.ErrorAs(t, got, &ae)
	assert.Equal(t, "session_not_found", ae.ErrorType)
	assert.Equal(t, ae, errors.Unwrap(got))
}

func TestTokenSources(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		member string // "" = expect 401
		calls  []string
	}{
		{"bearer", []string{"Authorization", "Bearer " + tokPlain}, "member-plain-1", []string{tokPlain}},
		{"bearer lowercase scheme", []string{"Authorization", "bearer " + tokPlain}, "member-plain-1", []string{tokPlain}},
		{"bearer uppercase scheme", []string{"Authorization", "BEARER " + tokPlain}, "member-plain-1", []string{tokPlain}},
		{"bearer with spaces", []string{"Authorization", "  Bearer   " + tokPlain + "  "}, "member-plain-1", []string{tokPlain}},
		{"bearer JWT", []string{"Authorization", "Bearer " + jwtPlain}, "member-jwt-5", []string{jwtPlain}},
		{"jwt cookie", []string{"Cookie", "stytch_session_jwt=" + jwtPlain}, "member-jwt-5", []string{jwtPlain}},
		{"token cookie", []string{"Cookie", "stytch_session=" + tokPlain}, "member-plain-1", []string{tokPlain}},
		{"quoted cookie", []string{"Cookie", `stytch_session="` + tokPlain + `"`}, "member-plain-1", []string{tokPlain}},
		{"cookie among others", []string{"Cookie", "a=1; stytch_session=" + tokPlain + "; b=2"}, "member-plain-1", []string{tokPlain}},
		{"header beats cookies", []string{"Authorization", "Bearer " + tokMFA,
			"Cookie", "stytch_session_jwt=" + jwtPlain + "; stytch_session=" + tokPlain}, "member-mfa-3", []string{tokMFA}},
		{"jwt cookie beats token cookie", []string{"Cookie", "stytch_session=" + tokPlain + "; stytch_session_jwt=" + jwtPlain},
			"member-jwt-5", []string{jwtPlain}},
		{"jwt cookie in a second Cookie header", []string{"Cookie", "stytch_session=" + tokPlain, "Cookie", "stytch_session_jwt=" + jwtPlain},
			"member-jwt-5", []string{jwtPlain}},
		{"empty jwt cookie falls through", []string{"Cookie", "stytch_session_jwt=; stytch_session=" + tokPlain},
			"member-plain-1", []string{tokPlain}},
		{"similar cookie names ignored", []string{"Cookie", "xstytch_session=" + tokPlain + "; stytch_session_x=" + tokPlain}, "", nil},
		{"empty cookies", []string{"Cookie", "stytch_session=; stytch_session_jwt="}, "", nil},
		{"malformed cookie token", []string{"Cookie", "stytch_session=bad%token"}, "", nil},
		{"non-bearer header does not fall back to cookies", []string{"Authorization", "Basic abc",
			"Cookie", "stytch_session=" + tokPlain}, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			e := newEcho(t, echostytch.Config{Verifier: f})
			rec := serve(e, get("/r", tc.header...))
			if tc.member == "" {
				assert.Equal(t, 401, rec.Code, rec.Body.String())
			} else {
				require.Equal(t, 200, rec.Code, rec.Body.String())
				assert.JSONEq(t, `{"member_id":"`+tc.member+`"}`, rec.Body.String())
			}
			assert.Equal(t, tc.calls, f.Calls())
		})
	}
}

func TestCustomCookieNamesAndNoCookies(t *testing.T) {
	f := newFake()
	e := newEcho(t, echostytch.Config{Verifier: f, CookieJWT: "jwt", CookieToken: "sess"})
	rec := serve(e, get("/r", "Cookie", "stytch_session="+tokPlain))
	assert.Equal(t, 401, rec.Code)
	rec = serve(e, get("/r", "Cookie", "sess="+tokPlain))
	assert.Equal(t, 200, rec.Code)
	rec = serve(e, get("/r", "Cookie", "sess="+tokPlain+"; jwt="+jwtPlain))
	assert.JSONEq(t, `{"member_id":"member-jwt-5"}`, rec.Body.String())

	e = newEcho(t, echostytch.Config{Verifier: newFake(), NoCookies: true})
	rec = serve(e, get("/r", "Cookie", "stytch_session="+tokPlain))
	assert.Equal(t, 401, rec.Code)
	assert.Equal(t, "Authorization header is required", decode(t, rec).Message)
	assert.Equal(t, challengeMissing, rec.Header().Get("WWW-Authenticate"))
}

func TestMalformedAuthorization(t *testing.T) {
	long := "Bearer " + strings.Repeat("a", echostytch.DefaultMaxHeaderLength)
	tests := []struct {
		name    string
		values  []string
		message string
	}{
		{"wrong scheme", []string{"Basic " + tokPlain}, "Authorization header must use the Bearer scheme: 'Bearer <token>'"},
		{"token without scheme", []string{tokPlain}, "Authorization header must use the Bearer scheme: 'Bearer <token>'"},
		{"scheme glued to token", []string{"Bearer" + tokPlain}, "Authorization header must use the Bearer scheme: 'Bearer <token>'"},
		{"invalid header format", []string{"Invalid header format"}, "Authorization header must use the Bearer scheme: 'Bearer <token>'"},
		{"empty", []string{""}, "Authorization header is empty"},
		{"only spaces", []string{"   "}, "Authorization header is empty"},
		{"Bearer alone", []string{"Bearer"}, "Authorization header has no token after 'Bearer'"},
		{"Bearer and space", []string{"Bearer "}, "Authorization header has no token after 'Bearer'"},
		{"duplicated", []string{"Bearer " + tokPlain, "Bearer " + tokPlain}, "multiple Authorization headers are not allowed"},
		{"oversize", []string{long}, "Authorization header is too long"},
		{"NUL", []string{"Bearer tok_plain_0123456789\x00abcdefghij"}, "Authorization header contains control characters"},
		{"CR", []string{"Bearer tok_plain_0123456789\rabcdefghij"}, "Authorization header contains control characters"},
		{"LF", []string{"Bearer token\nwith\nnewlines_0123456789"}, "Authorization header contains control characters"},
		{"tab separator", []string{"Bearer\t" + tokPlain}, "Authorization header contains control characters"},
		{"trailing tab", []string{"Bearer " + tokPlain + "\t"}, "Authorization header contains control characters"},
		{"DEL", []string{"Bearer tok_plain_0123456789\x7fabcdefghij"}, "Authorization header contains control characters"},
		{"non-ASCII", []string{"Bearer tok_plain_0123456789ééabcdefghij"}, "Authorization header contains non-ASCII characters"},
		{"spaces inside token", []string{"Bearer token with spaces here"}, "token contains invalid characters"},
		{"special characters", []string{"Bearer token@with#special$chars"}, "token contains invalid characters"},
		{"padding", []string{"Bearer tok_plain_0123456789abcdefghij=="}, "token contains invalid characters"},
		{"two bearer values", []string{"Bearer " + tokPlain + ", Bearer " + tokPlain}, "token contains invalid characters"},
		{"short", []string{"Bearer short"}, "token is too short"},
		{"19 characters", []string{"Bearer " + strings.Repeat("a", 19)}, "token is too short"},
		{"bad JWT shape", []string{"Bearer a..b"}, "token has an empty segment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			var got error
			e := newEcho(t, echostytch.Config{Verifier: f, ErrorHandler: func(c echo.Context, err error) error {
				got = err
				return echostytch.WriteError(c, err, "api")
			}})
			req := get("/r")
			req.Header["Authorization"] = tc.values
			rec := serve(e, req)
			assert.Equal(t, 401, rec.Code)
			b := decode(t, rec)
			assert.Equal(t, body{"authentication_failed", tc.message, "token_extraction"}, b)
			assert.Equal(t, challengeInvalid, rec.Header().Get("WWW-Authenticate"))
			assert.Empty(t, f.Calls(), "nothing is sent to the verifier")
			assert.ErrorIs(t, got, echostytch.ErrTokenMalformed)
			assert.ErrorIs(t, got, verifier.ErrMalformedToken)
			assert.NotContains(t, rec.Body.String(), "0123456789", "the token is never echoed")
			assert.NotContains(t, got.Error(), "0123456789", "the token is never in the error")
		})
	}
}

func TestMaxHeaderLength(t *testing.T) {
	e := newEcho(t, echostytch.Config{Verifier: newFake(), MaxHeaderLength: 20})
	rec := serve(e, get("/r", "Authorization", "Bearer "+tokPlain))
	assert.Equal(t, 401, rec.Code)
	assert.Equal(t, "Authorization header is too long", decode(t, rec).Message)
}

func TestRealmAndRetryAfter(t *testing.T) {
	e := newEcho(t, echostytch.Config{Verifier: newFake(), Realm: "example.com", RetryAfter: 1500 * 1e6})
	rec := serve(e, get("/r"))
	assert.Equal(t, `Bearer realm="example.com"`, rec.Header().Get("WWW-Authenticate"))
	rec = serve(e, get("/r", "Authorization", "Bearer "+tokInvalid))
	assert.Equal(t, `Bearer realm="example.com", error="invalid_token"`, rec.Header().Get("WWW-Authenticate"))
	rec = serve(e, get("/r", "Authorization", "Bearer "+tokDown))
	assert.Equal(t, "2", rec.Header().Get("Retry-After"))
	assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
}

func TestOptional(t *testing.T) {
	tests := []struct {
		name     string
		header   []string
		want     string
		warn     bool
		degraded uint64
	}{
		{"valid", []string{"Authorization", "Bearer " + tokPlain}, `{"member_id":"member-plain-1"}`, false, 0},
		{"missing", nil, `{"anonymous":true}`, false, 0},
		{"malformed", []string{"Authorization", "Basic x"}, `{"anonymous":true}`, false, 0},
		{"invalid", []string{"Authorization", "Bearer " + tokInvalid}, `{"anonymous":true}`, false, 0},
		{"outage", []string{"Authorization", "Bearer " + tokDown}, `{"anonymous":true}`, true, 1},
		{"misconfigured", []string{"Authorization", "Bearer " + tokMisconf}, `{"anonymous":true}`, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			stats := &echostytch.Stats{}
			e := newEcho(t, echostytch.Config{Verifier: newFake(), Optional: true, Logger: debugLogger(&logs), Stats: stats})
			rec := serve(e, get("/r", tc.header...))
			assert.Equal(t, 200, rec.Code)
			assert.JSONEq(t, tc.want, rec.Body.String())
			assert.Equal(t, tc.warn, strings.Contains(logs.String(), `"level":"WARN"`), logs.String())
			assert.Equal(t, tc.degraded, stats.Degraded.Load())
			assert.Zero(t, stats.Unauthorized.Load()+stats.Unavailable.Load()+stats.Errors.Load())
		})
	}
}

func TestStats(t *testing.T) {
	stats := &echostytch.Stats{}
	e := newEcho(t, echostytch.Config{Verifier: newFake(), Stats: stats})
	for _, h := range [][]string{nil, {"Authorization", "Bearer " + tokInvalid}, {"Authorization", "Bearer " + tokDown},
		{"Authorization", "Bearer " + tokBoom}, {"Authorization", "Bearer " + tokPlain}} {
		serve(e, get("/r", h...))
	}
	assert.Equal(t, uint64(2), stats.Unauthorized.Load())
	assert.Equal(t, uint64(1), stats.Unavailable.Load())
	assert.Equal(t, uint64(1), stats.Errors.Load())
	assert.Zero(t, stats.Degraded.Load())
}

func TestSkipperBeforeSuccess(t *testing.T) {
	f := newFake()
	var order []string
	e := newEcho(t, echostytch.Config{
		Verifier: f,
		Skipper:  func(c echo.Context) bool { return c.Path() == "/public" },
		BeforeFunc: func(c echo.Context) {
			order = append(order, "before")
		},
		SuccessHandler: func(c echo.Context, s *verifier.Session) {
			order = append(order, "success:"+s.MemberID)
		},
	}, func(e *echo.Echo) { e.GET("/public", memberHandler) })
	rec := serve(e, get("/public"))
	assert.Equal(t, 200, rec.Code)
	assert.JSONEq(t, `{"anonymous":true}`, rec.Body.String())
	assert.Empty(t, order)
	rec = serve(e, get("/public", "Authorization", "Bearer "+tokPlain))
	assert.JSONEq(t, `{"anonymous":true}`, rec.Body.String(), "skipped: token not even read")
	assert.Empty(t, f.Calls())

	rec = serve(e, get("/r", "Authorization", "Bearer "+tokPlain))
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, []string{"before", "success:member-plain-1"}, order)
}

func TestContextAccessors(t *testing.T) {
	type ctxKey struct{}
	var fromCtx, fromDerived, fromGet *verifier.Session
	e := newEcho(t, echostytch.Config{Verifier: newFake(), ContextKey: "user", SessionInContext: true}, func(e *echo.Echo) {
		e.GET("/deep", func(c echo.Context) error {
			fromCtx, _ = echostytch.FromContext(c.Request().Context())
			derived, cancel := context.WithCancel(context.WithValue(c.Request().Context(), ctxKey{}, 1))
			defer cancel()
			fromDerived, _ = echostytch.FromContext(derived)
			assert.Equal(t, 1, derived.Value(ctxKey{}))
			fromGet, _ = c.Get("user").(*verifier.Session)
			assert.Same(t, echostytch.MustMember(c), fromCtx)
			return c.NoContent(204)
		})
	})
	rec := serve(e, get("/deep", "Authorization", "Bearer "+tokPlain))
	require.Equal(t, 204, rec.Code)
	require.NotNil(t, fromCtx)
	assert.Equal(t, "member-plain-1", fromCtx.MemberID)
	assert.Same(t, fromCtx, fromDerived)
	assert.Same(t, fromCtx, fromGet)

	// Without the middleware.
	e2 := echo.New()
	e2.GET("/x", func(c echo.Context) error {
		_, ok := echostytch.Member(c)
		assert.False(t, ok)
		assert.Panics(t, func() { echostytch.MustMember(c) })
		_, ok = echostytch.FromContext(context.Background())
		assert.False(t, ok)
		_, ok = echostytch.FromContext(nil) //nolint:staticcheck // nil is tolerated
		assert.False(t, ok)
		return c.NoContent(204)
	})
	assert.Equal(t, 204, serve(e2, get("/x")).Code)
}

func TestContextKeepsParentValuesAndCancellation(t *testing.T) {
	type key struct{}
	e := newEcho(t, echostytch.Config{Verifier: newFake()}, func(e *echo.Echo) {
		e.GET("/v", func(c echo.Context) error {
			ctx := c.Request().Context()
			assert.Equal(t, "v", ctx.Value(key{}))
			<-ctx.Done()
			assert.ErrorIs(t, ctx.Err(), context.Canceled)
			return c.NoContent(204)
		})
	})
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	cancel()
	req := get("/v", "Authorization", "Bearer "+tokPlain).WithContext(ctx)
	assert.Equal(t, 204, serve(e, req).Code)
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  echostytch.Config
		msg  string
	}{
		{"nil verifier", echostytch.Config{}, "Verifier is required"},
		{"bad cookie", echostytch.Config{Verifier: newFake(), CookieJWT: "a b"}, "CookieJWT"},
		{"bad cookie token", echostytch.Config{Verifier: newFake(), CookieToken: "a;b"}, "CookieToken"},
		{"negative length", echostytch.Config{Verifier: newFake(), MaxHeaderLength: -1}, "MaxHeaderLength"},
		{"bad realm", echostytch.Config{Verifier: newFake(), Realm: `a"b`}, "Realm"},
		{"negative retry", echostytch.Config{Verifier: newFake(), RetryAfter: -1}, "RetryAfter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := tc.cfg.ToMiddleware()
			assert.Nil(t, mw)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Panics(t, func() { echostytch.New(tc.cfg) })
		})
	}
	assert.NotPanics(t, func() { echostytch.New(echostytch.Config{Verifier: newFake()}) })
}

func TestWriteErrorForeignError(t *testing.T) {
	e := echo.New()
	e.GET("/x", func(c echo.Context) error { return echostytch.WriteError(c, errors.New("x"), "") })
	rec := serve(e, get("/x"))
	assert.Equal(t, 500, rec.Code)
	assert.Equal(t, body{"internal_server_error", "An unexpected error occurred during authentication", "unknown"}, decode(t, rec))
}

func TestDefaultLoggerIsSlogDefault(t *testing.T) {
	// Logger nil: the middleware must still work (slog.Default()).
	e := newEcho(t, echostytch.Config{Verifier: newFake()})
	assert.Equal(t, 200, serve(e, get("/r", "Authorization", "Bearer "+tokPlain)).Code)
}

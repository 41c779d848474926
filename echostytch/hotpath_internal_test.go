package echostytch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/verifier"
)

// wellFormed is a faster verifier.Classify(token) == nil: they must agree.
func TestWellFormedMatchesClassify(t *testing.T) {
	check := func(s string) {
		t.Helper()
		_, err := verifier.Classify(s)
		if got := wellFormed(s); got != (err == nil) {
			t.Fatalf("wellFormed(%q) = %v, Classify error %v", s, got, err)
		}
	}
	// Every byte at every position of short and long tokens.
	for _, base := range []string{
		strings.Repeat("a", 44),
		strings.Repeat("b", 19), strings.Repeat("b", 20), strings.Repeat("c", 256), strings.Repeat("c", 257),
		"eyJh.eyJz.c2ln", "a.b.c", strings.Repeat("x", 100) + "." + strings.Repeat("y", 900) + "." + strings.Repeat("z", 342),
	} {
		for pos := 0; pos < len(base); pos += 1 + pos/16 {
			for c := 0; c < 256; c++ {
				b := []byte(base)
				b[pos] = byte(c)
				check(string(b))
			}
		}
	}
	// Dots everywhere, lengths at the bounds.
	for _, s := range []string{"", ".", "..", "...", "a..b", ".a.b", "a.b.", "a.b", "a.b.c.d", "a.b.c.",
		strings.Repeat("a", verifier.MaxJWTLength-4) + ".b.c", strings.Repeat("a", verifier.MaxJWTLength-3) + ".b.c"} {
		check(s)
	}
	// Random strings over an alphabet rich in dots and near-misses.
	const alphabet = "aZ09-_./+= \x00\x7f\xff"
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		n := r.IntN(300)
		b := make([]byte, n)
		for i := range b {
			if r.IntN(8) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = "abcXYZ019-_"[r.IntN(11)]
			}
		}
		check(string(b))
	}
}

func FuzzWellFormed(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtIn0.c2lnbmF0dXJl")
	f.Add(strings.Repeat("a", 44))
	f.Fuzz(func(t *testing.T, s string) {
		_, err := verifier.Classify(s)
		if wellFormed(s) != (err == nil) {
			t.Fatalf("wellFormed(%q) disagrees with Classify (%v)", s, err)
		}
	})
}

// tokenVerifier answers a session whose MemberID is the token.
type tokenVerifier struct{ prefix string }

func (v tokenVerifier) Verify(_ context.Context, token string) (*verifier.Session, error) {
	if strings.HasPrefix(token, "bad") {
		return nil, verifier.ErrInvalidSession
	}
	return &verifier.Session{MemberID: v.prefix + token, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func serveTest(e *echo.Echo, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// The session is found by c while the handler runs, and a later request
// served with the same pooled echo.Context does not see it, whether the
// handler returned, failed or panicked, with or without Optional.
func TestSessionTableLifetime(t *testing.T) {
	e := echo.New()
	e.Use(middleware.Recover())
	auth := New(Config{Verifier: tokenVerifier{}})
	opt := New(Config{Verifier: tokenVerifier{}, Optional: true})
	var seen []string
	member := func(c echo.Context) error {
		s, ok := Member(c)
		if !ok {
			seen = append(seen, "")
			return c.NoContent(http.StatusNoContent)
		}
		if _, ok := FromContext(c.Request().Context()); ok {
			t.Error("FromContext found the session without SessionInContext")
		}
		seen = append(seen, s.MemberID)
		return c.NoContent(http.StatusNoContent)
	}
	e.GET("/auth", member, auth)
	e.GET("/opt", member, opt)
	e.GET("/open", member)
	e.GET("/panic", func(echo.Context) error { panic("boom") }, auth)
	e.GET("/fail", func(echo.Context) error { return echo.ErrTeapot }, auth)

	tok := strings.Repeat("a", 44)
	require.Equal(t, 204, serveTest(e, "/auth", tok).Code)
	require.Equal(t, 204, serveTest(e, "/opt", "bad"+tok).Code)
	require.Equal(t, 204, serveTest(e, "/opt", tok).Code)
	require.Equal(t, 500, serveTest(e, "/panic", tok).Code)
	require.Equal(t, 204, serveTest(e, "/open", "").Code) // likely the same pooled echo.Context
	require.Equal(t, 418, serveTest(e, "/fail", tok).Code)
	require.Equal(t, 204, serveTest(e, "/open", "").Code)
	require.Equal(t, []string{tok, "", tok, "", ""}, seen)
}

// A custom context that embeds Echo's (a common Echo pattern), installed
// after the middleware, still finds the session.
type customContext struct{ echo.Context }

func TestMemberThroughCustomContext(t *testing.T) {
	e := echo.New()
	auth := New(Config{Verifier: tokenVerifier{}})
	wrap := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return next(&customContext{c}) }
	}
	e.GET("/p", func(c echo.Context) error {
		if _, ok := c.(*customContext); !ok {
			t.Error("not wrapped")
		}
		return c.String(http.StatusOK, MustMember(c).MemberID)
	}, auth, wrap, RequireClaims())
	tok := strings.Repeat("a", 44)
	rec := serveTest(e, "/p", tok)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, tok, rec.Body.String())
}

// Two middlewares of this package on one request: the inner one's session
// while it runs, the outer one's again after it returned.
func TestSessionTableNested(t *testing.T) {
	e := echo.New()
	outer := New(Config{Verifier: tokenVerifier{prefix: "outer-"}})
	inner := New(Config{Verifier: tokenVerifier{prefix: "inner-"}})
	var between, handler string
	probe := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			s, _ := Member(c)
			between = s.MemberID
			return err
		}
	}
	e.GET("/r", func(c echo.Context) error {
		handler = MustMember(c).MemberID
		return c.NoContent(http.StatusNoContent)
	}, outer, probe, inner)
	tok := strings.Repeat("n", 44)
	require.Equal(t, 204, serveTest(e, "/r", tok).Code)
	require.Equal(t, "inner-"+tok, handler)
	require.Equal(t, "outer-"+tok, between)
}

// wrapped is a custom context installed by a middleware after ours.
type wrapped struct{ echo.Context }

// A wrapper of c installed after the middleware hides the table entry; with
// SessionInContext, Member and requirements still find the session on the
// request's context, and FromContext works from derived contexts.
func TestSessionInContext(t *testing.T) {
	for _, inCtx := range []bool{false, true} {
		e := echo.New()
		wrap := func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error { return next(&wrapped{c}) }
		}
		var got, fromCtx bool
		e.GET("/r", func(c echo.Context) error {
			_, got = Member(c)
			ctx, cancel := context.WithCancel(c.Request().Context())
			defer cancel()
			_, fromCtx = FromContext(ctx)
			return c.NoContent(http.StatusNoContent)
		}, New(Config{Verifier: tokenVerifier{}, SessionInContext: inCtx}), wrap, RequireClaims())
		code := serveTest(e, "/r", strings.Repeat("w", 44)).Code
		require.Equal(t, 204, code, "the requirement sees the session through the wrapper")
		require.True(t, got)
		require.Equal(t, inCtx, fromCtx, "FromContext needs SessionInContext")
	}
}

// Concurrent requests each see their own session.
func TestSessionTableConcurrent(t *testing.T) {
	e := echo.New()
	e.GET("/r", func(c echo.Context) error {
		s := MustMember(c)
		if s.MemberID != c.Request().Header.Get(echo.HeaderAuthorization)[len("Bearer "):] {
			return c.NoContent(http.StatusConflict)
		}
		return c.NoContent(http.StatusNoContent)
	}, New(Config{Verifier: tokenVerifier{}}))
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				tok := fmt.Sprintf("%022d%022d", g, i)
				if serveTest(e, "/r", tok).Code != 204 {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, bad.Load())
}

// recordingVerifier accepts every token (as tokenVerifier) and records the
// tokens it was asked about.
type recordingVerifier struct {
	tokenVerifier
	mu    sync.Mutex
	calls []string
}

func (r *recordingVerifier) Verify(ctx context.Context, token string) (*verifier.Session, error) {
	r.mu.Lock()
	r.calls = append(r.calls, token)
	r.mu.Unlock()
	return r.tokenVerifier.Verify(ctx, token)
}

// strictOnly hides ChecksTokenShape: the middleware checks shapes first.
type strictOnly struct{ verifier.Verifier }

// With a verifier that checks shapes itself (cache.Verifier), the fast path
// skips the middleware's own check; every answer must be exactly the one of
// the checking path, and no malformed token may reach the inner verifier.
func TestLazyShapeAnswersAsStrict(t *testing.T) {
	inner := &recordingVerifier{}
	mem, err := memory.New(memory.Options{})
	require.NoError(t, err)
	defer mem.Close()
	cv, err := cache.NewVerifier(inner, cache.VerifierConfig{Store: mem, Secret: []byte("s"), Namespace: "p"})
	require.NoError(t, err)
	defer cv.Close()
	lazy, err := newState(Config{Verifier: cv})
	require.NoError(t, err)
	require.True(t, lazy.lazyShape)
	strict, err := newState(Config{Verifier: strictOnly{cv}})
	require.NoError(t, err)
	require.False(t, strict.lazyShape)

	handler := func(c echo.Context) error { return c.String(http.StatusOK, MustMember(c).MemberID) }
	good := strings.Repeat("g", 44)
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
	type req struct{ header, value string }
	cases := []req{
		{"Authorization", "Bearer " + good},
		{"Authorization", "Bearer " + jwt},
		{"Authorization", "Bearer  " + good + " "}, // tolerated spaces
		{"Authorization", "bearer " + good},
		{"Authorization", "Bearer " + good + " extra"},
		{"Authorization", "Bearer " + good[:10]},                  // too short
		{"Authorization", "Bearer " + good + "!"},                 // bad character
		{"Authorization", "Bearer " + good + "\t"},                // control character
		{"Authorization", "Bearer " + good + "\x00"},              // NUL
		{"Authorization", "Bearer " + good + "é"},                 // non-ASCII
		{"Authorization", "Bearer a.b"},                           // two segments
		{"Authorization", "Bearer a..b"},                          // empty segment
		{"Authorization", "Bearer " + jwt + "."},                  // four segments
		{"Authorization", "Bearer " + strings.Repeat("x", 300)},   // too long for opaque
		{"Authorization", "Bearer " + strings.Repeat("x.", 5000)}, // too long
		{"Authorization", "Bearer "},
		{"Authorization", "Basic " + good},
		{"Cookie", "stytch_session=" + good},
		{"Cookie", "stytch_session_jwt=" + jwt},
		{"Cookie", "stytch_session_jwt=" + jwt + "$"},
		{"Cookie", "stytch_session=" + good[:5]},
		{"Cookie", "stytch_session=" + good + "%20"},
		{"Cookie", "stytch_session=\"" + good + "\""},
	}
	serveWith := func(st *state, r req) *httptest.ResponseRecorder {
		e := echo.New()
		e.GET("/r", handler, st.middleware)
		hr := httptest.NewRequest(http.MethodGet, "/r", nil)
		hr.Header.Set(r.header, r.value)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, hr)
		return rec
	}
	for round := range 2 { // the second round answers from the cache
		for _, r := range cases {
			want := serveWith(strict, r)
			got := serveWith(lazy, r)
			require.Equal(t, want.Code, got.Code, "round %d %q", round, r.value)
			require.Equal(t, want.Body.String(), got.Body.String(), "round %d %q", round, r.value)
			require.Equal(t, want.Header().Get(echo.HeaderWWWAuthenticate), got.Header().Get(echo.HeaderWWWAuthenticate), "%q", r.value)
		}
	}
	inner.mu.Lock()
	defer inner.mu.Unlock()
	require.NotEmpty(t, inner.calls)
	for _, tok := range inner.calls {
		_, err := verifier.Classify(tok)
		require.NoError(t, err, "a malformed token reached the inner verifier: %q", tok)
	}
}

package echostytch_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
	echojwt "github.com/labstack/echo-jwt/v4"
	"github.com/labstack/echo/v4"
	"github.com/sethvargo/go-envconfig"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/cache/tiered"
	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// BenchmarkPaths measures every path of a request through e.ServeHTTP, on
// the same handler, in one run: the unauthenticated route (the baseline),
// cache hits of every backend, the uncached paths, and echo-jwt with RS256
// (the peer). "floor" and "floor-jwt" are not requests: they are the least
// a cache hit can cost (a SHA-256 of the token and one ristretto lookup).
//
// make bench runs it several times and internal/cmd/benchreport prints each
// path's added cost over the baseline (medians) and its ratios to the floor
// and to echo-jwt. Paths needing Redis are skipped when redis-server is not
// on PATH.
//
// Each path is checked once before it is timed: the request must succeed
// through the path named (a cache hit must not reach Stytch, a cold miss
// must), so a broken set-up fails instead of timing the wrong thing.
func BenchmarkPaths(b *testing.B) {
	env := newPerfEnv(b)
	for _, p := range env.paths(b) {
		b.Run(p.name, func(b *testing.B) {
			if p.skip != "" {
				b.Skip(p.skip)
			}
			if p.fn != nil {
				runtime.GC()
				b.ReportAllocs()
				p.fn(b)
				return
			}
			e := p.echo
			req := httptest.NewRequest(http.MethodGet, "/r", nil)
			if p.auth != "" {
				req.Header.Set(echo.HeaderAuthorization, p.auth)
			}
			env.check(b, p, req)
			w := &perfWriter{h: make(http.Header)}
			runtime.GC() // the set-up's garbage is not this path's
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.ServeHTTP(w, req)
			}
			b.StopTimer()
			env.after(b, p)
		})
	}
}

// perfWriter is a ResponseWriter that allocates nothing.
type perfWriter struct {
	h      http.Header
	status int
}

func (w *perfWriter) Header() http.Header         { return w.h }
func (w *perfWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *perfWriter) WriteHeader(s int)           { w.status = s }

// perfHandler is the handler of every path: it reads the session (as a
// real handler would) and answers 204.
func perfHandler(c echo.Context) error {
	if s, ok := echostytch.Member(c); ok && s.MemberID == "" {
		return echo.ErrForbidden
	}
	return c.NoContent(http.StatusNoContent)
}

// perfCheck answers 200 only when the request was authenticated: by this
// module's middleware (Member), or by echo-jwt (c.Get("user")).
func perfCheck(c echo.Context) error {
	if _, ok := echostytch.Member(c); ok || c.Get("user") != nil {
		return c.NoContent(http.StatusOK)
	}
	return c.NoContent(http.StatusTeapot)
}

type perfPath struct {
	name string
	echo *echo.Echo
	auth string // Authorization header value
	// stytchCalls is what one request may cost at the emulator:
	// 0 for cache hits and local JWT checks, 1 for a cold miss.
	stytchCalls int
	// noRedisGets: the timed loop must not send a GET to Redis (answered
	// by the client-side cache or L1).
	noRedisGets bool
	skip        string
	fn          func(b *testing.B) // a non-request benchmark (the floors)
}

type perfEnv struct {
	emu      *stytchtest.Server
	sess     stytchtest.Session
	redisURL string // "" without redis-server
	redis    *redistest.Server
	rsaKey   *rsa.PrivateKey
	peerJWT  string // the session's JWT signed with rsaKey, for echo-jwt
	last     int    // emulator calls before the timed loop
	gets     int    // Redis GETs before the timed loop
}

func newPerfEnv(b *testing.B) *perfEnv {
	b.Helper()
	emu := stytchtest.New()
	b.Cleanup(emu.Close)
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme Corporation", Slug: "acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada.lovelace@acme.test", Name: "Ada Lovelace"})
	perfNoErr(b, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{Duration: 24 * time.Hour})
	perfNoErr(b, err)
	env := &perfEnv{emu: emu, sess: sess}
	if _, err := exec.LookPath("redis-server"); err == nil {
		env.redis = redistest.Start(b)
		env.redisURL = "redis://" + env.redis.Addr()
	}
	env.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
	perfNoErr(b, err)
	// The same claims as the session's JWT (same size), signed with a key
	// echo-jwt is given directly.
	env.peerJWT, err = emu.MintJWT(sess.ID, stytchtest.WithSigningKey(env.rsaKey))
	perfNoErr(b, err)
	return env
}

func perfNoErr(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// stack builds the middleware stack as an application would (FromEnv),
// against the emulator.
func (env *perfEnv) stack(b *testing.B, extra map[string]string) *echostytch.Stack {
	b.Helper()
	m := map[string]string{
		"STYTCH_PROJECT_ID": env.emu.ProjectID(),
		"STYTCH_SECRET":     env.emu.Secret(),
		"STYTCH_BASE_URL":   env.emu.URL(),
		"STYTCH_LOG_LEVEL":  "ERROR",
	}
	for k, v := range extra {
		m[k] = v
	}
	st, err := echostytch.FromEnv(context.Background(), envconfig.MapLookuper(m))
	perfNoErr(b, err)
	b.Cleanup(func() { _ = st.Close() })
	return st
}

// mount returns an Echo serving perfHandler on /r and perfCheck on /check
// behind mw (none for the baseline).
func perfEcho(mw ...echo.MiddlewareFunc) *echo.Echo {
	e := echo.New()
	e.GET("/r", perfHandler, mw...)
	e.GET("/check", perfCheck, mw...)
	return e
}

// warm sends the request n times through e (filling caches, letting
// ristretto apply its buffered writes).
func perfWarm(e *echo.Echo, auth string, n int) {
	req := httptest.NewRequest(http.MethodGet, "/r", nil)
	req.Header.Set(echo.HeaderAuthorization, auth)
	w := &perfWriter{h: make(http.Header)}
	for range n {
		e.ServeHTTP(w, req)
		time.Sleep(time.Millisecond)
	}
}

func (env *perfEnv) paths(b *testing.B) []perfPath {
	b.Helper()
	bearer := "Bearer " + env.sess.Token
	bearerJWT := "Bearer " + env.sess.JWT
	noRedis := ""
	if env.redisURL == "" {
		noRedis = "redis-server not on PATH"
	}
	var ps []perfPath

	ps = append(ps, perfPath{name: "baseline", echo: perfEcho()})
	// Echo v4 builds route middleware closures on every request (one
	// 16-byte allocation per middleware, whatever it does), and its
	// context allocates its value store on a request's first c.Set (the
	// way every Echo middleware hands a value to the handler, echo-jwt
	// included): this path pays both and nothing else, so that each path
	// below shows its own allocations as its count minus this one's.
	setOnly := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set("echostytch.bench", c)
			return next(c)
		}
	}
	ps = append(ps, perfPath{name: "echo-set-mw", echo: perfEcho(setOnly)})

	mem := env.stack(b, nil)
	memEcho := perfEcho(echostytch.New(mem.Config))
	perfWarm(memEcho, bearer, 20)
	perfWarm(memEcho, bearerJWT, 20)
	ps = append(ps, perfPath{name: "memory-hit", echo: memEcho, auth: bearer})
	ps = append(ps, perfPath{name: "memory-hit-jwt", echo: memEcho, auth: bearerJWT})
	ctxCfg := mem.Config
	ctxCfg.SessionInContext = true
	ps = append(ps, perfPath{name: "memory-hit-ctx", echo: perfEcho(echostytch.New(ctxCfg)), auth: bearer})

	if env.redisURL != "" {
		// Another instance fills Redis, as in a fleet: this instance's
		// reads are then tracked by client-side caching from the first
		// one (its own writes would bypass the local cache for
		// RecentWriteWindow, see cache/redis).
		filler := env.stack(b, map[string]string{"STYTCH_REDIS_URL": env.redisURL})
		perfWarm(perfEcho(echostytch.New(filler.Config)), bearer, 1)

		rd := env.stack(b, map[string]string{"STYTCH_REDIS_URL": env.redisURL})
		rdEcho := perfEcho(echostytch.New(rd.Config))
		perfWarm(rdEcho, bearer, 20)
		ps = append(ps, perfPath{name: "redis-csc-hit", echo: rdEcho, auth: bearer, noRedisGets: true})

		td := env.stack(b, map[string]string{"STYTCH_REDIS_URL": env.redisURL, "STYTCH_CACHE_BACKEND": "tiered"})
		tdEcho := perfEcho(echostytch.New(td.Config))
		perfWarm(tdEcho, bearer, 20)
		ps = append(ps, perfPath{name: "tiered-l1-hit", echo: tdEcho, auth: bearer, noRedisGets: true})

		// L2 hit: an L1 too small to admit a session, so every request
		// misses L1, is answered by Redis's client-side cache, and tries
		// to fill L1 (as the first L2 hit of a key on an instance does).
		ps = append(ps, env.tieredL2(b, bearer, mem.Stytch))
	} else {
		for _, n := range []string{"redis-csc-hit", "tiered-l1-hit", "tiered-l2-hit"} {
			ps = append(ps, perfPath{name: n, skip: noRedis})
		}
	}

	// Local JWT verification without a cache: RS256 and claims, per request.
	ps = append(ps, perfPath{name: "jwt-local", echo: perfEcho(echostytch.New(echostytch.Config{Verifier: mem.Stytch})), auth: bearerJWT})

	// Cold miss: the cache never finds the token, so every request is
	// verified by the emulator over loopback HTTP and fills the store.
	cold, err := cache.NewVerifier(mem.Stytch, cache.VerifierConfig{
		Store: forgetfulStore{Store: mustMemory(b)}, Secret: []byte(env.emu.Secret()), Namespace: env.emu.ProjectID(),
	})
	perfNoErr(b, err)
	b.Cleanup(func() { _ = cold.Close() })
	ps = append(ps, perfPath{name: "cold-miss", echo: perfEcho(echostytch.New(echostytch.Config{Verifier: cold})), auth: bearer, stytchCalls: 1})

	// The peer: echo-jwt v4 with RS256 and the same claims.
	peer := echojwt.WithConfig(echojwt.Config{SigningKey: &env.rsaKey.PublicKey, SigningMethod: "RS256"})
	ps = append(ps, perfPath{name: "echo-jwt-rs256", echo: perfEcho(peer), auth: "Bearer " + env.peerJWT})

	ps = append(ps, perfPath{name: "floor", fn: perfFloor(env.sess.Token)})
	ps = append(ps, perfPath{name: "floor-jwt", fn: perfFloor(env.sess.JWT)})
	return ps
}

func (env *perfEnv) tieredL2(b *testing.B, bearer string, sv verifier.Verifier) perfPath {
	b.Helper()
	// Built by hand: FromEnv's tiered L1 is sized for real use.
	tiny, err := memory.New(memory.Options{MaxCost: 64})
	perfNoErr(b, err)
	b.Cleanup(func() { _ = tiny.Close() })
	l2 := mustTieredOver(b, tiny, env.redisURL)
	cv, err := cache.NewVerifier(sv, cache.VerifierConfig{Store: l2, Secret: []byte(env.emu.Secret()), Namespace: env.emu.ProjectID()})
	perfNoErr(b, err)
	b.Cleanup(func() { _ = cv.Close() })
	e := perfEcho(echostytch.New(echostytch.Config{Verifier: cv}))
	perfWarm(e, bearer, 20)
	return perfPath{name: "tiered-l2-hit", echo: e, auth: bearer, noRedisGets: true}
}

// check sends the request once to /check and fails the benchmark unless it
// was authenticated at the expected cost in Stytch calls.
func (env *perfEnv) check(b *testing.B, p perfPath, req *http.Request) {
	b.Helper()
	creq := req.Clone(req.Context())
	creq.URL.Path = "/check"
	before := env.emu.Calls(stytchtest.Authenticate)
	rec := httptest.NewRecorder()
	p.echo.ServeHTTP(rec, creq)
	want := http.StatusOK
	if p.auth == "" {
		want = http.StatusTeapot
	}
	if rec.Code != want {
		b.Fatalf("%s: /check answered %d, want %d: %s", p.name, rec.Code, want, rec.Body)
	}
	if got := env.emu.Calls(stytchtest.Authenticate) - before; got != p.stytchCalls {
		b.Fatalf("%s: one request made %d Stytch calls, want %d", p.name, got, p.stytchCalls)
	}
	env.last = env.emu.Calls(stytchtest.Authenticate)
	if p.noRedisGets {
		env.gets = env.redis.CommandCalls("get")
	}
}

func (env *perfEnv) after(b *testing.B, p perfPath) {
	b.Helper()
	if p.stytchCalls == 0 {
		if got := env.emu.Calls(stytchtest.Authenticate) - env.last; got != 0 {
			b.Fatalf("%s: the timed loop made %d Stytch calls, want 0", p.name, got)
		}
	}
	if p.noRedisGets {
		if got := env.redis.CommandCalls("get") - env.gets; got != 0 {
			b.Fatalf("%s: the timed loop sent %d GETs to Redis, want 0 (no network round trip)", p.name, got)
		}
	}
}

// perfFloor is the least a cache hit can cost: SHA-256 of the token and one
// lookup in an in-process (ristretto) map.
func perfFloor(token string) func(b *testing.B) {
	return func(b *testing.B) {
		c, err := ristretto.NewCache(&ristretto.Config[uint64, []byte]{
			NumCounters: 1e5, MaxCost: 1e4, BufferItems: 64, IgnoreInternalCost: true,
			KeyToHash: func(k uint64) (uint64, uint64) { return k, 0 },
		})
		perfNoErr(b, err)
		defer c.Close()
		tb := unsafe.Slice(unsafe.StringData(token), len(token))
		h := sha256.Sum256(tb)
		c.Set(binary.LittleEndian.Uint64(h[:]), make([]byte, 600), 1)
		c.Wait()
		b.ResetTimer()
		for b.Loop() {
			h := sha256.Sum256(tb)
			if _, ok := c.Get(binary.LittleEndian.Uint64(h[:])); !ok {
				b.Fatal("floor: miss")
			}
		}
	}
}

// forgetfulStore is a memory store whose reads always miss: every request
// through it is a cold miss that still pays for its fill.
type forgetfulStore struct{ *memory.Store }

func (forgetfulStore) Get(context.Context, string) ([]byte, error) { return nil, cache.ErrNotFound }

func mustMemory(b *testing.B) *memory.Store {
	b.Helper()
	m, err := memory.New(memory.Options{})
	perfNoErr(b, err)
	b.Cleanup(func() { _ = m.Close() })
	return m
}

// mustTieredOver returns a tiered store with l1 over a new Redis store.
func mustTieredOver(b *testing.B, l1 cache.Store, url string) *tiered.Store {
	b.Helper()
	rs, err := redis.NewFromURL(context.Background(), url, redis.Options{})
	perfNoErr(b, err)
	b.Cleanup(func() { _ = rs.Close() })
	t, err := tiered.New(l1, rs, tiered.Options{})
	perfNoErr(b, err)
	b.Cleanup(func() { _ = t.Close() })
	return t
}

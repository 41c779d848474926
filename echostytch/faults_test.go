package echostytch_test

// Fault tests: every dependency fails, through the middleware and the real
// stack (FromEnv: Stytch verifier against the emulator, caching verifier,
// Redis / tiered / memory store). Each test asserts the outcome written in
// this table (also in the README's "Fault table"):
//
//	fault                              | cached session        | uncached opaque token        | fresh session JWT | bound on a request's wait
//	-----------------------------------+-----------------------+------------------------------+-------------------+---------------------------
//	Stytch slow (below the timeout)    | 200, no call          | 200, one call                | 200, no call      | the delay + stytchBound
//	Stytch hanging                     | 200, no call          | 503 + Retry-After            | 200, no call      | stytchBound
//	Stytch 5xx / 429                   | 200, no call          | 503, MaxRetries+1 calls;     | 200, no call      | stytchBound
//	                                   |                       | never negative-cached        |                   |
//	Stytch 5xx once                    | -                     | 200 (the retry succeeds)     | -                 | stytchBound
//	Stytch non-JSON (HTML 200 or 502)  | 200, no call          | 503                          | 200, no call      | stytchBound
//	Stytch reset (before or mid-body)  | 200, no call          | 503                          | 200, no call      | stytchBound
//	Redis absent at start              | FromEnv succeeds; every request verified through Stytch (200); caching begins once Redis is up
//	Redis killed mid-run               | 200 through Stytch    | 200 through Stytch           | 200, no call      | stytchBound + 2 x OpTimeout
//	Redis restarted                    | caching resumes (no Stytch call for repeats); nothing revoked meanwhile comes back
//	Redis silently partitioned         | 200 from the client-side cache for at most the partition window
//	  (frozen proxy)                   |   (ConnWriteTimeout + 2 x ping ~ 4 s), then through Stytch; another instance's
//	                                   |   revocation is refused within that window; uncached tokens 200 via Stytch
//	Redis Cluster master lost          | 200 (cache or Stytch) | 200 through Stytch           | 200, no call      | stytchBound + 2 x OpTimeout
//
// In every case: nothing is served past its expiry (a cached session that
// expires during a Stytch outage is a 503, never a 200) and a session revoked
// through Logout is refused at once (tombstone), even when Stytch or Redis is
// down. stytchBound = (MaxRetries+1) x RequestTimeout + the backoffs, plus
// generous slack for a loaded machine: it is a correctness bound (no
// request waits on a dead dependency beyond its configured timeouts), not a
// performance figure.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// Settings of the fault rigs: short Stytch timeouts keep the tests quick and
// the bounds meaningful.
const (
	faultTimeout = 300 * time.Millisecond
	faultRetries = 2
	// slack absorbs scheduling on a loaded 2-core machine under -race.
	slack = 3 * time.Second
)

// stytchBound is how long a request may wait on Stytch: every attempt
// times out, plus the backoffs between them (verifier.Client: base 100 ms,
// doubling, full jitter, at most 2 s each), plus slack.
func stytchBound(s *echostytch.Settings) time.Duration {
	d := time.Duration(s.MaxRetries+1) * s.RequestTimeout
	for i := 1; i <= s.MaxRetries; i++ {
		d += min(100*time.Millisecond<<(i-1), 2*time.Second)
	}
	return d + slack
}

// redisBound adds the store's calls (a Get and a fill, each bounded by
// OpTimeout) to stytchBound.
func redisBound(s *echostytch.Settings) time.Duration {
	return stytchBound(s) + 2*redis.DefaultOpTimeout
}

// rig is a service built by FromEnv against an emulator, with its Echo.
type rig struct {
	emu   *stytchtest.Server
	org   stytchtest.Organization
	stack *echostytch.Stack
	e     *echo.Echo
}

func newRig(t *testing.T, emu *stytchtest.Server, env map[string]string) *rig {
	t.Helper()
	if emu == nil {
		emu = stytchtest.New()
		t.Cleanup(emu.Close)
	}
	all := map[string]string{
		"STYTCH_REQUEST_TIMEOUT": strconv.FormatFloat(faultTimeout.Seconds(), 'f', -1, 64),
		"STYTCH_MAX_RETRIES":     strconv.Itoa(faultRetries),
	}
	for k, v := range env {
		all[k] = v
	}
	stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, all))
	require.NoError(t, err)
	t.Cleanup(func() { _ = stack.Close() })
	e := echo.New()
	auth := echostytch.New(stack.Config)
	e.GET("/p", func(c echo.Context) error { return c.String(http.StatusOK, echostytch.MustMember(c).MemberID) }, auth)
	e.POST("/logout", stack.Logout(), auth)
	// Let the background JWKS fetch land so that JWTs verify locally.
	require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) >= 1 }, 5*time.Second, 5*time.Millisecond)
	return &rig{emu: emu, org: emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"}), stack: stack, e: e}
}

var memberSeq atomic.Int64

func (r *rig) session(t *testing.T, p stytchtest.SessionParams) stytchtest.Session {
	t.Helper()
	m, err := r.emu.CreateMember(r.org.ID, stytchtest.MemberParams{Email: fmt.Sprintf("m%d@acme.test", memberSeq.Add(1))})
	require.NoError(t, err)
	s, err := r.emu.CreateSession(m.ID, p)
	require.NoError(t, err)
	return s
}

type outcome struct {
	code    int
	body    string
	header  http.Header
	elapsed time.Duration
}

func (r *rig) do(method, token string) outcome {
	path := "/p"
	if method == http.MethodPost {
		path = "/logout"
	}
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	start := time.Now()
	r.e.ServeHTTP(rec, req)
	return outcome{rec.Code, rec.Body.String(), rec.Header(), time.Since(start)}
}

// expect asserts a GET's status and that it waited no longer than bound.
func (r *rig) expect(t *testing.T, token string, code int, bound time.Duration, msg string) outcome {
	t.Helper()
	o := r.do(http.MethodGet, token)
	require.Equal(t, code, o.code, "%s: %s", msg, o.body)
	require.LessOrEqual(t, o.elapsed, bound, "%s: waited %v", msg, o.elapsed)
	if code == http.StatusServiceUnavailable {
		assert.Equal(t, `{"error":"service_unavailable","message":"Authentication service temporarily unavailable","type":"stytch_api"}`+"\n", o.body)
		assert.NotEmpty(t, o.header.Get("Retry-After"), "every 503 carries Retry-After")
	}
	return o
}

func (r *rig) calls() int { return r.emu.Calls(stytchtest.Authenticate) }

// TestStytchFaults: each Stytch fault against a cached session, an uncached
// opaque token and a fresh JWT (table rows 1-6).
func TestStytchFaults(t *testing.T) {
	faults := []struct {
		name  string
		fault stytchtest.Fault
		code  int // for an uncached opaque token
		calls int // Authenticate calls it causes
	}{
		{"slow below the timeout", stytchtest.Fault{Delay: faultTimeout / 3}, 200, 1},
		{"hanging", stytchtest.Fault{Hang: true}, 503, faultRetries + 1},
		{"500", stytchtest.Fault{Status: 500}, 503, faultRetries + 1},
		{"503", stytchtest.Fault{Status: 503}, 503, faultRetries + 1},
		{"429", stytchtest.Fault{Status: 429}, 503, faultRetries + 1},
		{"500 once", stytchtest.Fault{Status: 500, Times: 1}, 200, 2},
		{"non-JSON 200", stytchtest.Fault{Body: "<html>maintenance</html>"}, 503, 1},
		{"non-JSON 502", stytchtest.Fault{Status: 502, Body: "<html>Bad Gateway</html>"}, 503, faultRetries + 1},
		{"truncated JSON 200", stytchtest.Fault{Body: `{"member_session": {"member_session_id": "x"`}, 503, 1},
		{"reset before the answer", stytchtest.Fault{ResetConnection: true}, 503, faultRetries + 1},
		{"reset mid-body", stytchtest.Fault{ResetConnection: true, Status: 200, Body: `{"status_code":200,"member_session":{"member_session_id":"member-session-test-x","member_id":"member-test-x"}}`}, 503, faultRetries + 1},
	}
	r := newRig(t, nil, nil) // memory backend: the Stytch side is what varies
	bound := stytchBound(r.stack.Settings)
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			cached := r.session(t, stytchtest.SessionParams{})
			r.expect(t, cached.Token, 200, bound, "warm-up")
			fresh := r.session(t, stytchtest.SessionParams{})
			uncached := r.session(t, stytchtest.SessionParams{})

			r.emu.InjectFault(stytchtest.Authenticate, tc.fault)
			defer r.emu.ClearFaults()
			before := r.calls()
			r.expect(t, cached.Token, 200, bound, "cached session")
			r.expect(t, fresh.JWT, 200, bound, "fresh JWT (local)")
			require.Equal(t, before, r.calls(), "neither a cached session nor a fresh JWT calls Stytch")

			o := r.expect(t, uncached.Token, tc.code, bound+tc.fault.Delay, "uncached token")
			assert.Equal(t, tc.calls, r.calls()-before, "Authenticate calls")
			t.Logf("uncached: %d after %v", o.code, o.elapsed.Round(time.Millisecond))
			if tc.code == 503 {
				// An outage is never remembered: once Stytch is back,
				// the same token verifies.
				r.emu.ClearFaults()
				r.expect(t, uncached.Token, 200, bound, "after recovery")
			}
		})
	}
}

// TestStytchOutageNeverServesPastExpiryOrRevocation: during a Stytch outage
// a cached session is served until its own expiry and not one request
// after; a session logged out during the outage is refused at once.
func TestStytchOutageNeverServesPastExpiryOrRevocation(t *testing.T) {
	r := newRig(t, nil, nil)
	bound := stytchBound(r.stack.Settings)
	short := r.session(t, stytchtest.SessionParams{ExpiresAt: time.Now().Add(2 * time.Second)})
	long := r.session(t, stytchtest.SessionParams{})
	r.expect(t, short.Token, 200, bound, "short session, cached")
	r.expect(t, long.Token, 200, bound, "long session, cached")
	exp, err := r.emu.Session(short.ID)
	require.NoError(t, err)

	r.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: 500})
	r.emu.InjectFault(stytchtest.Revoke, stytchtest.Fault{Status: 500})
	// Logout while Stytch is down: 503 (the revocation at Stytch failed),
	// but the tombstone refuses the token here at once.
	o := r.do(http.MethodPost, long.Token)
	require.Equal(t, 503, o.code, o.body)
	before := r.calls()
	r.expect(t, long.Token, 401, bound, "logged out during the outage")
	assert.Equal(t, before, r.calls(), "refused by the tombstone, without asking Stytch")

	for time.Now().Before(exp.ExpiresAt) {
		o := r.do(http.MethodGet, short.Token)
		if time.Now().Before(exp.ExpiresAt.Add(-100 * time.Millisecond)) {
			require.Equal(t, 200, o.code, "served from the cache until its expiry")
		}
		require.True(t, o.code == 200 || o.code == 503, "%d", o.code)
		if o.code == 200 {
			require.True(t, time.Now().Before(exp.ExpiresAt.Add(50*time.Millisecond)), "served after its expiry")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	r.expect(t, short.Token, 503, bound, "expired during the outage: not served, and Stytch cannot say")
	r.emu.ClearFaults()
	r.expect(t, short.Token, 401, bound, "expired, Stytch back")
}

// redisRig is a rig on a Redis (or tiered) backend.
func redisRig(t *testing.T, emu *stytchtest.Server, url, backend string) *rig {
	return newRig(t, emu, map[string]string{"STYTCH_REDIS_URL": url, "STYTCH_CACHE_BACKEND": backend})
}

// lazyOf returns the Lazy Redis store of a redis-backed stack.
func lazyOf(t *testing.T, r *rig) *redis.Lazy {
	t.Helper()
	if l, ok := r.stack.Store.(*redis.Lazy); ok {
		return l
	}
	t.Skip("tiered: no direct access to the L2")
	return nil
}

// TestRedisAbsentAtStart: "Redis down means slower, not broken". The
// service starts, verifies through Stytch, and caches once Redis is up.
func TestRedisAbsentAtStart(t *testing.T) {
	for _, backend := range []string{"redis", "tiered"} {
		t.Run(backend, func(t *testing.T) {
			srv := redistest.Start(t)
			srv.Kill()
			start := time.Now()
			r := redisRig(t, nil, "redis://"+srv.Addr(), backend)
			require.Less(t, time.Since(start), redis.DefaultDialTimeout+slack, "start-up waits for one dial at most")
			bound := redisBound(r.stack.Settings)

			s := r.session(t, stytchtest.SessionParams{})
			before := r.calls()
			for range 3 {
				r.expect(t, s.Token, 200, bound, "Redis absent")
			}
			assert.Equal(t, 3, r.calls()-before, "no cache yet: every request asks Stytch")
			r.expect(t, s.JWT, 200, bound, "JWT, Redis absent")
			revoked := r.session(t, stytchtest.SessionParams{})
			r.expect(t, revoked.Token, 200, bound, "to be revoked")
			require.Equal(t, 204, r.do(http.MethodPost, revoked.Token).code)
			r.expect(t, revoked.Token, 401, bound, "logged out while Redis is absent")

			srv.Restart()
			require.Eventually(t, func() bool {
				b := r.calls()
				for range 2 {
					if r.do(http.MethodGet, s.Token).code != 200 {
						return false
					}
				}
				return r.calls()-b == 0
			}, redis.DefaultLazyMaxBackoff+slack+5*time.Second, 50*time.Millisecond, "caching begins once Redis is reachable")
			assert.NotEmpty(t, srv.MustDo("KEYS", "ayz_auth:*"))
			r.expect(t, revoked.Token, 401, bound, "still refused after Redis came up")
		})
	}
}

// TestRedisKilledAndRestarted: Redis dies mid-run and comes back (table
// rows "killed mid-run" and "restarted").
func TestRedisKilledAndRestarted(t *testing.T) {
	for _, backend := range []string{"redis", "tiered"} {
		t.Run(backend, func(t *testing.T) {
			srv := redistest.Start(t)
			r := redisRig(t, nil, "redis://"+srv.Addr(), backend)
			bound := redisBound(r.stack.Settings)
			a := r.session(t, stytchtest.SessionParams{})
			b := r.session(t, stytchtest.SessionParams{})
			r.expect(t, a.Token, 200, bound, "cached")
			r.expect(t, b.Token, 200, bound, "cached")
			before := r.calls()
			r.expect(t, a.Token, 200, bound, "hit")
			require.Equal(t, before, r.calls())

			srv.Kill()
			var slowest time.Duration
			for i := range 20 {
				o := r.expect(t, a.Token, 200, bound, fmt.Sprintf("Redis dead, request %d", i))
				slowest = max(slowest, o.elapsed)
			}
			t.Logf("slowest request with Redis dead: %v (bound %v)", slowest, bound)
			r.expect(t, a.JWT, 200, bound, "JWT, Redis dead")
			// Revoked out of band at Stytch while Redis is dead: an
			// opaque token is refused at once (every request asks Stytch).
			r.emu.Revoke(b.ID)
			r.expect(t, b.Token, 401, bound, "revoked at Stytch, Redis dead")
			// Logged out here while Redis is dead: refused at once.
			c := r.session(t, stytchtest.SessionParams{})
			r.expect(t, c.Token, 200, bound, "c")
			require.Equal(t, 204, r.do(http.MethodPost, c.Token).code)
			r.expect(t, c.Token, 401, bound, "logged out, Redis dead")

			srv.Restart()
			require.Eventually(t, func() bool {
				n := r.calls()
				for range 2 {
					if r.do(http.MethodGet, a.Token).code != 200 {
						return false
					}
				}
				return r.calls() == n
			}, 15*time.Second, 50*time.Millisecond, "caching resumes after the restart")
			r.expect(t, b.Token, 401, bound, "revoked meanwhile: not resurrected by the restart")
			r.expect(t, c.Token, 401, bound, "logged out meanwhile: not resurrected by the restart")
		})
	}
}

// TestRedisSilentPartition: instance A reaches Redis through a proxy that
// is frozen (no byte passes, nothing is reset); instance B logs a session
// out. A may serve the session from its client-side cache for the
// documented partition window only; other requests on A never wait on the
// frozen connection beyond the store's timeouts.
func TestRedisSilentPartition(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	emu := stytchtest.New()
	t.Cleanup(emu.Close)
	a := redisRig(t, emu, "redis://"+proxy.Addr(), "redis")
	b := redisRig(t, emu, "redis://"+srv.Addr(), "redis")
	bound := redisBound(a.stack.Settings)
	// The documented window: ConnWriteTimeout + 2 x the ping interval
	// (ConnWriteTimeout/2), see cache/redis.
	window := redis.DefaultConnWriteTimeout + 2*(redis.DefaultConnWriteTimeout/2)

	s := a.session(t, stytchtest.SessionParams{})
	other := a.session(t, stytchtest.SessionParams{})
	// B fills the cache; A only reads, so its reads go through the
	// client-side cache (a process's own writes bypass it for a while).
	b.expect(t, s.Token, 200, bound, "B caches")
	before := a.calls()
	for range 3 {
		a.expect(t, s.Token, 200, bound, "A hits (client-side cache)")
	}
	require.Equal(t, before, a.calls())
	require.True(t, lazyOf(t, a).Store().ClientSideCaching())

	proxy.Freeze()
	t.Cleanup(proxy.Unfreeze)
	frozenAt := time.Now()
	require.Equal(t, 204, b.do(http.MethodPost, s.Token).code, "B logs the session out")
	var lastStale time.Duration
	for {
		o := a.do(http.MethodGet, s.Token)
		require.LessOrEqual(t, o.elapsed, bound, "A waited %v", o.elapsed)
		if o.code == 401 {
			break
		}
		require.Equal(t, 200, o.code, o.body)
		lastStale = time.Since(frozenAt)
		require.LessOrEqual(t, lastStale, window+slack, "stale past the partition window")
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("A served the revoked session for %v after the freeze (window %v)", lastStale.Round(time.Millisecond), window)
	for range 3 {
		a.expect(t, s.Token, 401, bound, "refused for good")
	}
	a.expect(t, other.Token, 200, bound, "uncached token during the partition: verified through Stytch")

	proxy.Unfreeze()
	require.Eventually(t, func() bool {
		n := a.calls()
		for range 2 {
			if a.do(http.MethodGet, other.Token).code != 200 {
				return false
			}
		}
		return a.calls() == n
	}, 15*time.Second, 50*time.Millisecond, "A caches again after the partition heals")
	a.expect(t, s.Token, 401, bound, "still refused after the partition heals")
}

// TestRedisClusterMasterLost: one of three masters (no replicas) dies.
// Every request still answers 200 (from the cache or through Stytch)
// within the bound, and a logout is refused at once.
func TestRedisClusterMasterLost(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	const ttl = 3 * time.Second
	r := newRig(t, nil, map[string]string{"STYTCH_REDIS_URL": "redis://" + cl.Addrs()[0], "STYTCH_CACHE_TTL": "3"})
	bound := redisBound(r.stack.Settings)
	require.Equal(t, "cluster", lazyOf(t, r).Store().Mode())
	var sessions []stytchtest.Session
	for range 12 { // keys spread over the three masters
		s := r.session(t, stytchtest.SessionParams{})
		sessions = append(sessions, s)
		r.expect(t, s.Token, 200, bound, "cached")
	}
	cl.Nodes[1].Kill()
	deadline := time.Now().Add(6 * time.Second) // past the cluster node timeout (2 s): CLUSTERDOWN
	var slowest time.Duration
	for time.Now().Before(deadline) {
		for _, s := range sessions {
			o := r.expect(t, s.Token, 200, bound, "master lost")
			slowest = max(slowest, o.elapsed)
		}
	}
	t.Logf("slowest request with a master lost: %v (bound %v)", slowest, bound)
	out := sessions[0]
	require.Equal(t, 204, r.do(http.MethodPost, out.Token).code)
	r.expect(t, out.Token, 401, bound, "logged out with a master lost")
	r.emu.Revoke(sessions[1].ID)
	// Revoked at Stytch out of band: refused once its cache entry ends
	// (at most STYTCH_CACHE_TTL), as without any fault — a client-side
	// cached entry on a surviving master may be served until then.
	revokedAt := time.Now()
	require.Eventually(t, func() bool { return r.do(http.MethodGet, sessions[1].Token).code == 401 }, ttl+slack, 50*time.Millisecond)
	t.Logf("out-of-band revocation refused after %v (STYTCH_CACHE_TTL %v)", time.Since(revokedAt).Round(time.Millisecond), ttl)
}

// TestConcurrentRequestsDuringStytchOutage: many concurrent requests for
// one uncached token while Stytch hangs share one upstream verification
// (the flight), and each answers 503 within the bound.
func TestConcurrentRequestsDuringStytchOutage(t *testing.T) {
	r := newRig(t, nil, nil)
	bound := stytchBound(r.stack.Settings)
	s := r.session(t, stytchtest.SessionParams{})
	r.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Hang: true})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			o := r.do(http.MethodGet, s.Token)
			assert.Equal(t, 503, o.code)
			assert.LessOrEqual(t, o.elapsed, bound)
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, r.calls(), faultRetries+1, "one flight for all of them")
}

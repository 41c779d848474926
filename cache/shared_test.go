package cache_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/cache/tiered"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// fleet is several instances of a service sharing one Stytch project and
// one Redis: each has its own Stytch verifier, Redis store (own
// connections and client-side cache) and caching verifier.
type fleet struct {
	emu       *stytchtest.Server
	org       stytchtest.Organization
	instances []*instance
}

type instance struct {
	store *redis.Store
	cv    *cache.Verifier
}

// testOpTimeout is the Redis OpTimeout of tests that are not about
// timeouts: generous, so that they test behaviour, not speed (the default
// 100 ms is tight under -race on a loaded machine).
const testOpTimeout = 2 * time.Second

func newFleet(t *testing.T, n int, redisURL string, mutate ...func(*cache.VerifierConfig)) *fleet {
	return newFleetOf(t, n, redisURL, false, mutate...)
}

// newTieredFleet is newFleet with a ristretto L1 over the Redis L2 on each
// instance.
func newTieredFleet(t *testing.T, n int, redisURL string) *fleet {
	return newFleetOf(t, n, redisURL, true)
}

func newFleetOf(t *testing.T, n int, redisURL string, withL1 bool, mutate ...func(*cache.VerifierConfig)) *fleet {
	t.Helper()
	return newFleetWith(t, n, redisURL, fleetOptions{withL1: withL1, redis: redis.Options{OpTimeout: testOpTimeout}}, mutate...)
}

// fleetOptions configures the instances of a fleet.
type fleetOptions struct {
	withL1 bool
	redis  redis.Options // KeyPrefix is always "ayz_auth"
	// wrap, if set, wraps the instance's Stytch verifier (the caching
	// verifier's inner verifier).
	wrap func(*verifier.Stytch) verifier.Verifier
}

func newFleetWith(t *testing.T, n int, redisURL string, o fleetOptions, mutate ...func(*cache.VerifierConfig)) *fleet {
	t.Helper()
	emu := stytchtest.New(stytchtest.WithKey(testKey()))
	t.Cleanup(emu.Close)
	f := &fleet{emu: emu, org: emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})}
	for range n {
		f.instances = append(f.instances, f.addInstance(t, redisURL, o, mutate...))
	}
	return f
}

// addInstance starts one more instance of the fleet's service: its own
// Stytch verifier, Redis store (own connections and client-side cache) and
// caching verifier, so nothing is shared in process with the others.
func (f *fleet) addInstance(t *testing.T, redisURL string, o fleetOptions, mutate ...func(*cache.VerifierConfig)) *instance {
	t.Helper()
	sv, err := verifier.NewStytch(verifier.Config{ProjectID: f.emu.ProjectID(), Secret: f.emu.Secret(), BaseURL: f.emu.URL(), Timeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sv.Close() })
	var inner verifier.Verifier = sv
	if o.wrap != nil {
		inner = o.wrap(sv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ropts := o.redis
	ropts.KeyPrefix = "ayz_auth"
	st, err := redis.NewFromURL(ctx, redisURL, ropts)
	cancel()
	require.NoError(t, err)
	var store cache.Store = st
	if o.withL1 {
		l1, err := memory.New(memory.Options{})
		require.NoError(t, err)
		tr, err := tiered.New(l1, st, tiered.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close(); _ = l1.Close() })
		store = tr
	}
	cfg := cache.VerifierConfig{Store: store, Secret: []byte(f.emu.Secret()), Namespace: f.emu.ProjectID()}
	for _, m := range mutate {
		m(&cfg)
	}
	cv, err := cache.NewVerifier(inner, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cv.Close(); _ = st.Close() })
	return &instance{store: st, cv: cv}
}

func (f *fleet) session(t *testing.T, p stytchtest.SessionParams) stytchtest.Session {
	t.Helper()
	m, err := f.emu.CreateMember(f.org.ID, stytchtest.MemberParams{Email: fmt.Sprintf("m%d@acme.test", time.Now().UnixNano())})
	require.NoError(t, err)
	s, err := f.emu.CreateSession(m.ID, p)
	require.NoError(t, err)
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSharedRedisOneStytchCall: a session verified by instance A is a hit
// on instance B (no second Stytch call).
func TestSharedRedisOneStytchCall(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, 2, "redis://"+srv.Addr())
	s := f.session(t, stytchtest.SessionParams{})
	_, err := f.instances[0].cv.Verify(ctxT(t), s.Token)
	require.NoError(t, err)
	for range 5 {
		_, err = f.instances[1].cv.Verify(ctxT(t), s.Token)
		require.NoError(t, err)
	}
	assert.Equal(t, 1, f.emu.Calls(stytchtest.Authenticate))
}

// TestRevocationReachesOtherInstance: a revocation on A is refused by B
// within 1 s, for opaque tokens and JWTs.
func TestRevocationReachesOtherInstance(t *testing.T) {
	srv := redistest.Start(t)
	for _, backend := range []string{"redis", "tiered"} {
		f := newFleetOf(t, 2, "redis://"+srv.Addr(), backend == "tiered")
		testRevocationReaches(t, backend, f)
	}
}

func testRevocationReaches(t *testing.T, backend string, f *fleet) {
	a, b := f.instances[0], f.instances[1]
	for _, kind := range []string{"token", "jwt"} {
		t.Run(backend+"/"+kind, func(t *testing.T) {
			s := f.session(t, stytchtest.SessionParams{})
			tok := s.Token
			if kind == "jwt" {
				tok = s.JWT
			}
			for _, in := range []*instance{a, b, b} { // B caches it (client-side too)
				_, err := in.cv.Verify(ctxT(t), tok)
				require.NoError(t, err)
			}
			require.NoError(t, a.cv.Revoke(ctxT(t), tok))
			revoked := time.Now()
			for {
				_, err := b.cv.Verify(ctxT(t), tok)
				if err != nil {
					require.ErrorIs(t, err, verifier.ErrInvalidSession)
					break
				}
				require.Less(t, time.Since(revoked), time.Second, "B still accepts the revoked session after 1 s")
				time.Sleep(5 * time.Millisecond)
			}
			t.Logf("%s/%s: refused by B %v after the revocation on A", backend, kind, time.Since(revoked))
		})
	}
}

// TestOwnRevocationNeverStale: delete then read at once in the same
// process never yields the revoked session.
func TestOwnRevocationNeverStale(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, 1, "redis://"+srv.Addr())
	a := f.instances[0]
	for i := range 100 {
		s := f.session(t, stytchtest.SessionParams{})
		for range 2 {
			_, err := a.cv.Verify(ctxT(t), s.Token)
			require.NoError(t, err)
		}
		require.NoError(t, a.cv.Revoke(ctxT(t), s.Token))
		_, err := a.cv.Verify(ctxT(t), s.Token)
		require.ErrorIs(t, err, verifier.ErrInvalidSession, "iteration %d", i)
	}
}

// TestRedisPTTLBoundedBySession: the Redis entry lives no longer than the
// session.
func TestRedisPTTLBoundedBySession(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, 1, "redis://"+srv.Addr(), func(c *cache.VerifierConfig) { c.TTL = time.Hour })
	s := f.session(t, stytchtest.SessionParams{Duration: 3 * time.Second})
	_, err := f.instances[0].cv.Verify(ctxT(t), s.Token)
	require.NoError(t, err)
	keys := redisKeys(t, srv)
	require.Len(t, keys, 1)
	remaining := time.Until(s.ExpiresAt) // measured before PTTL, so it can only be larger
	pttl, err := srv.Do("PTTL", keys[0])
	require.NoError(t, err)
	assert.LessOrEqual(t, pttl.(int64), remaining.Milliseconds()+1)
	assert.Greater(t, pttl.(int64), int64(0))
}

func redisKeys(t *testing.T, srv *redistest.Server) []string {
	t.Helper()
	v, err := srv.Do("KEYS", "*")
	require.NoError(t, err)
	var keys []string
	for _, k := range v.([]any) {
		keys = append(keys, fmt.Sprint(k))
	}
	return keys
}

// TestTamperedRedisValueRejected: a value altered in Redis is a miss.
func TestTamperedRedisValueRejected(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, 2, "redis://"+srv.Addr())
	s := f.session(t, stytchtest.SessionParams{})
	_, err := f.instances[0].cv.Verify(ctxT(t), s.Token)
	require.NoError(t, err)
	keys := redisKeys(t, srv)
	require.Len(t, keys, 1)
	val, err := srv.Do("GET", keys[0])
	require.NoError(t, err)
	raw := []byte(val.(string))
	forged := strings.Replace(string(raw), s.MemberID, "member-test-00000000-0000-0000-0000-000000000000", 1)
	require.NotEqual(t, string(raw), forged)
	_, err = srv.Do("SET", keys[0], forged, "PX", "60000")
	require.NoError(t, err)
	got, err := f.instances[1].cv.Verify(ctxT(t), s.Token)
	require.NoError(t, err)
	assert.Equal(t, s.MemberID, got.MemberID, "the forged member was not trusted")
	assert.Equal(t, 2, f.emu.Calls(stytchtest.Authenticate))
}

// TestNoSecretsInRedis: after mixed traffic no key or value contains a
// raw token, a JWT, the secret, "session_token" or "session_jwt".
func TestNoSecretsInRedis(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, 2, "redis://"+srv.Addr())
	var secrets []string
	for i := range 5 {
		s := f.session(t, stytchtest.SessionParams{CustomClaims: map[string]any{"n": i}})
		secrets = append(secrets, s.Token, s.JWT)
		in := f.instances[i%2]
		_, err := in.cv.Verify(ctxT(t), s.Token)
		require.NoError(t, err)
		sess, err := in.cv.Verify(ctxT(t), s.JWT)
		require.NoError(t, err)
		expired, err := f.emu.MintJWT(s.ID, stytchtest.WithIssuedAt(time.Now().Add(-time.Hour)))
		require.NoError(t, err)
		fresh, err := in.cv.Verify(ctxT(t), expired)
		require.NoError(t, err)
		secrets = append(secrets, expired, fresh.SessionJWT)
		_ = sess
		if i%2 == 0 {
			require.NoError(t, in.cv.Revoke(ctxT(t), s.Token))
		}
	}
	_, _ = f.instances[0].cv.Verify(ctxT(t), strings.Repeat("q", 44))
	secrets = append(secrets, f.emu.Secret(), "session_token", "session_jwt")
	keys := redisKeys(t, srv)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		v, err := srv.Do("GET", k)
		require.NoError(t, err)
		for _, sec := range secrets {
			require.NotContains(t, k, sec)
			require.NotContains(t, fmt.Sprint(v), sec)
		}
	}
}

// TestRedisDownMidRun: with Redis gone, verification goes on against
// Stytch without waiting on Redis; when Redis returns, caching resumes.
func TestRedisDownMidRun(t *testing.T) {
	srv := redistest.Start(t)
	// The store's default OpTimeout: this test is about how long a dead
	// Redis makes requests wait.
	f := newFleetWith(t, 1, "redis://"+srv.Addr(), fleetOptions{})
	a := f.instances[0]
	s := f.session(t, stytchtest.SessionParams{})
	_, err := a.cv.Verify(ctxT(t), s.Token)
	require.NoError(t, err)

	srv.Kill()
	var slowest time.Duration
	for range 30 {
		other := f.session(t, stytchtest.SessionParams{})
		start := time.Now()
		got, err := a.cv.Verify(ctxT(t), other.Token)
		slowest = max(slowest, time.Since(start))
		require.NoError(t, err)
		assert.Equal(t, other.MemberID, got.MemberID)
	}
	t.Logf("slowest verification with Redis down: %v", slowest)
	assert.Less(t, slowest, 2*time.Second, "no request waits on the dead Redis for long") // a correctness bound, not a benchmark

	srv.Restart()
	fresh := f.session(t, stytchtest.SessionParams{})
	require.Eventually(t, func() bool {
		before := f.emu.Calls(stytchtest.Authenticate)
		if _, err := a.cv.Verify(ctxT(t), fresh.Token); err != nil {
			return false
		}
		if _, err := a.cv.Verify(ctxT(t), fresh.Token); err != nil {
			return false
		}
		after := f.emu.Calls(stytchtest.Authenticate)
		return after-before <= 1 && len(redisKeys(t, srv)) > 0
	}, 15*time.Second, 100*time.Millisecond, "caching resumes after Redis returns")
}

// TestConcurrentColdRequestsAcrossTheFleet: 50 concurrent cold requests
// for one token on one instance make one Stytch call.
func TestConcurrentColdRequestsRedis(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, 1, "redis://"+srv.Addr())
	s := f.session(t, stytchtest.SessionParams{})
	f.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 100 * time.Millisecond})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := f.instances[0].cv.Verify(ctxT(t), s.Token)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, f.emu.Calls(stytchtest.Authenticate))
}

// TestTieredFleetHitsStayLocal: with an L1, repeat hits on B need no
// Redis command at all.
func TestTieredFleetHitsStayLocal(t *testing.T) {
	srv := redistest.Start(t)
	f := newTieredFleet(t, 2, "redis://"+srv.Addr())
	s := f.session(t, stytchtest.SessionParams{})
	_, err := f.instances[0].cv.Verify(ctxT(t), s.Token)
	require.NoError(t, err)
	_, err = f.instances[1].cv.Verify(ctxT(t), s.Token)
	require.NoError(t, err)
	srv.ResetStats()
	for range 20 {
		_, err = f.instances[1].cv.Verify(ctxT(t), s.Token)
		require.NoError(t, err)
	}
	assert.Zero(t, srv.CommandCalls("get"), "L1 hits send no GET")
	assert.Equal(t, 1, f.emu.Calls(stytchtest.Authenticate))
}

// TestClusterEndToEnd: a 3-master cluster reached from one seed address
// serves the fleet, revocation included.
func TestClusterEndToEnd(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	f := newFleet(t, 2, "redis://"+cl.Addrs()[0])
	a, b := f.instances[0], f.instances[1]
	assert.Equal(t, "cluster", a.store.Mode())
	var sessions []stytchtest.Session
	for range 10 { // keys spread over the slots of all three masters
		s := f.session(t, stytchtest.SessionParams{})
		sessions = append(sessions, s)
		_, err := a.cv.Verify(ctxT(t), s.Token)
		require.NoError(t, err)
		_, err = b.cv.Verify(ctxT(t), s.Token)
		require.NoError(t, err)
	}
	assert.Equal(t, 10, f.emu.Calls(stytchtest.Authenticate), "B hit what A filled")
	for _, s := range sessions {
		require.NoError(t, a.cv.Revoke(ctxT(t), s.Token))
	}
	// B refuses every revoked token as an invalid session (the tombstone
	// A wrote: errors.Is ErrInvalidSession), once B's client-side copy is
	// invalidated; before that B may still serve its copy, nothing else.
	calls := f.emu.Calls(stytchtest.Authenticate)
	for i, s := range sessions {
		var err error
		require.Eventually(t, func() bool {
			_, err = b.cv.Verify(ctxT(t), s.Token)
			return err != nil
		}, 5*time.Second, 5*time.Millisecond, "session %d: B still accepts it", i)
		require.ErrorIs(t, err, verifier.ErrInvalidSession, "session %d", i)
		_, err = b.cv.Verify(ctxT(t), s.Token)
		require.ErrorIs(t, err, verifier.ErrInvalidSession, "session %d: refused again", i)
	}
	assert.Equal(t, calls, f.emu.Calls(stytchtest.Authenticate), "refused by the tombstones in the cluster, not by Stytch")
}

package tiered_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/cache/tiered"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type instance struct {
	l1 *memory.Store
	l2 *redis.Store
	s  *tiered.Store
}

func newInstance(t testing.TB, addr string, ropts redis.Options, topts tiered.Options) *instance {
	t.Helper()
	l1, err := memory.New(memory.Options{MaxCost: 8 << 20})
	require.NoError(t, err)
	ropts.Addrs = []string{addr}
	l2, err := redis.New(context.Background(), ropts)
	require.NoError(t, err)
	s, err := tiered.New(l1, l2, topts)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.Close()
		_ = l2.Close()
		_ = l1.Close()
	})
	return &instance{l1: l1, l2: l2, s: s}
}

// testOpTimeout is the Redis OpTimeout of tests that are not about
// timeouts: generous, so that they test behaviour, not speed (the default
// 100 ms is tight under -race on a loaded machine).
const testOpTimeout = 2 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitValue polls s until Get(key) returns want ("" = not found).
func waitValue(t *testing.T, s cache.Store, key, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, err := s.Get(context.Background(), key)
		if (want == "" && errors.Is(err, cache.ErrNotFound)) || (err == nil && string(v) == want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestL1HitSendsNothingToRedis(t *testing.T) {
	srv := redistest.Start(t)
	a := newInstance(t, srv.Addr(), redis.Options{OpTimeout: testOpTimeout}, tiered.Options{})
	ctx := ctxT(t)
	srv.MustDo("SET", "ayz_auth:k", "v", "PX", "60000") // written by another instance
	v, err := a.s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	srv.ResetStats()
	attempts := a.l2.Stats().Attempts
	for range 50 {
		v, err := a.s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "v", string(v))
	}
	assert.Equal(t, attempts, a.l2.Stats().Attempts, "L1 hits never reach the L2 store")
	assert.Zero(t, srv.CommandCalls("get"))
	d, err := a.l1.TTL(ctx, "k")
	require.NoError(t, err)
	assert.LessOrEqual(t, d, 60*time.Second)
}

func TestInvalidationFromOtherInstanceDropsL1(t *testing.T) {
	srv := redistest.Start(t)
	a := newInstance(t, srv.Addr(), redis.Options{OpTimeout: testOpTimeout}, tiered.Options{})
	b := newInstance(t, srv.Addr(), redis.Options{OpTimeout: testOpTimeout}, tiered.Options{})
	ctx := ctxT(t)
	forwarded := make(chan []string, 16)
	a.s.OnInvalidate(func(keys []string) {
		select {
		case forwarded <- keys:
		default:
		}
	})
	srv.MustDo("SET", "ayz_auth:k", "v1", "PX", "60000")
	for range 3 {
		_, err := a.s.Get(ctx, "k")
		require.NoError(t, err)
	}
	_, err := a.l1.Get(ctx, "k")
	require.NoError(t, err, "in L1")

	require.NoError(t, b.s.Set(ctx, "k", []byte("v2"), time.Minute))
	waitValue(t, a.s, "k", "v2", 2*time.Second)
	select {
	case keys := <-forwarded:
		require.Equal(t, []string{"k"}, keys)
	case <-time.After(2 * time.Second):
		t.Fatal("invalidation not forwarded")
	}
	require.NoError(t, b.s.Delete(ctx, "k")) // revocation elsewhere
	waitValue(t, a.s, "k", "", 2*time.Second)
}

func TestOwnWritesVisibleAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	a := newInstance(t, srv.Addr(), redis.Options{OpTimeout: testOpTimeout}, tiered.Options{})
	ctx := ctxT(t)
	for i := range 300 {
		k := "k" + strconv.Itoa(i%10)
		srv.MustDo("SET", "ayz_auth:"+k, "old", "PX", "60000")
		waitValue(t, a.s, k, "old", 2*time.Second)
		require.NoError(t, a.s.Set(ctx, k, []byte("new"), time.Minute))
		v, err := a.s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "new", string(v))
		require.NoError(t, a.s.Delete(ctx, k))
		_, err = a.s.Get(ctx, k)
		require.ErrorIs(t, err, cache.ErrNotFound)
	}
	ok, err := a.s.Add(ctx, "add", []byte("first"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = a.s.Add(ctx, "add", []byte("second"), time.Minute)
	require.NoError(t, err)
	require.False(t, ok)
	v, err := a.s.Get(ctx, "add")
	require.NoError(t, err)
	require.Equal(t, "first", string(v))
}

func TestDisconnectFlushesL1(t *testing.T) {
	srv := redistest.Start(t)
	a := newInstance(t, srv.Addr(), redis.Options{OpTimeout: testOpTimeout}, tiered.Options{})
	ctx := ctxT(t)
	flushed := make(chan struct{}, 16)
	a.s.OnInvalidate(func(keys []string) {
		if keys == nil {
			select {
			case flushed <- struct{}{}:
			default:
			}
		}
	})
	srv.MustDo("SET", "ayz_auth:k", "v1", "PX", "60000")
	_, err := a.s.Get(ctx, "k")
	require.NoError(t, err)
	_, err = a.l1.Get(ctx, "k")
	require.NoError(t, err, "in L1")
	// Change the value behind the client's back, then cut its connections:
	// the change's invalidation is lost with them, the nil must flush L1.
	srv.MustDo("CLIENT", "PAUSE", "1", "WRITE")
	srv.MustDo("CLIENT", "KILL", "TYPE", "normal")
	select {
	case <-flushed:
	case <-time.After(3 * time.Second):
		t.Fatal("no flush after disconnect")
	}
	srv.MustDo("SET", "ayz_auth:k", "v2", "PX", "60000")
	attempts := a.l2.Stats().Attempts
	waitValue(t, a.s, "k", "v2", 3*time.Second)
	assert.Greater(t, a.l2.Stats().Attempts, attempts, "L1 entry was flushed: read went to L2")
}

func TestL1NeverOutlivesL2(t *testing.T) {
	srv := redistest.Start(t)
	a := newInstance(t, srv.Addr(), redis.Options{OpTimeout: testOpTimeout}, tiered.Options{})
	ctx := ctxT(t)
	srv.MustDo("SET", "ayz_auth:k", "v", "PX", "700")
	pxat, _ := srv.MustDo("PEXPIRETIME", "ayz_auth:k").(int64)
	expiry := time.UnixMilli(pxat)
	_, err := a.s.Get(ctx, "k")
	require.NoError(t, err)
	d, err := a.l1.TTL(ctx, "k")
	require.NoError(t, err)
	assert.False(t, time.Now().Add(d).After(expiry.Add(5*time.Millisecond)), "L1 ttl %v beyond the L2 expiry", d)
	for {
		_, err := a.s.Get(ctx, "k")
		if errors.Is(err, cache.ErrNotFound) {
			break
		}
		require.NoError(t, err)
		require.False(t, time.Now().After(expiry.Add(20*time.Millisecond)), "served after the L2 expiry")
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSilentPartition: instance A reaches Redis through a proxy that goes
// silent; a revocation by B must stop A's stale hits within
// ConnWriteTimeout + 2 s (the rueidis background PING notices, the
// connection is dropped, and the nil invalidation flushes L1).
func TestSilentPartition(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	const cwt = time.Second
	a := newInstance(t, proxy.Addr(), redis.Options{ConnWriteTimeout: cwt, OpTimeout: 100 * time.Millisecond}, tiered.Options{})
	b := newInstance(t, srv.Addr(), redis.Options{OpTimeout: testOpTimeout}, tiered.Options{})
	ctx := ctxT(t)
	srv.MustDo("SET", "ayz_auth:k", "v", "PX", "60000")
	waitValue(t, a.s, "k", "v", time.Second)

	proxy.Freeze()
	require.NoError(t, b.s.Delete(ctx, "k"))
	start := time.Now()
	for {
		v, err := a.s.Get(ctx, "k")
		if err != nil {
			break // unavailable (partitioned) or not found: no stale hit
		}
		require.Equal(t, "v", string(v))
		require.Less(t, time.Since(start), cwt+2*time.Second, "stale hits continued")
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("stale hits stopped after %v", time.Since(start))
	proxy.Unfreeze()
	waitValue(t, a.s, "k", "", 5*time.Second)
}

// flaky is an L2 stub (not Redis) that can be switched to unavailable.
type flaky struct {
	cache.Store
	down atomic.Bool
}

func (f *flaky) Get(ctx context.Context, key string) ([]byte, error) {
	if f.down.Load() {
		return nil, cache.ErrUnavailable
	}
	return f.Store.Get(ctx, key)
}

func TestL1ServesWhileL2UnavailableAndL1TTLCap(t *testing.T) {
	l1, err := memory.New(memory.Options{})
	require.NoError(t, err)
	defer l1.Close()
	inner, err := memory.New(memory.Options{})
	require.NoError(t, err)
	defer inner.Close()
	l2 := &flaky{Store: inner}
	s, err := tiered.New(l1, l2, tiered.Options{L1TTL: 300 * time.Millisecond})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, inner.Set(ctx, "k", []byte("v"), time.Hour))
	v, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	d, err := l1.TTL(ctx, "k")
	require.NoError(t, err)
	require.LessOrEqual(t, d, 300*time.Millisecond, "L2 cannot tell its TTL: L1TTL caps L1")

	l2.down.Store(true)
	v, err = s.Get(ctx, "k")
	require.NoError(t, err, "L1 hit while L2 is down")
	require.Equal(t, "v", string(v))
}

func TestFlushAndClose(t *testing.T) {
	l1, err := memory.New(memory.Options{})
	require.NoError(t, err)
	defer l1.Close()
	l2, err := memory.New(memory.Options{})
	require.NoError(t, err)
	defer l2.Close()
	_, err = tiered.New(l1, l1, tiered.Options{})
	require.Error(t, err)
	_, err = tiered.New(nil, l2, tiered.Options{})
	require.Error(t, err)
	s, err := tiered.New(l1, l2, tiered.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
	_, err = s.Get(ctx, "k")
	require.NoError(t, err)
	_, err = l1.Get(ctx, "k")
	require.NoError(t, err)
	require.NoError(t, l2.Delete(ctx, "k")) // behind the tiered store's back
	v, err := s.Get(ctx, "k")
	require.NoError(t, err, "still in L1")
	require.Equal(t, "v", string(v))
	s.Flush()
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound)

	require.NoError(t, s.Close())
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrClosed)
	require.ErrorIs(t, s.Set(ctx, "k", nil, time.Minute), cache.ErrClosed)
	require.ErrorIs(t, s.Delete(ctx, "k"), cache.ErrClosed)
	_, err = s.Add(ctx, "k", nil, time.Minute)
	require.ErrorIs(t, err, cache.ErrClosed)
}

func TestConcurrentWithInvalidations(t *testing.T) {
	srv := redistest.Start(t)
	a := newInstance(t, srv.Addr(), redis.Options{OpTimeout: time.Second}, tiered.Options{})
	b := newInstance(t, srv.Addr(), redis.Options{OpTimeout: time.Second}, tiered.Options{})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := a
			if g%2 == 1 {
				inst = b
			}
			for i := range 300 {
				k := strconv.Itoa(i % 10)
				var err error
				switch (i + g) % 5 {
				case 0:
					err = inst.s.Set(ctx, k, []byte(k), time.Minute)
				case 1:
					err = inst.s.Delete(ctx, k)
				default:
					var v []byte
					v, err = inst.s.Get(ctx, k)
					if err == nil {
						assert.Equal(t, k, string(v))
					}
				}
				if err != nil && !errors.Is(err, cache.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Quiesced: both instances converge on Redis's state.
	for i := range 10 {
		k := strconv.Itoa(i)
		want, _ := srv.MustDo("GET", "ayz_auth:"+k).(string)
		waitValue(t, a.s, k, want, 5*time.Second)
		waitValue(t, b.s, k, want, 5*time.Second)
	}
}

func BenchmarkGetL1Hit(b *testing.B) {
	inst := newInstance(b, sharedAddr, redis.Options{KeyPrefix: "benchtiered"}, tiered.Options{})
	ctx := context.Background()
	_, err := redistest.Do(sharedAddr, "SET", "benchtiered:k", string(make([]byte, 400)), "PX", "600000")
	require.NoError(b, err)
	_, err = inst.s.Get(ctx, "k")
	require.NoError(b, err)
	attempts := inst.l2.Stats().Attempts
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := inst.s.Get(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if inst.l2.Stats().Attempts != attempts {
		b.Fatal("not L1 hits")
	}
}

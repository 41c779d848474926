package redis

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openStore(t testing.TB, addr string, opts Options) *Store {
	t.Helper()
	opts.Addrs = []string{addr}
	s, err := New(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testOpTimeout is the OpTimeout of stores in tests that are not about
// timeouts: generous, so that they test behaviour, not speed (the default
// 100 ms is tight under -race on a loaded machine). Tests about timeouts,
// outages and the breaker set their own.
const testOpTimeout = 2 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientSideCachingInEffect(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	ctx := ctxT(t)
	require.True(t, s.ClientSideCaching())
	require.Equal(t, "standalone", s.Mode())
	srv.MustDo("SET", "ayz_auth:k", "v1", "PX", "60000")
	srv.ResetStats()

	for i := range 20 {
		v, _, hit, err := s.get(ctx, "k", false)
		require.NoError(t, err)
		require.Equal(t, "v1", string(v))
		require.Equal(t, i > 0, hit, "read %d", i)
	}
	assert.Equal(t, 1, srv.CommandCalls("get"))
	assert.Equal(t, 1, srv.CommandCalls("client|caching"))
	assert.NotEqual(t, "0", srv.Info("stats")["tracking_total_keys"])

	// A missing key is cached as a miss, too.
	for i := range 5 {
		_, _, hit, err := s.get(ctx, "absent", false)
		require.ErrorIs(t, err, cache.ErrNotFound)
		require.Equal(t, i > 0, hit)
	}
	assert.Equal(t, 2, srv.CommandCalls("get"))
}

func TestInvalidationFromSecondClient(t *testing.T) {
	srv := redistest.Start(t)
	a := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	b := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	ctx := ctxT(t)

	var mu sync.Mutex
	var got [][]string
	a.OnInvalidate(func(keys []string) {
		mu.Lock()
		got = append(got, keys)
		mu.Unlock()
	})

	require.NoError(t, b.Set(ctx, "k", []byte("v1"), time.Minute))
	waitValue(t, a, "k", "v1")
	_, _, hit, err := a.get(ctx, "k", false)
	require.NoError(t, err)
	require.True(t, hit)

	require.NoError(t, b.Set(ctx, "k", []byte("v2"), time.Minute))
	waitValue(t, a, "k", "v2")
	require.NoError(t, b.Delete(ctx, "k"))
	waitValue(t, a, "k", "")
	// A cached miss is invalidated by another client's write.
	_, _, hit, err = a.get(ctx, "k", false)
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.True(t, hit)
	require.NoError(t, b.Set(ctx, "k", []byte("v3"), time.Minute))
	waitValue(t, a, "k", "v3")

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, got)
	for _, keys := range got {
		require.Equal(t, []string{"k"}, keys, "keys are reported without the prefix")
	}
}

// waitValue polls s until Get(key) returns want ("" = not found), failing
// after a deadline.
func waitValue(t *testing.T, s *Store, key, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, err := s.Get(context.Background(), key)
		switch {
		case want == "" && errors.Is(err, cache.ErrNotFound):
			return
		case err == nil && string(v) == want:
			return
		case err != nil && !errors.Is(err, cache.ErrNotFound):
			t.Fatalf("Get(%q): %v", key, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOwnDeleteThenGetNeverStale: rueidis alone serves the deleted value
// in a few % of these loops (redis/rueidis#534); the recent-writes bypass
// must make it 0.
func TestOwnDeleteThenGetNeverStale(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	other := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	ctx := ctxT(t)
	const n = 2000
	stale, cachedBefore := 0, 0
	for i := range n {
		k := "k" + strconv.Itoa(i)
		v := []byte("v" + strconv.Itoa(i))
		// Written by another client, so that s reads it through its
		// client-side cache.
		require.NoError(t, other.Set(ctx, k, v, time.Minute))
		got, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, v, got)
		if _, _, hit, _ := s.get(ctx, k, false); hit {
			cachedBefore++
		}
		require.NoError(t, s.Delete(ctx, k))
		if _, err := s.Get(ctx, k); !errors.Is(err, cache.ErrNotFound) {
			stale++
		}
		// And the same for an overwrite.
		require.NoError(t, s.Set(ctx, k, []byte("new"), time.Minute))
		got, err = s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "new", string(got))
	}
	assert.Zero(t, stale)
	assert.Greater(t, cachedBefore, n/2, "the values were served from the client-side cache before the delete")
}

func TestExpiryPrecision(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	ctx := ctxT(t)

	before := time.Now()
	require.NoError(t, s.Set(ctx, "k", []byte("v"), 1500*time.Millisecond))
	after := time.Now()
	pxat, _ := srv.MustDo("PEXPIRETIME", "ayz_auth:k").(int64)
	assert.LessOrEqual(t, pxat, after.Add(1500*time.Millisecond).UnixMilli(), "never later than requested")
	assert.GreaterOrEqual(t, pxat, before.Add(1500*time.Millisecond).UnixMilli()-1, "millisecond precision, not seconds")
	pttl, _ := srv.MustDo("PTTL", "ayz_auth:k").(int64)
	assert.LessOrEqual(t, pttl, int64(1500))
	assert.Greater(t, pttl, int64(1000))

	// Written by another client: the read is tracked and the TTL comes from
	// the client-side cache entry, capped by the server TTL.
	srv.MustDo("SET", "ayz_auth:t", "v", "PX", "3000")
	v, ttl, err := s.GetWithTTL(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	assert.LessOrEqual(t, ttl, 3000*time.Millisecond)
	assert.Greater(t, ttl, 2*time.Second)
	_, ttl2, err := s.GetWithTTL(ctx, "t") // hit
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl2, ttl)

	// Own write: untracked read, ttl 0 ("do not cache above").
	_, ttl, err = s.GetWithTTL(ctx, "k")
	require.NoError(t, err)
	assert.Zero(t, ttl)

	// Less than 1 ms, zero and negative: nothing stored, older value gone.
	for _, d := range []time.Duration{500 * time.Microsecond, 0, -time.Second} {
		require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
		require.NoError(t, s.Set(ctx, "k", []byte("x"), d))
		_, err := s.Get(ctx, "k")
		require.ErrorIs(t, err, cache.ErrNotFound, "ttl %v", d)
		require.Nil(t, srv.MustDo("GET", "ayz_auth:k"))
		ok, err := s.Add(ctx, "k", []byte("x"), d)
		require.NoError(t, err)
		require.False(t, ok)
		require.Nil(t, srv.MustDo("GET", "ayz_auth:k"))
	}
}

func TestLocalEntryEndsWithServerTTL(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	ctx := ctxT(t)
	srv.MustDo("SET", "ayz_auth:k", "v", "PX", "300")
	_, err := s.Get(ctx, "k")
	require.NoError(t, err)
	end := time.Now().Add(300 * time.Millisecond)
	for {
		_, err := s.Get(ctx, "k")
		if errors.Is(err, cache.ErrNotFound) {
			break
		}
		require.NoError(t, err)
		require.False(t, time.Now().After(end.Add(time.Second)), "cached value outlived the server TTL")
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAddDoesNotOverwrite(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	ctx := ctxT(t)
	ok, err := s.Add(ctx, "k", []byte("first"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.Add(ctx, "k", []byte("second"), time.Minute)
	require.NoError(t, err)
	require.False(t, ok)
	v, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "first", string(v))
	pttl, _ := srv.MustDo("PTTL", "ayz_auth:k").(int64)
	require.Greater(t, pttl, int64(0))
}

func TestKilledThenRestarted(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{
		OpTimeout: 50 * time.Millisecond, FailureThreshold: 3, Cooldown: 500 * time.Millisecond,
	})
	ctx := ctxT(t)
	var invalidatedAll sync.WaitGroup
	invalidatedAll.Add(1)
	var once sync.Once
	s.OnInvalidate(func(keys []string) {
		if keys == nil {
			once.Do(invalidatedAll.Done)
		}
	})
	srv.MustDo("SET", "ayz_auth:k", "v", "PX", "60000")
	_, err := s.Get(ctx, "k")
	require.NoError(t, err)

	srv.Kill()
	invalidatedAll.Wait() // the lost connection flushes (and reports nil)

	// Never "not found": unavailable (a hit cached just before the kill
	// may be served until rueidis notices the closed connection).
	deadline := time.Now().Add(2 * time.Second)
	hits := 0
	for fails := 0; fails < 3; {
		_, err := s.Get(ctx, "k")
		if err == nil {
			hits++
			require.False(t, time.Now().After(deadline), "still served from the cache after the kill")
			continue
		}
		require.ErrorIs(t, err, cache.ErrUnavailable)
		fails++
	}
	t.Logf("hits after kill: %d", hits)
	require.True(t, s.Stats().BreakerOpen)
	before := s.Stats()
	for range 100 {
		_, err := s.Get(ctx, "k")
		require.ErrorIs(t, err, cache.ErrUnavailable)
		require.ErrorIs(t, s.Set(ctx, "k", []byte("v"), time.Minute), cache.ErrUnavailable)
	}
	after := s.Stats()
	assert.LessOrEqual(t, after.Attempts-before.Attempts, uint64(1), "open breaker: no network attempts (at most one probe)")
	assert.GreaterOrEqual(t, after.Rejected-before.Rejected, uint64(199))

	srv.Restart()
	deadline = time.Now().Add(10 * time.Second)
	for {
		err := s.Set(ctx, "k", []byte("back"), time.Minute)
		if err == nil {
			break
		}
		require.ErrorIs(t, err, cache.ErrUnavailable)
		require.False(t, time.Now().After(deadline), "store did not recover: %v", err)
		time.Sleep(20 * time.Millisecond)
	}
	v, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "back", string(v))
	require.False(t, s.Stats().BreakerOpen)
}

func TestCallerCancelDoesNotOpenBreaker(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{FailureThreshold: 1, OpTimeout: testOpTimeout})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrUnavailable)
	require.False(t, s.Stats().BreakerOpen)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestNoTrackingFallback(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--rename-command", "CLIENT", ""))
	var logs syncBuf
	s := openStore(t, srv.Addr(), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), OpTimeout: testOpTimeout})
	ctx := ctxT(t)
	require.False(t, s.ClientSideCaching())
	require.Contains(t, logs.String(), "client-side caching disabled")

	require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
	srv.ResetStats()
	for range 3 {
		v, _, hit, err := s.get(ctx, "k", false)
		require.NoError(t, err)
		require.Equal(t, "v", string(v))
		require.False(t, hit)
	}
	assert.Equal(t, 3, srv.CommandCalls("get"))
	_, ttl, err := s.GetWithTTL(ctx, "k")
	require.NoError(t, err)
	assert.Greater(t, ttl, 50*time.Second, "without tracking the server TTL is reported")
	require.NoError(t, s.Delete(ctx, "k"))
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound)

	// The direct check: rueidis itself refuses.
	_, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}})
	require.ErrorIs(t, err, rueidis.ErrNoCache)
}

func TestDisconnectReportsNil(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{OpTimeout: testOpTimeout})
	ctx := ctxT(t)
	got := make(chan []string, 16)
	s.OnInvalidate(func(keys []string) {
		select {
		case got <- keys:
		default:
		}
	})
	srv.MustDo("SET", "ayz_auth:k", "v")
	_, err := s.Get(ctx, "k")
	require.NoError(t, err)
	srv.MustDo("CLIENT", "KILL", "TYPE", "normal") // SKIPME yes: not our admin connection
	select {
	case keys := <-got:
		require.Nil(t, keys)
	case <-time.After(3 * time.Second):
		t.Fatal("no nil invalidation after the connection was killed")
	}
	waitValue(t, s, "k", "v")
}

func TestURLAndAuth(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--requirepass", "s3cret"))
	ctx := ctxT(t)
	// Password and DB from the URL.
	s, err := NewFromURL(ctx, "redis://:s3cret@"+srv.Addr()+"/3?write_timeout=2s", Options{KeyPrefix: "p", OpTimeout: testOpTimeout})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
	v, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	_, err = redistest.Do(srv.Addr(), "GET", "p:k")
	require.Error(t, err, "NOAUTH: the server really requires the password")

	// Password and DB from Options when the URL has none.
	s2, err := NewFromURL(ctx, "redis://"+srv.Addr(), Options{Password: "s3cret", DB: 3, KeyPrefix: "p", OpTimeout: testOpTimeout})
	require.NoError(t, err)
	defer s2.Close()
	v, err = s2.Get(ctx, "k")
	require.NoError(t, err, "same DB 3")
	require.Equal(t, "v", string(v))

	// The URL wins over Options.
	s3, err := NewFromURL(ctx, "redis://:s3cret@"+srv.Addr()+"/4", Options{Password: "wrong", DB: 3, KeyPrefix: "p", OpTimeout: testOpTimeout})
	require.NoError(t, err)
	defer s3.Close()
	_, err = s3.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound, "DB 4 is empty")

	t0 := time.Now()
	_, err = NewFromURL(ctx, "redis://"+srv.Addr(), Options{Password: "wrong"})
	t.Logf("wrong password: %v %v", time.Since(t0), err)
	require.ErrorIs(t, err, cache.ErrUnavailable)
	_, err = NewFromURL(ctx, "http://nope", Options{})
	require.Error(t, err)
	_, err = New(ctx, Options{})
	require.Error(t, err)
}

func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	ctx := ctxT(t)
	url := "redis://" + c.Nodes[0].Addr()
	a, err := NewFromURL(ctx, url, Options{OpTimeout: testOpTimeout})
	require.NoError(t, err)
	defer a.Close()
	b, err := NewFromURL(ctx, url+"?addr="+c.Nodes[1].Addr(), Options{OpTimeout: testOpTimeout})
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, "cluster", a.Mode())
	require.True(t, a.ClientSideCaching())

	keys := make([]string, 30)
	for i := range keys {
		keys[i] = "key" + strconv.Itoa(i)
		require.NoError(t, b.Set(ctx, keys[i], []byte("v1"), time.Minute))
	}
	c.ResetStats()
	for range 3 {
		for _, k := range keys {
			v, err := a.Get(ctx, k)
			require.NoError(t, err)
			require.Equal(t, "v1", string(v))
		}
	}
	assert.Equal(t, len(keys), c.CommandCalls("get"), "one GET per key, then client-side hits")
	slots := map[int]bool{}
	for _, n := range c.Nodes {
		if n.CommandCalls("get") > 0 {
			slots[n.Port()] = true
		}
	}
	assert.Len(t, slots, 3, "keys spread over the three masters")

	for _, k := range keys {
		require.NoError(t, b.Set(ctx, k, []byte("v2"), time.Minute))
	}
	for _, k := range keys {
		waitValue(t, a, k, "v2")
	}
	for _, k := range keys {
		require.NoError(t, b.Delete(ctx, k))
		waitValue(t, a, k, "")
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{OpTimeout: time.Second})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				k := strconv.Itoa(i % 20)
				var err error
				switch (i + g) % 4 {
				case 0:
					err = s.Set(ctx, k, []byte(k), time.Minute)
				case 1, 2:
					var v []byte
					v, err = s.Get(ctx, k)
					if err == nil {
						assert.Equal(t, k, string(v))
					}
				case 3:
					err = s.Delete(ctx, k)
				}
				if err != nil && !errors.Is(err, cache.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestClosed(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{})
	ctx := ctxT(t)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrClosed)
	require.ErrorIs(t, s.Set(ctx, "k", nil, time.Minute), cache.ErrClosed)
	require.ErrorIs(t, s.Delete(ctx, "k"), cache.ErrClosed)
	_, err = s.Add(ctx, "k", nil, time.Minute)
	require.ErrorIs(t, err, cache.ErrClosed)
}

func TestConnectFailure(t *testing.T) {
	srv := redistest.Start(t)
	addr := srv.Addr()
	srv.Stop()
	_, err := New(context.Background(), Options{Addrs: []string{addr}})
	require.ErrorIs(t, err, cache.ErrUnavailable)
}

func BenchmarkGetClientSideHit(b *testing.B) {
	s := openStore(b, exampleAddr, Options{KeyPrefix: "bench"})
	ctx := context.Background()
	_, err := redistest.Do(exampleAddr, "SET", "bench:k", string(make([]byte, 400)), "PX", "600000")
	require.NoError(b, err)
	_, err = s.Get(ctx, "k")
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Get(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if _, _, hit, _ := s.get(ctx, "k", false); !hit {
		b.Fatal("not a client-side hit")
	}
}

func BenchmarkGetNoClientCache(b *testing.B) {
	s := openStore(b, exampleAddr, Options{KeyPrefix: "bench", DisableClientCache: true})
	ctx := context.Background()
	_, err := redistest.Do(exampleAddr, "SET", "bench:k", string(make([]byte, 400)), "PX", "600000")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
}

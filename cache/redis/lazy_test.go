package redis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/redistest"
)

// absentRedis returns a redis-server that is down and the redis:// URL of
// the port it will come back on with Restart.
func absentRedis(t *testing.T) (*redistest.Server, string) {
	srv := redistest.Start(t)
	srv.Kill()
	return srv, "redis://" + srv.Addr()
}

func TestLazyStartsWithoutRedisThenConnects(t *testing.T) {
	srv, url := absentRedis(t)
	ctx := ctxT(t)
	start := time.Now()
	l, err := NewLazyFromURL(ctx, url, Options{OpTimeout: testOpTimeout})
	require.NoError(t, err, "an unreachable Redis is not a start-up error")
	t.Cleanup(func() { _ = l.Close() })
	assert.Less(t, time.Since(start), DefaultDialTimeout+time.Second, "the first attempt is bounded by the dial timeout")
	require.False(t, l.Connected())
	assert.True(t, l.ClientSideCaching(), "promised before the connection")

	var mu sync.Mutex
	var got [][]string
	l.OnInvalidate(func(keys []string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, keys)
	})

	// Every call fails fast as unavailable, never as "not found".
	for range 10 {
		t0 := time.Now()
		_, err := l.Get(ctx, "k")
		require.ErrorIs(t, err, cache.ErrUnavailable)
		require.ErrorIs(t, l.Set(ctx, "k", []byte("v"), time.Minute), cache.ErrUnavailable)
		_, err = l.Add(ctx, "k", []byte("v"), time.Minute)
		require.ErrorIs(t, err, cache.ErrUnavailable)
		require.ErrorIs(t, l.Delete(ctx, "k"), cache.ErrUnavailable)
		_, _, err = l.GetWithTTL(ctx, "k")
		require.ErrorIs(t, err, cache.ErrUnavailable)
		require.Less(t, time.Since(t0), 100*time.Millisecond, "no call waits for a Redis that is not there")
	}
	assert.Zero(t, l.Stats())

	srv.Restart()
	select {
	case <-l.Ready():
	case <-time.After(DefaultLazyMaxBackoff + 5*time.Second):
		t.Fatal("did not connect after Redis came up")
	}
	require.True(t, l.Connected())
	require.NotNil(t, l.Store())
	assert.Greater(t, l.Attempts(), int64(1))
	invalidations := func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		return append([][]string(nil), got...)
	}
	// The full invalidation is reported right after Ready is closed, not
	// before: wait for it.
	require.Eventually(t, func() bool { return len(invalidations()) > 0 }, 5*time.Second, time.Millisecond)
	require.Equal(t, [][]string{nil}, invalidations(), "connecting reports one full invalidation")
	ctx = ctxT(t) // a fresh deadline for the connected phase

	require.NoError(t, l.Set(ctx, "k", []byte("v"), time.Minute))
	v, err := l.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
	ok, err := l.Add(ctx, "k", []byte("w"), time.Minute)
	require.NoError(t, err)
	assert.False(t, ok)
	v, ttl, err := l.GetWithTTL(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
	assert.LessOrEqual(t, ttl, time.Minute)

	// The callback registered before the connection now receives another
	// client's invalidations.
	srv.MustDo("SET", "ayz_auth:watched", "1", "PX", "60000")
	_, err = l.Get(ctx, "watched")
	require.NoError(t, err)
	_, err = l.Get(ctx, "watched") // tracked now
	require.NoError(t, err)
	srv.MustDo("DEL", "ayz_auth:watched")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ks := range got {
			for _, k := range ks {
				if k == "watched" {
					return true
				}
			}
		}
		return false
	}, 2*time.Second, 10*time.Millisecond)
	require.NoError(t, l.Delete(ctx, "k"))

	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "idempotent")
	_, err = l.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrClosed)
}

func TestLazyConnectedAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	l, err := NewLazyFromURL(ctxT(t), "redis://"+srv.Addr(), Options{OpTimeout: testOpTimeout})
	require.NoError(t, err)
	require.True(t, l.Connected(), "a reachable Redis is connected before NewLazyFromURL returns")
	assert.Equal(t, int64(1), l.Attempts())
	require.NoError(t, l.Set(ctxT(t), "k", []byte("v"), time.Minute))
	require.NoError(t, l.Close())
	_, err = l.Get(ctxT(t), "k")
	require.ErrorIs(t, err, cache.ErrClosed)
}

func TestLazyCloseStopsRetrying(t *testing.T) {
	_, url := absentRedis(t)
	l, err := NewLazyFromURL(ctxT(t), url, Options{})
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond) // a few background attempts
	t0 := time.Now()
	require.NoError(t, l.Close())
	assert.Less(t, time.Since(t0), DefaultDialTimeout+time.Second, "Close waits at most for one dial")
	n := l.Attempts()
	time.Sleep(400 * time.Millisecond)
	assert.Equal(t, n, l.Attempts(), "no attempt after Close")
	for _, err := range []error{
		func() error { _, err := l.Get(ctxT(t), "k"); return err }(),
		l.Set(ctxT(t), "k", nil, time.Minute),
		l.Delete(ctxT(t), "k"),
	} {
		require.ErrorIs(t, err, cache.ErrClosed)
	}
	// goleak in TestMain checks that the retry goroutine is gone.
}

func TestLazyBadURLIsAnError(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:1/notadb", "http://127.0.0.1:1", "redis://127.0.0.1:1?dial_timeout=soon"} {
		_, err := NewLazyFromURL(context.Background(), u, Options{})
		require.Error(t, err, u)
		assert.Contains(t, err.Error(), "parse URL")
	}
}

func TestLazyCanceledContext(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l, err := NewLazyFromURL(ctx, "redis://"+srv.Addr(), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	select {
	case <-l.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the background attempts do not depend on the caller's context")
	}
}

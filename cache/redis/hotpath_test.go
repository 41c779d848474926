package redis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/redistest"
)

// A client-side cache hit allocates only its call context: no deadline
// timer, no prefixed key.
func TestClientSideHitAllocations(t *testing.T) {
	if perfRace {
		t.Skip("allocation counts differ under the race detector")
	}
	s := openStore(t, exampleAddr, Options{KeyPrefix: "allocs", OpTimeout: testOpTimeout})
	ctx := context.Background()
	_, err := redistest.Do(exampleAddr, "SET", "allocs:k", "v", "PX", "600000")
	require.NoError(t, err)
	_, err = s.Get(ctx, "k")
	require.NoError(t, err)
	_, _, hit, err := s.get(ctx, "k", false)
	require.NoError(t, err)
	require.True(t, hit)
	require.LessOrEqual(t, testing.AllocsPerRun(100, func() { _, _ = s.Get(ctx, "k") }), 1.0)
	rctx, cancel := context.WithCancel(ctx) // a request's context
	defer cancel()
	require.LessOrEqual(t, testing.AllocsPerRun(100, func() { _, _ = s.Get(rctx, "k") }), 1.0)
}

// A read that must wait for Redis is still bounded by OpTimeout (the timer
// is armed when rueidis first looks at the context), and a caller's earlier
// deadline still wins without opening the breaker.
func TestReadBoundedWhenRedisHangs(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	s := openStore(t, proxy.Addr(), Options{OpTimeout: 150 * time.Millisecond, FailureThreshold: 100})
	ctx := ctxT(t)
	srv.MustDo("SET", "ayz_auth:hang", "v", "PX", "60000")
	proxy.Freeze()
	defer proxy.Unfreeze()

	_, err := s.Get(ctx, "hang")
	require.ErrorIs(t, err, cache.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, uint64(1), s.Stats().Failures)

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = s.Get(short, "hang")
	require.ErrorIs(t, err, cache.ErrUnavailable)
	require.Equal(t, uint64(1), s.Stats().Failures, "the caller's own deadline is not a Redis failure: %v", err)

	proxy.Unfreeze()
	require.Eventually(t, func() bool {
		v, err := s.Get(ctx, "hang")
		return err == nil && string(v) == "v"
	}, 10*time.Second, 20*time.Millisecond)
}

// More keys than the prefixed-key table holds, read twice in two orders:
// every read returns its own key's value.
func TestKeyTableCollisions(t *testing.T) {
	s := openStore(t, exampleAddr, Options{KeyPrefix: "kt", OpTimeout: testOpTimeout})
	ctx := ctxT(t)
	const n = 3 * keySlots
	args := []string{"MSET"}
	for i := range n {
		args = append(args, "kt:key-"+strconv.Itoa(i), "value-"+strconv.Itoa(i))
	}
	_, err := redistest.Do(exampleAddr, args...)
	require.NoError(t, err)
	read := func(i int) {
		v, err := s.Get(ctx, "key-"+strconv.Itoa(i))
		require.NoError(t, err)
		require.Equal(t, "value-"+strconv.Itoa(i), string(v))
	}
	for i := range n {
		read(i)
	}
	for i := n - 1; i >= 0; i-- {
		read(i)
	}
	require.Equal(t, "kt:key-7", s.fullKey("key-7"))
	require.Equal(t, fmt.Sprintf("kt:%s", "key-7"), s.Key("key-7"))
}

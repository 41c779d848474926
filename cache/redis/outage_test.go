package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/redistest"
)

// within runs f (which may use assert, not require: it runs on another
// goroutine) and fails the test if it has not returned after limit: a
// bound on waiting (a read must not wait for a dead server until its
// deadline), not a measure of speed, so limit is far from both.
func within(t *testing.T, limit time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s: still waiting after %s", what, limit)
	}
}

// TestDeadServerFailsFast: reads against a server that was killed fail at
// once instead of being retried until OpTimeout (rueidis's default retries
// reads with backoff until the deadline), so that until the breaker opens
// each read costs a refused dial, not the whole OpTimeout.
func TestDeadServerFailsFast(t *testing.T) {
	srv := redistest.Start(t)
	// A deadline far beyond the bound below, and a breaker that never
	// opens: every read goes to the dead server.
	s := openStore(t, srv.Addr(), Options{OpTimeout: time.Minute, FailureThreshold: 1 << 20})
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
	srv.Kill()
	for i := range 5 {
		within(t, 20*time.Second, "read "+strconv.Itoa(i)+" against a dead server", func() {
			_, err := s.Get(ctx, "other"+strconv.Itoa(i))
			assert.ErrorIs(t, err, cache.ErrUnavailable)
		})
	}
	within(t, 20*time.Second, "write against a dead server", func() {
		assert.ErrorIs(t, s.Set(ctx, "k2", []byte("v"), time.Minute), cache.ErrUnavailable)
	})
}

// TestClusterDownOpensBreaker: when a master of a cluster without replicas
// is lost, the live masters answer CLUSTERDOWN for every slot. That is an
// outage for the cache (nothing can be read), not a sign of life: the
// breaker opens after FailureThreshold reads, and reads then fail fast
// without a network call.
func TestClusterDownOpensBreaker(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	ctx := context.Background()
	s, err := New(ctx, Options{Addrs: []string{c.Nodes[0].Addr()}, OpTimeout: 5 * time.Second, FailureThreshold: 3, Cooldown: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.Equal(t, "cluster", s.Mode())

	// Keys served by the masters that stay up.
	var live []string
	for i := 0; len(live) < 10; i++ {
		k := "key" + strconv.Itoa(i)
		require.NoError(t, s.Set(ctx, k, []byte("v"), time.Minute))
		if n, _ := c.Nodes[2].Do("EXISTS", DefaultKeyPrefix+":"+k); n != int64(1) {
			live = append(live, k)
		}
	}
	c.Nodes[2].Kill()
	// The live masters declare the cluster down after cluster-node-timeout.
	require.Eventually(t, func() bool {
		r, _ := c.Nodes[0].Do("CLUSTER", "INFO")
		str, _ := r.(string)
		return strings.Contains(str, "cluster_state:fail")
	}, 30*time.Second, 50*time.Millisecond)
	_, err = c.Nodes[0].Do("GET", DefaultKeyPrefix+":"+live[0])
	require.ErrorContains(t, err, "CLUSTERDOWN")

	// Reads from the live masters (keys written, never read: no
	// client-side copy) are each refused with CLUSTERDOWN; the breaker
	// must open.
	for i := 0; !s.Stats().BreakerOpen; i++ {
		require.Less(t, i, 30, "the breaker never opened on CLUSTERDOWN answers")
		within(t, 20*time.Second, "a read from a cluster that is down", func() {
			_, _ = s.Get(ctx, live[i%len(live)])
		})
	}
	_, err = s.Get(ctx, live[0])
	require.ErrorIs(t, err, cache.ErrUnavailable)
}

package redis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/internal/redistest"
)

// TestClientSideCachingResumesAfterRestart: once Redis is back after a
// restart, repeat reads are again answered by the client-side cache (no
// GET per read), as before the restart.
func TestClientSideCachingResumesAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{OpTimeout: 2 * time.Second, Cooldown: 200 * time.Millisecond})
	ctx := ctxT(t)
	hits := func(key string) int {
		t.Helper()
		srv.ResetStats()
		for range 50 {
			v, err := s.Get(ctx, key)
			require.NoError(t, err)
			require.Equal(t, "v", string(v))
		}
		return srv.CommandCalls("get")
	}
	srv.MustDo("SET", "ayz_auth:k", "v", "PX", "60000")
	assert.LessOrEqual(t, hits("k"), 1, "before the restart: one GET, then local hits")

	srv.Restart()
	srv.MustDo("SET", "ayz_auth:k", "v", "PX", "60000")
	srv.MustDo("SET", "ayz_auth:k2", "v", "PX", "60000")
	require.Eventually(t, func() bool {
		_, err := s.Get(ctx, "k")
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	time.Sleep(DefaultRecentWriteWindow)
	assert.LessOrEqual(t, hits("k"), 1, "after the restart: one GET, then local hits")
	assert.LessOrEqual(t, hits("k2"), 1, "after the restart, a new key: one GET, then local hits")
	t.Logf("stats: %+v", s.Stats())
}

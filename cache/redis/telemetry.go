package redis

import (
	"context"
	"errors"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/telemetry"
)

// recordGet counts a read in ayzauth.cache.lookups (tier "redis"): a hit
// (local: answered by the client-side cache), a miss, or an error (Redis
// unreachable, breaker open, not connected yet). Reads after Close are not
// counted.
func recordGet(ctx context.Context, t *telemetry.Cache, local bool, err error) {
	switch {
	case err == nil:
		t.RedisHit(ctx, local)
	case errors.Is(err, cache.ErrNotFound):
		t.Lookup(ctx, telemetry.TierRedis, telemetry.Miss)
	case errors.Is(err, cache.ErrClosed):
	default:
		t.Lookup(ctx, telemetry.TierRedis, telemetry.Error)
	}
}

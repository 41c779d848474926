package echostytch

import (
	"context"
	"log/slog"

	"github.com/ayzauth/ayzauth/cache"
)

// newTiered is replaced once cache/tiered lands.
func newTiered(ctx context.Context, s *Settings, log *slog.Logger) (cache.Store, func() error, error) {
	return nil, nil, &SettingError{Variable: "STYTCH_CACHE_BACKEND", Problem: "tiered is not available yet"}
}

package verifier

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
)

// errUnknownKID: the JWT names a key the JWKS does not hold (even after a
// refetch allowed by the rate limit), or no JWKS could be fetched yet.
var errUnknownKID = errors.New("unknown signing key")

// jwks is the process's one copy of the project's JWKS: fetched through the
// Client (deadlines, retries), refreshed in the background, refetched at
// most once per minRefetch when a JWT names an unknown kid. Each fetched
// set becomes an immutable keyfunc.Keyfunc swapped in atomically, so
// lookups take no lock.
type jwks struct {
	client     *Client
	log        *slog.Logger
	minRefetch time.Duration
	timeout    time.Duration

	cur atomic.Pointer[keyfunc.Keyfunc]
	sf  singleflight.Group

	mu          sync.Mutex
	lastAttempt time.Time // last kid-triggered refetch with a set loaded
	lastInitial time.Time // last kid-triggered fetch before any set loaded

	fetches atomic.Int64
}

func newJWKS(c *Client, log *slog.Logger, minRefetch, timeout time.Duration) *jwks {
	return &jwks{client: c, log: log, minRefetch: minRefetch, timeout: timeout}
}

// run refreshes the set every interval until ctx ends, starting at once.
func (j *jwks) run(ctx context.Context, interval time.Duration) {
	_ = j.refetch(ctx, true)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = j.refetch(ctx, true)
		}
	}
}

// refetch fetches the set unless the rate limit forbids it (force skips
// the limit). Concurrent callers share one fetch; each stops waiting when
// its own context ends.
//
// Only refetches caused by unknown kids are rate-limited, and only once a
// set is loaded: a JWT that arrives while the first fetch is in flight (or
// failing) does not use up the allowance a later key rotation needs. Until
// a first set is loaded, failed fetches are retried once a second at most.
func (j *jwks) refetch(ctx context.Context, force bool) error {
	if !force {
		j.mu.Lock()
		now := time.Now()
		last, gap := &j.lastAttempt, j.minRefetch
		if j.cur.Load() == nil {
			last, gap = &j.lastInitial, time.Second
		}
		if !last.IsZero() && now.Sub(*last) < gap {
			j.mu.Unlock()
			return errUnknownKID
		}
		*last = now
		j.mu.Unlock()
	}

	ch := j.sf.DoChan("jwks", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.timeout)
		defer cancel()
		j.fetches.Add(1)
		raw, err := j.client.JWKS(fctx)
		if err != nil {
			j.log.Warn("stytch: JWKS fetch failed", "error", err)
			return nil, err
		}
		kf, err := keyfunc.NewJWKSetJSON(raw)
		if err != nil {
			j.log.Warn("stytch: JWKS unreadable", "error", err)
			return nil, err
		}
		j.cur.Store(&kf)
		return nil, nil
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// key is the jwt.Keyfunc: it returns the RSA public key named by the
// token's kid, refetching the set (rate-limited) when the kid is unknown.
func (j *jwks) key(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if !validKID(kid) {
			return nil, errors.New("missing or malformed kid")
		}
		k, err := j.lookup(ctx, t)
		if errors.Is(err, errUnknownKID) {
			if j.refetch(ctx, false) != nil {
				return nil, errUnknownKID
			}
			k, err = j.lookup(ctx, t)
		}
		return k, err
	}
}

func (j *jwks) lookup(ctx context.Context, t *jwt.Token) (any, error) {
	kf := j.cur.Load()
	if kf == nil {
		return nil, errUnknownKID
	}
	k, err := (*kf).KeyfuncCtx(ctx)(t)
	if err != nil {
		if errors.Is(err, jwkset.ErrKeyNotFound) {
			return nil, errUnknownKID
		}
		return nil, err
	}
	if _, ok := k.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("key %T is not an RSA public key", k)
	}
	return k, nil
}

// validKID bounds a kid's shape: Stytch's look like jwk-test-<uuid>. A kid
// that is a path, a URL or junk is refused before any lookup or fetch.
func validKID(kid string) bool {
	if kid == "" || len(kid) > 128 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if !b64url[kid[i]] {
			return false
		}
	}
	return true
}

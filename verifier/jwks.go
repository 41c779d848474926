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
	"go.opentelemetry.io/otel/trace"
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

	// life bounds every fetch: close cancels it, then waits on wg for the
	// fetches in flight, so that none outlives Close. A fetch is detached
	// from its callers' contexts (they share it), never from life.
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu          sync.Mutex
	inflight    *fetchCall // the fetch running, shared by its callers
	closed      bool
	lastAttempt time.Time // last kid-triggered refetch with a set loaded
	lastInitial time.Time // last kid-triggered fetch before any set loaded

	fetches atomic.Int64
}

// fetchCall is one fetch in flight (of the JWKS, or of the RBAC policy),
// shared by the callers that wait for it; err is set before done is closed.
type fetchCall struct {
	done chan struct{}
	err  error
}

// errJWKSClosed: the verifier is closed; no fetch starts any more.
var errJWKSClosed = errors.New("JWKS closed")

func newJWKS(c *Client, log *slog.Logger, minRefetch, timeout time.Duration) *jwks {
	life, stop := context.WithCancel(context.Background())
	return &jwks{client: c, log: log, minRefetch: minRefetch, timeout: timeout, life: life, stop: stop}
}

// close cancels the fetches in flight and waits for them; no fetch starts
// afterwards. It is idempotent.
func (j *jwks) close() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.stop()
	j.wg.Wait()
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

	c := j.start(ctx)
	if c == nil {
		return errJWKSClosed
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start returns the fetch in flight, starting one if there is none, or nil
// once closed. The fetch runs under life (not ctx: callers that stop
// waiting do not cancel it for the others) and keeps ctx's span as parent.
func (j *jwks) start(ctx context.Context) *fetchCall {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	if j.inflight != nil {
		return j.inflight
	}
	c := &fetchCall{done: make(chan struct{})}
	j.inflight = c
	j.wg.Add(1)
	fctx, cancel := context.WithTimeout(trace.ContextWithSpan(j.life, trace.SpanFromContext(ctx)), j.timeout)
	go func() {
		defer j.wg.Done()
		defer cancel()
		err := j.fetch(fctx)
		j.mu.Lock()
		j.inflight = nil
		j.mu.Unlock()
		c.err = err
		close(c.done)
	}()
	return c
}

// fetch fetches the set once and swaps it in.
func (j *jwks) fetch(ctx context.Context) error {
	j.fetches.Add(1)
	raw, err := j.client.JWKS(ctx)
	if err != nil {
		if j.life.Err() == nil {
			j.log.Warn("stytch: JWKS fetch failed", "error", err)
		}
		return err
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		j.log.Warn("stytch: JWKS unreadable", "error", err)
		return err
	}
	j.cur.Store(&kf)
	return nil
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

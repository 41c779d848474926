package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/telemetry"
)

// Backoff bounds of a Lazy store's background connection attempts.
const (
	DefaultLazyMinBackoff = 100 * time.Millisecond
	DefaultLazyMaxBackoff = 5 * time.Second
)

// errNotConnected is wrapped (with cache.ErrUnavailable) by calls made
// before the first connection succeeded.
var errNotConnected = errors.New("redis: not connected yet")

// Lazy is a cache.Store, cache.Adder and cache.Invalidator that does not
// need Redis to be reachable when it is created: "Redis down means slower,
// not broken". NewLazyFromURL makes one connection attempt at once; if it
// fails, the store answers every call with cache.ErrUnavailable (the caching
// verifier then verifies through Stytch without caching) while a background
// goroutine retries NewFromURL with exponential backoff and jitter, and
// delegates every call to the connected Store from then on. Once connected,
// failures are the connected Store's business (breaker, reconnection).
//
// OnInvalidate callbacks registered before the connection are registered
// with the Store when it connects, and called once with nil then (nothing
// cached above can be trusted across the switch).
type Lazy struct {
	url  string
	opts Options
	log  *slog.Logger

	minBackoff, maxBackoff time.Duration

	cur atomic.Pointer[Store]

	mu     sync.Mutex // guards cbs, closed and the switch to a connected store
	cbs    []func([]string)
	closed bool

	claimedCSC bool // ClientSideCaching's answer before the connection
	ready      chan struct{}
	stop       context.CancelFunc
	done       chan struct{}
	attempts   atomic.Int64

	tel *telemetry.Cache // lookups refused before the connection
}

var (
	_ cache.Store       = (*Lazy)(nil)
	_ cache.Adder       = (*Lazy)(nil)
	_ cache.Invalidator = (*Lazy)(nil)
)

// NewLazyFromURL returns a Lazy store for the Redis described by url (see
// NewFromURL). A URL that cannot be parsed is an error; an unreachable
// Redis is not. The first connection attempt is made before it returns,
// bounded by the dial timeout (Options.DialTimeout, 1 s by default) and by
// ctx; later attempts run in the background until one succeeds or Close is
// called.
func NewLazyFromURL(ctx context.Context, url string, opts Options) (*Lazy, error) {
	if _, err := rueidis.ParseURL(url); err != nil {
		return nil, fmt.Errorf("redis: parse URL: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lazy{
		url: url, opts: opts, log: log,
		minBackoff: DefaultLazyMinBackoff, maxBackoff: DefaultLazyMaxBackoff,
		claimedCSC: !opts.DisableClientCache,
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
		tel:        telemetry.NewCache(opts.MeterProvider),
	}
	bg, stop := context.WithCancel(context.Background())
	l.stop = stop
	err := l.attempt(ctx)
	if err == nil {
		close(l.done)
		return l, nil
	}
	log.Warn("redis: unreachable; verifying without the shared cache until it is reachable", "err", err)
	go l.retry(bg)
	return l, nil
}

// attempt makes one connection attempt and, on success, switches to the
// connected store.
func (l *Lazy) attempt(ctx context.Context) error {
	l.attempts.Add(1)
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := NewFromURL(ctx, l.url, l.opts)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = s.Close()
		return cache.ErrClosed
	}
	for _, fn := range l.cbs {
		s.OnInvalidate(fn)
	}
	l.cur.Store(s)
	close(l.ready)
	// Anything a layer above cached while we had no store is suspect.
	for _, fn := range l.cbs {
		fn(nil)
	}
	return nil
}

func (l *Lazy) retry(ctx context.Context) {
	defer close(l.done)
	backoff := l.minBackoff
	for {
		d := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := l.attempt(ctx)
		if err == nil {
			l.log.Info("redis: connected; shared caching resumes")
			return
		}
		if ctx.Err() != nil || errors.Is(err, cache.ErrClosed) {
			return
		}
		l.log.Debug("redis: still unreachable", "err", err)
		backoff = min(backoff*2, l.maxBackoff)
	}
}

// Connected reports whether the store has connected.
func (l *Lazy) Connected() bool { return l.cur.Load() != nil }

// Ready is closed when the store has connected.
func (l *Lazy) Ready() <-chan struct{} { return l.ready }

// Store returns the connected Store, or nil before the connection.
func (l *Lazy) Store() *Store { return l.cur.Load() }

// Attempts returns how many connection attempts were made.
func (l *Lazy) Attempts() int64 { return l.attempts.Load() }

// ClientSideCaching reports whether reads use client-side caching: the
// connected store's answer, or before the connection what is intended
// (!Options.DisableClientCache).
func (l *Lazy) ClientSideCaching() bool {
	if s := l.cur.Load(); s != nil {
		return s.ClientSideCaching()
	}
	return l.claimedCSC
}

// Stats returns the connected store's counters (zero before it connects).
func (l *Lazy) Stats() Stats {
	if s := l.cur.Load(); s != nil {
		return s.Stats()
	}
	return Stats{}
}

// store returns the connected store or the error to answer with.
func (l *Lazy) store() (*Store, error) {
	if s := l.cur.Load(); s != nil {
		return s, nil
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, cache.ErrClosed
	}
	return nil, fmt.Errorf("%w: %w", cache.ErrUnavailable, errNotConnected)
}

// Get implements cache.Store.
func (l *Lazy) Get(ctx context.Context, key string) ([]byte, error) {
	s, err := l.store()
	if err != nil {
		recordGet(ctx, l.tel, false, err)
		return nil, err
	}
	return s.Get(ctx, key)
}

// GetWithTTL implements tiered.TTLGetter (see Store.GetWithTTL). If the
// store was created promising client-side caching but the server refused
// tracking, it reports 0 ("do not keep"): a layer above that trusted the
// promise would otherwise wait for invalidations that never come.
func (l *Lazy) GetWithTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	s, err := l.store()
	if err != nil {
		recordGet(ctx, l.tel, false, err)
		return nil, 0, err
	}
	v, ttl, err := s.GetWithTTL(ctx, key)
	if l.claimedCSC && !s.ClientSideCaching() {
		ttl = 0
	}
	return v, ttl, err
}

// Set implements cache.Store.
func (l *Lazy) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s, err := l.store()
	if err != nil {
		return err
	}
	return s.Set(ctx, key, value, ttl)
}

// Add implements cache.Adder.
func (l *Lazy) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	s, err := l.store()
	if err != nil {
		return false, err
	}
	return s.Add(ctx, key, value, ttl)
}

// Delete implements cache.Store.
func (l *Lazy) Delete(ctx context.Context, key string) error {
	s, err := l.store()
	if err != nil {
		return err
	}
	return s.Delete(ctx, key)
}

// OnInvalidate implements cache.Invalidator: fn is registered with the
// connected store, at once or when it connects.
func (l *Lazy) OnInvalidate(fn func(keys []string)) {
	if fn == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cbs = append(l.cbs, fn)
	if s := l.cur.Load(); s != nil {
		s.OnInvalidate(fn)
	}
}

// Close stops the background connection attempts, waits for them, and
// closes the connected store. Calls after Close return cache.ErrClosed.
// Close is idempotent.
func (l *Lazy) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.stop()
	<-l.done
	if s := l.cur.Load(); s != nil {
		return s.Close()
	}
	return nil
}

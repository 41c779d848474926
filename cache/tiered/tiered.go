// Package tiered layers a fast L1 cache.Store (typically cache/memory) over
// a shared L2 cache.Store (typically cache/redis) and keeps L1 coherent
// with L2.
//
//   - Get tries L1, then L2. An L2 hit fills L1 with a TTL that never
//     outlives the L2 entry: L2 stores implementing TTLGetter report the
//     time left; for others L1 entries live at most Options.L1TTL.
//   - Set, Add and Delete write through to L2 first, then drop the L1 entry
//     (they never fill L1: only reads that L2 registered for invalidation
//     do).
//   - If L2 implements cache.Invalidator, its invalidations drop the L1
//     entries (another instance wrote or revoked them), and a nil
//     invalidation (L2 connection lost, database flushed) flushes L1 at once
//     by bumping a generation number stored in every L1 value.
//   - When L2 fails, L1 hits keep being served until their TTL (unless L2
//     reported a lost connection, which flushes L1).
//
// A fill racing an invalidation of the same data is dropped: fills are
// checked against an invalidation sequence number under a lock that the
// invalidation handler takes exclusively.
package tiered

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/telemetry"
)

// Defaults for Options.
const (
	DefaultL1TTL    = time.Second
	DefaultMaxL1TTL = 5 * time.Minute
)

// TTLGetter is implemented by L2 stores that report how long a value they
// return may be kept by a layer above (cache/redis.Store does). A ttl <= 0
// means "do not keep it".
type TTLGetter interface {
	GetWithTTL(ctx context.Context, key string) ([]byte, time.Duration, error)
}

// Options configures a Store. Zero fields take the defaults.
type Options struct {
	// L1TTL caps the life of L1 entries when L2 cannot report remaining
	// TTLs or cannot invalidate (no cache.Invalidator, or client-side
	// caching off): it bounds how stale L1 can be, and so how long another
	// instance's revocation may go unseen here. Default 1 s, the fleet's
	// revocation target.
	L1TTL time.Duration
	// MaxL1TTL caps the life of L1 entries when L2 reports TTLs and
	// invalidates. Default 5 min.
	MaxL1TTL time.Duration
	// MeterProvider receives the L1 lookups (ayzauth.cache.lookups, tier
	// "l1", result hit or miss); L2 lookups are recorded by the L2 store
	// under its own tier (cache/redis: "redis"). Nil means the global
	// provider. Build the L1 store with a no-op provider so that its
	// lookups are not also counted under its own tier ("memory").
	MeterProvider metric.MeterProvider
}

// Store is a two-level cache.Store, cache.Adder and cache.Invalidator. It
// is safe for concurrent use.
type Store struct {
	l1, l2   cache.Store
	ttlGet   TTLGetter
	coherent bool
	l1TTL    time.Duration
	maxTTL   time.Duration

	gen    atomic.Uint64 // L1 generation; entries of older generations are ignored
	seq    atomic.Uint64 // bumped (under mu) by every invalidation and own write
	mu     sync.RWMutex  // fills hold it shared, invalidations exclusively
	closed atomic.Bool

	cbMu sync.Mutex
	cbs  atomic.Pointer[[]func([]string)]

	tel *telemetry.Cache
}

var (
	_ cache.Store       = (*Store)(nil)
	_ cache.Adder       = (*Store)(nil)
	_ cache.Invalidator = (*Store)(nil)
)

// New returns a Store with l1 over l2 and subscribes to l2's invalidations
// if l2 implements cache.Invalidator. The Store does not own l1 and l2:
// close them after the Store is no longer used.
func New(l1, l2 cache.Store, opts Options) (*Store, error) {
	if l1 == nil || l2 == nil {
		return nil, errors.New("tiered: l1 and l2 must not be nil")
	}
	if l1 == l2 {
		return nil, errors.New("tiered: l1 and l2 must be different stores")
	}
	if opts.L1TTL <= 0 {
		opts.L1TTL = DefaultL1TTL
	}
	if opts.MaxL1TTL <= 0 {
		opts.MaxL1TTL = DefaultMaxL1TTL
	}
	s := &Store{l1: l1, l2: l2, l1TTL: opts.L1TTL, maxTTL: opts.MaxL1TTL, tel: telemetry.NewCache(opts.MeterProvider)}
	s.ttlGet, _ = l2.(TTLGetter)
	if inv, ok := l2.(cache.Invalidator); ok {
		s.coherent = true
		if c, ok := l2.(interface{ ClientSideCaching() bool }); ok && !c.ClientSideCaching() {
			s.coherent = false // it will never call us
		}
		inv.OnInvalidate(s.onInvalidate)
	}
	return s, nil
}

const hdr = 8 // L1 values are 8 bytes of generation + the value

// Get returns the value under key from L1, else from L2 (filling L1). The
// returned slice must not be modified.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if s.closed.Load() {
		return nil, cache.ErrClosed
	}
	gen := s.gen.Load()
	if v, err := s.l1.Get(ctx, key); err == nil && len(v) >= hdr && binary.LittleEndian.Uint64(v) == gen {
		s.tel.Lookup(ctx, telemetry.TierL1, telemetry.Hit)
		return v[hdr:], nil
	}
	s.tel.Lookup(ctx, telemetry.TierL1, telemetry.Miss)
	seen := s.seq.Load()
	var (
		v   []byte
		ttl time.Duration
		err error
	)
	if s.ttlGet != nil {
		start := time.Now()
		v, ttl, err = s.ttlGet.GetWithTTL(ctx, key)
		// The L2 client measures the remaining life from when it received
		// the answer (rueidis: receipt + PTTL), which can lie after the
		// server's clock started; counting from before the call keeps the
		// L1 entry within the L2 expiry however slow the call was.
		ttl -= time.Since(start)
		if !s.coherent && ttl > s.l1TTL {
			ttl = s.l1TTL
		}
	} else {
		v, err = s.l2.Get(ctx, key)
		ttl = s.l1TTL
	}
	if err != nil {
		return nil, err
	}
	ttl = min(ttl, s.maxTTL)
	if ttl > 0 {
		s.fill(ctx, key, v, ttl, gen, seen)
	}
	return v, nil
}

// fill writes v to L1 unless an invalidation or own write happened since
// seen (the value may be older than it) or the generation changed.
func (s *Store) fill(ctx context.Context, key string, v []byte, ttl time.Duration, gen, seen uint64) {
	buf := make([]byte, hdr+len(v))
	binary.LittleEndian.PutUint64(buf, gen)
	copy(buf[hdr:], v)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.seq.Load() != seen || s.gen.Load() != gen {
		return
	}
	_ = s.l1.Set(ctx, key, buf, ttl) // an L1 failure only costs a miss
}

// dropL1 removes key from L1 and makes in-flight fills void.
func (s *Store) dropL1(key string) {
	s.mu.Lock()
	s.seq.Add(1)
	_ = s.l1.Delete(context.Background(), key)
	s.mu.Unlock()
}

// Set writes value to L2 for ttl, then drops key from L1. A ttl <= 0
// stores nothing (the L2 store's semantics apply).
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if s.closed.Load() {
		return cache.ErrClosed
	}
	err := s.l2.Set(ctx, key, value, ttl)
	s.dropL1(key)
	return err
}

// Add writes value to L2 unless key holds a value there (L2 must implement
// cache.Adder), then drops key from L1, and reports whether it stored it.
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if s.closed.Load() {
		return false, cache.ErrClosed
	}
	a, ok := s.l2.(cache.Adder)
	if !ok {
		return false, errors.New("tiered: L2 store does not implement cache.Adder")
	}
	stored, err := a.Add(ctx, key, value, ttl)
	s.dropL1(key)
	return stored, err
}

// Delete deletes key from L2, then from L1 (from L1 even if L2 failed).
func (s *Store) Delete(ctx context.Context, key string) error {
	if s.closed.Load() {
		return cache.ErrClosed
	}
	err := s.l2.Delete(ctx, key)
	s.dropL1(key)
	return err
}

// Flush makes every L1 entry invisible at once (generation bump).
func (s *Store) Flush() {
	s.mu.Lock()
	s.seq.Add(1)
	s.gen.Add(1)
	s.mu.Unlock()
}

func (s *Store) onInvalidate(keys []string) {
	if keys == nil {
		s.Flush()
	} else {
		s.mu.Lock()
		s.seq.Add(1)
		for _, k := range keys {
			_ = s.l1.Delete(context.Background(), k)
		}
		s.mu.Unlock()
	}
	if p := s.cbs.Load(); p != nil {
		for _, fn := range *p {
			fn(keys)
		}
	}
}

// OnInvalidate registers fn, called (after L1 was updated) with the keys
// L2 reported as changed elsewhere, or nil when everything must be
// considered changed. fn must not block.
func (s *Store) OnInvalidate(fn func(keys []string)) {
	if fn == nil {
		return
	}
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	var fns []func([]string)
	if p := s.cbs.Load(); p != nil {
		fns = append(fns, *p...)
	}
	fns = append(fns, fn)
	s.cbs.Store(&fns)
}

// Close makes later calls return cache.ErrClosed. It does not close l1 or
// l2. Close is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

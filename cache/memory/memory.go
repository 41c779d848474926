// Package memory is an in-process cache.Store built on ristretto v2.
//
// Design choices (see docs/cache-backends.md §2 for the measured traps):
//
//   - Cost is in bytes: len(value) + EntryOverhead per entry, with
//     ristretto's IgnoreInternalCost set, so MaxCost is a (rough) byte budget
//     that we account for ourselves instead of ristretto silently adding
//     ~56 bytes per item (ristretto#363).
//   - A ttl <= 0 never reaches ristretto (where 0 means "forever"); Set with
//     such a ttl deletes any entry stored under the key instead, so the
//     superseded value cannot be read afterwards.
//   - Read-your-writes: ristretto buffers new items; Set calls ristretto's
//     Wait after queueing, so the next Get in the same goroutine sees the
//     value (unless ristretto dropped or rejected it, which is not an error:
//     a cache may forget). Writes are rare (one per verified session) and the
//     Wait costs about a channel round trip: measured 3.5 µs per Set versus
//     1.4 µs without it (BenchmarkSet, BenchmarkRistrettoSetNoWait, 2 vCPU).
//     A write-through side map was rejected: it would add a lookup to
//     every Get miss and a second source of truth for expiry.
//   - Close can never race a concurrent Get/Set/Delete into ristretto's
//     "send on closed channel" panic: every call holds a read lock, Close
//     holds the write lock, and calls after Close return cache.ErrClosed.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
	"go.opentelemetry.io/otel/metric"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/telemetry"
)

// Defaults for Options.
const (
	// DefaultMaxCost is the default byte budget: 64 MiB.
	DefaultMaxCost = 64 << 20
	// DefaultAverageEntrySize is the entry size assumed when sizing the
	// admission counters from MaxCost if Options.ExpectedItems is zero.
	DefaultAverageEntrySize = 512
	// EntryOverhead is the cost, in bytes, charged per entry on top of
	// len(value): ristretto's per-item bookkeeping (hashes, expiry, the
	// value's slice header, map and expiry-bucket slots, admission
	// counters), measured at 310 to 340 bytes per entry with one or two million
	// entries (BenchmarkMillionSessions in package cache), plus a margin, so
	// that the Go heap the store uses stays within MaxCost.
	EntryOverhead = 384
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// MaxCost is the byte budget of the cache (len(value)+EntryOverhead per
	// entry). Zero means DefaultMaxCost. Values above MaxCost are never
	// stored.
	MaxCost int64
	// ExpectedItems is the number of entries expected when the cache is
	// full; ristretto's admission counters are sized at 10x this. Zero means
	// MaxCost / DefaultAverageEntrySize (at least 1000).
	ExpectedItems int64
	// Metrics enables ristretto's counters (small overhead on every call),
	// reported by Store.Metrics.
	Metrics bool
	// MeterProvider receives the store's lookups (ayzauth.cache.lookups,
	// tier "memory", result hit or miss). Nil means the global provider;
	// pass a no-op provider (go.opentelemetry.io/otel/metric/noop) for a
	// store whose lookups are counted by a layer above (a tiered L1).
	MeterProvider metric.MeterProvider
}

// Metrics is a snapshot of the cache counters. All fields are zero unless
// Options.Metrics is set.
type Metrics struct {
	Hits         uint64 // Gets that found a live entry
	Misses       uint64 // Gets that found nothing
	KeysAdded    uint64 // new entries admitted
	KeysUpdated  uint64 // existing entries overwritten
	KeysEvicted  uint64 // entries removed (eviction, expiry cleanup, Delete)
	CostAdded    uint64 // bytes admitted
	CostEvicted  uint64 // bytes removed
	SetsDropped  uint64 // Sets dropped because ristretto's buffer was full
	SetsRejected uint64 // Sets refused by the admission policy
}

const numStripes = 64

// Store is a cache.Store, cache.Adder kept in process memory. It is safe for
// concurrent use. Create it with New and release it with Close.
type Store struct {
	mu      sync.RWMutex // read-held by every call, write-held by Close
	closed  bool
	c       *ristretto.Cache[string, []byte]
	stripes [numStripes]sync.Mutex // serialise writes per key (Add is check-then-set)
	tel     *telemetry.Cache
}

var (
	_ cache.Store = (*Store)(nil)
	_ cache.Adder = (*Store)(nil)
)

// New returns a Store configured by opts.
func New(opts Options) (*Store, error) {
	if opts.MaxCost < 0 || opts.ExpectedItems < 0 {
		return nil, errors.New("memory: MaxCost and ExpectedItems must not be negative")
	}
	if opts.MaxCost == 0 {
		opts.MaxCost = DefaultMaxCost
	}
	if opts.ExpectedItems == 0 {
		opts.ExpectedItems = max(opts.MaxCost/DefaultAverageEntrySize, 1000)
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: 10 * opts.ExpectedItems,
		MaxCost:     opts.MaxCost,
		BufferItems: 64,
		// We charge the per-entry overhead ourselves (EntryOverhead), so
		// that MaxCost is the byte budget callers configured.
		IgnoreInternalCost:     true,
		TtlTickerDurationInSec: 1,
		Metrics:                opts.Metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	return &Store{c: c, tel: telemetry.NewCache(opts.MeterProvider)}, nil
}

func (s *Store) stripe(key string) *sync.Mutex {
	return &s.stripes[xxhash.Sum64String(key)%numStripes]
}

// Get returns the value stored under key, or cache.ErrNotFound. The returned
// slice is shared with the cache and with other readers: do not modify it.
// Get does not allocate.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, cache.ErrClosed
	}
	v, ok := s.c.Get(key)
	s.mu.RUnlock()
	if !ok {
		s.tel.Lookup(ctx, telemetry.TierMemory, telemetry.Miss)
		return nil, cache.ErrNotFound
	}
	s.tel.Lookup(ctx, telemetry.TierMemory, telemetry.Hit)
	return v, nil
}

// Set stores a copy of value under key for ttl. A ttl <= 0 stores nothing
// and removes any entry under key. If ristretto drops or rejects the entry
// (full buffer, admission policy, larger than MaxCost) Set still returns
// nil: the cache simply does not hold it. A successful Set is visible to the
// next Get.
func (s *Store) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return cache.ErrClosed
	}
	m := s.stripe(key)
	m.Lock()
	defer m.Unlock()
	s.set(key, value, ttl)
	return nil
}

// set requires s.mu read-held and the key's stripe held. It reports whether
// ristretto accepted the item into its buffer.
func (s *Store) set(key string, value []byte, ttl time.Duration) bool {
	if ttl <= 0 {
		s.c.Del(key)
		return false
	}
	v := make([]byte, len(value))
	copy(v, value)
	ok := s.c.SetWithTTL(key, v, int64(len(v))+EntryOverhead, ttl)
	if ok {
		s.c.Wait() // read-your-writes: new items are applied asynchronously
	}
	return ok
}

// Add stores a copy of value under key for ttl unless key holds a live
// entry, and reports whether it stored it. A ttl <= 0 stores nothing and
// reports false. If ristretto drops or rejects the value, Add reports false.
func (s *Store) Add(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false, cache.ErrClosed
	}
	if ttl <= 0 {
		return false, nil
	}
	m := s.stripe(key)
	m.Lock()
	defer m.Unlock()
	if _, ok := s.c.Get(key); ok {
		return false, nil
	}
	if !s.set(key, value, ttl) {
		return false, nil
	}
	_, ok := s.c.Get(key) // admission may still have refused it
	return ok, nil
}

// Delete removes key at once. Deleting a missing key is not an error.
func (s *Store) Delete(_ context.Context, key string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return cache.ErrClosed
	}
	m := s.stripe(key)
	m.Lock()
	s.c.Del(key)
	m.Unlock()
	return nil
}

// TTL returns the time left before the entry under key expires, or
// cache.ErrNotFound.
func (s *Store) TTL(_ context.Context, key string) (time.Duration, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, cache.ErrClosed
	}
	d, ok := s.c.GetTTL(key)
	if !ok || d <= 0 {
		return 0, cache.ErrNotFound
	}
	return d, nil
}

// Wait blocks until every write queued so far has been applied. Set already
// waits; Wait is meant for tests.
func (s *Store) Wait() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closed {
		s.c.Wait()
	}
}

// Metrics returns a snapshot of the cache counters (zero unless
// Options.Metrics is set).
func (s *Store) Metrics() Metrics {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.c.Metrics
	if s.closed || m == nil {
		return Metrics{}
	}
	return Metrics{
		Hits:         m.Hits(),
		Misses:       m.Misses(),
		KeysAdded:    m.KeysAdded(),
		KeysUpdated:  m.KeysUpdated(),
		KeysEvicted:  m.KeysEvicted(),
		CostAdded:    m.CostAdded(),
		CostEvicted:  m.CostEvicted(),
		SetsDropped:  m.SetsDropped(),
		SetsRejected: m.SetsRejected(),
	}
}

// Close releases the cache and its goroutines. It waits for calls in
// progress; later calls return cache.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.c.Close()
	return nil
}

package cache

import (
	"sync/atomic"
	"time"

	"github.com/ayzauth/ayzauth/verifier"
)

// memoTable holds decoded sessions by token hash, so that a cache hit
// decodes nothing. It is set-associative: a token hash selects a set of
// memoWays entries by its first 8 bytes, an entry matches on the whole hash,
// and a full set replaces its entries in turn. Lookups are a few atomic
// loads and compares, without locks; writes are atomic stores and visible
// at once. Its bound is the number of entries (sets x ways).
type memoTable struct {
	sets []memoSet
	mask uint64
}

const memoWays = 4

type memoSet struct {
	ways [memoWays]atomic.Pointer[memoEntry]
	next atomic.Uint32 // the way replaced next when the set is full
}

type memoEntry struct {
	hash      [32]byte // the token hash, compared on every lookup
	key       string
	tag       [32]byte
	expMillis int64 // the stored value's expiry
	// liveUntil is min(expMillis, the session's own expiry): the hit
	// path compares the clock with it alone.
	liveUntil int64
	sess      *verifier.Session
}

// newMemoTable returns a table of at least entries entries.
func newMemoTable(entries int) *memoTable {
	n := 1
	for n*memoWays < entries {
		n <<= 1
	}
	return &memoTable{sets: make([]memoSet, n), mask: uint64(n - 1)}
}

func (t *memoTable) set(h *[32]byte) *memoSet { return &t.sets[memoKey(h)&t.mask] }

// get returns the entry of the token hash h, or nil.
func (t *memoTable) get(h *[32]byte) *memoEntry {
	s := t.set(h)
	for i := range s.ways {
		if e := s.ways[i].Load(); e != nil && e.hash == *h {
			return e
		}
	}
	return nil
}

// put stores e, replacing the entry of the same token, else a free way,
// else the set's next way in turn.
func (t *memoTable) put(e *memoEntry) {
	s := t.set(&e.hash)
	for i := range s.ways {
		if p := s.ways[i].Load(); p == nil || p.hash == e.hash {
			s.ways[i].Store(e)
			return
		}
	}
	s.ways[s.next.Add(1)%memoWays].Store(e)
}

// del removes the entries of the token hash h.
func (t *memoTable) del(h *[32]byte) {
	s := t.set(h)
	for i := range s.ways {
		if p := s.ways[i].Load(); p != nil && p.hash == *h {
			s.ways[i].CompareAndSwap(p, nil)
		}
	}
}

// clear removes every entry.
func (t *memoTable) clear() {
	for i := range t.sets {
		for j := range t.sets[i].ways {
			t.sets[i].ways[j].Store(nil)
		}
	}
}

// wallClock returns the wall clock in Unix milliseconds with one clock read
// (the monotonic one) instead of time.Now's two: it adds the monotonic time
// elapsed since a base taken with time.Now, and takes a new base every
// second, so that it follows steps of the wall clock within a second. On
// virtual machines each clock read can cost tens of nanoseconds, and a
// cache hit reads the clock once.
type wallClock struct {
	base atomic.Pointer[clockBase]
}

type clockBase struct {
	t  time.Time // with its monotonic reading
	ms int64     // t.UnixMilli()
}

func (c *wallClock) nowMillis() int64 {
	if b := c.base.Load(); b != nil {
		if d := time.Since(b.t); d >= 0 && d < time.Second {
			return b.ms + d.Milliseconds()
		}
	}
	t := time.Now()
	c.base.Store(&clockBase{t: t, ms: t.UnixMilli()})
	return t.UnixMilli()
}

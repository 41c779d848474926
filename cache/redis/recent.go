package redis

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxRecent bounds the recently-written set. When it would grow beyond, the
// set is replaced by "every key was written recently" for one window.
const maxRecent = 1 << 16

// recentWrites remembers keys this process wrote (Set, Add, Delete) in the
// last window. Reads of those keys bypass the client-side cache, because the
// server's invalidation push for our own write can arrive after the write's
// reply (redis/rueidis#534): without the bypass a Get right after a Delete
// can return the deleted value.
type recentWrites struct {
	window time.Duration

	n        atomic.Int64 // len(m), read without the lock on the hot path
	allUntil atomic.Int64 // unix nanos; bypass for every key until then

	mu        sync.RWMutex
	m         map[string]int64 // key -> unix nanos until which it bypasses
	nextSweep int64
}

func newRecentWrites(window time.Duration) *recentWrites {
	return &recentWrites{window: window, m: make(map[string]int64)}
}

func (r *recentWrites) add(key string) {
	now := time.Now().UnixNano()
	until := now + int64(r.window)
	r.mu.Lock()
	defer r.mu.Unlock()
	if now >= r.nextSweep || len(r.m) >= maxRecent {
		for k, u := range r.m {
			if u <= now {
				delete(r.m, k)
			}
		}
		r.nextSweep = now + int64(r.window)
	}
	if len(r.m) >= maxRecent {
		// Too many writes to track one by one: bypass for all keys.
		r.allUntil.Store(until)
		clear(r.m)
	} else {
		r.m[key] = until
	}
	r.n.Store(int64(len(r.m)))
}

func (r *recentWrites) contains(key string) bool {
	if r.allUntil.Load() > 0 && time.Now().UnixNano() < r.allUntil.Load() {
		return true
	}
	if r.n.Load() == 0 {
		return false
	}
	r.mu.RLock()
	u, ok := r.m[key]
	r.mu.RUnlock()
	return ok && time.Now().UnixNano() < u
}

package redis

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
	stateClosed int32 = iota
	stateOpen
)

// breaker is a consecutive-failure circuit breaker. While closed, allow is
// a single atomic load. After threshold consecutive failures it opens: calls
// fail fast for cooldown, then one probe call is let through (half-open);
// its success closes the breaker, its failure re-opens it for cooldown.
type breaker struct {
	threshold int
	cooldown  time.Duration

	state    atomic.Int32
	failures atomic.Int64 // consecutive failures

	mu        sync.Mutex
	openUntil time.Time
	probing   bool

	// onChange, if set, is called (under mu) when the breaker opens
	// (true) or closes again (false).
	onChange func(open bool)
}

func (b *breaker) changed(open bool) {
	if b.onChange != nil {
		b.onChange(open)
	}
}

type outcome int

const (
	success outcome = iota
	failure
	neutral // the call says nothing about the backend (caller gave up)
)

// allow reports whether a call may go to the backend, and whether it is the
// half-open probe.
func (b *breaker) allow() (ok, probe bool) {
	if b.state.Load() == stateClosed {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() == stateClosed {
		return true, false
	}
	if b.probing || time.Now().Before(b.openUntil) {
		return false, false
	}
	b.probing = true
	return true, true
}

// done records the outcome of a call that allow let through.
func (b *breaker) done(o outcome, probe bool) {
	if !probe {
		switch o {
		case success:
			if b.failures.Load() != 0 {
				b.failures.Store(0)
			}
		case failure:
			if b.failures.Add(1) >= int64(b.threshold) && b.state.Load() == stateClosed {
				b.mu.Lock()
				if b.state.Load() == stateClosed { // not opened meanwhile
					b.openUntil = time.Now().Add(b.cooldown)
					b.state.Store(stateOpen)
					b.changed(true)
				}
				b.mu.Unlock()
			}
		}
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	switch o {
	case success:
		b.failures.Store(0)
		if b.state.Load() != stateClosed {
			b.state.Store(stateClosed)
			b.changed(false)
		}
	case failure:
		b.openUntil = time.Now().Add(b.cooldown)
	}
}

func (b *breaker) open() bool { return b.state.Load() == stateOpen }

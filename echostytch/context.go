package echostytch

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"unsafe"

	"github.com/labstack/echo/v4"

	"github.com/ayzauth/ayzauth/verifier"
)

// Where the session of a request lives.
//
// By default the middleware keeps it in an in-process table keyed by the
// request's echo.Context, from before SuccessHandler until the middleware's
// next handler returns (also when it panics), so that storing it allocates
// nothing; Member, MustMember and the requirements read it there. With
// Config.SessionInContext it is also put on the request's context (one
// allocation: a copy of the *http.Request), where FromContext finds it.

// slot is what the table holds for a request in flight: the verified
// session (nil for an anonymous request under Optional) and the middleware
// that stored it, whose ErrorHandler requirements use.
type slot struct {
	session *verifier.Session
	state   *state
}

const tableShards = 64 // a power of two

// tableShard is one lock of the table and its entries: a few inline (a
// linear scan of them is cheaper than a map), the rest in a map. Requests in
// flight spread over the shards by their context's address.
type tableShard struct {
	mu   sync.Mutex
	ents [6]tableEntry
	more map[uintptr]slot // made on first overflow
}

type tableEntry struct {
	id uintptr // 0: free
	slot
}

var table [tableShards]tableShard

// contextID identifies an echo.Context in flight by the data word of the
// interface value (the context's address; Echo's contexts are pointers).
// Entries are removed before the middleware returns, while the context is
// alive, so an address is never confused with a later object's.
func contextID(c echo.Context) uintptr {
	return (*[2]uintptr)(unsafe.Pointer(&c))[1]
}

func shardOf(id uintptr) *tableShard {
	return &table[(uint64(id)*0x9E3779B97F4A7C15)>>(64-6)]
}

// enter stores sl for c and returns what it replaced (an outer middleware
// of this package on the same request), for leave.
func enter(id uintptr, sl slot) (prev slot, had bool) {
	sh := shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	free := -1
	for i := range sh.ents {
		switch sh.ents[i].id {
		case id:
			prev = sh.ents[i].slot
			sh.ents[i].slot = sl
			return prev, true
		case 0:
			if free < 0 {
				free = i
			}
		}
	}
	if prev, had = sh.more[id]; had {
		sh.more[id] = sl
		return prev, true
	}
	if free >= 0 {
		sh.ents[free] = tableEntry{id: id, slot: sl}
		return slot{}, false
	}
	if sh.more == nil {
		sh.more = make(map[uintptr]slot)
	}
	sh.more[id] = sl
	return slot{}, false
}

// leave restores what enter replaced.
func leave(id uintptr, prev slot, had bool) {
	sh := shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i := range sh.ents {
		if sh.ents[i].id == id {
			if had {
				sh.ents[i].slot = prev
			} else {
				sh.ents[i] = tableEntry{}
			}
			return
		}
	}
	if had {
		sh.more[id] = prev
	} else {
		delete(sh.more, id)
	}
}

// get returns what is stored for id.
func get(id uintptr) (slot, bool) {
	sh := shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i := range sh.ents {
		if sh.ents[i].id == id {
			return sh.ents[i].slot, true
		}
	}
	sl, ok := sh.more[id]
	return sl, ok
}

// lookupEcho returns what the middleware stored for the request of c: from
// the table, else from the request's context (Config.SessionInContext,
// which also covers a later middleware that replaced c by a wrapper).
func lookupEcho(c echo.Context) (slot, bool) {
	if c == nil {
		return slot{}, false
	}
	if sl, ok := get(contextID(c)); ok {
		return sl, true
	}
	if r := c.Request(); r != nil {
		if sc := lookup(r.Context()); sc != nil {
			return slot{session: sc.session, state: sc.state}, true
		}
	}
	return slot{}, false
}

// sessionKey is the context key of the *sessionCtx node (unexported type:
// no other package can collide with it or forge it).
type sessionKey struct{}

// sessionCtx is the context node the middleware installs on the request:
// the verified session (nil for an anonymous request under Optional) and the
// middleware that stored it, whose ErrorHandler requirements use.
type sessionCtx struct {
	context.Context
	session *verifier.Session
	state   *state
}

// Value returns the node itself for sessionKey and delegates otherwise.
func (s *sessionCtx) Value(key any) any {
	if key == (sessionKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// String names the node without printing the session (fmt would otherwise
// print the member's email through the embedded fields).
func (s *sessionCtx) String() string {
	return fmt.Sprint(s.Context) + ".WithValue(echostytch session)"
}

// requestWithSession pairs the request copy and the context node so that
// storing the session costs one allocation: Request.WithContext is inlined,
// its copy stays on the stack and is copied into the pair.
type requestWithSession struct {
	req http.Request
	ctx sessionCtx
}

func withSession(r *http.Request, s *verifier.Session, st *state) *http.Request {
	p := &requestWithSession{ctx: sessionCtx{Context: r.Context(), session: s, state: st}}
	p.req = *r.WithContext(&p.ctx)
	return &p.req
}

// lookup returns the node the middleware stored on ctx, or nil.
func lookup(ctx context.Context) *sessionCtx {
	if sc, ok := ctx.(*sessionCtx); ok {
		return sc // fast path: nothing was layered on top of ours
	}
	sc, _ := ctx.Value(sessionKey{}).(*sessionCtx)
	return sc
}

// FromContext returns the session the middleware verified for the request
// whose context is ctx (or a context derived from it), so that code below
// the handler, which only has a context.Context, can read it. It needs
// Config.SessionInContext (the session is put on the request's context only
// then: it costs an allocation per request). It reports false when there is
// none: the option is off, the middleware did not run or was skipped, or
// the request is anonymous under Optional.
func FromContext(ctx context.Context) (*verifier.Session, bool) {
	if ctx == nil {
		return nil, false
	}
	if sc := lookup(ctx); sc != nil && sc.session != nil {
		return sc.session, true
	}
	return nil, false
}

// Member returns the session the middleware verified for this request. It
// reports false when there is none: the middleware did not run or was
// skipped, or the request is anonymous under Optional. The session may be
// shared with other requests: treat it as read-only.
//
// Member finds the session by c, until the middleware returns: it keeps
// working when later middleware replaces the request or derives a new
// context. If later middleware replaces c by a wrapper, Member needs
// Config.SessionInContext (it then reads the request's context). Do not
// call it after the handler has returned (Echo reuses c).
func Member(c echo.Context) (*verifier.Session, bool) {
	if sl, ok := lookupEcho(c); ok && sl.session != nil {
		return sl.session, true
	}
	return nil, false
}

// MustMember returns the session the middleware verified for this request.
// It panics if there is none, which is a programming error on a route where
// the middleware (without Optional) runs and is not skipped: the middleware
// answers 401 before calling the handler. Use Member on optional or skipped
// routes.
func MustMember(c echo.Context) *verifier.Session {
	s, ok := Member(c)
	if !ok {
		panic("echostytch: MustMember called without a verified session (middleware not run, skipped or optional)")
	}
	return s
}

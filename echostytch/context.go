package echostytch

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ayzauth/ayzauth/verifier"
)

// Where the session of a request lives.
//
// The middleware stores the session with Echo's c.Set, as Echo's own
// middleware does (Echo allocates the context's store once per request;
// storing pointers in it allocates nothing of ours); Member, MustMember and
// the requirements read it with c.Get, so custom echo.Context wrappers that
// embed the original keep working. With Config.SessionInContext it is also
// put on the request's context (one allocation: a copy of the
// *http.Request), where FromContext finds it.

// slot is what a request carries: the verified session (nil for an
// anonymous request under Optional) and the middleware that stored it,
// whose ErrorHandler requirements use.
type slot struct {
	session *verifier.Session
	state   *state
}

// Keys under which the middleware stores its slot with c.Set. They are
// long and namespaced so that an application's own keys cannot collide.
const (
	echoKeySession = "github.com/ayzauth/ayzauth/echostytch.session"
	echoKeyState   = "github.com/ayzauth/ayzauth/echostytch.state"
)

// enter stores sl on c and returns what it replaced (an outer middleware of
// this package on the same request), for leave.
func enter(c echo.Context, sl slot) (prev slot, had bool) {
	prev, had = fromEcho(c)
	c.Set(echoKeySession, sl.session)
	c.Set(echoKeyState, sl.state)
	return prev, had
}

// leave restores what enter replaced once the inner handlers have returned,
// so that an outer middleware of this package sees its own slot again.
func leave(c echo.Context, prev slot, had bool) {
	if had {
		c.Set(echoKeySession, prev.session)
		c.Set(echoKeyState, prev.state)
	}
}

func fromEcho(c echo.Context) (slot, bool) {
	st, ok := c.Get(echoKeyState).(*state)
	if !ok || st == nil {
		return slot{}, false
	}
	s, _ := c.Get(echoKeySession).(*verifier.Session)
	return slot{session: s, state: st}, true
}

// lookupEcho returns what the middleware stored for the request of c: with
// c.Get, else from the request's context (Config.SessionInContext).
func lookupEcho(c echo.Context) (slot, bool) {
	if c == nil {
		return slot{}, false
	}
	if sl, ok := fromEcho(c); ok {
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
// Member reads the session with c.Get: it keeps working when later
// middleware replaces the request, derives a new context or wraps c in a
// custom context that embeds it. Do not call it after the handler has
// returned (Echo reuses c).
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

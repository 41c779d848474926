package echostytch

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ayzauth/ayzauth/verifier"
)

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
// the handler, which only has a context.Context, can read it. It reports
// false when there is none: the middleware did not run or was skipped, or
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
// The session lives in the request's context, so Member keeps working when
// later middleware derives a new context (context.WithTimeout, ...), but not
// if a handler replaces the request with one whose context does not derive
// from it.
func Member(c echo.Context) (*verifier.Session, bool) {
	return FromContext(c.Request().Context())
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

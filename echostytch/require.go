package echostytch

import (
	"log/slog"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
)

// Requirements are what a route demands of the verified session, beyond
// being authenticated. Empty lists are not checked.
type Requirements struct {
	// Claims must be top-level keys of the session's custom claims. A
	// claim is present whatever its value, false included.
	Claims []string
	// Roles must all be among the session's roles.
	Roles []string
	// Factors must all be satisfied by the session's authentication
	// factors, matched by type or delivery method (see
	// verifier.Session.HasFactor); "mfa" is satisfied by an otp, totp or
	// recovery_codes factor.
	Factors []string
}

// Require returns route middleware, to run after the middleware returned by
// New, that checks the session against r. It is the Go form of the Python
// original's create_auth_dependency.
//
// Checks run in this order, and the first failure answers: a session must be
// present (else 401, as if no token had been sent: the request was skipped
// or is anonymous under Optional), then claims (403
// insufficient_permissions, "Missing required claims: [a, b]"), then roles
// (403 insufficient_permissions, "Missing required roles: [...]"), then
// factors (403 insufficient_authentication, "Missing required
// authentication factors: [...]"). Lists of several names are written
// "[a, b]", in the order required.
//
// Failures go through the ErrorHandler of the middleware that handled the
// request (found by the echo.Context), or WriteError with the
// default realm when no middleware ran.
func Require(r Requirements) echo.MiddlewareFunc {
	// One pointer in the closure: Echo v4 builds route middleware closures
	// on every request, so a small closure is a cheaper allocation.
	rq := &Requirements{Claims: slices.Clone(r.Claims), Roles: slices.Clone(r.Roles), Factors: slices.Clone(r.Factors)}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return rq.check(c, next) }
	}
}

func (rq *Requirements) check(c echo.Context, next echo.HandlerFunc) error {
	sc, _ := lookupEcho(c)
	if sc.session == nil {
		return requirementFailed(c, sc, missingTokenError())
	}
	s := sc.session
	if missing := s.MissingClaims(rq.Claims...); len(missing) > 0 {
		return requirementFailed(c, sc, claimsError(missing))
	}
	if missing := missingRoles(s.Roles, rq.Roles); len(missing) > 0 {
		return requirementFailed(c, sc, rolesError(missing))
	}
	if missing := s.MissingFactors(rq.Factors...); len(missing) > 0 {
		return requirementFailed(c, sc, factorsError(missing))
	}
	return next(c)
}

// RequireClaims is Require(Requirements{Claims: claims}).
func RequireClaims(claims ...string) echo.MiddlewareFunc {
	return Require(Requirements{Claims: claims})
}

// RequireFactors is Require(Requirements{Factors: factors}).
func RequireFactors(factors ...string) echo.MiddlewareFunc {
	return Require(Requirements{Factors: factors})
}

// RequireRoles is Require(Requirements{Roles: roles}).
func RequireRoles(roles ...string) echo.MiddlewareFunc {
	return Require(Requirements{Roles: roles})
}

func missingRoles(have, required []string) []string {
	var missing []string
	for _, r := range required {
		if !slices.Contains(have, r) {
			missing = append(missing, r)
		}
	}
	return missing
}

func requirementFailed(c echo.Context, sc slot, e *Error) error {
	st := sc.state
	l := slog.Default()
	if st != nil {
		l = st.logger()
	}
	ctx := c.Request().Context()
	// A requirement that cannot be checked (the RBAC policy unavailable) is
	// an outage, logged like the middleware's own.
	level := failureLevel(ctx, e)
	if l.Enabled(ctx, level) {
		attrs := []slog.Attr{slog.Int("status", e.Status), slog.String("reason", e.Message), slog.String("route", c.Path())}
		if e.Status >= http.StatusInternalServerError && e.Err != nil {
			attrs = append(attrs, slog.String("error", e.Err.Error()))
		}
		if st != nil && st.cfg.LogSensitiveData && sc.session != nil {
			attrs = append(attrs, slog.String("member_id", sc.session.MemberID))
		}
		l.LogAttrs(ctx, level, "echostytch: requirement not met", attrs...)
	}
	if st != nil {
		// The middleware counted the request ok; count what the
		// requirement answered instead of letting it through (a 401, for
		// a request without a session, was counted by the middleware).
		if e.Status != http.StatusUnauthorized {
			st.tel.Count(ctx, outcomeOf(e, false))
		}
		return st.errorHandler(c, e)
	}
	return WriteError(c, e, "")
}

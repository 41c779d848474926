package echostytch

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/ayzauth/ayzauth/verifier"
)

// Sentinel errors of RBAC and organization checks. The *Error of a denial
// has Kind ErrInsufficientPermissions, like a missing claim or role, and
// wraps one of these (Error.Err), so errors.Is matches both.
var (
	// ErrPermissionDenied: the session's roles do not grant the action on
	// the resource (RequirePermission). 403.
	ErrPermissionDenied = errors.New("echostytch: permission denied")
	// ErrOrganizationMismatch: the session belongs to another organization
	// than the one the route names (RequireOrganization). 403.
	ErrOrganizationMismatch = errors.New("echostytch: organization mismatch")
)

// maxOrgInMessage bounds how much of a route's organization parameter an
// error message repeats.
const maxOrgInMessage = 64

// permissionCheck is what RequirePermission's closure holds (one pointer:
// Echo v4 builds route middleware closures on every request).
type permissionCheck struct {
	policy           *verifier.PolicyCache
	resource, action string
	name             string // "resource:action"
}

// RequirePermission returns route middleware, to run after the middleware
// returned by New, that lets the request through only if the session's
// roles grant action on resource under the project's RBAC policy, as
// Stytch's SDKs evaluate it locally (see verifier.PolicyCache.Allowed): a
// role among the session's roles holds a permission on exactly resource
// (no wildcard on resources) whose actions include action or "*"; roles the
// policy does not define grant nothing. The check makes no Stytch call once
// the policy is loaded.
//
// The check is always scoped to the session's own organization: Stytch
// assigns a member's roles within the member's organization, so the grant
// holds there only. When the route names an organization (a tenant in the
// path), put RequireOrganization before RequirePermission, so that an
// editor of one organization cannot write to another:
//
//	g := e.Group("/orgs/:org", echostytch.New(cfg), echostytch.RequireOrganization("org"))
//	g.POST("/documents", create, echostytch.RequirePermission(policy, "documents", "write"))
//
// Answers: 401 as Require does when there is no session; 403
// insufficient_permissions / authorization, "Missing permission:
// documents:write", when the roles do not grant it (the *Error matches
// ErrInsufficientPermissions and ErrPermissionDenied, and Missing holds
// "documents:write"); 503 service_unavailable when the policy cannot be
// loaded (never an allow); 500 when policy is nil. Failures go through the
// ErrorHandler of the middleware that verified the session.
func RequirePermission(policy *verifier.PolicyCache, resource, action string) echo.MiddlewareFunc {
	pc := &permissionCheck{policy: policy, resource: resource, action: action, name: resource + ":" + action}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return pc.check(c, next) }
	}
}

func (pc *permissionCheck) check(c echo.Context, next echo.HandlerFunc) error {
	ctx := c.Request().Context()
	sc, _ := lookupEcho(c)
	if sc.session == nil {
		return requirementFailed(c, sc, missingTokenError())
	}
	if pc.policy == nil {
		return requirementFailed(c, sc, &Error{Kind: ErrMisconfigured, Status: http.StatusInternalServerError,
			Code: CodeInternalServerError, Type: TypeConfiguration, Message: msgMisconfigured,
			Err: errors.New("RequirePermission: nil policy cache")})
	}
	ok, err := pc.policy.Allowed(ctx, sc.session.Roles, pc.resource, pc.action)
	if err != nil {
		return requirementFailed(c, sc, verifyError(err))
	}
	if !ok {
		return requirementFailed(c, sc, permissionError(pc.name))
	}
	return next(c)
}

func permissionError(name string) *Error {
	return &Error{Kind: ErrInsufficientPermissions, Status: http.StatusForbidden, Code: CodeInsufficientPermissions,
		Type: TypeAuthorization, Message: "Missing permission: " + name, Missing: []string{name},
		Err: fmt.Errorf("%w: %s", ErrPermissionDenied, name)}
}

// RequireOrganization returns route middleware, to run after the middleware
// returned by New, that lets the request through only if the route
// parameter param (c.Param(param), e.g. "org" in "/orgs/:org/...") names
// the session's organization, by its ID (organization-…) or its slug. The
// comparison is exact; an empty or absent parameter matches nothing.
//
// Answers: 401 as Require does when there is no session; otherwise 403
// insufficient_permissions / authorization, "Not authorized for
// organization: acme" (the *Error matches ErrInsufficientPermissions and
// ErrOrganizationMismatch). The message repeats at most 64 characters of
// the parameter, each outside [A-Za-z0-9._~-] replaced by '?'. Failures go
// through the ErrorHandler of the middleware that verified the session.
func RequireOrganization(param string) echo.MiddlewareFunc {
	p := &param
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return checkOrganization(c, next, *p) }
	}
}

func checkOrganization(c echo.Context, next echo.HandlerFunc, param string) error {
	sc, _ := lookupEcho(c)
	if sc.session == nil {
		return requirementFailed(c, sc, missingTokenError())
	}
	s := sc.session
	org := c.Param(param)
	if org != "" && (org == s.OrganizationID || (s.OrganizationSlug != "" && org == s.OrganizationSlug)) {
		return next(c)
	}
	return requirementFailed(c, sc, organizationError(org))
}

func organizationError(org string) *Error {
	name := sanitizeOrg(org)
	return &Error{Kind: ErrInsufficientPermissions, Status: http.StatusForbidden, Code: CodeInsufficientPermissions,
		Type: TypeAuthorization, Message: "Not authorized for organization: " + name,
		Err: fmt.Errorf("%w: %s", ErrOrganizationMismatch, name)}
}

// sanitizeOrg renders a route's organization parameter for a message: at
// most maxOrgInMessage characters (then "..."), each outside the
// characters of organization IDs and slugs replaced by '?'; "(none)" when
// empty.
func sanitizeOrg(org string) string {
	if org == "" {
		return "(none)"
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(org); {
		if n == maxOrgInMessage {
			b.WriteString("...")
			break
		}
		r, size := utf8.DecodeRuneInString(org[i:])
		i += size
		n++
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '~':
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

package echostytch

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ayzauth/ayzauth/verifier"
)

// Values of the "error" field of an error body (Error.Code).
const (
	CodeAuthenticationFailed       = "authentication_failed"
	CodeServiceUnavailable         = "service_unavailable"
	CodeInternalServerError        = "internal_server_error"
	CodeInsufficientPermissions    = "insufficient_permissions"
	CodeInsufficientAuthentication = "insufficient_authentication"
)

// Values of the "type" field of an error body (Error.Type).
const (
	TypeTokenExtraction   = "token_extraction"
	TypeTokenVerification = "token_verification"
	TypeStytchAPI         = "stytch_api"
	TypeConfiguration     = "configuration"
	TypeUnknown           = "unknown"
	TypeAuthorization     = "authorization"
)

// Fixed messages of the error contract.
const (
	msgTokenMissing  = "Authorization header is required"
	msgTokenInvalid  = "Invalid or expired session token"
	msgUnavailable   = "Authentication service temporarily unavailable"
	msgMisconfigured = "Authentication service misconfigured"
	msgInternal      = "An unexpected error occurred during authentication"
	msgForbidden     = "Not authorized for this resource"
)

// Sentinel errors. Every *Error produced by this package matches exactly one
// of them with errors.Is (through Error.Kind); the verifier error that caused
// it, if any, stays matchable too (errors.Is(err, verifier.ErrUnavailable)).
var (
	// ErrTokenMissing: no token in the Authorization header or the cookies
	// (or a requirement ran on a request without a session). 401.
	ErrTokenMissing = errors.New("echostytch: token missing")
	// ErrTokenMalformed: the Authorization header or the token has the wrong
	// shape. Nothing was sent upstream. 401.
	ErrTokenMalformed = errors.New("echostytch: token malformed")
	// ErrTokenInvalid: the token is well formed but no live session answers
	// to it. 401.
	ErrTokenInvalid = errors.New("echostytch: invalid or expired session token")
	// ErrServiceUnavailable: the authentication service could not answer. 503.
	ErrServiceUnavailable = errors.New("echostytch: authentication service unavailable")
	// ErrMisconfigured: the authentication service rejected our credentials
	// or is configured wrongly. 500.
	ErrMisconfigured = errors.New("echostytch: authentication service misconfigured")
	// ErrInternal: any other verifier failure. 500.
	ErrInternal = errors.New("echostytch: unexpected authentication error")
	// ErrInsufficientPermissions: required claims, roles, permissions or
	// organization are missing, or Stytch refused an authorization check
	// (verifier.ErrForbidden). 403.
	ErrInsufficientPermissions = errors.New("echostytch: insufficient permissions")
	// ErrInsufficientAuthentication: required authentication factors are
	// missing. 403.
	ErrInsufficientAuthentication = errors.New("echostytch: insufficient authentication")
)

// Error is an authentication or authorization failure, as handed to
// Config.ErrorHandler. Its fields are the HTTP answer of the error contract:
// the default handler writes Status and the JSON body
// {"error": Code, "message": Message, "type": Type}.
//
// Use errors.Is with the package's sentinels (ErrTokenMissing, ...) or with
// the verifier's (verifier.ErrUnavailable, ...), and errors.As with
// *Error, *verifier.APIError or *verifier.TokenError.
type Error struct {
	// Kind is one of the package's sentinel errors.
	Kind error
	// Status is the HTTP status: 401, 403, 500 or 503.
	Status int
	// Code is the body's "error" field, e.g. "authentication_failed".
	Code string
	// Type is the body's "type" field, e.g. "token_extraction".
	Type string
	// Message is the body's "message" field. It never contains a token.
	Message string
	// Missing lists the required claims, roles or factors that the session
	// lacks (403 errors only).
	Missing []string
	// Err is the underlying error: a verifier error, or a
	// *verifier.TokenError describing a malformed header. May be nil.
	Err error
}

// Error returns a description for logs; it never contains a token.
func (e *Error) Error() string {
	s := "echostytch: " + strconv.Itoa(e.Status) + " " + e.Type + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is the error's Kind.
func (e *Error) Is(target error) bool { return target != nil && target == e.Kind }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// missingTokenError is the 401 for a request without any token.
func missingTokenError() *Error {
	return &Error{Kind: ErrTokenMissing, Status: http.StatusUnauthorized, Code: CodeAuthenticationFailed,
		Type: TypeTokenExtraction, Message: msgTokenMissing}
}

// malformedError is the 401 for a malformed header or token; reason never
// contains the token.
func malformedError(reason string, err error) *Error {
	if err == nil {
		err = &verifier.TokenError{Kind: verifier.ErrMalformedToken, Reason: reason}
	}
	return &Error{Kind: ErrTokenMalformed, Status: http.StatusUnauthorized, Code: CodeAuthenticationFailed,
		Type: TypeTokenExtraction, Message: reason, Err: err}
}

// verifyError maps an error from Verifier.Verify to the error contract.
// Errors matching context.DeadlineExceeded or context.Canceled (and no
// verifier sentinel) count as "unavailable"; verifier.ErrForbidden (Stytch
// refused an authorization check) is a 403 insufficient_permissions.
func verifyError(err error) *Error {
	switch {
	case err == nil:
		return &Error{Kind: ErrInternal, Status: http.StatusInternalServerError, Code: CodeInternalServerError,
			Type: TypeUnknown, Message: msgInternal, Err: errors.New("verifier returned neither a session nor an error")}
	case errors.Is(err, verifier.ErrMalformedToken):
		reason := "token is malformed"
		var te *verifier.TokenError
		if errors.As(err, &te) && te.Reason != "" {
			reason = te.Reason
		}
		return malformedError(reason, err)
	case errors.Is(err, verifier.ErrInvalidSession):
		return &Error{Kind: ErrTokenInvalid, Status: http.StatusUnauthorized, Code: CodeAuthenticationFailed,
			Type: TypeTokenVerification, Message: msgTokenInvalid, Err: err}
	case errors.Is(err, verifier.ErrForbidden):
		// Stytch refused an authorization check made with the call
		// (403 session_authorization_error, …_tenancy_error): the session
		// is fine, access is not granted.
		return &Error{Kind: ErrInsufficientPermissions, Status: http.StatusForbidden, Code: CodeInsufficientPermissions,
			Type: TypeAuthorization, Message: msgForbidden, Err: err}
	case errors.Is(err, verifier.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Error{Kind: ErrServiceUnavailable, Status: http.StatusServiceUnavailable, Code: CodeServiceUnavailable,
			Type: TypeStytchAPI, Message: msgUnavailable, Err: err}
	case errors.Is(err, verifier.ErrMisconfigured):
		return &Error{Kind: ErrMisconfigured, Status: http.StatusInternalServerError, Code: CodeInternalServerError,
			Type: TypeConfiguration, Message: msgMisconfigured, Err: err}
	}
	return &Error{Kind: ErrInternal, Status: http.StatusInternalServerError, Code: CodeInternalServerError,
		Type: TypeUnknown, Message: msgInternal, Err: err}
}

// formatList renders names as "[a, b]" (a single name as "[a]").
func formatList(names []string) string { return "[" + strings.Join(names, ", ") + "]" }

func claimsError(missing []string) *Error {
	return &Error{Kind: ErrInsufficientPermissions, Status: http.StatusForbidden, Code: CodeInsufficientPermissions,
		Type: TypeAuthorization, Message: "Missing required claims: " + formatList(missing), Missing: missing}
}

func rolesError(missing []string) *Error {
	return &Error{Kind: ErrInsufficientPermissions, Status: http.StatusForbidden, Code: CodeInsufficientPermissions,
		Type: TypeAuthorization, Message: "Missing required roles: " + formatList(missing), Missing: missing}
}

func factorsError(missing []string) *Error {
	return &Error{Kind: ErrInsufficientAuthentication, Status: http.StatusForbidden, Code: CodeInsufficientAuthentication,
		Type: TypeAuthorization, Message: "Missing required authentication factors: " + formatList(missing), Missing: missing}
}

// asError returns err as an *Error, mapping foreign errors like verifier
// errors.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return verifyError(err)
}

// errorBody is the JSON body of the error contract, fields in contract order.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Type    string `json:"type"`
}

// headers is the precomputed header values of an error writer.
type headers struct {
	challenge        string // WWW-Authenticate when no token was sent
	challengeInvalid string // WWW-Authenticate otherwise
	retryAfter       string // Retry-After on 503
}

func newHeaders(realm string, retryAfter time.Duration) headers {
	secs := int64((retryAfter + time.Second - 1) / time.Second)
	secs = max(secs, 1)
	h := headers{challenge: `Bearer realm="` + realm + `"`, retryAfter: strconv.FormatInt(secs, 10)}
	h.challengeInvalid = h.challenge + `, error="invalid_token"`
	return h
}

func (h *headers) write(c echo.Context, err error) error {
	e := asError(err)
	hdr := c.Response().Header()
	switch e.Status {
	case http.StatusUnauthorized:
		if errors.Is(e, ErrTokenMissing) {
			hdr.Set(echo.HeaderWWWAuthenticate, h.challenge)
		} else {
			hdr.Set(echo.HeaderWWWAuthenticate, h.challengeInvalid)
		}
	case http.StatusServiceUnavailable:
		hdr.Set(echo.HeaderRetryAfter, h.retryAfter)
	}
	hdr.Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(e.Status, errorBody{Error: e.Code, Message: e.Message, Type: e.Type})
}

// WriteError writes err as the error contract prescribes, which is what the
// default Config.ErrorHandler does: the status, the flat JSON body
// {"error","message","type"}, `WWW-Authenticate: Bearer realm="<realm>",
// error="invalid_token"` on a 401 (without the error attribute when no
// token was sent), `Retry-After` on a 503, and `Cache-Control: no-store`.
// An error that is not an *Error is mapped like a verifier error (any
// unknown error becomes a 500). An empty realm means DefaultRealm; realm
// must not contain quotes or backslashes.
//
// A custom ErrorHandler can call it after adding headers of its own.
func WriteError(c echo.Context, err error, realm string) error {
	if realm == "" {
		realm = DefaultRealm
	}
	h := newHeaders(realm, DefaultRetryAfter)
	return h.write(c, err)
}

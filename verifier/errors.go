package verifier

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error a Verifier returns matches exactly one of
// them with errors.Is.
var (
	// ErrMalformedToken: the token's shape is wrong (bad characters, bad
	// length, not a well-formed JWT). Nothing was sent upstream. HTTP 401.
	ErrMalformedToken = errors.New("verifier: malformed token")
	// ErrInvalidSession: the token is well formed but no live session
	// answers to it (unknown, expired, revoked, bad signature, wrong issuer
	// or audience). HTTP 401.
	ErrInvalidSession = errors.New("verifier: invalid or expired session")
	// ErrUnavailable: Stytch could not give an answer (5xx, 429, network
	// error, timeout, unreadable body). HTTP 503.
	ErrUnavailable = errors.New("verifier: authentication service unavailable")
	// ErrMisconfigured: Stytch rejected our own credentials, or the verifier
	// is configured wrongly. HTTP 500.
	ErrMisconfigured = errors.New("verifier: authentication service misconfigured")
	// ErrForbidden: Stytch refused an authorization check that was part of
	// the call (403 session_authorization_error, …_tenancy_error). HTTP 403.
	ErrForbidden = errors.New("verifier: not authorized")
)

// APIError is an error answer (or a failed call) from the Stytch API. It
// matches, with errors.Is, the sentinel its Kind names.
type APIError struct {
	// Kind is ErrInvalidSession, ErrUnavailable or ErrMisconfigured.
	Kind error
	// StatusCode is the HTTP status, 0 when no answer was received.
	StatusCode int
	// ErrorType is Stytch's error_type, e.g. "session_not_found".
	ErrorType string
	// RequestID is Stytch's request_id, for support requests.
	RequestID string
	// Message is Stytch's error_message.
	Message string
	// Endpoint is the API path called, e.g. "/v1/b2b/sessions/authenticate".
	Endpoint string
	// Err is the underlying transport or decoding error, if any.
	Err error
}

func (e *APIError) Error() string {
	s := "stytch " + e.Endpoint + ": "
	if e.StatusCode != 0 {
		s += strconv.Itoa(e.StatusCode) + " "
	}
	if e.ErrorType != "" {
		s += e.ErrorType
	}
	if e.Message != "" {
		s += " (" + e.Message + ")"
	}
	if e.RequestID != "" {
		s += " request_id=" + e.RequestID
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the kind and the underlying error.
func (e *APIError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// TokenError explains why a token was rejected without a call to Stytch.
type TokenError struct {
	// Kind is ErrMalformedToken or ErrInvalidSession.
	Kind error
	// Reason is a short human-readable explanation that never contains the
	// token, e.g. "token contains invalid characters".
	Reason string
	// Err is the underlying error (e.g. from JWT parsing), if any.
	Err error
}

func (e *TokenError) Error() string {
	s := e.Kind.Error() + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the kind and the underlying error.
func (e *TokenError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

func malformed(reason string) error { return &TokenError{Kind: ErrMalformedToken, Reason: reason} }

func invalid(reason string, err error) error {
	return &TokenError{Kind: ErrInvalidSession, Reason: reason, Err: err}
}

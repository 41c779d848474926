// Package echostytch is Echo v4 middleware that authenticates requests with
// Stytch B2B session tokens and session JWTs: the Go port of the Python
// package ayz-auth (verify_auth, verify_auth_optional,
// create_auth_dependency).
//
// # Quick start
//
//	v := ... // a verifier.Verifier, e.g. the cached Stytch verifier
//	e := echo.New()
//	e.Use(echostytch.New(echostytch.Config{Verifier: v}))
//	e.GET("/protected", func(c echo.Context) error {
//		m := echostytch.MustMember(c)
//		return c.JSON(http.StatusOK, map[string]string{"message": "Hello " + m.MemberEmail})
//	})
//	e.GET("/admin", adminHandler, echostytch.RequireClaims("admin"))
//	e.GET("/sensitive", sensitiveHandler, echostytch.RequireFactors("mfa"))
//
// For optional authentication (anonymous requests continue, Member reports
// false), set Config.Optional, typically on a route group.
//
// # What a request goes through
//
//  1. Skipper, then BeforeFunc.
//  2. Token extraction, in this order: the Authorization header
//     "Bearer <token>" (scheme case-insensitive, surrounding spaces
//     tolerated); else the cookie stytch_session_jwt; else the cookie
//     stytch_session (names configurable). A present Authorization header
//     is never skipped in favour of a cookie: another scheme, an empty
//     header, "Bearer" alone, several Authorization headers, an oversize
//     header, control characters (NUL, CR, LF, tab, ...) or non-ASCII bytes
//     are all answered with a 401 token_extraction whose message says what
//     is wrong and never repeats the token.
//  3. verifier.Classify checks the token's shape (nothing is sent upstream
//     for a malformed token), then Config.Verifier verifies it.
//  4. The session is stored where Member, MustMember and the requirements
//     find it by the echo.Context, without allocating, until the next
//     handler returns; with Config.SessionInContext also on the request's
//     context (one allocation), where FromContext finds it. Then
//     SuccessHandler, then the next handler.
//
// # Errors
//
// Failures are answered with the flat JSON body {"error","message","type"}
// of the error contract (design.md §3): 401 authentication_failed
// (token_extraction or token_verification) with a WWW-Authenticate Bearer
// challenge, 503 service_unavailable (stytch_api) with Retry-After, 500
// internal_server_error (configuration or unknown), 403
// insufficient_permissions or insufficient_authentication (authorization)
// from the requirements. Config.ErrorHandler replaces the writer; it
// receives an *Error that matches the package's sentinels and the
// verifier's with errors.Is.
//
// # Configuration from the environment
//
// LoadSettings reads and validates the STYTCH_* variables (design.md §4)
// with go-envconfig. Settings print with their secrets redacted.
//
// # Logging
//
// The middleware logs with log/slog: outcomes at DEBUG, outages at WARN,
// misconfiguration at ERROR. Tokens appear only as TokenFingerprint (the
// first 8 hex characters of their SHA-256); member emails and IDs only with
// Config.LogSensitiveData; secrets never. Nothing is built for a log record
// when its level is disabled.
//
// # Metrics and traces
//
// The middleware, the caches and the Stytch client record OpenTelemetry
// metrics (requests by outcome, cache lookups by tier and result, Stytch
// calls by endpoint and status, ...) and spans (a verification on a miss,
// Stytch and Redis calls; never a cache hit) through the global providers,
// or those given with Config.MeterProvider, WithMeterProvider and
// WithTracerProvider. Without an SDK installed they cost a few no-op calls
// per request and no allocation. The README's "Observability" lists the
// names and attributes; none holds a token, an ID, an email or a secret.
package echostytch

// Package verifier turns a Stytch B2B session token or session JWT into a
// trustworthy *Session.
//
// The package has three layers:
//
//   - [Verifier], the one-method interface everything else builds on (the
//     echostytch middleware calls it; cache.NewVerifier wraps it);
//   - [Client], a small typed client for the Stytch B2B endpoints a session
//     middleware needs (authenticate, revoke, JWKS, RBAC policy), with
//     deadlines, bounded retries and typed errors;
//   - [Stytch], the production Verifier: it checks a token's shape, verifies
//     session JWTs locally against the project's JWKS (RS256 only, exact iss
//     and aud) and asks the Stytch API only when the API can still say yes.
//
// Errors are typed: use errors.Is with [ErrMalformedToken],
// [ErrInvalidSession], [ErrUnavailable] or [ErrMisconfigured], and errors.As
// with *[APIError] to read Stytch's request_id and error_type.
package verifier

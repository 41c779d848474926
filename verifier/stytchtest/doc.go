// Package stytchtest is an in-process emulator of the Stytch B2B sessions
// API, served over real HTTP on a loopback port, for tests and demos that
// must not talk to Stytch.
//
// It speaks Stytch's wire format, so any Stytch client (the official SDKs
// pointed at [Server.URL] with a custom base URI, or this module's
// verifier) can use it:
//
//	POST /v1/b2b/sessions/authenticate       authenticate a session token or session JWT
//	POST /v1/b2b/sessions/revoke             revoke by member_session_id, session_token, session_jwt or member_id
//	GET  /v1/b2b/sessions?organization_id=&member_id=   list a member's live sessions
//	GET  /v1/b2b/sessions/jwks/{project_id}  the JWKS (Basic auth optional)
//	GET  /v1/b2b/rbac/policy                 the project's RBAC policy
//	GET  /v1/b2b/rbac/organizations/{organization_id}   the org policy (no custom roles)
//
// Every endpoint but the JWKS requires HTTP Basic auth with
// [Server.ProjectID] and [Server.Secret] and answers 401
// unauthorized_credentials otherwise. Success bodies carry request_id and
// status_code; errors use Stytch's error object
// {status_code, request_id, error_type, error_message, error_url}, also for
// unknown routes (404 route_not_found) and wrong methods (405).
//
// # Typical use
//
//	srv := stytchtest.New()
//	defer srv.Close()
//	org := srv.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme", Slug: "acme"})
//	m, _ := srv.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test", Roles: []string{"stytch_admin"}})
//	sess, _ := srv.CreateSession(m.ID, stytchtest.SessionParams{})
//	// sess.Token is an opaque session token, sess.JWT a session JWT;
//	// point the code under test at srv.URL(), srv.ProjectID(), srv.Secret().
//
// # Behaviour of authenticate
//
//   - Exactly one of session_token / session_jwt: both give 400
//     too_many_session_arguments, neither 400 bad_request.
//   - A JWT must carry a valid RS256 signature by a key of the JWKS, an
//     accepted iss ("stytch.com/{project_id}" or [Server.URL]) and aud
//     containing the project ID; otherwise 400 unable_to_parse_session_jwt,
//     jwt_invalid_issuer, jwt_invalid_audience or jwt_invalid_claims. Its
//     exp is not checked: an expired JWT of a live session gets 200 and a
//     new session_jwt.
//   - Unknown, expired or revoked sessions give 404 session_not_found.
//   - session_duration_minutes (5 to 527040, else 400 bad_request) sets the
//     expiry to now + N minutes; without it the session is not extended.
//     last_accessed_at is always updated.
//   - session_custom_claims sets keys (null deletes); registered claim
//     names are ignored; "https://stytch.com/..." keys give 400
//     stytch_claims_in_custom_claims; more than 4 KB gives 400
//     custom_claims_too_large.
//   - authorization_check is evaluated against the session's roles and
//     [Server.SetPolicy]'s policy: a passing check adds
//     verdict {authorized, granting_roles}; a different organization gives
//     403 session_authorization_tenancy_error, a missing permission 403
//     session_authorization_error.
//   - The response holds session_token, a freshly minted session_jwt,
//     member_session, member and organization.
//
// Revoke with an unknown session gives 404 session_not_found, with an
// unknown member 404 member_not_found; revoking twice succeeds. The
// X-Stytch-Member-Session headers are ignored.
//
// # Time
//
// Every stored timestamp has second precision and is served as RFC 3339 in
// UTC, so API responses and JWT claims agree exactly. [WithClock] makes
// the server read time from a test clock.
//
// # Keys and JWTs
//
// JWTs are RS256 with header {alg, kid, typ: "JWT"} and Stytch's claims
// (see [Server.MintJWT]). [Server.RotateKey] adds a key that signs new JWTs
// while the old one stays in the JWKS; [Server.RetireKey] removes a key.
// [JWTOption]s build adversarial tokens (wrong issuer or audience, expired,
// not yet valid, unknown kid, foreign key, no kid, another algorithm).
//
// # Faults and counters
//
// [Server.InjectFault] makes an endpoint answer with an error status, a
// non-JSON body, a delay, a hang, or a broken connection, for a number of
// requests or until [Server.ClearFaults]. [Server.Calls] counts the
// requests each endpoint received, so tests can assert that a cache or a
// local JWT check really avoided the API.
//
// The package never contacts the network beyond its own loopback listener.
package stytchtest

package stytchtest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

func TestRevoke(t *testing.T) {
	tests := []struct {
		name string
		body func(f *fixture) map[string]any
	}{
		{"by session id", func(f *fixture) map[string]any { return map[string]any{"member_session_id": f.plainSess.ID} }},
		{"by token", func(f *fixture) map[string]any { return map[string]any{"session_token": f.plainSess.Token} }},
		{"by jwt", func(f *fixture) map[string]any { return map[string]any{"session_jwt": f.plainSess.JWT} }},
		{"by member", func(f *fixture) map[string]any { return map[string]any{"member_id": f.plain.ID} }},
		{"by go method", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			srv := f.srv
			keys, _ := fetchJWKS(t, srv)
			if tc.body == nil {
				srv.Revoke(f.plainSess.ID)
			} else {
				status, body := call(t, srv, http.MethodPost, "/v1/b2b/sessions/revoke", tc.body(f))
				requireOK(t, status, body)
				assert.Len(t, body, 2, "only request_id and status_code: %v", body)
			}
			for _, cred := range []map[string]any{
				{"session_token": f.plainSess.Token},
				{"session_jwt": f.plainSess.JWT},
			} {
				status, body := authenticate(t, srv, cred)
				requireError(t, status, body, http.StatusNotFound, "session_not_found")
			}
			// Already-minted JWTs still verify locally until exp.
			_, err := verifyLocal(srv, keys, f.plainSess.JWT, time.Now())
			require.NoError(t, err)
			got, err := srv.Session(f.plainSess.ID)
			require.NoError(t, err)
			assert.True(t, got.Revoked)

			// Other members' sessions are untouched.
			status, body := authenticate(t, srv, map[string]any{"session_token": f.adminSess.Token})
			requireOK(t, status, body)

			// Revoking again is fine.
			status, body = call(t, srv, http.MethodPost, "/v1/b2b/sessions/revoke", map[string]any{"member_session_id": f.plainSess.ID})
			requireOK(t, status, body)
		})
	}

	t.Run("by member revokes all of the member's sessions", func(t *testing.T) {
		f := newFixture(t)
		second, err := f.srv.CreateSession(f.plain.ID, stytchtest.SessionParams{})
		require.NoError(t, err)
		status, body := call(t, f.srv, http.MethodPost, "/v1/b2b/sessions/revoke", map[string]any{"member_id": f.plain.ID})
		requireOK(t, status, body)
		for _, tok := range []string{f.plainSess.Token, second.Token} {
			status, body := authenticate(t, f.srv, map[string]any{"session_token": tok})
			requireError(t, status, body, http.StatusNotFound, "session_not_found")
		}
	})

	t.Run("errors", func(t *testing.T) {
		f := newFixture(t)
		foreign, err := f.srv.MintJWT(f.plainSess.ID, stytchtest.WithSigningKey(foreignKey()))
		require.NoError(t, err)
		tests := []struct {
			name    string
			body    any
			status  int
			errType string
		}{
			{"none", map[string]any{}, 400, "bad_request"},
			{"not json", "nope", 400, "bad_request"},
			{"two", map[string]any{"member_session_id": f.plainSess.ID, "session_token": f.plainSess.Token}, 400, "too_many_session_revoke_arguments"},
			{"unknown session", map[string]any{"member_session_id": "member-session-test-nope"}, 404, "session_not_found"},
			{"unknown token", map[string]any{"session_token": "nope"}, 404, "session_not_found"},
			{"unknown member", map[string]any{"member_id": "member-test-nope"}, 404, "member_not_found"},
			{"bad jwt", map[string]any{"session_jwt": foreign}, 400, "unable_to_parse_session_jwt"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				status, body := call(t, f.srv, http.MethodPost, "/v1/b2b/sessions/revoke", tc.body)
				requireError(t, status, body, tc.status, tc.errType)
			})
		}
		status, body := authenticate(t, f.srv, map[string]any{"session_token": f.plainSess.Token})
		requireOK(t, status, body)
	})
}

func TestListSessions(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, stytchtest.WithClock(clock.Now))
	srv := f.srv
	clock.Advance(time.Minute)
	second, err := srv.CreateSession(f.plain.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	revoked, err := srv.CreateSession(f.plain.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	srv.Revoke(revoked.ID)
	_, err = srv.CreateSession(f.plain.ID, stytchtest.SessionParams{ExpiresAt: clock.Now().Add(-time.Second)})
	require.NoError(t, err)

	path := "/v1/b2b/sessions?organization_id=" + f.org.ID + "&member_id=" + f.plain.ID
	status, body := call(t, srv, http.MethodGet, path, nil)
	requireOK(t, status, body)
	list := body["member_sessions"].([]any)
	require.Len(t, list, 2)
	assert.Equal(t, f.plainSess.ID, list[0].(map[string]any)["member_session_id"])
	assert.Equal(t, second.ID, list[1].(map[string]any)["member_session_id"])
	assert.Equal(t, f.plain.ID, list[0].(map[string]any)["member_id"])

	other := srv.CreateOrganization(stytchtest.OrganizationParams{Name: "Other"})
	lonely, err := srv.CreateMember(other.ID, stytchtest.MemberParams{Email: "l@o.test"})
	require.NoError(t, err)
	status, body = call(t, srv, http.MethodGet, "/v1/b2b/sessions?organization_id="+other.ID+"&member_id="+lonely.ID, nil)
	requireOK(t, status, body)
	assert.Equal(t, []any{}, body["member_sessions"])

	tests := []struct {
		name, query string
		status      int
		errType     string
	}{
		{"no params", "", 400, "bad_request"},
		{"no member", "?organization_id=" + f.org.ID, 400, "bad_request"},
		{"no org", "?member_id=" + f.plain.ID, 400, "bad_request"},
		{"unknown org", "?organization_id=organization-test-nope&member_id=" + f.plain.ID, 404, "organization_not_found"},
		{"unknown member", "?organization_id=" + f.org.ID + "&member_id=member-test-nope", 404, "member_not_found"},
		{"member of another org", "?organization_id=" + other.ID + "&member_id=" + f.plain.ID, 404, "member_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, srv, http.MethodGet, "/v1/b2b/sessions"+tc.query, nil)
			requireError(t, status, body, tc.status, tc.errType)
		})
	}
}

func TestPolicyEndpoints(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	status, body := call(t, srv, http.MethodGet, "/v1/b2b/rbac/policy", nil)
	requireOK(t, status, body)
	policy := body["policy"].(map[string]any)
	assert.Equal(t, []any{}, policy["scopes"])
	var roleIDs []any
	for _, r := range policy["roles"].([]any) {
		role := r.(map[string]any)
		roleIDs = append(roleIDs, role["role_id"])
		assert.Contains(t, role, "description")
		assert.NotEmpty(t, role["permissions"])
	}
	assert.Equal(t, []any{"stytch_member", "stytch_admin"}, roleIDs)
	assert.NotEmpty(t, policy["resources"])

	srv.SetPolicy(stytchtest.Policy{
		Roles:     []stytchtest.Role{{ID: "editor", Description: "Edits", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read", "write"}}}}},
		Resources: []stytchtest.Resource{{ID: "documents", Actions: []string{"read", "write", "delete"}}},
	})
	status, body = call(t, srv, http.MethodGet, "/v1/b2b/rbac/policy", nil)
	requireOK(t, status, body)
	assert.Equal(t, map[string]any{
		"roles": []any{map[string]any{"role_id": "editor", "description": "Edits", "permissions": []any{
			map[string]any{"resource_id": "documents", "actions": []any{"read", "write"}},
		}}},
		"resources": []any{map[string]any{"resource_id": "documents", "description": "", "actions": []any{"read", "write", "delete"}}},
		"scopes":    []any{},
	}, body["policy"])
	assert.Equal(t, "editor", srv.Policy().Roles[0].ID)

	status, body = call(t, srv, http.MethodGet, "/v1/b2b/rbac/organizations/"+f.org.ID, nil)
	requireOK(t, status, body)
	assert.Equal(t, map[string]any{"roles": []any{}}, body["org_policy"])
}

func TestAuthorizationCheck(t *testing.T) {
	p := stytchtest.DefaultPolicy()
	p.Roles = append(p.Roles,
		stytchtest.Role{ID: "editor", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read", "write"}}}},
		stytchtest.Role{ID: "superuser", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"*"}}}},
	)
	f := newFixture(t, stytchtest.WithPolicy(p))
	srv := f.srv
	editor, err := srv.CreateSession(f.plain.ID, stytchtest.SessionParams{Roles: []string{"stytch_member", "editor", "superuser"}})
	require.NoError(t, err)
	other := srv.CreateOrganization(stytchtest.OrganizationParams{Name: "Other"})

	check := func(org, res, action string) map[string]any {
		return map[string]any{"organization_id": org, "resource_id": res, "action": action}
	}
	tests := []struct {
		name     string
		token    string
		check    map[string]any
		status   int
		errType  string
		granting []any
	}{
		{"admin manages members", f.adminSess.Token, check(f.org.ID, "stytch.member", "delete"), 200, "", []any{"stytch_admin"}},
		{"member self", f.plainSess.Token, check(f.org.ID, "stytch.self", "update.info.name"), 200, "", []any{"stytch_member"}},
		{"member cannot manage members", f.plainSess.Token, check(f.org.ID, "stytch.member", "delete"), 403, "session_authorization_error", nil},
		{"several granting roles", editor.Token, check(f.org.ID, "documents", "read"), 200, "", []any{"editor", "superuser"}},
		{"wildcard action", editor.Token, check(f.org.ID, "documents", "delete"), 200, "", []any{"superuser"}},
		{"no resource wildcard", editor.Token, check(f.org.ID, "documents.sub", "read"), 403, "session_authorization_error", nil},
		{"unknown resource", f.adminSess.Token, check(f.org.ID, "documents", "read"), 403, "session_authorization_error", nil},
		{"other org", f.adminSess.Token, check(other.ID, "stytch.member", "delete"), 403, "session_authorization_tenancy_error", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := authenticate(t, srv, map[string]any{"session_token": tc.token, "authorization_check": tc.check})
			if tc.errType != "" {
				requireError(t, status, body, tc.status, tc.errType)
				return
			}
			requireOK(t, status, body)
			assert.Equal(t, map[string]any{"authorized": true, "granting_roles": tc.granting}, body["verdict"])
		})
	}
}

func TestCustomClaimsUpdate(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	sess, err := srv.CreateSession(f.plain.ID, stytchtest.SessionParams{CustomClaims: map[string]any{"keep": 1, "drop": true}})
	require.NoError(t, err)

	status, body := authenticate(t, srv, map[string]any{
		"session_token":         sess.Token,
		"session_custom_claims": map[string]any{"drop": nil, "new": "v", "sub": "ignored", "https://app.example/x": []any{1}},
	})
	requireOK(t, status, body)
	want := map[string]any{"keep": float64(1), "new": "v", "https://app.example/x": []any{float64(1)}}
	assert.Equal(t, want, body["member_session"].(map[string]any)["custom_claims"])

	keys, _ := fetchJWKS(t, srv)
	claims, err := verifyLocal(srv, keys, body["session_jwt"].(string), time.Now())
	require.NoError(t, err)
	assert.Equal(t, float64(1), claims["keep"])
	assert.Equal(t, "v", claims["new"])
	assert.NotContains(t, claims, "drop")
	assert.Equal(t, f.plain.ID, claims["sub"], "reserved names are ignored")
}

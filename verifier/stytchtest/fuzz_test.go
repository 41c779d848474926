package stytchtest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// FuzzRequests sends arbitrary bodies to the POST endpoints: the server
// must always answer with a well-formed Stytch body and never a 5xx.
func FuzzRequests(f *testing.F) {
	srv := stytchtest.New(stytchtest.WithKey(testKey()))
	defer srv.Close()
	org := srv.CreateOrganization(stytchtest.OrganizationParams{Name: "Fuzz"})
	m, err := srv.CreateMember(org.ID, stytchtest.MemberParams{Email: "f@fuzz.test", Roles: []string{"stytch_admin"}})
	if err != nil {
		f.Fatal(err)
	}
	sess, err := srv.CreateSession(m.ID, stytchtest.SessionParams{})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"session_token":` + jsonString(sess.Token) + `}`,
		`{"session_jwt":` + jsonString(sess.JWT) + `,"session_duration_minutes":60}`,
		`{"session_token":` + jsonString(sess.Token) + `,"session_custom_claims":{"a":null,"b":{"c":[1,2]}}}`,
		`{"session_token":` + jsonString(sess.Token) + `,"authorization_check":{"organization_id":` + jsonString(org.ID) + `,"resource_id":"stytch.member","action":"*"}}`,
		`{"session_jwt":"eyJhbGciOiJub25lIn0.e30."}`, `{"session_duration_minutes":-1}`, `{"member_id":` + jsonString(m.ID) + `}`,
		`{"session_custom_claims":{"https://stytch.com/session":1},"session_token":"x"}`,
		"{\"session_token\":\"\xff\xfe\"}",
	} {
		f.Add(false, seed)
		f.Add(true, seed)
	}
	f.Fuzz(func(t *testing.T, revoke bool, body string) {
		path := "/v1/b2b/sessions/authenticate"
		if revoke {
			path = "/v1/b2b/sessions/revoke"
		}
		status, raw := callRaw(t, srv, http.MethodPost, path, body)
		if status >= 500 {
			t.Fatalf("status %d for %q: %s", status, body, raw)
		}
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("non-JSON body for %q: %s", body, raw)
		}
		if out["status_code"] != float64(status) || out["request_id"] == nil {
			t.Fatalf("malformed body for %q: %s", body, raw)
		}
		if status != http.StatusOK && out["error_type"] == nil {
			t.Fatalf("error without error_type for %q: %s", body, raw)
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

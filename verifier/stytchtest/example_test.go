package stytchtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// whoAmI is the kind of handler an application tests against the
// emulator: it authenticates the stytch_session cookie with the Stytch API
// at baseURL and greets the member.
func whoAmI(client *http.Client, baseURL, projectID, secret string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cookie, err := r.Cookie("stytch_session")
		if err != nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		body, _ := json.Marshal(map[string]any{"session_token": cookie.Value})
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost,
			baseURL+"/v1/b2b/sessions/authenticate", bytes.NewReader(body))
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(projectID, secret)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, "stytch unavailable", http.StatusServiceUnavailable)
			return
		}
		defer resp.Body.Close()
		var out struct {
			ErrorType    string                `json:"error_type"`
			Member       struct{ Name string } `json:"member"`
			Organization struct {
				Name string `json:"organization_name"`
			} `json:"organization"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			http.Error(w, "stytch unavailable", http.StatusServiceUnavailable)
			return
		}
		if resp.StatusCode != http.StatusOK {
			http.Error(w, out.ErrorType, http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s of %s", out.Member.Name, out.Organization.Name)
	}
}

// A handler test: create an organization, a member and a session in the
// emulator, then call the handler with the session cookie.
func Example() {
	srv := stytchtest.New()
	defer srv.Close()

	org := srv.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme", Slug: "acme"})
	member, err := srv.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test", Name: "Ada"})
	if err != nil {
		panic(err)
	}
	sess, err := srv.CreateSession(member.ID, stytchtest.SessionParams{})
	if err != nil {
		panic(err)
	}

	handler := whoAmI(srv.Client(), srv.URL(), srv.ProjectID(), srv.Secret())
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/me", nil)
		req.AddCookie(&http.Cookie{Name: "stytch_session", Value: sess.Token})
		rec := httptest.NewRecorder()
		handler(rec, req)
		return rec
	}

	rec := get()
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))

	srv.Revoke(sess.ID)
	rec = get()
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))

	srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: http.StatusBadGateway, Body: "<html>502</html>"})
	rec = get()
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))

	fmt.Println("API calls:", srv.Calls(stytchtest.Authenticate))
	// Output:
	// 200 hello Ada of Acme
	// 401 session_not_found
	// 503 stytch unavailable
	// API calls: 3
}

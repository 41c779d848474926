package stytchtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// freshClient never reuses connections, so the transport never retries a
// request on a broken connection and counters stay exact.
func freshClient(t *testing.T, timeout time.Duration) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

func authRequest(t *testing.T, srv *stytchtest.Server, ctx context.Context, token string) *http.Request {
	b, err := json.Marshal(map[string]any{"session_token": token})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/v1/b2b/sessions/authenticate", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(srv.ProjectID(), srv.Secret())
	return req
}

func TestFaultStatusAndBody(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	tests := []struct {
		name       string
		fault      stytchtest.Fault
		wantStatus int
		wantType   string // error object expected
		wantBody   string // raw body expected
		wantCType  string
	}{
		{"429", stytchtest.Fault{Status: 429}, 429, "too_many_requests", "", "application/json"},
		{"500", stytchtest.Fault{Status: 500}, 500, "internal_server_error", "", "application/json"},
		{"503", stytchtest.Fault{Status: 503}, 503, "server_unavailable", "", "application/json"},
		{"custom type", stytchtest.Fault{Status: 401, ErrorType: "unauthorized_project_id_test"}, 401, "unauthorized_project_id_test", "", "application/json"},
		{"html 502", stytchtest.Fault{Status: 502, Body: "<html><body>Bad Gateway</body></html>"}, 502, "", "<html><body>Bad Gateway</body></html>", "text/html; charset=utf-8"},
		{"garbled 200", stytchtest.Fault{Body: "{\"request_id\": "}, 200, "", "{\"request_id\": ", "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.ClearFaults()
			srv.InjectFault(stytchtest.Authenticate, tc.fault)
			resp, err := freshClient(t, 10*time.Second).Do(authRequest(t, srv, t.Context(), f.plainSess.Token))
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.wantStatus, resp.StatusCode)
			assert.Equal(t, tc.wantCType, resp.Header.Get("Content-Type"))
			if tc.wantType != "" {
				var body map[string]any
				require.NoError(t, json.Unmarshal(raw, &body))
				requireError(t, resp.StatusCode, body, tc.wantStatus, tc.wantType)
			} else {
				assert.Equal(t, tc.wantBody, string(raw))
			}
		})
	}
}

func TestFaultAppliesBeforeAuthAndPerEndpoint(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	srv.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 429})
	status, body := call(t, srv, http.MethodGet, "/v1/b2b/rbac/policy", nil, noAuth())
	requireError(t, status, body, 429, "too_many_requests")
	status, body = call(t, srv, http.MethodGet, "/v1/b2b/sessions/jwks/"+srv.ProjectID(), nil)
	requireOK(t, status, body)
	status, body = authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
	requireOK(t, status, body)
	srv.ClearFaults()
	status, body = call(t, srv, http.MethodGet, "/v1/b2b/rbac/policy", nil)
	requireOK(t, status, body)
}

func TestFaultTimesAndQueue(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	srv.InjectFault(stytchtest.JWKS, stytchtest.Fault{Status: 500, Times: 2})
	srv.InjectFault(stytchtest.JWKS, stytchtest.Fault{Status: 429, Times: 1})
	path := "/v1/b2b/sessions/jwks/" + srv.ProjectID()
	var got []int
	for range 5 {
		status, _ := callRaw(t, srv, http.MethodGet, path, nil)
		got = append(got, status)
	}
	assert.Equal(t, []int{500, 500, 429, 200, 200}, got)
	assert.Equal(t, 5, srv.Calls(stytchtest.JWKS))

	// Times 0: until cleared.
	srv.InjectFault(stytchtest.JWKS, stytchtest.Fault{Status: 503})
	srv.InjectFault(stytchtest.JWKS, stytchtest.Fault{Status: 500}) // never reached
	for range 3 {
		status, _ := callRaw(t, srv, http.MethodGet, path, nil)
		assert.Equal(t, 503, status)
	}
	srv.ClearFaults()
	status, _ := callRaw(t, srv, http.MethodGet, path, nil)
	assert.Equal(t, 200, status)
}

func TestFaultDelay(t *testing.T) {
	f := newFixture(t)
	srv := f.srv

	t.Run("short delay then normal response", func(t *testing.T) {
		srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 20 * time.Millisecond, Times: 1})
		status, body := authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
		requireOK(t, status, body)
	})
	t.Run("delay then status", func(t *testing.T) {
		srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 20 * time.Millisecond, Status: 500, Times: 1})
		status, body := authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
		requireError(t, status, body, 500, "internal_server_error")
	})
	t.Run("delay beyond the client's timeout", func(t *testing.T) {
		srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: time.Hour, Times: 1})
		_, err := freshClient(t, 100*time.Millisecond).Do(authRequest(t, srv, t.Context(), f.plainSess.Token))
		require.Error(t, err)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout())
		status, body := authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
		requireOK(t, status, body)
	})
}

func TestFaultHang(t *testing.T) {
	t.Run("ended by the client's timeout", func(t *testing.T) {
		f := newFixture(t)
		srv := f.srv
		srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Hang: true})
		for range 3 {
			_, err := freshClient(t, 100*time.Millisecond).Do(authRequest(t, srv, t.Context(), f.plainSess.Token))
			require.Error(t, err)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			assert.True(t, ne.Timeout())
		}
		assert.Equal(t, 3, srv.Calls(stytchtest.Authenticate))
	})
	t.Run("ended by context cancellation", func(t *testing.T) {
		f := newFixture(t)
		srv := f.srv
		srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Hang: true, Times: 1})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			resp, err := freshClient(t, 0).Do(authRequest(t, srv, ctx, f.plainSess.Token))
			if resp != nil {
				resp.Body.Close()
			}
			done <- err
		}()
		require.Eventually(t, func() bool { return srv.Calls(stytchtest.Authenticate) == 1 }, 10*time.Second, 5*time.Millisecond)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		status, body := authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
		requireOK(t, status, body)
	})
	t.Run("ended by Close", func(t *testing.T) {
		srv := stytchtest.New(stytchtest.WithKey(testKey()))
		defer srv.Close()
		srv.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Hang: true})
		done := make(chan error, 1)
		client := freshClient(t, 0) // no timeout: only Close can end it
		go func() {
			req, err := http.NewRequest(http.MethodGet, srv.URL()+"/v1/b2b/rbac/policy", nil)
			if err != nil {
				done <- err
				return
			}
			resp, err := client.Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			done <- err
		}()
		require.Eventually(t, func() bool { return srv.Calls(stytchtest.RBACPolicy) == 1 }, 10*time.Second, 5*time.Millisecond)
		srv.Close()
		require.Error(t, <-done)
	})
}

func TestFaultResetConnection(t *testing.T) {
	f := newFixture(t)
	srv := f.srv

	t.Run("before the response", func(t *testing.T) {
		srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{ResetConnection: true, Times: 1})
		resp, err := freshClient(t, 10*time.Second).Do(authRequest(t, srv, t.Context(), f.plainSess.Token))
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err)
		assert.Equal(t, 1, srv.Calls(stytchtest.Authenticate))
	})
	t.Run("mid body", func(t *testing.T) {
		srv.ResetCalls()
		srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{ResetConnection: true, Status: 200, Body: `{"request_id":"request-id-test-x","status_code":200,"member_session":{}}`, Times: 1})
		resp, err := freshClient(t, 10*time.Second).Do(authRequest(t, srv, t.Context(), f.plainSess.Token))
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode)
		_, err = io.ReadAll(resp.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Equal(t, 1, srv.Calls(stytchtest.Authenticate))
	})
	t.Run("mid error body", func(t *testing.T) {
		srv.InjectFault(stytchtest.Authenticate, stytchtest.Fault{ResetConnection: true, Status: 500, Times: 1})
		resp, err := freshClient(t, 10*time.Second).Do(authRequest(t, srv, t.Context(), f.plainSess.Token))
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, 500, resp.StatusCode)
		_, err = io.ReadAll(resp.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
	t.Run("server still healthy", func(t *testing.T) {
		status, body := authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
		requireOK(t, status, body)
	})
}

func TestCounters(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	for _, ep := range []stytchtest.Endpoint{stytchtest.Authenticate, stytchtest.Revoke, stytchtest.ListSessions, stytchtest.JWKS, stytchtest.RBACPolicy, stytchtest.RBACOrgPolicy} {
		assert.Zero(t, srv.Calls(ep), ep)
	}
	authenticate(t, srv, map[string]any{"session_token": f.plainSess.Token})
	authenticate(t, srv, map[string]any{"session_token": "nope"})
	call(t, srv, http.MethodPost, "/v1/b2b/sessions/authenticate", map[string]any{}, noAuth()) // 401 counts too
	call(t, srv, http.MethodPost, "/v1/b2b/sessions/revoke", map[string]any{"member_session_id": "x"})
	call(t, srv, http.MethodGet, "/v1/b2b/sessions?organization_id="+f.org.ID+"&member_id="+f.plain.ID, nil)
	fetchJWKS(t, srv)
	fetchJWKS(t, srv)
	call(t, srv, http.MethodGet, "/v1/b2b/rbac/policy", nil)
	call(t, srv, http.MethodGet, "/v1/b2b/rbac/organizations/"+f.org.ID, nil)
	call(t, srv, http.MethodGet, "/v1/sessions/jwks/"+srv.ProjectID(), nil) // unknown route: not counted
	assert.Equal(t, 3, srv.Calls(stytchtest.Authenticate))
	assert.Equal(t, 1, srv.Calls(stytchtest.Revoke))
	assert.Equal(t, 1, srv.Calls(stytchtest.ListSessions))
	assert.Equal(t, 2, srv.Calls(stytchtest.JWKS))
	assert.Equal(t, 1, srv.Calls(stytchtest.RBACPolicy))
	assert.Equal(t, 1, srv.Calls(stytchtest.RBACOrgPolicy))
	assert.Zero(t, srv.Calls("bogus"))
	srv.ResetCalls()
	assert.Zero(t, srv.Calls(stytchtest.Authenticate))
	assert.Zero(t, srv.Calls(stytchtest.JWKS))
}

func TestConcurrentUse(t *testing.T) {
	f := newFixture(t)
	srv := f.srv
	client := srv.Client()
	do := func(method, path string, body any, auth bool) (int, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, srv.URL()+path, rd)
		if err != nil {
			return 0, err
		}
		if auth {
			req.SetBasicAuth(srv.ProjectID(), srv.Secret())
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}

	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 8 {
		wg.Go(func() {
			m, err := srv.CreateMember(f.org.ID, stytchtest.MemberParams{Email: fmt.Sprintf("u%d@acme.test", g)})
			if err != nil {
				errs <- err
				return
			}
			for i := range 6 {
				sess, err := srv.CreateSession(m.ID, stytchtest.SessionParams{})
				if err != nil {
					errs <- err
					return
				}
				steps := []struct {
					method, path string
					body         any
					auth         bool
					want         int
				}{
					{http.MethodPost, "/v1/b2b/sessions/authenticate", map[string]any{"session_token": sess.Token, "session_duration_minutes": 30}, true, 200},
					{http.MethodPost, "/v1/b2b/sessions/authenticate", map[string]any{"session_jwt": sess.JWT}, true, 200},
					{http.MethodGet, "/v1/b2b/sessions/jwks/" + srv.ProjectID(), nil, false, 200},
					{http.MethodGet, "/v1/b2b/sessions?organization_id=" + f.org.ID + "&member_id=" + m.ID, nil, true, 200},
					{http.MethodPost, "/v1/b2b/sessions/revoke", map[string]any{"member_session_id": sess.ID}, true, 200},
					{http.MethodPost, "/v1/b2b/sessions/authenticate", map[string]any{"session_token": sess.Token}, true, 404},
				}
				for _, st := range steps {
					status, err := do(st.method, st.path, st.body, st.auth)
					if err != nil {
						errs <- err
						continue
					}
					if status != st.want {
						errs <- fmt.Errorf("%s %s: status %d, want %d", st.method, st.path, status, st.want)
					}
				}
				if _, err := srv.MintJWT(sess.ID); err != nil {
					errs <- err
				}
				if g == 0 && i%5 == 0 {
					srv.AddKey(foreignKey())
					srv.SetPolicy(stytchtest.DefaultPolicy())
				}
				_ = srv.Calls(stytchtest.Authenticate)
				_ = srv.KIDs()
				if g == 1 {
					srv.InjectFault(stytchtest.RBACOrgPolicy, stytchtest.Fault{Status: 500, Times: 1})
					srv.ClearFaults()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	require.NoError(t, errors.Join(all...))
	assert.Equal(t, 8*6*3, srv.Calls(stytchtest.Authenticate))
	assert.True(t, strings.HasPrefix(srv.KIDs()[0], "jwk-test-"))
}

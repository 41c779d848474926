package echostytch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// rbacPolicy: viewer reads documents, editor reads and writes them, admin
// may do anything to them, auditor reads reports only.
func rbacPolicy() stytchtest.Policy {
	p := stytchtest.DefaultPolicy()
	p.Roles = append(p.Roles,
		stytchtest.Role{ID: "viewer", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read"}}}},
		stytchtest.Role{ID: "editor", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read", "write"}}}},
		stytchtest.Role{ID: "admin", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"*"}}}},
		stytchtest.Role{ID: "auditor", Permissions: []stytchtest.Permission{{ResourceID: "reports", Actions: []string{"read"}}}},
	)
	return p
}

// rbacWorld is an emulator with two organizations, a Stack built from the
// environment against it, and an Echo app served over real HTTP.
type rbacWorld struct {
	emu          *stytchtest.Server
	stack        *echostytch.Stack
	acme, globex stytchtest.Organization
	// sessions by name: viewer, editor, admin, auditor, ghost (an undefined
	// role), nobody (no roles at all) in acme; globex-editor in globex.
	sess    map[string]stytchtest.Session
	srv     *httptest.Server
	handled atomic.Int64 // handler calls
	errs    chan error   // errors seen by the ErrorHandler
}

type rbacOptions struct {
	policy func(stack *echostytch.Stack) *verifier.PolicyCache // default stack.Policy
	env    map[string]string
}

func newRBACWorld(t *testing.T, o rbacOptions) *rbacWorld {
	t.Helper()
	w := &rbacWorld{sess: map[string]stytchtest.Session{}, errs: make(chan error, 1<<16)}
	w.emu = stytchtest.New(stytchtest.WithPolicy(rbacPolicy()))
	t.Cleanup(w.emu.Close)
	w.acme = w.emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme", Slug: "acme"})
	w.globex = w.emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Globex", Slug: "globex"})
	add := func(name string, org stytchtest.Organization, roles ...string) {
		m, err := w.emu.CreateMember(org.ID, stytchtest.MemberParams{Email: name + "@" + org.Slug + ".test", Roles: roles})
		require.NoError(t, err)
		p := stytchtest.SessionParams{Duration: time.Hour}
		if name == "nobody" {
			p.Roles = []string{}
		}
		s, err := w.emu.CreateSession(m.ID, p)
		require.NoError(t, err)
		w.sess[name] = s
	}
	add("viewer", w.acme, "viewer")
	add("editor", w.acme, "editor")
	add("admin", w.acme, "admin")
	add("auditor", w.acme, "auditor")
	add("ghost", w.acme, "ghost")
	add("nobody", w.acme)
	add("globex-editor", w.globex, "editor")

	env := map[string]string{
		"STYTCH_PROJECT_ID": w.emu.ProjectID(), "STYTCH_SECRET": w.emu.Secret(), "STYTCH_BASE_URL": w.emu.URL(),
		"STYTCH_LOG_LEVEL": "ERROR", "STYTCH_MAX_RETRIES": "0",
	}
	for k, v := range o.env {
		env[k] = v
	}
	stack, err := echostytch.FromEnv(context.Background(), envconfig.MapLookuper(env))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, stack.Close()) })
	w.stack = stack
	require.NotNil(t, stack.Policy, "NewStack builds the policy cache")
	policy := stack.Policy
	if o.policy != nil {
		policy = o.policy(stack)
	}

	cfg := stack.Config
	cfg.ErrorHandler = func(c echo.Context, err error) error {
		select {
		case w.errs <- err:
		default:
		}
		return echostytch.WriteError(c, err, "")
	}
	e := echo.New()
	ok := func(c echo.Context) error {
		w.handled.Add(1)
		return c.JSON(http.StatusOK, map[string]string{"member_id": echostytch.MustMember(c).MemberID, "route": c.Path()})
	}
	auth := echostytch.New(cfg)
	g := e.Group("/orgs/:org", auth, echostytch.RequireOrganization("org"))
	g.GET("/documents", ok, echostytch.RequirePermission(policy, "documents", "read"))
	g.POST("/documents", ok, echostytch.RequirePermission(policy, "documents", "write"))
	g.DELETE("/documents/:id", ok, echostytch.RequirePermission(policy, "documents", "delete"))
	g.GET("/members", ok) // organization check only
	e.GET("/reports", ok, auth, echostytch.RequirePermission(policy, "reports", "read"))
	// Requirements without the authentication middleware in front.
	e.GET("/unauthenticated/:org", ok, echostytch.RequireOrganization("org"), echostytch.RequirePermission(policy, "documents", "read"))
	e.GET("/nil-policy", ok, auth, echostytch.RequirePermission(nil, "documents", "read"))
	w.srv = httptest.NewServer(e)
	t.Cleanup(w.srv.Close)
	return w
}

type rbacReply struct {
	status int
	header http.Header
	body   map[string]string
}

// do sends a request over HTTP with the named session's token ("" for
// none; "jwt:<name>" for its session JWT).
func (w *rbacWorld) do(t testing.TB, method, path, who string) rbacReply {
	t.Helper()
	req, err := http.NewRequest(method, w.srv.URL+path, nil)
	require.NoError(t, err)
	switch {
	case strings.HasPrefix(who, "jwt:"):
		req.Header.Set("Authorization", "Bearer "+w.sess[strings.TrimPrefix(who, "jwt:")].JWT)
	case who != "":
		s, ok := w.sess[who]
		require.True(t, ok, who)
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	resp, err := w.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := rbacReply{status: resp.StatusCode, header: resp.Header}
	require.NoError(t, json.Unmarshal(raw, &r.body), "%s", raw)
	return r
}

func forbidden(msg string) map[string]string {
	return map[string]string{"error": "insufficient_permissions", "message": msg, "type": "authorization"}
}

// TestRBAC: allowed, denied, wildcard action, unknown role, role granted on
// another resource, organization by ID and slug, mismatch by ID and slug,
// over real HTTP against the emulator.
func TestRBAC(t *testing.T) {
	w := newRBACWorld(t, rbacOptions{})
	acme, globex := w.acme, w.globex
	type tc struct {
		name, who, method, path string
		status                  int
		body                    map[string]string // checked when set
	}
	cases := []tc{
		{"allowed: viewer reads", "viewer", "GET", "/orgs/acme/documents", 200, nil},
		{"allowed: editor writes", "editor", "POST", "/orgs/acme/documents", 200, nil},
		{"allowed: by session JWT", "jwt:editor", "POST", "/orgs/acme/documents", 200, nil},
		{"denied: viewer writes", "viewer", "POST", "/orgs/acme/documents", 403, forbidden("Missing permission: documents:write")},
		{"denied: editor deletes", "editor", "DELETE", "/orgs/acme/documents/d1", 403, forbidden("Missing permission: documents:delete")},
		{"denied: by session JWT", "jwt:viewer", "DELETE", "/orgs/acme/documents/d1", 403, forbidden("Missing permission: documents:delete")},
		{"wildcard action: admin deletes", "admin", "DELETE", "/orgs/acme/documents/d1", 200, nil},
		{"wildcard action: admin reads", "admin", "GET", "/orgs/acme/documents", 200, nil},
		{"unknown role grants nothing", "ghost", "GET", "/orgs/acme/documents", 403, forbidden("Missing permission: documents:read")},
		{"no roles", "nobody", "GET", "/orgs/acme/documents", 403, forbidden("Missing permission: documents:read")},
		{"role granted on another resource", "auditor", "GET", "/orgs/acme/documents", 403, forbidden("Missing permission: documents:read")},
		{"role granted on another resource: there", "auditor", "GET", "/reports", 200, nil},
		{"wildcard is per resource", "admin", "GET", "/reports", 403, forbidden("Missing permission: reports:read")},
		{"organization by slug", "editor", "GET", "/orgs/acme/members", 200, nil},
		{"organization by ID", "editor", "POST", "/orgs/" + acme.ID + "/documents", 200, nil},
		{"organization by ID, JWT", "jwt:editor", "POST", "/orgs/" + acme.ID + "/documents", 200, nil},
		{"organization mismatch by slug", "globex-editor", "POST", "/orgs/acme/documents", 403, forbidden("Not authorized for organization: acme")},
		{"organization mismatch by ID", "globex-editor", "POST", "/orgs/" + acme.ID + "/documents", 403, forbidden("Not authorized for organization: " + acme.ID)},
		{"organization mismatch by ID, JWT", "jwt:globex-editor", "GET", "/orgs/" + acme.ID + "/members", 403, forbidden("Not authorized for organization: " + acme.ID)},
		{"organization mismatch, admin", "admin", "DELETE", "/orgs/globex/documents/d1", 403, forbidden("Not authorized for organization: globex")},
		{"own organization, the other tenant", "globex-editor", "POST", "/orgs/globex/documents", 200, nil},
		{"own organization by ID, the other tenant", "globex-editor", "POST", "/orgs/" + globex.ID + "/documents", 200, nil},
		{"unknown organization", "admin", "GET", "/orgs/initech/documents", 403, forbidden("Not authorized for organization: initech")},
		{"slug is case-sensitive", "editor", "GET", "/orgs/ACME/documents", 403, forbidden("Not authorized for organization: ACME")},
		{"no token", "", "GET", "/orgs/acme/documents", 401, nil},
		{"no middleware in front", "editor", "GET", "/unauthenticated/acme", 401, nil},
		{"nil policy", "editor", "GET", "/nil-policy", 500, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := w.handled.Load()
			r := w.do(t, c.method, c.path, c.who)
			require.Equal(t, c.status, r.status, "%v", r.body)
			if c.body != nil {
				assert.Equal(t, c.body, r.body)
			}
			if c.status == 200 {
				assert.Equal(t, before+1, w.handled.Load())
			} else {
				assert.Equal(t, before, w.handled.Load(), "the handler did not run")
				assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
			}
		})
	}
	assert.Equal(t, 1, w.emu.Calls(stytchtest.RBACPolicy))
}

// TestRBACErrorsMatch: the ErrorHandler gets *Error values matching the
// package's sentinels and the verifier's.
func TestRBACErrorsMatch(t *testing.T) {
	w := newRBACWorld(t, rbacOptions{})
	next := func() error {
		select {
		case err := <-w.errs:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("no error reached the ErrorHandler")
			return nil
		}
	}
	var e *echostytch.Error

	w.do(t, "POST", "/orgs/acme/documents", "viewer")
	err := next()
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, echostytch.ErrInsufficientPermissions)
	assert.ErrorIs(t, err, echostytch.ErrPermissionDenied)
	assert.NotErrorIs(t, err, echostytch.ErrOrganizationMismatch)
	assert.Equal(t, []string{"documents:write"}, e.Missing)
	assert.Equal(t, 403, e.Status)

	w.do(t, "GET", "/orgs/globex/documents", "viewer")
	err = next()
	assert.ErrorIs(t, err, echostytch.ErrInsufficientPermissions)
	assert.ErrorIs(t, err, echostytch.ErrOrganizationMismatch)
	assert.NotErrorIs(t, err, echostytch.ErrPermissionDenied)

	w.do(t, "GET", "/nil-policy", "viewer")
	assert.ErrorIs(t, next(), echostytch.ErrMisconfigured)
}

// TestRBACNoStytchCallPerRequest: once each session has been seen and the
// policy loaded, requests cost no Stytch call at all: 600 permission checks
// over real HTTP, counted at the emulator.
func TestRBACNoStytchCallPerRequest(t *testing.T) {
	w := newRBACWorld(t, rbacOptions{})
	// The JWKS loads in the background; before that a JWT may be sent to
	// the API (verifier behaviour, not RBAC's).
	require.Eventually(t, func() bool { return w.emu.Calls(stytchtest.JWKS) >= 1 }, 5*time.Second, 5*time.Millisecond)
	whos := []string{"viewer", "editor", "admin", "ghost", "jwt:editor", "jwt:admin"}
	for _, who := range whos { // warm-up: the first request of each session
		w.do(t, "GET", "/orgs/acme/documents", who)
	}
	assert.Equal(t, 1, w.emu.Calls(stytchtest.RBACPolicy), "one policy fetch for all sessions")
	assert.Equal(t, 4, w.emu.Calls(stytchtest.Authenticate), "one per opaque token; JWTs are verified locally")
	w.emu.ResetCalls()
	w.handled.Store(0)

	var wg sync.WaitGroup
	for _, who := range whos {
		wg.Go(func() {
			for range 50 {
				w.do(t, "GET", "/orgs/acme/documents", who)
				w.do(t, "POST", "/orgs/acme/documents", who)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(450), w.handled.Load(), "viewer: 50 of 100, ghost: none, the others all")
	assert.Equal(t, 0, w.emu.Calls(stytchtest.RBACPolicy), "600 checks, no policy fetch")
	assert.Equal(t, 0, w.emu.Calls(stytchtest.Authenticate), "no authenticate call")
	assert.Equal(t, 0, w.emu.Calls(stytchtest.RBACOrgPolicy))
}

// TestRBACPolicyChangeSeenAfterRefresh: a grant added at Stytch is honoured
// after the next background refresh, and a grant removed is refused.
func TestRBACPolicyChangeSeenAfterRefresh(t *testing.T) {
	w := newRBACWorld(t, rbacOptions{policy: func(st *echostytch.Stack) *verifier.PolicyCache {
		p := verifier.NewPolicyCache(st.Stytch.Client(), verifier.PolicyOptions{RefreshInterval: 20 * time.Millisecond, Logger: st.Logger})
		t.Cleanup(func() { _ = p.Close() })
		return p
	}})
	require.Equal(t, 403, w.do(t, "POST", "/orgs/acme/documents", "viewer").status)

	pol := rbacPolicy()
	pol.Roles = append(pol.Roles, stytchtest.Role{ID: "viewer", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"write"}}}})
	w.emu.SetPolicy(pol)
	require.Eventually(t, func() bool { return w.do(t, "POST", "/orgs/acme/documents", "viewer").status == 200 },
		10*time.Second, 5*time.Millisecond)

	w.emu.SetPolicy(rbacPolicy())
	require.Eventually(t, func() bool { return w.do(t, "POST", "/orgs/acme/documents", "viewer").status == 403 },
		10*time.Second, 5*time.Millisecond)
}

// TestRBACPolicyEndpointDown: a policy that cannot be loaded answers 503
// to every permission check, wildcard roles included, and never runs the
// handler; organization-only routes keep working. Once Stytch recovers,
// checks succeed again.
func TestRBACPolicyEndpointDown(t *testing.T) {
	w := newRBACWorld(t, rbacOptions{policy: func(st *echostytch.Stack) *verifier.PolicyCache {
		p := verifier.NewPolicyCache(st.Stytch.Client(), verifier.PolicyOptions{RetryInterval: 50 * time.Millisecond, Logger: st.Logger})
		t.Cleanup(func() { _ = p.Close() })
		return p
	}})
	w.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 500})
	unavailable := map[string]string{"error": "service_unavailable", "message": "Authentication service temporarily unavailable", "type": "stytch_api"}
	for _, who := range []string{"admin", "editor", "viewer", "jwt:admin"} {
		for _, m := range []string{"GET", "POST"} {
			r := w.do(t, m, "/orgs/acme/documents", who)
			require.Equal(t, 503, r.status, "%s %s", who, m)
			assert.Equal(t, unavailable, r.body)
			assert.NotEmpty(t, r.header.Get("Retry-After"))
		}
	}
	r := w.do(t, "DELETE", "/orgs/acme/documents/d1", "admin")
	assert.Equal(t, 503, r.status)
	assert.Equal(t, int64(0), w.handled.Load(), "never allow")
	err := <-w.errs
	assert.ErrorIs(t, err, verifier.ErrUnavailable)
	assert.ErrorIs(t, err, echostytch.ErrServiceUnavailable)

	// The organization check needs no policy; the mismatch still wins.
	assert.Equal(t, 200, w.do(t, "GET", "/orgs/acme/members", "viewer").status)
	assert.Equal(t, 403, w.do(t, "GET", "/orgs/globex/documents", "admin").status)

	w.emu.ClearFaults()
	require.Eventually(t, func() bool { return w.do(t, "DELETE", "/orgs/acme/documents/d1", "admin").status == 200 },
		10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 403, w.do(t, "DELETE", "/orgs/acme/documents/d1", "viewer").status)
}

// TestRBACStalePolicyDuringOutage: the Stack's policy, once loaded, keeps
// answering while Stytch's policy endpoint is down.
func TestRBACStalePolicyDuringOutage(t *testing.T) {
	w := newRBACWorld(t, rbacOptions{})
	require.Equal(t, 200, w.do(t, "POST", "/orgs/acme/documents", "editor").status)
	w.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 503})
	require.ErrorIs(t, w.stack.Policy.Refresh(context.Background()), verifier.ErrUnavailable)
	assert.Equal(t, 200, w.do(t, "POST", "/orgs/acme/documents", "editor").status)
	assert.Equal(t, 403, w.do(t, "POST", "/orgs/acme/documents", "viewer").status)
}

// TestRBACConcurrentRequestsDuringRefresh: requests from many goroutines
// while the policy is refreshed every millisecond and changed at Stytch.
// Run with -race. Stable grants always answer 200, stable denials 403, and
// the grant that flips one or the other.
func TestRBACConcurrentRequestsDuringRefresh(t *testing.T) {
	w := newRBACWorld(t, rbacOptions{policy: func(st *echostytch.Stack) *verifier.PolicyCache {
		p := verifier.NewPolicyCache(st.Stytch.Client(), verifier.PolicyOptions{RefreshInterval: time.Millisecond, Logger: st.Logger})
		t.Cleanup(func() { _ = p.Close() })
		return p
	}})
	withDelete := rbacPolicy()
	withDelete.Roles = append(withDelete.Roles, stytchtest.Role{ID: "editor", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"delete"}}}})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := w.emu.Calls(stytchtest.RBACPolicy)
	var wg sync.WaitGroup
	wg.Go(func() { // flip the policy until enough refreshes happened
		defer cancel()
		for i := 0; ctx.Err() == nil && w.emu.Calls(stytchtest.RBACPolicy) < start+15; i++ {
			if i%2 == 0 {
				w.emu.SetPolicy(withDelete)
			} else {
				w.emu.SetPolicy(rbacPolicy())
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	var bad atomic.Value
	var flipped [2]atomic.Int64
	check := func(got, want int, what string) {
		if got != want {
			bad.Store(fmt.Sprintf("%s: %d, want %d", what, got, want))
		}
	}
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				check(w.do(t, "POST", "/orgs/acme/documents", "editor").status, 200, "editor write")
				check(w.do(t, "POST", "/orgs/acme/documents", "viewer").status, 403, "viewer write")
				check(w.do(t, "GET", "/orgs/globex/documents", "editor").status, 403, "other org")
				switch s := w.do(t, "DELETE", "/orgs/acme/documents/d", "editor").status; s {
				case 200:
					flipped[0].Add(1)
				case 403:
					flipped[1].Add(1)
				default:
					check(s, 200, "editor delete")
				}
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
	assert.Nil(t, bad.Load())
	assert.GreaterOrEqual(t, w.emu.Calls(stytchtest.RBACPolicy), start+15, "refreshed during the requests")
	t.Logf("delete allowed %d, refused %d, policy fetches %d", flipped[0].Load(), flipped[1].Load(), w.emu.Calls(stytchtest.RBACPolicy))
}

// TestRequireOrganizationMessageBounded: the organization named in the
// message is capped and sanitized, whatever the path holds.
func TestRequireOrganizationMessageBounded(t *testing.T) {
	w := newRBACWorld(t, rbacOptions{})
	long := strings.Repeat("a", 5000)
	r := w.do(t, "GET", "/orgs/"+long+"/members", "editor")
	require.Equal(t, 403, r.status)
	assert.Equal(t, "Not authorized for organization: "+strings.Repeat("a", 64)+"...", r.body["message"])

	r = w.do(t, "GET", "/orgs/%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%0A%E2%98%83/members", "editor")
	require.Equal(t, 403, r.status)
	msg := r.body["message"]
	assert.True(t, strings.HasPrefix(msg, "Not authorized for organization: "), msg)
	for _, bad := range []string{"<", ">", "\"", "\n", "%", "(", "/", "☃"} {
		assert.NotContains(t, strings.TrimPrefix(msg, "Not authorized for organization: "), bad)
	}

	r = w.do(t, "GET", "/orgs/%FF%FE%00/members", "editor")
	require.Equal(t, 403, r.status)
	assert.Equal(t, "Not authorized for organization: ???", r.body["message"])

	// Look-alikes of the session's organization do not match.
	for _, org := range []string{"acme%20", "acme.", "%20acme", w.acme.ID + "x", strings.ToUpper(w.acme.ID), "acme%2Fx"} {
		assert.Equal(t, 403, w.do(t, "GET", "/orgs/"+org+"/members", "editor").status, org)
	}
}

// Route-level RBAC on a multi-tenant API: the organization in the path
// must be the session's, and the session's roles must grant the action.
func ExampleRequirePermission() {
	emu := stytchtest.New(stytchtest.WithPolicy(stytchtest.Policy{Roles: []stytchtest.Role{
		{ID: "viewer", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read"}}}},
		{ID: "editor", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read", "write"}}}},
	}}))
	defer emu.Close()
	acme := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme", Slug: "acme"})
	m, _ := emu.CreateMember(acme.ID, stytchtest.MemberParams{Email: "ada@acme.test", Roles: []string{"viewer"}})
	sess, _ := emu.CreateSession(m.ID, stytchtest.SessionParams{})

	stack, err := echostytch.FromEnv(context.Background(), envconfig.MapLookuper(map[string]string{
		"STYTCH_PROJECT_ID": emu.ProjectID(), "STYTCH_SECRET": emu.Secret(), "STYTCH_BASE_URL": emu.URL(),
		"STYTCH_LOG_LEVEL": "ERROR",
	}))
	if err != nil {
		panic(err)
	}
	defer stack.Close()

	e := echo.New()
	docs := e.Group("/orgs/:org/documents", echostytch.New(stack.Config), echostytch.RequireOrganization("org"))
	docs.GET("", func(c echo.Context) error { return c.String(http.StatusOK, "documents of "+c.Param("org")) },
		echostytch.RequirePermission(stack.Policy, "documents", "read"))
	docs.POST("", func(c echo.Context) error { return c.NoContent(http.StatusCreated) },
		echostytch.RequirePermission(stack.Policy, "documents", "write"))

	for _, r := range []struct{ method, path string }{
		{"GET", "/orgs/acme/documents"},
		{"GET", "/orgs/" + acme.ID + "/documents"},
		{"POST", "/orgs/acme/documents"},
		{"GET", "/orgs/globex/documents"},
	} {
		req := httptest.NewRequest(r.method, r.path, nil)
		req.Header.Set("Authorization", "Bearer "+sess.Token)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		fmt.Println(r.method, strings.Replace(r.path, acme.ID, "<acme ID>", 1), rec.Code, strings.TrimSpace(strings.Replace(rec.Body.String(), acme.ID, "<acme ID>", 1)))
	}
	fmt.Println("policy fetches:", emu.Calls(stytchtest.RBACPolicy), "authenticate calls:", emu.Calls(stytchtest.Authenticate))
	// Output:
	// GET /orgs/acme/documents 200 documents of acme
	// GET /orgs/<acme ID>/documents 200 documents of <acme ID>
	// POST /orgs/acme/documents 403 {"error":"insufficient_permissions","message":"Missing permission: documents:write","type":"authorization"}
	// GET /orgs/globex/documents 403 {"error":"insufficient_permissions","message":"Not authorized for organization: globex","type":"authorization"}
	// policy fetches: 1 authenticate calls: 1
}

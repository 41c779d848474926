package verifier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// rbacTestPolicy: viewer reads documents, editor reads and writes them,
// owner may do anything to them, auditor reads reports only, and "broad"
// names the resource "*" (which is no wildcard).
func rbacTestPolicy() stytchtest.Policy {
	p := stytchtest.DefaultPolicy()
	p.Roles = append(p.Roles,
		stytchtest.Role{ID: "viewer", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read"}}}},
		stytchtest.Role{ID: "editor", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read", "write"}}}},
		stytchtest.Role{ID: "owner", Permissions: []stytchtest.Permission{
			{ResourceID: "documents", Actions: []string{"*"}},
			{ResourceID: "billing", Actions: []string{"read"}},
		}},
		stytchtest.Role{ID: "auditor", Permissions: []stytchtest.Permission{{ResourceID: "reports", Actions: []string{"read", "write"}}}},
		stytchtest.Role{ID: "broad", Permissions: []stytchtest.Permission{{ResourceID: "*", Actions: []string{"*"}}}},
		stytchtest.Role{ID: "empty"},
		// A role defined twice grants the union.
		stytchtest.Role{ID: "viewer", Permissions: []stytchtest.Permission{{ResourceID: "comments", Actions: []string{"read"}}}},
	)
	p.Resources = append(p.Resources, stytchtest.Resource{ID: "documents", Actions: []string{"read", "write", "delete"}})
	return p
}

// policyLog is a concurrency-safe log sink.
type policyLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *policyLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *policyLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type policyFixture struct {
	emu    *stytchtest.Server
	client *verifier.Client
	log    *policyLog
}

// newPolicyFixture starts an emulator serving rbacTestPolicy and a client
// without retries. At the end of the test, after everything is closed, it
// checks that no goroutine is left.
func newPolicyFixture(t *testing.T) *policyFixture {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
	emu := stytchtest.New(stytchtest.WithKey(testKey(t)), stytchtest.WithPolicy(rbacTestPolicy()))
	t.Cleanup(emu.Close)
	c, err := verifier.NewClient(verifier.ClientConfig{
		ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(),
		Timeout: 2 * time.Second, MaxRetries: 0,
	})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return &policyFixture{emu: emu, client: c, log: &policyLog{}}
}

// cache returns a PolicyCache over the fixture's client, closed at the end
// of the test.
func (f *policyFixture) cache(t *testing.T, opts verifier.PolicyOptions) *verifier.PolicyCache {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := verifier.NewPolicyCache(f.client, opts)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func allowed(t *testing.T, p *verifier.PolicyCache, roles []string, resource, action string) bool {
	t.Helper()
	ok, err := p.Allowed(context.Background(), roles, resource, action)
	require.NoError(t, err)
	return ok
}

// TestPolicyEvaluation: the rules of the API spec §6.2, case by case.
func TestPolicyEvaluation(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.cache(t, verifier.PolicyOptions{})
	cases := []struct {
		name             string
		roles            []string
		resource, action string
		want             bool
	}{
		{"allowed", []string{"stytch_member", "viewer"}, "documents", "read", true},
		{"allowed by the second role", []string{"viewer", "editor"}, "documents", "write", true},
		{"denied: action not granted", []string{"stytch_member", "viewer"}, "documents", "write", false},
		{"wildcard action", []string{"owner"}, "documents", "delete", true},
		{"wildcard action: any action name", []string{"owner"}, "documents", "archive.all", true},
		{"wildcard is per resource", []string{"owner"}, "billing", "write", false},
		{"unknown role grants nothing", []string{"ghost"}, "documents", "read", false},
		{"unknown role beside a granting one", []string{"ghost", "viewer"}, "documents", "read", true},
		{"role granted on another resource", []string{"auditor"}, "documents", "read", false},
		{"other resource, granted there", []string{"auditor"}, "reports", "write", true},
		{"no wildcard on resources", []string{"broad"}, "documents", "read", false},
		{"resource \"*\" is an exact name", []string{"broad"}, "*", "read", true},
		{"resource IDs are exact: no prefix", []string{"editor"}, "documents.archive", "read", false},
		{"resource IDs are exact: case", []string{"editor"}, "Documents", "read", false},
		{"action names are exact: case", []string{"editor"}, "documents", "Write", false},
		{"action \"*\" asked, not granted", []string{"editor"}, "documents", "*", false},
		{"role names are exact", []string{"Viewer"}, "documents", "read", false},
		{"role without permissions", []string{"empty"}, "documents", "read", false},
		{"no roles", nil, "documents", "read", false},
		{"duplicate role definitions are merged (first)", []string{"viewer"}, "documents", "read", true},
		{"duplicate role definitions are merged (second)", []string{"viewer"}, "comments", "read", true},
		{"reserved role", []string{"stytch_admin"}, "stytch.member", "delete", true},
		{"reserved role, custom resource", []string{"stytch_admin"}, "documents", "read", false},
		{"empty resource and action", []string{"owner"}, "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, allowed(t, p, tc.roles, tc.resource, tc.action))
		})
	}
	assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy), "one fetch for every check")
}

// TestPolicyLazy: no call until the first check; many checks, concurrent
// ones included, cost one fetch.
func TestPolicyLazy(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.cache(t, verifier.PolicyOptions{})
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, 0, f.emu.Calls(stytchtest.RBACPolicy), "an unused cache never calls Stytch")

	// Slow the fetch down so the checks below pile up on it.
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Delay: 100 * time.Millisecond, Times: 1})
	var wg sync.WaitGroup
	var yes atomic.Int32
	for range 50 {
		wg.Go(func() {
			ok, err := p.Allowed(context.Background(), []string{"editor"}, "documents", "write")
			if err == nil && ok {
				yes.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(50), yes.Load())
	for range 1000 {
		require.True(t, allowed(t, p, []string{"viewer"}, "documents", "read"))
	}
	assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy), "one fetch in flight, shared, then none")
}

// TestPolicyRefreshSeesChange: a policy changed at Stytch is seen after a
// background refresh, and at once after Refresh.
func TestPolicyRefreshSeesChange(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.cache(t, verifier.PolicyOptions{RefreshInterval: 20 * time.Millisecond})
	require.False(t, allowed(t, p, []string{"viewer"}, "documents", "write"))

	pol := rbacTestPolicy()
	pol.Roles = append(pol.Roles, stytchtest.Role{ID: "viewer", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"write"}}}})
	f.emu.SetPolicy(pol)
	require.Eventually(t, func() bool { return allowed(t, p, []string{"viewer"}, "documents", "write") },
		5*time.Second, 5*time.Millisecond, "background refresh picks up the new grant")
	assert.GreaterOrEqual(t, f.emu.Calls(stytchtest.RBACPolicy), 2)

	// Revocations are seen too.
	f.emu.SetPolicy(rbacTestPolicy())
	require.Eventually(t, func() bool { return !allowed(t, p, []string{"viewer"}, "documents", "write") },
		5*time.Second, 5*time.Millisecond)
}

func TestPolicyExplicitRefresh(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.cache(t, verifier.PolicyOptions{}) // 5 minutes: only Refresh can see the change
	require.NoError(t, p.Refresh(context.Background()), "eager load at start-up")
	assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy))
	require.False(t, allowed(t, p, []string{"ghost"}, "documents", "read"))
	assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy), "the check used the loaded policy")

	pol := rbacTestPolicy()
	pol.Roles = append(pol.Roles, stytchtest.Role{ID: "ghost", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read"}}}})
	f.emu.SetPolicy(pol)
	require.False(t, allowed(t, p, []string{"ghost"}, "documents", "read"), "not seen before a refresh")
	require.NoError(t, p.Refresh(context.Background()))
	require.True(t, allowed(t, p, []string{"ghost"}, "documents", "read"))
	assert.Equal(t, 2, f.emu.Calls(stytchtest.RBACPolicy))
}

// TestPolicyUnavailable: a policy that cannot be fetched never allows; the
// error matches ErrUnavailable; failed fetches are not retried within
// RetryInterval; the cache recovers when Stytch does.
func TestPolicyUnavailable(t *testing.T) {
	for _, fault := range []stytchtest.Fault{
		{Status: 500},
		{Status: 429},
		{Body: "<html>bad gateway</html>", Status: 502},
		{Body: `{"policy": null}`},
		{Body: `not json`},
		{ResetConnection: true},
		{Status: 401}, // our credentials refused: still "unavailable" to a check
		{Status: 404, ErrorType: "not_found"},
	} {
		t.Run(fmt.Sprintf("%d %q reset=%v", fault.Status, fault.Body, fault.ResetConnection), func(t *testing.T) {
			f := newPolicyFixture(t)
			f.emu.InjectFault(stytchtest.RBACPolicy, fault)
			p := f.cache(t, verifier.PolicyOptions{RetryInterval: time.Hour})
			ok, err := p.Allowed(context.Background(), []string{"owner"}, "documents", "read")
			assert.False(t, ok, "never allow")
			require.ErrorIs(t, err, verifier.ErrUnavailable)
			assert.NotErrorIs(t, err, verifier.ErrMisconfigured)
			assert.NotErrorIs(t, err, verifier.ErrInvalidSession)
			assert.Contains(t, err.Error(), "RBAC policy not loaded")
			assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy))

			// Within RetryInterval: fail fast, no call.
			for range 20 {
				ok, err = p.Allowed(context.Background(), []string{"owner"}, "documents", "read")
				assert.False(t, ok)
				require.ErrorIs(t, err, verifier.ErrUnavailable)
			}
			assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy), "no call per check during an outage")
			assert.Contains(t, f.log.String(), "level=WARN")
			assert.Contains(t, f.log.String(), "RBAC policy fetch failed")

			// Refresh always tries, and reports the client's error.
			f.emu.ClearFaults()
			require.NoError(t, p.Refresh(context.Background()))
			assert.True(t, allowed(t, p, []string{"owner"}, "documents", "read"))
		})
	}
}

// TestPolicyRecoversAfterRetryInterval: after a failed first fetch, the
// background goroutine retries every RetryInterval, and checks succeed once
// a retry does.
func TestPolicyRecoversAfterRetryInterval(t *testing.T) {
	f := newPolicyFixture(t)
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 503, Times: 1})
	p := f.cache(t, verifier.PolicyOptions{RetryInterval: 30 * time.Millisecond, RefreshInterval: time.Hour})
	_, err := p.Allowed(context.Background(), []string{"viewer"}, "documents", "read")
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	require.Eventually(t, func() bool {
		ok, err := p.Allowed(context.Background(), []string{"viewer"}, "documents", "read")
		return err == nil && ok
	}, 5*time.Second, 5*time.Millisecond)
}

// TestPolicyStaleServesDuringOutage: once loaded, the policy keeps serving
// while refreshes fail; each failure is logged at WARN.
func TestPolicyStaleServesDuringOutage(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.cache(t, verifier.PolicyOptions{RefreshInterval: 10 * time.Millisecond, RetryInterval: 5 * time.Millisecond})
	require.True(t, allowed(t, p, []string{"editor"}, "documents", "write"))
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 500})
	calls := f.emu.Calls(stytchtest.RBACPolicy)
	require.Eventually(t, func() bool { return f.emu.Calls(stytchtest.RBACPolicy) >= calls+3 }, 5*time.Second, time.Millisecond,
		"background retries continue")
	for range 100 {
		assert.True(t, allowed(t, p, []string{"editor"}, "documents", "write"))
		assert.False(t, allowed(t, p, []string{"viewer"}, "documents", "write"))
	}
	err := p.Refresh(context.Background())
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	var apiErr *verifier.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 500, apiErr.StatusCode)
	assert.True(t, allowed(t, p, []string{"editor"}, "documents", "write"), "a failed Refresh keeps the policy")
	assert.Contains(t, f.log.String(), "level=WARN")
	assert.Contains(t, f.log.String(), "serving the policy last loaded")
}

// TestPolicyChecksDoNotWaitOnRetries: only the first fetch is waited for.
// Once it has failed, a check answers unavailable at once, even while a
// background retry hangs on the endpoint; checks start no fetch of their
// own.
func TestPolicyChecksDoNotWaitOnRetries(t *testing.T) {
	f := newPolicyFixture(t)
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 500, Times: 1})
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Hang: true})
	// A client whose calls may take an hour: only Close ends the retry.
	slow, err := verifier.NewClient(verifier.ClientConfig{
		ProjectID: f.emu.ProjectID(), Secret: f.emu.Secret(), BaseURL: f.emu.URL(), Timeout: time.Hour,
	})
	require.NoError(t, err)
	t.Cleanup(slow.CloseIdleConnections)
	p := verifier.NewPolicyCache(slow, verifier.PolicyOptions{RetryInterval: 20 * time.Millisecond, RefreshInterval: time.Hour,
		FetchTimeout: time.Hour, Logger: slog.New(slog.NewTextHandler(f.log, nil))})
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	_, err = p.Allowed(context.Background(), []string{"viewer"}, "documents", "read")
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	// The retry is in flight once the emulator has seen a second call; it
	// hangs for FetchTimeout (an hour), until Close cancels it.
	require.Eventually(t, func() bool { return f.emu.Calls(stytchtest.RBACPolicy) == 2 }, 5*time.Second, time.Millisecond)
	done := make(chan error, 1)
	go func() {
		for range 50 {
			ok, err := p.Allowed(context.Background(), []string{"viewer"}, "documents", "read")
			if ok || !errors.Is(err, verifier.ErrUnavailable) {
				done <- fmt.Errorf("check during the retry: allowed=%v err=%v", ok, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("checks waited on the hanging retry")
	}
	assert.Equal(t, 2, f.emu.Calls(stytchtest.RBACPolicy), "checks start no fetch")
}

// TestPolicyMaxStaleness: a loaded policy serves while refreshes fail for at
// most MaxStaleness after its last successful fetch; then checks answer
// unavailable, never allow, and the WARN says so; they allow again once a
// refresh succeeds.
func TestPolicyMaxStaleness(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.cache(t, verifier.PolicyOptions{RefreshInterval: 10 * time.Millisecond, RetryInterval: 5 * time.Millisecond,
		FetchTimeout: 50 * time.Millisecond, MaxStaleness: 300 * time.Millisecond})
	require.True(t, allowed(t, p, []string{"editor"}, "documents", "write"))
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 500})
	var err error
	require.Eventually(t, func() bool {
		var ok bool
		ok, err = p.Allowed(context.Background(), []string{"editor"}, "documents", "write")
		require.True(t, ok || err != nil, "a stale policy either serves or fails, never denies wrongly")
		return err != nil
	}, 10*time.Second, time.Millisecond)
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	assert.Contains(t, err.Error(), "MaxStaleness")
	ok, err := p.Allowed(context.Background(), []string{"owner"}, "documents", "read")
	assert.False(t, ok, "never allow")
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	require.Eventually(t, func() bool { return strings.Contains(f.log.String(), "older than MaxStaleness") }, 5*time.Second, time.Millisecond)

	f.emu.ClearFaults()
	require.Eventually(t, func() bool {
		ok, err := p.Allowed(context.Background(), []string{"editor"}, "documents", "write")
		return err == nil && ok
	}, 10*time.Second, time.Millisecond)
}

// TestPolicyWrongCredentials: Refresh reports the misconfiguration; checks
// answer unavailable, never allow.
func TestPolicyWrongCredentials(t *testing.T) {
	f := newPolicyFixture(t)
	c, err := verifier.NewClient(verifier.ClientConfig{ProjectID: f.emu.ProjectID(), Secret: "secret-test-wrong", BaseURL: f.emu.URL()})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	p := verifier.NewPolicyCache(c, verifier.PolicyOptions{Logger: slog.New(slog.NewTextHandler(f.log, nil))})
	defer p.Close()
	require.ErrorIs(t, p.Refresh(context.Background()), verifier.ErrMisconfigured)
	ok, err := p.Allowed(context.Background(), []string{"owner"}, "documents", "read")
	assert.False(t, ok)
	assert.ErrorIs(t, err, verifier.ErrUnavailable)
}

// TestPolicyCallerDeadline: a caller waiting for a hung fetch gives up at
// its deadline; Close then cancels the fetch and leaves no goroutine.
func TestPolicyCallerDeadline(t *testing.T) {
	f := newPolicyFixture(t)
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Hang: true})
	p := verifier.NewPolicyCache(f.client, verifier.PolicyOptions{Logger: slog.New(slog.NewTextHandler(f.log, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ok, err := p.Allowed(ctx, []string{"owner"}, "documents", "read")
	assert.False(t, ok)
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, p.Refresh(ctx2), verifier.ErrUnavailable)
	assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy), "both joined the fetch in flight")
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "idempotent")
	assert.NotContains(t, f.log.String(), "WARN", "a fetch cancelled by Close is not an outage")
}

// TestPolicyAfterClose: a closed cache answers from the policy it loaded,
// and otherwise says unavailable without calling Stytch.
func TestPolicyAfterClose(t *testing.T) {
	f := newPolicyFixture(t)
	loaded := f.cache(t, verifier.PolicyOptions{})
	require.NoError(t, loaded.Refresh(context.Background()))
	require.NoError(t, loaded.Close())
	assert.True(t, allowed(t, loaded, []string{"viewer"}, "documents", "read"))
	assert.ErrorIs(t, loaded.Refresh(context.Background()), verifier.ErrUnavailable)

	never := f.cache(t, verifier.PolicyOptions{})
	require.NoError(t, never.Close())
	ok, err := never.Allowed(context.Background(), []string{"viewer"}, "documents", "read")
	assert.False(t, ok)
	assert.ErrorIs(t, err, verifier.ErrUnavailable)
	assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy))
}

// TestPolicyConcurrentChecksDuringRefresh: checks from many goroutines
// while the policy is refreshed every millisecond and changed at Stytch.
// Run with -race. A grant present in every version is always allowed; one
// that flips is answered from a whole snapshot, never an error.
func TestPolicyConcurrentChecksDuringRefresh(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.cache(t, verifier.PolicyOptions{RefreshInterval: time.Millisecond})
	require.NoError(t, p.Refresh(context.Background()))
	withDelete := rbacTestPolicy()
	withDelete.Roles = append(withDelete.Roles, stytchtest.Role{ID: "editor", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"delete"}}}})

	// Run until several refreshes have happened (bounded, for slow
	// machines).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		for i := 0; ctx.Err() == nil && f.emu.Calls(stytchtest.RBACPolicy) < 10; i++ {
			if i%2 == 0 {
				f.emu.SetPolicy(withDelete)
			} else {
				f.emu.SetPolicy(rbacTestPolicy())
			}
			time.Sleep(time.Millisecond)
		}
	})
	var checks, deletes atomic.Int64
	var failed atomic.Value
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				ok, err := p.Allowed(context.Background(), []string{"editor"}, "documents", "write")
				if err != nil || !ok {
					failed.Store(fmt.Sprintf("write: %v %v", ok, err))
				}
				ok, err = p.Allowed(context.Background(), []string{"editor"}, "documents", "delete")
				if err != nil {
					failed.Store(err.Error())
				}
				if ok {
					deletes.Add(1)
				}
				checks.Add(1)
				runtime.Gosched() // leave the refresher some CPU
			}
		})
	}
	wg.Wait()
	assert.Nil(t, failed.Load())
	assert.Positive(t, checks.Load())
	assert.GreaterOrEqual(t, f.emu.Calls(stytchtest.RBACPolicy), 10, "refreshed meanwhile")
	t.Logf("%d checks, %d allowed delete, %d fetches", checks.Load(), deletes.Load(), f.emu.Calls(stytchtest.RBACPolicy))
}

// TestPolicyOneFetchInFlight: Refresh calls, checks and the refresher
// share the fetch in flight (here one that hangs until Close).
func TestPolicyOneFetchInFlight(t *testing.T) {
	f := newPolicyFixture(t)
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Hang: true})
	p := f.cache(t, verifier.PolicyOptions{RefreshInterval: time.Millisecond, FetchTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var unavailable atomic.Int32
	for range 20 {
		wg.Go(func() {
			if errors.Is(p.Refresh(ctx), verifier.ErrUnavailable) {
				unavailable.Add(1)
			}
		})
		wg.Go(func() {
			if ok, err := p.Allowed(ctx, []string{"viewer"}, "documents", "read"); !ok && errors.Is(err, verifier.ErrUnavailable) {
				unavailable.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(40), unavailable.Load())
	assert.Equal(t, 1, f.emu.Calls(stytchtest.RBACPolicy))
}

func TestPolicyErrorIsNotAllowed(t *testing.T) {
	// A nil context error path: Allowed never returns true with an error.
	f := newPolicyFixture(t)
	f.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 503})
	p := f.cache(t, verifier.PolicyOptions{})
	for _, roles := range [][]string{nil, {"owner"}, {"broad"}, {"stytch_admin"}} {
		ok, err := p.Allowed(context.Background(), roles, "documents", "read")
		assert.False(t, ok)
		assert.True(t, errors.Is(err, verifier.ErrUnavailable))
	}
}

// A PolicyCache answers permission checks from the project's RBAC policy,
// fetched once and refreshed in the background: checks cost no Stytch call.
func ExamplePolicyCache() {
	emu := stytchtest.New(stytchtest.WithPolicy(stytchtest.Policy{Roles: []stytchtest.Role{
		{ID: "viewer", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read"}}}},
		{ID: "editor", Permissions: []stytchtest.Permission{{ResourceID: "documents", Actions: []string{"read", "write"}}}},
	}}))
	defer emu.Close()
	client, err := verifier.NewClient(verifier.ClientConfig{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL()})
	if err != nil {
		panic(err)
	}
	defer client.CloseIdleConnections()
	policy := verifier.NewPolicyCache(client, verifier.PolicyOptions{})
	defer policy.Close()

	ctx := context.Background()
	for _, roles := range [][]string{{"stytch_member", "editor"}, {"stytch_member", "viewer"}, {"intern"}} {
		ok, err := policy.Allowed(ctx, roles, "documents", "write")
		fmt.Println(roles, "documents:write", ok, err)
	}
	fmt.Println("policy fetches:", emu.Calls(stytchtest.RBACPolicy))
	// Output:
	// [stytch_member editor] documents:write true <nil>
	// [stytch_member viewer] documents:write false <nil>
	// [intern] documents:write false <nil>
	// policy fetches: 1
}

// TestPolicyNil: nil receivers and clients fail closed, without a panic.
func TestPolicyNil(t *testing.T) {
	var nilCache *verifier.PolicyCache
	ok, err := nilCache.Allowed(context.Background(), []string{"owner"}, "documents", "read")
	assert.False(t, ok)
	assert.ErrorIs(t, err, verifier.ErrMisconfigured)
	assert.ErrorIs(t, nilCache.Refresh(context.Background()), verifier.ErrMisconfigured)
	assert.NoError(t, nilCache.Close())

	f := newPolicyFixture(t)
	p := verifier.NewPolicyCache(nil, verifier.PolicyOptions{Logger: slog.New(slog.NewTextHandler(f.log, nil))})
	defer p.Close()
	assert.ErrorIs(t, p.Refresh(context.Background()), verifier.ErrMisconfigured)
	ok, err = p.Allowed(context.Background(), []string{"owner"}, "documents", "read")
	assert.False(t, ok)
	assert.ErrorIs(t, err, verifier.ErrUnavailable)
}

package verifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of PolicyOptions.
const (
	// DefaultPolicyRefreshInterval is how often a loaded RBAC policy is
	// refetched, as in Stytch's SDKs.
	DefaultPolicyRefreshInterval = 5 * time.Minute
	// DefaultPolicyRetryInterval is the least time between a failed policy
	// fetch and the next one.
	DefaultPolicyRetryInterval = 10 * time.Second
	// DefaultPolicyFetchTimeout bounds one policy fetch, retries included.
	DefaultPolicyFetchTimeout = 30 * time.Second
	// DefaultPolicyMaxStaleness is how long a loaded policy keeps answering
	// checks after its last successful fetch while refreshes fail: three
	// refresh intervals.
	DefaultPolicyMaxStaleness = 3 * DefaultPolicyRefreshInterval
)

// PolicyOptions configures a PolicyCache. The zero value is ready to use.
type PolicyOptions struct {
	// RefreshInterval is how often the background goroutine refetches a
	// loaded policy (default DefaultPolicyRefreshInterval). Tests use a few
	// milliseconds.
	RefreshInterval time.Duration
	// RetryInterval is the least time between a failed fetch and the next
	// one (default DefaultPolicyRetryInterval, capped at RefreshInterval):
	// the background goroutine retries a failed fetch after this long
	// rather than a whole RefreshInterval. Checks never retry themselves:
	// while no policy is loaded after a failure they fail at once.
	RetryInterval time.Duration
	// FetchTimeout bounds one fetch, the client's retries included
	// (default DefaultPolicyFetchTimeout). A fetch runs on the cache's own
	// context, so a caller that gives up does not abort it for the others.
	FetchTimeout time.Duration
	// MaxStaleness is how long a loaded policy keeps answering checks after
	// its last successful fetch, while refreshes fail (default
	// DefaultPolicyMaxStaleness; at least RefreshInterval + FetchTimeout,
	// so that a normal refresh never lets it lapse). Beyond it, checks
	// answer ErrUnavailable, never allow, until a fetch succeeds: a long
	// outage cannot keep granting what Stytch may have revoked meanwhile.
	// A negative value serves the last policy for as long as refreshes fail.
	MaxStaleness time.Duration
	// Logger receives fetch failures at WARN. Default: slog.Default().
	Logger *slog.Logger
}

// PolicyCache holds the project's RBAC policy (GET /v1/b2b/rbac/policy) and
// answers permission checks locally, as Stytch's SDKs do (see Allowed), so a
// check costs no Stytch call.
//
// The policy is fetched lazily: the first check (or an explicit Refresh)
// fetches it, and callers wait for that fetch, bounded by their context.
// From the first check on, a background goroutine refetches it every
// RefreshInterval. A cache that is never used never calls Stytch. Call
// Refresh at start-up to load the policy eagerly.
//
// One fetch at most is in flight at a time: concurrent checks that find no
// policy, the background refresher and Refresh calls all share it.
//
// Each loaded policy is compiled into an immutable snapshot that is swapped
// in atomically, so checks take no lock and never see a half-updated
// policy.
//
// Failures: while no policy has loaded, checks return an error matching
// ErrUnavailable and never allow. Only the first fetch is waited for: once a
// fetch has failed, checks fail at once (no call, no wait) until the
// background goroutine, retrying every RetryInterval, loads a policy. Once a
// policy has loaded, it keeps serving when later refreshes fail (each
// failure is logged at WARN and retried after RetryInterval) for at most
// MaxStaleness after its last successful fetch: a stale policy is the one
// Stytch last confirmed, and answering 503 to every authorization check
// during a short Stytch outage would turn that outage into ours; beyond
// MaxStaleness, checks answer ErrUnavailable until Stytch answers again.
// Policy changes are therefore seen within RefreshInterval while Stytch
// answers.
//
// Org-scoped custom roles (GET /v1/b2b/rbac/organizations/{id}, a private
// beta) are not fetched: only the project's roles grant permissions.
//
// Create one per process (or per Stytch project) and Close it at shutdown.
// It is safe for concurrent use.
type PolicyCache struct {
	client *Client
	opts   PolicyOptions
	log    *slog.Logger

	cur atomic.Pointer[policySnapshot]

	mu        sync.Mutex
	inflight  *fetchCall // the fetch in flight, nil when none
	lastErr   error      // error of the last failed fetch, nil after a success
	lastFetch time.Time  // when the last fetch finished, either way

	ctx       context.Context // cancelled by Close; fetches run on it
	stop      context.CancelFunc
	kick      chan struct{} // closed on first use: starts the refresher
	kickOnce  sync.Once
	done      chan struct{}
	closeOnce sync.Once
}

// actionSet is the actions a role grants on one resource.
type actionSet struct {
	all     bool // "*"
	actions map[string]struct{}
}

// policySnapshot is a compiled, immutable policy: role ID → resource ID →
// granted actions.
type policySnapshot struct {
	roles     map[string]map[string]*actionSet
	fetchedAt time.Time
}

// NewPolicyCache returns a PolicyCache that fetches the policy with client
// (a nil client makes every fetch fail with ErrMisconfigured). It makes no
// network call; it starts one goroutine, which Close stops.
func NewPolicyCache(client *Client, opts PolicyOptions) *PolicyCache {
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultPolicyRefreshInterval
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultPolicyRetryInterval
	}
	opts.RetryInterval = min(opts.RetryInterval, opts.RefreshInterval)
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultPolicyFetchTimeout
	}
	if opts.MaxStaleness == 0 {
		opts.MaxStaleness = DefaultPolicyMaxStaleness
	}
	if opts.MaxStaleness > 0 {
		opts.MaxStaleness = max(opts.MaxStaleness, opts.RefreshInterval+opts.FetchTimeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	p := &PolicyCache{
		client: client, opts: opts, log: opts.Logger,
		ctx: ctx, stop: stop,
		kick: make(chan struct{}),
		done: make(chan struct{}),
	}
	go p.run()
	return p
}

// Allowed reports whether a session with roles may perform action on
// resource, by the rules of Stytch's local RBAC evaluation: some role among
// roles must be defined in the policy and hold a permission whose
// resource_id is exactly resource (there is no wildcard on resources) and
// whose actions contain action or "*". Roles the policy does not define
// grant nothing.
//
// The roles are the session's (Session.Roles), which Stytch assigns within
// the session's organization: the answer is about that organization only,
// and the caller must check separately that the resource belongs to it.
//
// It makes no network call once the policy is loaded. Before that, it waits
// for the first fetch (bounded by ctx and FetchTimeout); if no policy is
// loaded, or the one loaded is older than MaxStaleness, it returns false and
// an error matching ErrUnavailable. It never allows on error. A nil
// PolicyCache returns an error matching ErrMisconfigured.
func (p *PolicyCache) Allowed(ctx context.Context, roles []string, resource, action string) (bool, error) {
	if p == nil {
		return false, errNilPolicy
	}
	p.kickOnce.Do(func() { close(p.kick) })
	snap := p.cur.Load()
	if snap == nil {
		var err error
		if snap, err = p.load(ctx); err != nil {
			return false, err
		}
	}
	if p.stale(snap) {
		return false, fmt.Errorf("%w: RBAC policy last loaded %s ago (MaxStaleness %s) and refreshes are failing",
			ErrUnavailable, time.Since(snap.fetchedAt).Round(time.Second), p.opts.MaxStaleness)
	}
	return snap.allowed(roles, resource, action), nil
}

// stale reports whether snap is too old to answer checks.
func (p *PolicyCache) stale(snap *policySnapshot) bool {
	return p.opts.MaxStaleness > 0 && time.Since(snap.fetchedAt) > p.opts.MaxStaleness
}

// Refresh fetches the policy now (or joins the fetch in flight) and
// returns its error. On error the policy in use, if any, stays in use.
// Use it to load the policy at start-up or to pick up a change at once.
// The error matches ErrUnavailable or ErrMisconfigured, like the client's.
func (p *PolicyCache) Refresh(ctx context.Context) error {
	if p == nil {
		return errNilPolicy
	}
	p.kickOnce.Do(func() { close(p.kick) })
	f, err := p.startFetch(true)
	if err != nil {
		return err
	}
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the RBAC policy: %w", ErrUnavailable, ctx.Err())
	}
}

// Close stops the background refresher and waits for it; a fetch in flight
// is cancelled. Checks keep answering from the policy already loaded, if
// any. Close does not close the client. It is idempotent and returns nil.
func (p *PolicyCache) Close() error {
	if p == nil {
		return nil
	}
	p.closeOnce.Do(func() {
		p.stop()
		<-p.done
	})
	return nil
}

var (
	// errPolicyClosed: the cache is closed and never loaded a policy.
	errPolicyClosed = errors.New("policy cache closed")
	// errNilPolicy: a method was called on a nil *PolicyCache.
	errNilPolicy = fmt.Errorf("%w: nil RBAC policy cache", ErrMisconfigured)
	// errNilClient: NewPolicyCache was given a nil client.
	errNilClient = fmt.Errorf("%w: RBAC policy cache without a client", ErrMisconfigured)
)

// load returns the loaded policy, fetching it (or waiting for the fetch in
// flight) if none is loaded yet. Failed fetches are not retried within
// RetryInterval.
func (p *PolicyCache) load(ctx context.Context) (*policySnapshot, error) {
	f, err := p.startFetch(false)
	if err != nil {
		return nil, err
	}
	if f == nil { // loaded meanwhile
		return p.cur.Load(), nil
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the RBAC policy: %w", ErrUnavailable, ctx.Err())
	}
	if snap := p.cur.Load(); snap != nil {
		return snap, nil
	}
	return nil, notLoaded(f.err)
}

// notLoaded is the error of a check while no policy is loaded: it matches
// ErrUnavailable (and nothing else of this package), whatever the cause.
func notLoaded(cause error) error {
	if cause == nil {
		cause = errors.New("not fetched yet")
	}
	return fmt.Errorf("%w: RBAC policy not loaded: %v", ErrUnavailable, cause)
}

// startFetch returns the fetch in flight, or starts one. Unless force is
// set, it returns (nil, nil) when a policy is loaded, and an error without
// fetching or waiting when no policy is loaded and a fetch has failed: the
// background goroutine retries, and checks do not queue up behind a dead
// endpoint.
func (p *PolicyCache) startFetch(force bool) (*fetchCall, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !force && p.cur.Load() == nil && p.lastErr != nil {
		return nil, notLoaded(p.lastErr)
	}
	if f := p.inflight; f != nil {
		return f, nil
	}
	if err := p.ctx.Err(); err != nil {
		if force || p.cur.Load() == nil {
			return nil, notLoaded(errPolicyClosed)
		}
		return nil, nil
	}
	if !force && p.cur.Load() != nil {
		return nil, nil
	}
	f := &fetchCall{done: make(chan struct{})}
	p.inflight = f
	go p.fetch(f)
	return f, nil
}

// fetch performs f on the cache's context and publishes its outcome.
func (p *PolicyCache) fetch(f *fetchCall) {
	var pol *Policy
	err := errNilClient
	if p.client != nil {
		ctx, cancel := context.WithTimeout(p.ctx, p.opts.FetchTimeout)
		pol, err = p.client.Policy(ctx)
		cancel()
	}
	var snap *policySnapshot
	if err == nil {
		snap = compilePolicy(pol, time.Now())
	}
	p.mu.Lock()
	now := time.Now()
	p.lastFetch = now
	if err != nil {
		p.lastErr = err
	} else {
		p.lastErr = nil
		p.cur.Store(snap)
	}
	p.inflight = nil
	f.err = err
	old := p.cur.Load()
	p.mu.Unlock()
	if err != nil && p.ctx.Err() == nil { // a fetch cancelled by Close is no outage
		switch {
		case old != nil && p.stale(old):
			p.log.Warn("verifier: RBAC policy refresh failed; the policy last loaded is older than MaxStaleness: permission checks answer unavailable",
				"error", err, "policy_age", now.Sub(old.fetchedAt).Round(time.Second))
		case old != nil:
			p.log.Warn("verifier: RBAC policy refresh failed; serving the policy last loaded",
				"error", err, "policy_age", now.Sub(old.fetchedAt).Round(time.Second))
		default:
			p.log.Warn("verifier: RBAC policy fetch failed; permission checks answer unavailable", "error", err)
		}
	}
	close(f.done)
}

// run is the background refresher. It waits for the first use, then
// refreshes RefreshInterval after the last fetch when it succeeded, and
// RetryInterval after it when it failed. Fetches go through startFetch, so
// they share the fetch in flight with checks and Refresh calls.
func (p *PolicyCache) run() {
	defer close(p.done)
	defer p.waitInflight() // runs first: no fetch outlives Close
	select {
	case <-p.kick:
	case <-p.ctx.Done():
		return
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.mu.Lock()
		f := p.inflight
		interval := p.opts.RefreshInterval
		if p.lastErr != nil || p.cur.Load() == nil {
			interval = p.opts.RetryInterval
		}
		next := interval
		if !p.lastFetch.IsZero() {
			next -= time.Since(p.lastFetch)
		}
		p.mu.Unlock()
		if f == nil && next <= 0 {
			if f, _ = p.startFetch(true); f == nil {
				return // closed
			}
		}
		if f != nil {
			select {
			case <-f.done:
			case <-p.ctx.Done():
				return
			}
			continue
		}
		t.Reset(next)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			return
		}
	}
}

// waitInflight waits for the fetch in flight, if any, to finish (Close has
// cancelled it), so that Close leaves no goroutine behind.
func (p *PolicyCache) waitInflight() {
	p.mu.Lock()
	f := p.inflight
	p.mu.Unlock()
	if f != nil {
		<-f.done
	}
}

// compilePolicy turns a policy into a snapshot. Roles defined more than
// once grant the union of their permissions.
func compilePolicy(pol *Policy, at time.Time) *policySnapshot {
	s := &policySnapshot{roles: make(map[string]map[string]*actionSet, len(pol.Roles)), fetchedAt: at}
	for _, r := range pol.Roles {
		res := s.roles[r.RoleID]
		if res == nil {
			res = make(map[string]*actionSet, len(r.Permissions))
			s.roles[r.RoleID] = res
		}
		for _, perm := range r.Permissions {
			as := res[perm.ResourceID]
			if as == nil {
				as = &actionSet{actions: map[string]struct{}{}}
				res[perm.ResourceID] = as
			}
			for _, a := range perm.Actions {
				if a == "*" {
					as.all = true
				}
				as.actions[a] = struct{}{}
			}
		}
	}
	return s
}

// allowed evaluates a check against the snapshot.
func (s *policySnapshot) allowed(roles []string, resource, action string) bool {
	for _, r := range roles {
		as := s.roles[r][resource]
		if as == nil {
			continue
		}
		if as.all {
			return true
		}
		if _, ok := as.actions[action]; ok {
			return true
		}
	}
	return false
}

package main

// The soak run (make soak): the example server under mixed load for
// SOAK_DURATION, with Redis restarted midway. Skipped unless SOAK_DURATION
// is set. It runs in process so that it can read the runtime's figures.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// rueidis goroutines that sleep past Client.Close and end by themselves.
var leakIgnores = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
}

// TestMain checks for leaked goroutines after the run, then removes the
// example's build directory.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(leakIgnores, goleak.Cleanup(func(code int) {
		removeBuildDir()
		os.Exit(code)
	}))...)
}

type soakCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *soakCounts) add(kind string) {
	c.mu.Lock()
	c.m[kind]++
	c.mu.Unlock()
}

func (c *soakCounts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

func memFigures() (goroutines int, heapMiB float64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), float64(ms.HeapAlloc) / (1 << 20)
}

// TestSoak drives the example server with valid tokens (opaque and JWT),
// invalid and malformed tokens, logouts and revoked tokens from 8 clients,
// and restarts Redis at half time. Every answer must be the expected one
// (valid: 200, invalid/revoked: 401, logout: 204); goroutines and heap
// must end where they started.
func TestSoak(t *testing.T) {
	d := os.Getenv("SOAK_DURATION")
	if d == "" {
		t.Skip("set SOAK_DURATION (e.g. 2m) to run the soak test; make soak does")
	}
	duration, err := time.ParseDuration(d)
	require.NoError(t, err, "SOAK_DURATION")
	backend := os.Getenv("SOAK_BACKEND")
	if backend == "" {
		backend = "redis"
	}

	srv := redistest.Start(t)
	emu := stytchtest.New()
	defer emu.Close()
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Soak"})
	newSession := func() stytchtest.Session {
		m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: fmt.Sprintf("m%d@soak.test", rand.Int64())})
		require.NoError(t, err)
		s, err := emu.CreateSession(m.ID, stytchtest.SessionParams{Duration: 24 * time.Hour})
		require.NoError(t, err)
		return s
	}
	var valid []string
	for range 100 {
		s := newSession()
		valid = append(valid, s.Token, s.JWT)
	}
	var invalid []string
	for i := range 50 {
		invalid = append(invalid, fmt.Sprintf("unknown_token_%030d", i)) // well formed, unknown
	}
	malformed := []string{"short", "Basic", "a..b", strings.Repeat("A", 300), "tok\u00e9n_0123456789abcdefghij"}

	stack, err := echostytch.FromEnv(context.Background(), envconfig.MapLookuper(map[string]string{
		"STYTCH_PROJECT_ID": emu.ProjectID(), "STYTCH_SECRET": emu.Secret(), "STYTCH_BASE_URL": emu.URL(),
		"STYTCH_REDIS_URL": "redis://" + srv.Addr(), "STYTCH_CACHE_BACKEND": backend,
		"STYTCH_LOG_LEVEL": "ERROR", "STYTCH_REQUEST_TIMEOUT": "2",
	}))
	require.NoError(t, err)
	hs := httptest.NewServer(newServer(stack))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}

	var revokedMu sync.Mutex
	var revoked []string
	counts := &soakCounts{m: map[string]int{}}
	var requests atomic.Int64
	do := func(method, path, auth string) int {
		req, _ := http.NewRequest(method, hs.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		requests.Add(1)
		if err != nil {
			counts.add("transport_error")
			return 0
		}
		// Read to the end, so that the connection is reused.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	check := func(kind string, got, want int) {
		if got == want {
			counts.add(kind + "_" + fmt.Sprint(got))
			return
		}
		counts.add(fmt.Sprintf("UNEXPECTED_%s_%d", kind, got))
	}

	// Clients drive the mix until a deadline.
	load := func(until time.Time, seed uint64) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), seed))
				for time.Now().Before(until) {
					switch p := rng.IntN(100); {
					case p < 70:
						check("valid", do("GET", "/protected", "Bearer "+valid[rng.IntN(len(valid))]), 200)
					case p < 82:
						check("invalid", do("GET", "/protected", "Bearer "+invalid[rng.IntN(len(invalid))]), 401)
					case p < 87:
						check("malformed", do("GET", "/protected", "Bearer "+malformed[rng.IntN(len(malformed))]), 401)
					case p < 89:
						check("optional_anonymous", do("GET", "/optional-auth", ""), 200)
					case p < 90:
						s := newSession()
						check("fresh", do("GET", "/protected", "Bearer "+s.Token), 200)
						check("logout", do("POST", "/logout", "Bearer "+s.Token), 204)
						revokedMu.Lock()
						revoked = append(revoked, s.Token)
						revokedMu.Unlock()
					default:
						revokedMu.Lock()
						var tok string
						if len(revoked) > 0 {
							tok = revoked[rng.IntN(len(revoked))]
						}
						revokedMu.Unlock()
						if tok != "" {
							check("revoked", do("GET", "/protected", "Bearer "+tok), 401)
						}
					}
				}
			})
		}
		wg.Wait()
	}

	// Warm up under the same load (connection pools fill up to the
	// concurrency), then take the starting figures.
	load(time.Now().Add(min(max(duration/10, time.Second), 10*time.Second)), 1)
	client.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	g0, h0 := memFigures()
	t.Logf("start: goroutines %d, heap %.1f MiB", g0, h0)

	deadline := time.Now().Add(duration)
	restartAt := time.Now().Add(duration / 2)
	done := make(chan struct{})
	go func() { defer close(done); load(deadline, 42) }()
	// Midway: Redis restarts (the cache is lost; requests go on through
	// Stytch, and caching resumes).
	ticker := time.NewTicker(max(duration/6, time.Second))
	restarted := false
	restartTimer := time.NewTimer(time.Until(restartAt))
	defer restartTimer.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	for time.Now().Before(deadline) {
		// Once Redis has restarted, only the ticker and the end wake this
		// loop (a timer for a moment already past would fire at once and
		// spin it, stealing a CPU from the load).
		select {
		case <-ticker.C:
			g, h := memFigures()
			t.Logf("%v: %d requests, goroutines %d, heap %.1f MiB", time.Until(deadline).Round(time.Second)*-1+duration, requests.Load(), g, h)
		case <-restartTimer.C:
		case <-end.C:
		}
		if !restarted && time.Now().After(restartAt) {
			restarted = true
			srv.Kill()
			time.Sleep(min(2*time.Second, duration/10))
			srv.Restart()
			t.Logf("Redis restarted after %d requests", requests.Load())
		}
	}
	ticker.Stop()
	<-done

	client.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond) // the server notices the closed connections
	g1, h1 := memFigures()
	if g1 > g0+10 {
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
	}
	hs.Close()
	require.NoError(t, stack.Close())

	got := counts.snapshot()
	var kinds []string
	for k := range got {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "soak %v (backend %s, Redis restarted midway): %d requests\n", duration, backend, requests.Load())
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-28s %d\n", k, got[k])
	}
	fmt.Fprintf(&b, "  goroutines: start %d, end %d\n  heap:       start %.1f MiB, end %.1f MiB\n", g0, g1, h0, h1)
	fmt.Fprintf(&b, "  Stytch authenticate calls: %d\n", emu.Calls(stytchtest.Authenticate))
	t.Log("\n" + b.String())
	fmt.Print(b.String())

	for _, k := range kinds {
		assert.False(t, strings.HasPrefix(k, "UNEXPECTED") || k == "transport_error", "unexpected outcome %s: %d", k, got[k])
	}
	assert.True(t, restarted)
	assert.LessOrEqual(t, g1, g0+10, "goroutines stay flat")
	assert.LessOrEqual(t, h1, 2*h0+32, "heap stays flat (MiB)")
}

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is the output writer given to run: run writes from its
// goroutine while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listenRE = regexp.MustCompile(`Listening on (http://(\S+)) \(`)

// server is the example running through its real entry point, run, on a
// loopback port chosen by the kernel (ADDR=127.0.0.1:0).
type server struct {
	base   string // http://127.0.0.1:port, as run printed it
	addr   string // 127.0.0.1:port
	out    *syncBuffer
	client *http.Client
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
	stopErr  error

	mu     sync.Mutex
	bodies []string // every /metrics body scraped
}

// start runs run(ctx, env, out) in a goroutine and waits until it has
// printed its listen address and, if given, the text ready (the end of the
// demo instructions). The test's cleanup stops it.
func start(t *testing.T, env map[string]string, ready string) *server {
	t.Helper()
	env["ADDR"] = "127.0.0.1:0"
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{
		out:    &syncBuffer{},
		client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { s.done <- run(ctx, getenv, s.out) }()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})

	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		out := s.out.String()
		if m := listenRE.FindStringSubmatch(out); m != nil && strings.Contains(out, ready) {
			s.base, s.addr = m[1], m[2]
			break
		}
		select {
		case err := <-s.done:
			s.done <- err // for stop
			t.Fatalf("run returned before serving: %v; output:\n%s", err, s.out.String())
		case <-deadline:
			t.Fatalf("run printed no listen address; output:\n%s", s.out.String())
		case <-tick.C:
		}
	}
	host, _, err := net.SplitHostPort(s.addr)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	return s
}

// stop cancels run's context and returns what run returned.
func (s *server) stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		select {
		case s.stopErr = <-s.done:
		case <-time.After(20 * time.Second):
			s.stopErr = errors.New("run did not return within 20s of the context's end")
		}
		s.client.CloseIdleConnections()
	})
	return s.stopErr
}

// assertShutdown cancels the context, expects run to return nil, and the
// port to be closed afterwards.
func (s *server) assertShutdown(t *testing.T) {
	t.Helper()
	// An idle keep-alive connection is open (the client pools it):
	// Shutdown must close it rather than wait for it.
	require.Equal(t, http.StatusOK, s.do(t, http.MethodGet, "/healthz", "").status)
	start := time.Now()
	require.NoError(t, s.stop(), "run must return nil once its context ends")
	assert.Less(t, time.Since(start), 5*time.Second, "graceful shutdown took too long")
	conn, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err == nil {
		_ = conn.Close()
	}
	require.Error(t, err, "the port %s must be closed after run returns", s.addr)
	_, err = http.Get(s.base + "/healthz")
	require.Error(t, err)
}

type response struct {
	status int
	body   string
}

func (s *server) do(t *testing.T, method, path, token string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, string(body)}
}

func (s *server) get(t *testing.T, path, token string) int {
	t.Helper()
	return s.do(t, http.MethodGet, path, token).status
}

// scrape reads /metrics, keeps the body for the secrets scan and returns
// the families by name.
func (s *server) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	r := s.do(t, http.MethodGet, "/metrics", "")
	require.Equal(t, http.StatusOK, r.status)
	s.mu.Lock()
	s.bodies = append(s.bodies, r.body)
	s.mu.Unlock()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(r.body))
	require.NoError(t, err)
	return fams
}

// value sums the counter (or histogram count) of family name over the
// series whose labels include every "k=v" of match.
func value(fams map[string]*dto.MetricFamily, name string, match ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	var sum float64
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for _, kv := range match {
			k, v, _ := strings.Cut(kv, "=")
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// emulatorIDPrefixes begin every ID and secret the emulator generates.
var emulatorIDPrefixes = []string{
	"project-test-", "secret-test-", "organization-test-", "member-test-",
	"member-email-test-", "member-session-test-", "jwk-test-", "request-id-test-",
}

// assertNoSecrets checks every /metrics body scraped: none holds a
// secret, nor a token or 16 consecutive characters of one.
func (s *server) assertNoSecrets(t *testing.T, tokens, secrets []string) {
	t.Helper()
	s.mu.Lock()
	bodies := s.bodies
	s.mu.Unlock()
	require.NotEmpty(t, bodies)
	const window = 16
	for i, body := range bodies {
		require.Contains(t, body, "ayzauth_auth_requests_total", "scrape %d", i)
		for _, sec := range slices.Concat(secrets, emulatorIDPrefixes) {
			require.NotEmpty(t, sec)
			if strings.Contains(body, sec) {
				t.Errorf("scrape %d holds %q", i, sec)
			}
		}
		for _, tok := range tokens {
			require.GreaterOrEqual(t, len(tok), window)
			for j := 0; j+window <= len(tok); j++ {
				if sub := tok[j : j+window]; strings.Contains(body, sub) {
					t.Errorf("scrape %d holds %q, 16 characters of a token", i, sub)
					break
				}
			}
		}
	}
}

const (
	requests = "ayzauth_auth_requests_total"
	lookups  = "ayzauth_cache_lookups_total"
	stytch   = "ayzauth_stytch_requests_total"

	plainEmail = "ada@demo.test" // createDemo's members
	adminEmail = "grace@demo.test"
	badToken   = "unknownSessionToken0123456789abcdefghijklmn"
)

// TestMetricsEndpoint runs the example through run against an emulator of
// the test's own, configured through the STYTCH_* variables (so the test
// can inject an outage), sends hits, a miss, rejections, a 403, an
// anonymous request, an outage, JWTs and a logout, then scrapes /metrics,
// finds each counter at its expected value and no secret in the output,
// and shuts the server down.
func TestMetricsEndpoint(t *testing.T) {
	emu := stytchtest.New()
	t.Cleanup(emu.Close) // after run has returned (cleanups run last first)
	d, err := createDemo(emu)
	require.NoError(t, err)
	s := start(t, map[string]string{
		"STYTCH_PROJECT_ID":      emu.ProjectID(),
		"STYTCH_SECRET":          emu.Secret(),
		"STYTCH_BASE_URL":        emu.URL(),
		"STYTCH_LOG_LEVEL":       "ERROR",
		"STYTCH_MAX_RETRIES":     "1",
		"STYTCH_REQUEST_TIMEOUT": "2",
	}, "")
	require.NotContains(t, s.out.String(), "Demo mode")
	// Let the background JWKS fetch land.
	require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) >= 1 }, 5*time.Second, 5*time.Millisecond)

	require.Equal(t, http.StatusOK, s.get(t, "/healthz", ""))
	for range 4 { // a miss, then 3 hits
		r := s.do(t, http.MethodGet, "/protected", d.plain.Token)
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, r.body, plainEmail)
	}
	require.Equal(t, http.StatusForbidden, s.get(t, "/admin", d.plain.Token))   // a hit, then 403
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", badToken)) // Stytch says 404
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", badToken)) // negative cache
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", ""))
	require.Equal(t, http.StatusOK, s.get(t, "/optional-auth", ""))
	// An outage: Stytch answers 503 to both attempts (STYTCH_MAX_RETRIES=1).
	emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: http.StatusServiceUnavailable})
	require.Equal(t, http.StatusServiceUnavailable, s.get(t, "/admin", d.admin.Token))
	emu.ClearFaults()

	fams := s.scrape(t)
	want := []struct {
		name  string
		match []string
		value float64
	}{
		{requests, []string{"ayzauth_outcome=ok"}, 5},
		{requests, []string{"ayzauth_outcome=forbidden"}, 1},
		{requests, []string{"ayzauth_outcome=invalid"}, 2},
		{requests, []string{"ayzauth_outcome=missing"}, 1},
		{requests, []string{"ayzauth_outcome=anonymous"}, 1},
		{requests, []string{"ayzauth_outcome=unavailable"}, 1},
		{requests, []string{"ayzauth_outcome=malformed"}, 0},
		{lookups, []string{"ayzauth_cache_tier=memory", "ayzauth_cache_result=hit"}, 4},
		{lookups, []string{"ayzauth_cache_tier=memory", "ayzauth_cache_result=miss"}, 4},
		{lookups, []string{"ayzauth_cache_tier=memo", "ayzauth_cache_result=hit"}, 4},
		{"ayzauth_cache_negative_hits_total", nil, 1},
		{stytch, []string{"ayzauth_stytch_endpoint=authenticate", "http_response_status_code=200"}, 1},
		{stytch, []string{"ayzauth_stytch_endpoint=authenticate", "http_response_status_code=404"}, 1},
		{stytch, []string{"ayzauth_stytch_endpoint=authenticate", "http_response_status_code=503", "ayzauth_stytch_retry=false"}, 1},
		{stytch, []string{"ayzauth_stytch_endpoint=authenticate", "http_response_status_code=503", "ayzauth_stytch_retry=true"}, 1},
		{"ayzauth_stytch_duration_seconds", []string{"ayzauth_stytch_endpoint=authenticate"}, 4},
		{"ayzauth_verify_duration_seconds", []string{"ayzauth_verify_result=ok"}, 1},
		{"ayzauth_verify_duration_seconds", []string{"ayzauth_verify_result=invalid"}, 1},
		{"ayzauth_verify_duration_seconds", []string{"ayzauth_verify_result=unavailable"}, 1},
		{"ayzauth_auth_duration_seconds", nil, 10}, // the middleware's decisions (not the 403)
	}
	for _, w := range want {
		assert.Equal(t, w.value, value(fams, w.name, w.match...), "%s%v", w.name, w.match)
	}
	if t.Failed() {
		logFamilies(t, fams)
	}

	// The emulator's outage is over: the admin session verifies, and the
	// counters move on from where they were.
	require.Equal(t, http.StatusOK, s.get(t, "/admin", d.admin.Token))
	fams = s.scrape(t)
	assert.Equal(t, 6.0, value(fams, requests, "ayzauth_outcome=ok"))
	assert.Equal(t, 2.0, value(fams, stytch, "ayzauth_stytch_endpoint=authenticate", "http_response_status_code=200"))

	// Session JWTs verify locally against the JWKS: no Stytch call.
	require.NotEmpty(t, d.plain.JWT)
	require.NotEmpty(t, d.admin.JWT)
	r := s.do(t, http.MethodGet, "/protected", d.plain.JWT)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, plainEmail)
	r = s.do(t, http.MethodGet, "/admin", d.admin.JWT)
	require.Equal(t, http.StatusOK, r.status)
	// The logout passes the middleware (a hit), revokes the session at
	// Stytch, and the token is refused from then on.
	require.Equal(t, http.StatusNoContent, s.do(t, http.MethodPost, "/logout", d.plain.Token).status)
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", d.plain.Token))
	r = s.do(t, http.MethodGet, "/optional-auth", d.admin.Token)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, adminEmail)

	fams = s.scrape(t)
	assert.Equal(t, 10.0, value(fams, requests, "ayzauth_outcome=ok"))
	assert.Equal(t, 3.0, value(fams, requests, "ayzauth_outcome=invalid"))
	assert.Equal(t, 1.0, value(fams, stytch, "ayzauth_stytch_endpoint=revoke", "http_response_status_code=200"))
	assert.Equal(t, 2.0, value(fams, stytch, "ayzauth_stytch_endpoint=authenticate", "http_response_status_code=200"))
	if t.Failed() {
		logFamilies(t, fams)
	}

	s.assertNoSecrets(t,
		[]string{d.plain.Token, d.admin.Token, d.plain.JWT, d.admin.JWT, badToken},
		[]string{
			emu.Secret(), emu.ProjectID(), plainEmail, adminEmail,
			d.plain.ID, d.plain.MemberID, d.plain.OrganizationID,
			d.admin.ID, d.admin.MemberID, d.admin.OrganizationID,
		})
	s.assertShutdown(t)
}

var demoTokenRE = regexp.MustCompile(`Bearer ([^']+)' (http://\S+)(/\S+)`)

// TestDemoMode runs the example as a user would (no STYTCH_PROJECT_ID: the
// embedded emulator), reads the tokens from the curl commands it prints,
// sends them, finds the counters and no secret in /metrics, and shuts the
// server down.
func TestDemoMode(t *testing.T) {
	s := start(t, map[string]string{"STYTCH_LOG_LEVEL": "ERROR"}, "/metrics | grep ^ayzauth_")
	out := s.out.String()
	require.Contains(t, out, "Demo mode")
	cmds := demoTokenRE.FindAllStringSubmatch(out, -1)
	require.Len(t, cmds, 4, "the demo's curl commands with a token:\n%s", out)
	for _, c := range cmds {
		require.Equal(t, s.base, c[2])
	}
	plain, admin, bad := cmds[0][1], cmds[2][1], cmds[3][1]
	require.Equal(t, plain, cmds[1][1])
	require.NotEqual(t, plain, admin)
	require.Equal(t, badToken, bad)

	r := s.do(t, http.MethodGet, cmds[0][3], plain) // /protected
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, plainEmail)
	require.Equal(t, http.StatusForbidden, s.get(t, cmds[1][3], plain)) // /admin
	require.Equal(t, http.StatusOK, s.get(t, cmds[2][3], admin))        // /admin
	require.Equal(t, http.StatusUnauthorized, s.get(t, cmds[3][3], bad))
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", ""))
	r = s.do(t, http.MethodGet, "/optional-auth", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "anonymous")
	r = s.do(t, http.MethodGet, "/optional-auth", admin)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, adminEmail)
	require.Equal(t, http.StatusNoContent, s.do(t, http.MethodPost, "/logout", plain).status)
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", plain))

	fams := s.scrape(t)
	for _, w := range []struct {
		outcome string
		value   float64
	}{
		{"ok", 5}, // /protected, both /admin, /optional-auth, /logout
		{"forbidden", 1},
		{"invalid", 2}, // the unknown token, the revoked one
		{"missing", 1},
		{"anonymous", 1},
		{"unavailable", 0},
		{"malformed", 0},
	} {
		assert.Equal(t, w.value, value(fams, requests, "ayzauth_outcome="+w.outcome), w.outcome)
	}
	assert.Equal(t, 1.0, value(fams, stytch, "ayzauth_stytch_endpoint=revoke", "http_response_status_code=200"))
	if t.Failed() {
		logFamilies(t, fams)
	}
	// The demo's project ID, secret and IDs are not printed: the scan
	// looks for the emulator's prefixes of them.
	s.assertNoSecrets(t, []string{plain, admin, bad}, []string{plainEmail, adminEmail})
	s.assertShutdown(t)
}

func logFamilies(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for name := range fams {
		if strings.HasPrefix(name, "ayzauth_") {
			t.Logf("%s", fams[name])
		}
	}
}

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
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

// server runs the example (demo mode) on a loopback port until the test
// ends.
type server struct {
	a    *app
	base string
}

func start(t *testing.T) *server {
	t.Helper()
	env := map[string]string{
		"ADDR":                   "127.0.0.1:0",
		"STYTCH_LOG_LEVEL":       "ERROR",
		"STYTCH_MAX_RETRIES":     "1",
		"STYTCH_REQUEST_TIMEOUT": "2",
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	// run builds the app itself; build it here too to reach the emulator,
	// and serve it the way run does.
	a, err := newApp(ctx, getenv)
	require.NoError(t, err)
	srv := &http.Server{Handler: a.e, ReadHeaderTimeout: 10 * time.Second}
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		cancel()
		_ = srv.Shutdown(context.Background())
		<-done
		a.Close()
	})
	// Let the background JWKS fetch land.
	require.Eventually(t, func() bool { return a.emu.Calls(stytchtest.JWKS) >= 1 }, 5*time.Second, 5*time.Millisecond)
	return &server{a: a, base: "http://" + ln.Addr().String()}
}

func (s *server) get(t *testing.T, path, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// scrape reads /metrics and returns the families by name.
func (s *server) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
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

// TestMetricsEndpoint sends hits, a miss, rejections, a 403, an anonymous
// request and an outage through the example server, then scrapes /metrics
// and finds each counter at its expected value.
func TestMetricsEndpoint(t *testing.T) {
	s := start(t)
	d := s.a.demo
	bad := "unknownSessionToken0123456789abcdefghijklmn"

	require.Equal(t, http.StatusOK, s.get(t, "/healthz", ""))
	for range 4 { // a miss, then 3 hits
		require.Equal(t, http.StatusOK, s.get(t, "/protected", d.plain.Token))
	}
	require.Equal(t, http.StatusForbidden, s.get(t, "/admin", d.plain.Token)) // a hit, then 403
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", bad))    // Stytch says 404
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", bad))    // negative cache
	require.Equal(t, http.StatusUnauthorized, s.get(t, "/protected", ""))
	require.Equal(t, http.StatusOK, s.get(t, "/optional-auth", ""))
	// An outage: Stytch answers 503 to both attempts (STYTCH_MAX_RETRIES=1).
	s.a.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: http.StatusServiceUnavailable})
	require.Equal(t, http.StatusServiceUnavailable, s.get(t, "/admin", d.admin.Token))
	s.a.emu.ClearFaults()

	fams := s.scrape(t)
	const (
		requests = "ayzauth_auth_requests_total"
		lookups  = "ayzauth_cache_lookups_total"
		stytch   = "ayzauth_stytch_requests_total"
	)
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
		for name := range fams {
			if strings.HasPrefix(name, "ayzauth_") {
				t.Logf("%s", fams[name])
			}
		}
	}

	// The emulator's outage is over: the admin session verifies, and the
	// counters move on from where they were.
	require.Equal(t, http.StatusOK, s.get(t, "/admin", d.admin.Token))
	fams = s.scrape(t)
	assert.Equal(t, 6.0, value(fams, requests, "ayzauth_outcome=ok"))
	assert.Equal(t, 2.0, value(fams, stytch, "ayzauth_stytch_endpoint=authenticate", "http_response_status_code=200"))
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

package echostytch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// telRig is a FromEnv stack whose metrics and spans go to an in-memory
// reader and span recorder.
type telRig struct {
	*rig
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	last   metricdata.ResourceMetrics
	nspans int
	// secrets must appear in no attribute, span name or status.
	secrets []string
}

func newTelRig(t *testing.T, env map[string]string) *telRig {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	emu := stytchtest.New()
	t.Cleanup(emu.Close)
	all := map[string]string{"STYTCH_REQUEST_TIMEOUT": "2", "STYTCH_MAX_RETRIES": "1"}
	for k, v := range env {
		all[k] = v
	}
	stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, all),
		echostytch.WithMeterProvider(mp), echostytch.WithTracerProvider(tp))
	require.NoError(t, err)
	t.Cleanup(func() { _ = stack.Close() })
	if r, ok := stack.Store.(interface{ Ready() <-chan struct{} }); ok {
		select { // the Redis store connects in the background
		case <-r.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("Redis store did not connect")
		}
	}
	e := echo.New()
	auth := echostytch.New(stack.Config)
	opt := stack.Config
	opt.Optional = true
	e.GET("/p", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, auth)
	e.GET("/admin", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, auth, echostytch.RequireClaims("admin"))
	e.GET("/opt", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, echostytch.New(opt))
	e.POST("/logout", stack.Logout(), auth)
	e.GET("/doc", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, auth,
		echostytch.RequirePermission(stack.Policy, "documents", "read"))
	require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) >= 1 }, 5*time.Second, 5*time.Millisecond)
	r := &telRig{
		rig:     &rig{emu: emu, org: emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"}), stack: stack, e: e},
		reader:  reader,
		spans:   sr,
		secrets: []string{emu.Secret(), emu.ProjectID(), "@acme.test"},
	}
	r.step(t)
	return r
}

// session creates a session and remembers its credentials and IDs as
// secrets.
func (r *telRig) session(t *testing.T) stytchtest.Session {
	s := r.rig.session(t, stytchtest.SessionParams{})
	r.secrets = append(r.secrets, s.Token, s.JWT, s.ID, s.MemberID, r.org.ID)
	return s
}

func (r *telRig) get(path, token string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	r.e.ServeHTTP(rec, req)
	return rec.Code
}

func (r *telRig) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	return rm
}

// delta is what a step recorded: counter increments and histogram counts
// by metric and attribute set, and the spans ended.
type delta struct {
	sums  map[string]int64 // "metric{k=v,...}" -> increment
	spans []sdktrace.ReadOnlySpan
}

// step returns what was recorded since the previous step.
func (r *telRig) step(t *testing.T) delta {
	t.Helper()
	now := r.collect(t)
	before, after := flatten(r.last), flatten(now)
	d := delta{sums: map[string]int64{}}
	for k, v := range after {
		if dv := v - before[k]; dv != 0 {
			d.sums[k] = dv
		}
	}
	ended := r.spans.Ended()
	d.spans = ended[r.nspans:]
	r.last, r.nspans = now, len(ended)
	return d
}

// flatten maps "name{attrs}" to a counter's value or a histogram's count.
func flatten(rm metricdata.ResourceMetrics) map[string]int64 {
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					out[m.Name+attrKey(dp.Attributes)] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					out[m.Name+attrKey(dp.Attributes)] += int64(dp.Count)
				}
			}
		}
	}
	return out
}

func attrKey(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// sum adds the increments of metric name over the data points whose
// attributes include every "k=v" of match.
func (d delta) sum(name string, match ...string) int64 {
	var n int64
next:
	for k, v := range d.sums {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		attrs := "," + strings.TrimSuffix(strings.TrimPrefix(k, name+"{"), "}") + ","
		for _, m := range match {
			if !strings.Contains(attrs, ","+m+",") {
				continue next
			}
		}
		n += v
	}
	return n
}

// named returns the spans called name (or starting with name + " ").
func (d delta) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range d.spans {
		if s.Name() == name || strings.HasPrefix(s.Name(), name+" ") {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestTelemetry drives a hit, a miss, rejections, an outage, optional
// authentication and a burst of concurrent misses through a FromEnv stack
// on each backend, and checks the metrics and spans each one recorded; then
// that no recorded attribute holds a token, an ID, an email or the secret.
func TestTelemetry(t *testing.T) {
	type backend struct {
		name string
		env  map[string]string
		tier string // ayzauth.cache.tier of the store's lookups
	}
	backends := []backend{{"memory", nil, "memory"}}
	if _, err := exec.LookPath("redis-server"); err == nil {
		url := "redis://" + redistest.Start(t).Addr()
		backends = append(backends,
			backend{"redis", map[string]string{"STYTCH_REDIS_URL": url}, "redis"},
			backend{"tiered", map[string]string{"STYTCH_REDIS_URL": url, "STYTCH_CACHE_BACKEND": "tiered"}, "l1"})
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			r := newTelRig(t, b.env)
			redis := b.name != "memory"
			tier := "ayzauth.cache.tier=" + b.tier
			a := r.session(t)

			// A miss: one Stytch call, a verification span with the
			// Stytch attempt and the fill below it.
			require.Equal(t, http.StatusOK, r.get("/p", a.Token))
			d := r.step(t)
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=ok"), "%v", d.sums)
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.duration", "ayzauth.outcome=ok"))
			assert.EqualValues(t, 1, d.sum("ayzauth.cache.lookups", tier, "ayzauth.cache.result=miss"))
			if b.name == "tiered" {
				assert.EqualValues(t, 1, d.sum("ayzauth.cache.lookups", "ayzauth.cache.tier=redis", "ayzauth.cache.result=miss"))
			}
			assert.Zero(t, d.sum("ayzauth.cache.lookups", "ayzauth.cache.tier=memo"), "the memo is consulted on store hits only")
			assert.EqualValues(t, 1, d.sum("ayzauth.stytch.requests", "ayzauth.stytch.endpoint=authenticate", "http.response.status_code=200", "ayzauth.stytch.retry=false"))
			assert.EqualValues(t, 1, d.sum("ayzauth.stytch.duration", "ayzauth.stytch.endpoint=authenticate"))
			assert.EqualValues(t, 1, d.sum("ayzauth.verify.duration", "ayzauth.verify.result=ok"))
			verify := d.named("ayzauth.verify")
			require.Len(t, verify, 1)
			assert.Equal(t, "ok", spanAttr(verify[0], "ayzauth.verify.result"))
			assert.Equal(t, "false", spanAttr(verify[0], "ayzauth.verify.coalesced"))
			assert.Equal(t, "opaque", spanAttr(verify[0], "ayzauth.token.kind"))
			calls := d.named("POST")
			require.Len(t, calls, 1)
			assert.Equal(t, "POST /v1/b2b/sessions/authenticate", calls[0].Name())
			assert.Equal(t, "200", spanAttr(calls[0], "http.response.status_code"))
			assert.Equal(t, verify[0].SpanContext().SpanID(), calls[0].Parent().SpanID(), "the Stytch call is below the verification")
			fill := d.named("ayzauth.cache.fill")
			require.Len(t, fill, 1)
			assert.Equal(t, "true", spanAttr(fill[0], "ayzauth.cache.stored"))
			assert.Equal(t, verify[0].SpanContext().SpanID(), fill[0].Parent().SpanID())
			if redis {
				set := d.named("SET")
				require.Len(t, set, 1, "the fill's Redis command")
				assert.Equal(t, fill[0].SpanContext().SpanID(), set[0].Parent().SpanID())
				assert.Equal(t, "redis", spanAttr(set[0], "db.system.name"))
			}

			// Hits: counters only, no verification, no Stytch call.
			for range 3 {
				require.Equal(t, http.StatusOK, r.get("/p", a.Token))
			}
			d = r.step(t)
			assert.EqualValues(t, 3, d.sum("ayzauth.auth.requests", "ayzauth.outcome=ok"))
			assert.EqualValues(t, 3, d.sum("ayzauth.cache.lookups", "ayzauth.cache.tier=memo", "ayzauth.cache.result=hit"))
			if b.name == "tiered" {
				// The first read after the fill comes from Redis and fills
				// L1; the next ones are L1 hits.
				l2 := d.sum("ayzauth.cache.lookups", "ayzauth.cache.tier=redis", "ayzauth.cache.result=hit")
				l1 := d.sum("ayzauth.cache.lookups", "ayzauth.cache.tier=l1", "ayzauth.cache.result=hit")
				assert.EqualValues(t, 3, l1+l2)
				assert.GreaterOrEqual(t, l2, int64(1))
			} else {
				assert.EqualValues(t, 3, d.sum("ayzauth.cache.lookups", tier, "ayzauth.cache.result=hit"))
			}
			assert.Zero(t, d.sum("ayzauth.stytch.requests"))
			assert.Empty(t, d.named("ayzauth.verify"), "no span on a cache hit")
			assert.Empty(t, d.named("ayzauth.cache.fill"))
			for _, s := range d.spans {
				assert.Equal(t, "GET", s.Name(), "only Redis GETs that went to the network")
			}

			// A rejection (Stytch says 404), then the same token from the
			// negative cache.
			bad := "unknownSessionToken0123456789abcdefghijklmn"
			require.Equal(t, http.StatusUnauthorized, r.get("/p", bad))
			d = r.step(t)
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=invalid"))
			assert.EqualValues(t, 1, d.sum("ayzauth.stytch.requests", "ayzauth.stytch.endpoint=authenticate", "http.response.status_code=404", "error.type=404"))
			assert.EqualValues(t, 1, d.sum("ayzauth.verify.duration", "ayzauth.verify.result=invalid"))
			verify = d.named("ayzauth.verify")
			require.Len(t, verify, 1)
			assert.Equal(t, "invalid", spanAttr(verify[0], "ayzauth.verify.result"))
			require.Equal(t, http.StatusUnauthorized, r.get("/p", bad))
			d = r.step(t)
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=invalid"))
			assert.EqualValues(t, 1, d.sum("ayzauth.cache.negative_hits"))
			assert.Zero(t, d.sum("ayzauth.stytch.requests"))
			assert.Empty(t, d.named("ayzauth.verify"))

			// Missing and malformed tokens; a requirement's 403.
			require.Equal(t, http.StatusUnauthorized, r.get("/p", ""))
			require.Equal(t, http.StatusUnauthorized, r.get("/p", "not a token"))
			require.Equal(t, http.StatusForbidden, r.get("/admin", a.Token))
			require.Equal(t, http.StatusOK, r.get("/opt", ""))
			d = r.step(t)
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=missing"))
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=malformed"))
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=forbidden"))
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=ok"), "the 403 request passed authentication")
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=anonymous"))

			// An outage: every attempt (the first and one retry) answers
			// 503; the middleware answers 503, and under optional
			// authentication continues degraded.
			c := r.session(t)
			r.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: http.StatusServiceUnavailable})
			require.Equal(t, http.StatusServiceUnavailable, r.get("/p", c.Token))
			require.Equal(t, http.StatusOK, r.get("/opt", c.Token))
			r.emu.ClearFaults()
			d = r.step(t)
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=unavailable"))
			assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=degraded"))
			assert.EqualValues(t, 2, d.sum("ayzauth.stytch.requests", "http.response.status_code=503", "ayzauth.stytch.retry=false"))
			assert.EqualValues(t, 2, d.sum("ayzauth.stytch.requests", "http.response.status_code=503", "ayzauth.stytch.retry=true"))
			assert.EqualValues(t, 2, d.sum("ayzauth.verify.duration", "ayzauth.verify.result=unavailable"))
			verify = d.named("ayzauth.verify")
			require.Len(t, verify, 2)
			assert.Equal(t, "Error", verify[0].Status().Code.String())
			attempts := d.named("POST")
			require.Len(t, attempts, 4, "one span per attempt")
			assert.Equal(t, "1", spanAttr(attempts[1], "http.request.resend_count"))
			assert.Equal(t, "Error", attempts[0].Status().Code.String())
			assert.Zero(t, d.sum("ayzauth.cache.negative_hits"), "outages are not remembered")
			// Stytch is back: the session verifies.
			require.Equal(t, http.StatusOK, r.get("/p", c.Token))
			d = r.step(t)
			assert.EqualValues(t, 1, d.sum("ayzauth.stytch.requests", "http.response.status_code=200"))

			// Concurrent misses for one token: one leader per Stytch call,
			// the others coalesced.
			const n = 20
			burst := r.session(t)
			r.emu.ResetCalls()
			r.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 300 * time.Millisecond, Times: 1})
			var wg sync.WaitGroup
			codes := make(chan int, n)
			for range n {
				wg.Go(func() { codes <- r.get("/p", burst.Token) })
			}
			wg.Wait()
			close(codes)
			for code := range codes {
				require.Equal(t, http.StatusOK, code)
			}
			d = r.step(t)
			leaders := int64(r.emu.Calls(stytchtest.Authenticate))
			assert.EqualValues(t, n, d.sum("ayzauth.verify.coalesced")+leaders, "every request either led a verification or joined one")
			assert.Positive(t, d.sum("ayzauth.verify.coalesced"))
			assert.EqualValues(t, n, d.sum("ayzauth.verify.duration", "ayzauth.verify.result=ok"))
			assert.Len(t, d.named("ayzauth.verify"), n)

			// Logout: a revoke span with the Stytch call below it.
			req := httptest.NewRequest(http.MethodPost, "/logout", nil)
			req.Header.Set("Authorization", "Bearer "+a.Token)
			rec := httptest.NewRecorder()
			r.e.ServeHTTP(rec, req)
			require.Equal(t, http.StatusNoContent, rec.Code)
			d = r.step(t)
			require.Len(t, d.named("ayzauth.revoke"), 1)
			assert.EqualValues(t, 1, d.sum("ayzauth.stytch.requests", "ayzauth.stytch.endpoint=revoke", "http.response.status_code=200"))

			r.assertNoSecrets(t)
		})
	}
}

// TestTelemetryPermissionChecks: a permission check that cannot be made
// (the RBAC policy endpoint down) is counted unavailable, one that denies
// is counted forbidden, each for a request the middleware counted ok; the
// policy fetches are counted by endpoint, and a JWT's verification leaves
// nothing secret behind either.
func TestTelemetryPermissionChecks(t *testing.T) {
	r := newTelRig(t, nil)
	a := r.session(t)
	r.emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: http.StatusInternalServerError})
	require.Equal(t, http.StatusServiceUnavailable, r.get("/doc", a.Token))
	d := r.step(t)
	assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=ok"))
	assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=unavailable"))
	assert.EqualValues(t, 2, d.sum("ayzauth.stytch.requests", "ayzauth.stytch.endpoint=policy", "http.response.status_code=500"),
		"the first attempt and one retry")

	r.emu.ClearFaults()
	require.NoError(t, r.stack.Policy.Refresh(context.Background()))
	r.step(t)
	// The session's roles (stytch_member) grant nothing on documents; the
	// JWT path is verified locally.
	require.Equal(t, http.StatusForbidden, r.get("/doc", a.JWT))
	d = r.step(t)
	assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=ok"))
	assert.EqualValues(t, 1, d.sum("ayzauth.auth.requests", "ayzauth.outcome=forbidden"))
	assert.Zero(t, d.sum("ayzauth.auth.requests", "ayzauth.outcome=unavailable"))
	assert.Zero(t, d.sum("ayzauth.stytch.requests", "ayzauth.stytch.endpoint=authenticate"), "a fresh JWT costs no call")
	verify := d.named("ayzauth.verify")
	require.Len(t, verify, 1)
	assert.Equal(t, "jwt", spanAttr(verify[0], "ayzauth.token.kind"))
	r.secrets = append(r.secrets, "bad-token-never-recorded")
	require.Equal(t, http.StatusUnauthorized, r.get("/p", "bad-token-never-recorded"))
	r.assertNoSecrets(t)
}

// assertNoSecrets checks every recorded attribute (data points, spans,
// span events, statuses, names, resources) against the secrets.
func (r *telRig) assertNoSecrets(t *testing.T) {
	t.Helper()
	var values []string
	addSet := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			values = append(values, fmt.Sprintf("%s %s=%s", where, kv.Key, kv.Value.Emit()))
		}
	}
	rm := r.collect(t)
	addSet("resource", rm.Resource.Attributes())
	n := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			values = append(values, "metric "+m.Name+" "+m.Description+" "+m.Unit)
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					addSet(m.Name, dp.Attributes.ToSlice())
					n++
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					addSet(m.Name, dp.Attributes.ToSlice())
					n++
				}
			default:
				t.Errorf("unexpected metric type %T for %s", data, m.Name)
			}
		}
	}
	for _, s := range r.spans.Ended() {
		values = append(values, "span "+s.Name()+" "+s.Status().Description)
		addSet("span "+s.Name(), s.Attributes())
		for _, ev := range s.Events() {
			values = append(values, "event "+ev.Name)
			addSet("event "+ev.Name, ev.Attributes)
		}
		for _, l := range s.Links() {
			addSet("link", l.Attributes)
		}
	}
	require.Positive(t, n)
	require.NotEmpty(t, r.spans.Ended())
	for _, v := range values {
		for _, s := range r.secrets {
			if s == "" {
				continue
			}
			require.NotContains(t, v, s, "a recorded attribute holds a token, ID, email or secret")
			// Nor a recognisable part of one (16 characters or more).
			if len(s) >= 32 {
				require.NotContains(t, v, s[8:24])
			}
		}
	}
}

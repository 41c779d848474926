package redis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/redistest"
)

// counter returns the value of the int64 counter name at the data point
// whose attributes are exactly kvs.
func counter(t *testing.T, r *sdkmetric.ManualReader, name string, kvs ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	want := attribute.NewSet(kvs...)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if dp.Attributes.Equals(&want) {
					return dp.Value
				}
			}
		}
	}
	return 0
}

// TestTelemetryLookupsSpansBreaker: lookups by result (a server hit, a
// client-side hit, a miss, errors), spans for the commands sent to Redis
// only, and the breaker's transitions as Redis dies and comes back.
func TestTelemetryLookupsSpansBreaker(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	srv := redistest.Start(t)
	s := openStore(t, srv.Addr(), Options{FailureThreshold: 2, Cooldown: 50 * time.Millisecond, OpTimeout: testOpTimeout,
		RecentWriteWindow: time.Millisecond, MeterProvider: mp, TracerProvider: tp})
	ctx := ctxT(t)
	tier := attribute.String("ayzauth.cache.tier", "redis")
	result := func(r string) attribute.KeyValue { return attribute.String("ayzauth.cache.result", r) }
	local := func(b bool) attribute.KeyValue { return attribute.Bool("ayzauth.cache.local", b) }

	_, err := s.Get(ctx, "absent")
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
	time.Sleep(5 * time.Millisecond) // past RecentWriteWindow
	for range 3 {
		_, err := s.Get(ctx, "k")
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, counter(t, reader, "ayzauth.cache.lookups", tier, result("miss")))
	assert.EqualValues(t, 1, counter(t, reader, "ayzauth.cache.lookups", tier, result("hit"), local(false)), "the first read goes to the server")
	assert.EqualValues(t, 2, counter(t, reader, "ayzauth.cache.lookups", tier, result("hit"), local(true)), "then the client-side cache answers")
	var names []string
	for _, sp := range sr.Ended() {
		names = append(names, sp.Name())
	}
	assert.Equal(t, []string{"SET"}, names, "reads through the client-side cache have no span")

	srv.Kill()
	require.Eventually(t, func() bool {
		_, _ = s.Get(ctx, "other")
		return s.Stats().BreakerOpen
	}, 10*time.Second, 10*time.Millisecond)
	open := attribute.String("ayzauth.breaker.state", "open")
	closed := attribute.String("ayzauth.breaker.state", "closed")
	assert.EqualValues(t, 1, counter(t, reader, "ayzauth.redis.breaker.transitions", open))
	assert.Positive(t, counter(t, reader, "ayzauth.cache.lookups", tier, result("error")))
	assert.Error(t, s.Set(ctx, "k", []byte("w"), time.Minute))
	last := sr.Ended()[len(sr.Ended())-1]
	assert.Equal(t, "SET", last.Name())
	assert.Equal(t, "Error", last.Status().Code.String())

	srv.Restart()
	require.Eventually(t, func() bool {
		return s.Set(ctx, "k", []byte("back"), time.Minute) == nil
	}, 10*time.Second, 20*time.Millisecond)
	assert.EqualValues(t, 1, counter(t, reader, "ayzauth.redis.breaker.transitions", closed))
	assert.EqualValues(t, 1, counter(t, reader, "ayzauth.redis.breaker.transitions", open), "probe failures while open are not transitions")
}

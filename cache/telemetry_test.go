package cache_test

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
)

// TestHotPathWithSDK: with an SDK MeterProvider and TracerProvider
// installed, a cache hit still allocates nothing (pre-built attribute
// sets), is counted as a memo hit, and starts no span.
func TestHotPathWithSDK(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	e := newEnv(t, func(c *cache.VerifierConfig) { c.MeterProvider, c.TracerProvider = mp, tp })
	ctx := context.Background()
	_, err := e.cv.Verify(ctx, e.sess.Token)
	require.NoError(t, err)
	e.mem.Wait()
	_, err = e.cv.Verify(ctx, e.sess.Token)
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	spans := len(sr.Ended())
	const runs = 200
	allocs := testing.AllocsPerRun(runs, func() {
		if _, err := e.cv.Verify(ctx, e.sess.Token); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
	assert.Equal(t, spans, len(sr.Ended()), "no span on a hit")

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	want := attribute.NewSet(attribute.String("ayzauth.cache.tier", "memo"), attribute.String("ayzauth.cache.result", "hit"))
	var hits int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "ayzauth.cache.lookups" {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					if dp.Attributes.Equals(&want) {
						hits = dp.Value
					}
				}
			}
		}
	}
	assert.GreaterOrEqual(t, hits, int64(runs))
}

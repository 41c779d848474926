package telemetry

import (
	"context"
	"testing"
)

// BenchmarkLookupNoProvider is the cost of one cache-lookup count with no
// provider installed (the global no-op delegate).
func BenchmarkLookupNoProvider(b *testing.B) {
	t := NewCache(nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		t.Lookup(ctx, TierMemo, Hit)
	}
}

func BenchmarkMiddlewareNoProvider(b *testing.B) {
	t := NewMiddleware(nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if t.Timed(ctx) {
			b.Fatal("timed without a provider")
		}
		t.Count(ctx, OutcomeOK)
	}
}

// Package telemetry builds the OpenTelemetry instruments of this module,
// through the OpenTelemetry API only (no SDK): the application installs a
// MeterProvider and a TracerProvider, globally (otel.SetMeterProvider) or
// per component (the MeterProvider and TracerProvider fields of the
// configs). A nil provider means the global one, read when the component is
// built; the global providers delegate to whatever is installed later.
//
// Cost when no provider is installed: each measurement is one interface
// call on a no-op instrument with pre-built options (no allocation). The
// cache-hit path records counters only, never a span: a span costs more
// than the hit itself (a span start, a context, an end), so spans are
// started only on the paths that leave the process (a verification on a
// miss, Stytch calls, Redis calls that go to the network).
//
// No attribute ever holds a token, a JWT, a cache key, an email, a member,
// session or organization ID, or a secret: attribute values are fixed
// strings of this package, HTTP status codes and booleans.
package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every instrument and tracer.
const ScopeName = "github.com/ayzauth/ayzauth"

// Metric names (see the README, "Observability").
const (
	MetricAuthRequests      = "ayzauth.auth.requests"
	MetricAuthDuration      = "ayzauth.auth.duration"
	MetricCacheLookups      = "ayzauth.cache.lookups"
	MetricNegativeHits      = "ayzauth.cache.negative_hits"
	MetricCoalesced         = "ayzauth.verify.coalesced"
	MetricVerifyDuration    = "ayzauth.verify.duration"
	MetricStytchRequests    = "ayzauth.stytch.requests"
	MetricStytchDuration    = "ayzauth.stytch.duration"
	MetricBreakerTransition = "ayzauth.redis.breaker.transitions"
)

// Span names.
const (
	SpanVerify = "ayzauth.verify"
	SpanFill   = "ayzauth.cache.fill"
	SpanRevoke = "ayzauth.revoke"
)

// Attribute keys.
const (
	KeyOutcome      = attribute.Key("ayzauth.outcome")
	KeyTier         = attribute.Key("ayzauth.cache.tier")
	KeyResult       = attribute.Key("ayzauth.cache.result")
	KeyLocal        = attribute.Key("ayzauth.cache.local")
	KeyStored       = attribute.Key("ayzauth.cache.stored")
	KeyVerifyResult = attribute.Key("ayzauth.verify.result")
	KeyCoalesced    = attribute.Key("ayzauth.verify.coalesced")
	KeyTokenKind    = attribute.Key("ayzauth.token.kind")
	KeyEndpoint     = attribute.Key("ayzauth.stytch.endpoint")
	KeyRetry        = attribute.Key("ayzauth.stytch.retry")
	KeyBreakerState = attribute.Key("ayzauth.breaker.state")
	// Semantic-convention keys.
	KeyStatusCode  = attribute.Key("http.response.status_code")
	KeyMethod      = attribute.Key("http.request.method")
	KeyResendCount = attribute.Key("http.request.resend_count")
	KeyURLTemplate = attribute.Key("url.template")
	KeyServerAddr  = attribute.Key("server.address")
	KeyErrorType   = attribute.Key("error.type")
	KeyDBSystem    = attribute.Key("db.system.name")
	KeyDBOperation = attribute.Key("db.operation.name")
)

// Meter returns the module's meter from mp (nil: the global provider).
func Meter(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(ScopeName)
}

// Tracer returns the module's tracer from tp (nil: the global provider).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

// Bucket boundaries, in seconds.
var (
	// authBuckets: a cache hit takes about a microsecond, a miss a Stytch
	// round trip, an outage up to the retry bound (15 s).
	authBuckets = []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 5e-4, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15}
	// callBuckets: verifications on a miss and Stytch calls.
	callBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15}
)

func addOpts(kvs ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

func recordOpts(kvs ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

// otelErr: instrument creation fails only for invalid names or options
// (ours are constant); the API then returns a usable no-op instrument, and
// the error goes to the global OpenTelemetry error handler.
func otelErr(err error) {
	if err != nil {
		otel.Handle(err)
	}
}

// Outcome is a value of ayzauth.outcome.
type Outcome uint8

// Outcomes of the middleware. Forbidden is recorded by the requirement
// middlewares (a 403 for a request the middleware counted as OK).
const (
	OutcomeOK Outcome = iota
	OutcomeMissing
	OutcomeMalformed
	OutcomeInvalid
	OutcomeForbidden
	OutcomeUnavailable
	OutcomeError
	OutcomeAnonymous
	OutcomeDegraded
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "missing", "malformed", "invalid", "forbidden", "unavailable", "error", "anonymous", "degraded"}

func (o Outcome) String() string { return outcomeNames[o] }

// Middleware holds the instruments of the echostytch middleware.
type Middleware struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
	add      [numOutcomes][]metric.AddOption
	rec      [numOutcomes][]metric.RecordOption
}

// NewMiddleware builds the middleware's instruments from mp (nil: global).
func NewMiddleware(mp metric.MeterProvider) *Middleware {
	m := Meter(mp)
	t := &Middleware{}
	var err error
	t.requests, err = m.Int64Counter(MetricAuthRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Requests handled by the authentication middleware, by outcome."))
	otelErr(err)
	t.duration, err = m.Float64Histogram(MetricAuthDuration, metric.WithUnit("s"),
		metric.WithDescription("Time the authentication middleware took to decide (the handler excluded)."),
		metric.WithExplicitBucketBoundaries(authBuckets...))
	otelErr(err)
	for o := range numOutcomes {
		kv := KeyOutcome.String(outcomeNames[o])
		t.add[o] = addOpts(kv)
		t.rec[o] = recordOpts(kv)
	}
	return t
}

// Count records one request with outcome o.
func (t *Middleware) Count(ctx context.Context, o Outcome) {
	t.requests.Add(ctx, 1, t.add[o]...)
}

// Timed reports whether durations are recorded (an SDK is installed and
// the histogram is enabled), so that the clock is read only then.
func (t *Middleware) Timed(ctx context.Context) bool { return t.duration.Enabled(ctx) }

// Duration records the time since start for outcome o.
func (t *Middleware) Duration(ctx context.Context, o Outcome, start time.Time) {
	t.duration.Record(ctx, time.Since(start).Seconds(), t.rec[o]...)
}

// Tier is a value of ayzauth.cache.tier.
type Tier uint8

// Cache tiers.
const (
	// TierMemo is the caching verifier's table of decoded sessions: a hit
	// is a store hit that needed no decoding, a miss one that did.
	TierMemo Tier = iota
	TierMemory
	TierRedis
	TierL1
	numTiers
)

var tierNames = [numTiers]string{"memo", "memory", "redis", "l1"}

// Result is a value of ayzauth.cache.result.
type Result uint8

// Lookup results.
const (
	Hit Result = iota
	Miss
	Error
	numResults
)

var resultNames = [numResults]string{"hit", "miss", "error"}

// Cache holds the instruments of the caches and the caching verifier.
type Cache struct {
	lookups   metric.Int64Counter
	negative  metric.Int64Counter
	coalesced metric.Int64Counter
	verifyDur metric.Float64Histogram
	opts      [numTiers][numResults][]metric.AddOption
	// Redis hits also say whether the client-side cache answered
	// (index 1) or the server (index 0).
	redisHit  [2][]metric.AddOption
	none      []metric.AddOption
	verifyRec [numVerifyResults][]metric.RecordOption
}

// NewCache builds the cache instruments from mp (nil: global).
func NewCache(mp metric.MeterProvider) *Cache {
	m := Meter(mp)
	t := &Cache{}
	var err error
	t.lookups, err = m.Int64Counter(MetricCacheLookups, metric.WithUnit("{lookup}"),
		metric.WithDescription("Cache lookups, by tier and result."))
	otelErr(err)
	t.negative, err = m.Int64Counter(MetricNegativeHits, metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused from the negative cache (a token rejected within the last seconds), without an upstream call."))
	otelErr(err)
	t.coalesced, err = m.Int64Counter(MetricCoalesced, metric.WithUnit("{request}"),
		metric.WithDescription("Requests that missed the cache and waited for a verification of the same token already in flight instead of starting one."))
	otelErr(err)
	t.verifyDur, err = m.Float64Histogram(MetricVerifyDuration, metric.WithUnit("s"),
		metric.WithDescription("Time to verify a token that missed the cache (upstream verification and cache fill), by result."),
		metric.WithExplicitBucketBoundaries(callBuckets...))
	otelErr(err)
	for ti := range numTiers {
		for r := range numResults {
			t.opts[ti][r] = addOpts(KeyTier.String(tierNames[ti]), KeyResult.String(resultNames[r]))
		}
	}
	redis, hit := KeyTier.String(tierNames[TierRedis]), KeyResult.String(resultNames[Hit])
	t.redisHit[1] = addOpts(redis, hit, KeyLocal.Bool(true))
	t.redisHit[0] = addOpts(redis, hit, KeyLocal.Bool(false))
	t.none = addOpts()
	for r := range numVerifyResults {
		t.verifyRec[r] = recordOpts(KeyVerifyResult.String(verifyResultNames[r]))
	}
	return t
}

// Lookup records a lookup in tier with result r.
func (t *Cache) Lookup(ctx context.Context, tier Tier, r Result) {
	t.lookups.Add(ctx, 1, t.opts[tier][r]...)
}

// RedisHit records a Redis hit, answered by the client-side cache (local)
// or by the server.
func (t *Cache) RedisHit(ctx context.Context, local bool) {
	i := 0
	if local {
		i = 1
	}
	t.lookups.Add(ctx, 1, t.redisHit[i]...)
}

// NegativeHit records a request refused from the negative cache.
func (t *Cache) NegativeHit(ctx context.Context) { t.negative.Add(ctx, 1, t.none...) }

// Coalesced records a request that joined a verification in flight.
func (t *Cache) Coalesced(ctx context.Context) { t.coalesced.Add(ctx, 1, t.none...) }

// VerifyResult is a value of ayzauth.verify.result.
type VerifyResult uint8

// Verification results.
const (
	VerifyOK VerifyResult = iota
	VerifyInvalid
	VerifyUnavailable
	VerifyError
	numVerifyResults
)

var verifyResultNames = [numVerifyResults]string{"ok", "invalid", "unavailable", "error"}

func (r VerifyResult) String() string { return verifyResultNames[r] }

// VerifyDuration records a verification on a miss.
func (t *Cache) VerifyDuration(ctx context.Context, r VerifyResult, d time.Duration) {
	t.verifyDur.Record(ctx, d.Seconds(), t.verifyRec[r]...)
}

// EndVerifySpan sets the verification span's attributes and status, and
// ends it.
func EndVerifySpan(span trace.Span, r VerifyResult, coalesced bool) {
	if span.IsRecording() {
		span.SetAttributes(KeyVerifyResult.String(r.String()), KeyCoalesced.Bool(coalesced))
		if r == VerifyUnavailable || r == VerifyError {
			span.SetStatus(codes.Error, r.String())
		}
	}
	span.End()
}

// Breaker holds the instruments of the Redis circuit breaker.
type Breaker struct {
	transitions  metric.Int64Counter
	open, closed []metric.AddOption
}

// NewBreaker builds the breaker's instruments from mp (nil: global).
func NewBreaker(mp metric.MeterProvider) *Breaker {
	m := Meter(mp)
	t := &Breaker{}
	var err error
	t.transitions, err = m.Int64Counter(MetricBreakerTransition, metric.WithUnit("{transition}"),
		metric.WithDescription("Changes of state of the Redis circuit breaker, by the state entered (open: failing fast; closed: a probe succeeded)."))
	otelErr(err)
	t.open = addOpts(KeyBreakerState.String("open"))
	t.closed = addOpts(KeyBreakerState.String("closed"))
	return t
}

// Changed records a change of state (open reports the state entered).
func (t *Breaker) Changed(open bool) {
	if open {
		t.transitions.Add(context.Background(), 1, t.open...)
		return
	}
	t.transitions.Add(context.Background(), 1, t.closed...)
}

// StartClientSpan starts a client span on tracer with attributes.
func StartClientSpan(ctx context.Context, tracer trace.Tracer, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// Redis holds what the Redis store records: its lookups, spans around its
// network calls, its breaker's transitions.
type Redis struct {
	Cache   *Cache
	Breaker *Breaker
	Tracer  trace.Tracer
	system  attribute.KeyValue
}

// NewRedis builds the Redis store's instruments.
func NewRedis(mp metric.MeterProvider, tp trace.TracerProvider) *Redis {
	return &Redis{Cache: NewCache(mp), Breaker: NewBreaker(mp), Tracer: Tracer(tp), system: KeyDBSystem.String("redis")}
}

// Start starts a client span for a Redis command sent to the server (op:
// GET, SET, DEL). The key is never recorded.
func (t *Redis) Start(ctx context.Context, op string) (context.Context, trace.Span) {
	return t.Tracer.Start(ctx, op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(t.system, KeyDBOperation.String(op)))
}

// EndRedisSpan ends a Redis span, marking it failed when err is not nil
// (a fixed description: errors may carry addresses, never keys, but stay
// out of spans anyway).
func EndRedisSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, "redis call failed")
		span.SetAttributes(KeyErrorType.String("redis"))
	}
	span.End()
}

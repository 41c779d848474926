package telemetry

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Stytch holds the instruments of the Stytch API client: one span, one
// count and one duration per HTTP attempt (a retried call makes several).
type Stytch struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
	tracer   trace.Tracer
	server   attribute.KeyValue
}

// NewStytch builds the Stytch client's instruments; server is the API's
// host name (recorded as server.address).
func NewStytch(mp metric.MeterProvider, tp trace.TracerProvider, server string) *Stytch {
	m := Meter(mp)
	t := &Stytch{tracer: Tracer(tp), server: KeyServerAddr.String(server)}
	var err error
	t.requests, err = m.Int64Counter(MetricStytchRequests, metric.WithUnit("{request}"),
		metric.WithDescription("HTTP requests to the Stytch API, one per attempt (retries included), by endpoint and status."))
	otelErr(err)
	t.duration, err = m.Float64Histogram(MetricStytchDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of each HTTP attempt to the Stytch API, by endpoint and status."),
		metric.WithExplicitBucketBoundaries(callBuckets...))
	otelErr(err)
	return t
}

// Attempt is one HTTP attempt of a Stytch call.
type Attempt struct {
	t        *Stytch
	endpoint string
	retry    int
	start    time.Time
	span     trace.Span
}

// Start starts attempt number retry (0: the first) of a call to endpoint
// (authenticate, revoke, jwks, policy; method and urlTemplate describe it),
// with its client span.
func (t *Stytch) Start(ctx context.Context, endpoint, method, urlTemplate string, retry int) (context.Context, *Attempt) {
	attrs := []attribute.KeyValue{
		KeyEndpoint.String(endpoint), KeyMethod.String(method), KeyURLTemplate.String(urlTemplate), t.server,
	}
	if retry > 0 {
		attrs = append(attrs, KeyResendCount.Int(retry))
	}
	ctx, span := t.tracer.Start(ctx, method+" "+urlTemplate,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, &Attempt{t: t, endpoint: endpoint, retry: retry, start: time.Now(), span: span}
}

// End records the attempt: status is the HTTP status (0 when no answer
// was received), err the transport or read error (nil otherwise).
func (a *Attempt) End(ctx context.Context, status int, err error) {
	d := time.Since(a.start)
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, KeyEndpoint.String(a.endpoint), KeyRetry.Bool(a.retry > 0))
	errType := ""
	switch {
	case err != nil && status == 0:
		errType = "network"
		if errors.Is(err, context.DeadlineExceeded) {
			errType = "timeout"
		} else if errors.Is(err, context.Canceled) {
			errType = "canceled"
		}
	case err != nil:
		errType = "read"
	case status >= 400:
		errType = strconv.Itoa(status)
	}
	if status > 0 {
		attrs = append(attrs, KeyStatusCode.Int(status))
	}
	if errType != "" {
		attrs = append(attrs, KeyErrorType.String(errType))
	}
	set := attribute.NewSet(attrs...)
	a.t.requests.Add(ctx, 1, metric.WithAttributeSet(set))
	a.t.duration.Record(ctx, d.Seconds(), metric.WithAttributeSet(set))
	if a.span.IsRecording() {
		if status > 0 {
			a.span.SetAttributes(KeyStatusCode.Int(status))
		}
		if errType != "" {
			a.span.SetAttributes(KeyErrorType.String(errType))
			a.span.SetStatus(codes.Error, errType)
		}
	}
	a.span.End()
}

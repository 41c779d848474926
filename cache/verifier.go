package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/ayzauth/ayzauth/internal/telemetry"
	"github.com/ayzauth/ayzauth/verifier"
)

// Defaults of VerifierConfig.
const (
	DefaultTTL           = 5 * time.Minute
	DefaultNegativeTTL   = 10 * time.Second
	DefaultFlightTimeout = 15 * time.Second
	DefaultMemoEntries   = 100_000
	// tombstoneFloor: a revocation's tombstone outlives any JWT issued
	// before it (Stytch JWTs live 5 minutes), so a revoked JWT is refused
	// by every instance sharing the store for its whole life.
	tombstoneFloor = 6 * time.Minute
	maxNegEntries  = 50_000
	// maxTombstones bounds the in-process tombstone table; tombSweepEvery
	// is how often a revocation sweeps expired entries from it.
	maxTombstones  = 100_000
	tombSweepEvery = 10 * time.Second
	// tombstoneWriteTimeout bounds the tombstone write of a revocation.
	tombstoneWriteTimeout = 2 * time.Second
)

// VerifierConfig configures a caching Verifier.
type VerifierConfig struct {
	// Store holds verified sessions (required).
	Store Store
	// Secret keys the token hash and authenticates cached values (required;
	// use the Stytch secret). Namespace separates projects sharing a store
	// (use the project ID).
	Secret    []byte
	Namespace string
	// TTL bounds how long a verified session is cached (default DefaultTTL);
	// an entry never outlives the session's own expiry either.
	TTL time.Duration
	// NegativeTTL is how long a rejected token is remembered in process, so
	// that repeating it costs no upstream call (default DefaultNegativeTTL;
	// negative disables). Outages are never remembered.
	NegativeTTL time.Duration
	// FlightTimeout bounds one upstream verification shared by concurrent
	// requests for the same token (default DefaultFlightTimeout). Each
	// request still stops waiting when its own context ends.
	FlightTimeout time.Duration
	// MemoEntries bounds the in-process table of decoded sessions that lets
	// a cache hit skip decoding (default DefaultMemoEntries; rounded up to
	// a power of two times 4).
	MemoEntries int
	// Logger receives cache problems (tampered values, store errors).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MeterProvider receives the verifier's metrics: memo lookups
	// (ayzauth.cache.lookups, tier "memo"), negative-cache hits, coalesced
	// requests and the duration of verifications on a miss. TracerProvider
	// receives a span per verification on a miss (ayzauth.verify), per
	// cache fill (ayzauth.cache.fill) and per Revoke; a cache hit starts
	// no span. Nil means the global providers.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// Verifier is a verifier.Verifier that caches what another Verifier
// verified:
//
//   - the cache key is a keyed hash (HMAC-SHA256) of the token, namespaced
//     by project, so no raw token reaches the store;
//   - values are authenticated with a key derived from the secret: a value
//     that fails the check is a miss (and is logged), so write access to a
//     shared store cannot mint a session;
//   - an entry lives min(TTL, session expiry - now), and expiry is checked
//     again on every read;
//   - concurrent misses for one token make one upstream call;
//   - rejected tokens are remembered briefly in process; outages never are;
//   - Revoke revokes upstream and writes a tombstone, so a fill already in
//     flight cannot bring the session back and every instance sharing the
//     store refuses the token;
//   - a cache hit decodes nothing: decoded sessions are kept in process,
//     keyed by the value's authentication tag.
type Verifier struct {
	inner verifier.Verifier
	store Store
	keys  *keys
	cfg   VerifierConfig
	now   func() time.Time
	log   *slog.Logger

	memo    *memoTable
	clock   wallClock
	nowMs   func() int64 // the hot path's clock (wallClock unless cfg.Now is set)
	flights singleflight.Group
	tel     *telemetry.Cache
	tracer  trace.Tracer

	tombMu      sync.RWMutex
	tombs       map[[32]byte]int64 // token hash -> expiry (unix ms)
	tombCount   atomic.Int64
	tombSweepAt int64 // unix ms; under tombMu

	negMu sync.RWMutex
	neg   map[[32]byte]int64

	closed atomic.Bool
	// flightMu guards starting flights against Close: flights register in
	// flightWG under the read lock unless closed; Close takes the write
	// lock, cancels base and waits for them.
	flightMu sync.RWMutex
	flightWG sync.WaitGroup
	base     context.Context
	stop     context.CancelFunc
}

// NewVerifier returns a caching Verifier in front of inner.
func NewVerifier(inner verifier.Verifier, cfg VerifierConfig) (*Verifier, error) {
	if inner == nil {
		return nil, errors.New("cache: NewVerifier needs an inner verifier")
	}
	if cfg.Store == nil {
		return nil, errors.New("cache: NewVerifier needs a Store")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("cache: NewVerifier needs a secret")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	if cfg.FlightTimeout <= 0 {
		cfg.FlightTimeout = DefaultFlightTimeout
	}
	if cfg.MemoEntries <= 0 {
		cfg.MemoEntries = DefaultMemoEntries
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		inner:  inner,
		store:  cfg.Store,
		keys:   newKeys(cfg.Secret, cfg.Namespace),
		cfg:    cfg,
		now:    now,
		log:    cfg.Logger,
		memo:   newMemoTable(cfg.MemoEntries),
		tombs:  map[[32]byte]int64{},
		neg:    map[[32]byte]int64{},
		tel:    telemetry.NewCache(cfg.MeterProvider),
		tracer: telemetry.Tracer(cfg.TracerProvider),
	}
	v.base, v.stop = context.WithCancel(context.Background())
	v.nowMs = v.clock.nowMillis
	if cfg.Now != nil {
		v.nowMs = func() int64 { return cfg.Now().UnixMilli() }
	}
	return v, nil
}

// Verify implements verifier.Verifier.
func (v *Verifier) Verify(ctx context.Context, token string) (*verifier.Session, error) {
	h := v.keys.tokenHash(token)
	nowMs := v.nowMs()
	if v.tombCount.Load() > 0 && v.isTombstoned(&h, nowMs) {
		return nil, errRevoked
	}
	m := v.memo.get(&h)
	var key string
	if m != nil {
		key = m.key
	} else {
		key = storeKey(&h)
	}
	val, err := v.store.Get(ctx, key)
	if err == nil {
		if hd, ok := parseHeader(val); ok && m != nil && hd.tag == m.tag && hd.expMillis == m.expMillis {
			if nowMs < m.liveUntil {
				v.tel.Lookup(ctx, telemetry.TierMemo, telemetry.Hit)
				return m.sess, nil // the hot path: nothing decoded, nothing allocated
			}
		} else if s, herr := v.readValue(key, &h, val, nowMs); herr == nil {
			v.tel.Lookup(ctx, telemetry.TierMemo, telemetry.Miss)
			return s, nil
		} else if errors.Is(herr, errRevoked) {
			return nil, herr
		}
	} else if !errors.Is(err, ErrNotFound) {
		v.log.Debug("cache: get failed; verifying upstream", "error", err)
	}
	return v.miss(ctx, token, key, h)
}

// ChecksTokenShape reports that Verify checks a token's shape
// (verifier.Classify) before the token reaches the inner verifier, so that
// only well-formed tokens are ever verified and cached: a token that hits
// the cache (its keyed hash is found) was well-formed, and one that misses
// is checked before anything but its keyed hash leaves the process. A
// caller may therefore skip its own shape check on its fast path, as
// echostytch's middleware does (a 1.7 KB JWT then costs only its hash more
// than an opaque token on a cache hit).
func (v *Verifier) ChecksTokenShape() bool { return true }

// readValue authenticates and decodes a stored value, filling the memo.
func (v *Verifier) readValue(key string, h *[32]byte, val []byte, nowMs int64) (*verifier.Session, error) {
	hd, s, err := v.keys.decode(key, val)
	if err != nil {
		v.log.Warn("cache: stored value failed authentication; ignored", "key", key)
		return nil, err
	}
	if s == nil {
		if nowMs < hd.expMillis {
			return nil, errRevoked
		}
		return nil, ErrNotFound
	}
	if nowMs >= hd.expMillis || s.ExpiresAt.UnixMilli() <= nowMs {
		return nil, ErrNotFound
	}
	v.memoize(key, h, hd, s)
	return s, nil
}

func (v *Verifier) memoize(key string, h *[32]byte, hd header, s *verifier.Session) {
	if v.closed.Load() {
		return
	}
	// No TTL: every lookup checks liveUntil itself; dead entries are
	// replaced as their sets fill.
	v.memo.put(&memoEntry{hash: *h, key: key, tag: hd.tag, expMillis: hd.expMillis,
		liveUntil: min(hd.expMillis, s.ExpiresAt.UnixMilli()), sess: s})
}

func memoKey(h *[32]byte) uint64 { return binary.LittleEndian.Uint64(h[:8]) }

// errRevoked is returned for tombstoned tokens.
var errRevoked = &verifier.TokenError{Kind: verifier.ErrInvalidSession, Reason: "session revoked"}

// errRejected is returned for tokens in the negative cache.
var errRejected = &verifier.TokenError{Kind: verifier.ErrInvalidSession, Reason: "token recently rejected"}

type flightResult struct {
	sess *verifier.Session
}

// miss verifies upstream, once per token at a time, and fills the cache.
func (v *Verifier) miss(ctx context.Context, token, key string, hv [32]byte) (*verifier.Session, error) {
	// Nothing malformed reaches the inner verifier, so nothing malformed is
	// ever cached (see ChecksTokenShape).
	if _, err := verifier.Classify(token); err != nil {
		return nil, err
	}
	h := &hv
	if v.isRejected(h) {
		v.tel.NegativeHit(ctx)
		return nil, errRejected
	}
	start := time.Now()
	ctx, span := v.tracer.Start(ctx, telemetry.SpanVerify, trace.WithAttributes(telemetry.KeyTokenKind.String(tokenKind(token))))
	led := false // set by the flight's function if this request runs it
	v.flightMu.RLock()
	if v.closed.Load() {
		v.flightMu.RUnlock()
		span.End()
		return nil, &verifier.APIError{Kind: verifier.ErrUnavailable, Endpoint: "verify", Err: ErrClosed}
	}
	// Each waiting request joins the flight from a goroutine of its own
	// that Close waits for; the request itself stops waiting when its
	// context ends.
	v.flightWG.Add(1)
	v.flightMu.RUnlock()
	ch := make(chan singleflight.Result, 1)
	fn := func() (any, error) {
		led = true
		// The flight serves every request waiting on it: it outlives the
		// leader's cancellation, not the verifier's Close.
		fctx, cancel := context.WithTimeout(v.base, v.cfg.FlightTimeout)
		defer cancel()
		fctx = trace.ContextWithSpan(fctx, trace.SpanFromContext(ctx))
		started := v.now().UnixMilli()
		s, err := v.inner.Verify(fctx, token)
		if err != nil {
			if errors.Is(err, verifier.ErrInvalidSession) || errors.Is(err, verifier.ErrMalformedToken) {
				v.reject(h)
			}
			return nil, err
		}
		if v.tombstonedSince(h, started) {
			return nil, errRevoked // revoked while we were asking
		}
		// A JWT verified locally is trusted until its exp only (a JWT
		// revoked out of band stays valid locally that long, not longer).
		// When the API vouched for the session (it returned a fresh JWT,
		// e.g. for an expired JWT cookie), the entry is bounded like an
		// opaque token's: otherwise an idle tab's expired JWT would cost a
		// Stytch call on every request.
		var capMs int64
		if s.SessionJWT == "" {
			capMs = jwtExpiryMillis(token)
		}
		v.fill(fctx, key, h, s, capMs)
		return flightResult{sess: s}, nil
	}
	go func() {
		defer v.flightWG.Done()
		val, err, shared := v.flights.Do(key, fn)
		ch <- singleflight.Result{Val: val, Err: err, Shared: shared}
	}()
	var (
		sess *verifier.Session
		err  error
	)
	coalesced := false
	select {
	case <-ctx.Done():
		err = &verifier.APIError{Kind: verifier.ErrUnavailable, Endpoint: "verify", Err: ctx.Err()}
	case r := <-ch:
		// led is read after the flight's result was received, which
		// happens after the flight's function returned.
		if coalesced = !led; coalesced {
			v.tel.Coalesced(ctx)
		}
		if r.Err != nil {
			err = r.Err
		} else {
			sess = r.Val.(flightResult).sess
		}
	}
	res := verifyResult(err)
	v.tel.VerifyDuration(ctx, res, time.Since(start))
	telemetry.EndVerifySpan(span, res, coalesced)
	return sess, err
}

func verifyResult(err error) telemetry.VerifyResult {
	switch {
	case err == nil:
		return telemetry.VerifyOK
	case errors.Is(err, verifier.ErrInvalidSession), errors.Is(err, verifier.ErrMalformedToken), errors.Is(err, verifier.ErrForbidden):
		return telemetry.VerifyInvalid
	case errors.Is(err, verifier.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return telemetry.VerifyUnavailable
	}
	return telemetry.VerifyError
}

func tokenKind(token string) string {
	if strings.IndexByte(token, '.') >= 0 {
		return "jwt"
	}
	return "opaque"
}

// fill stores a verified session for min(TTL, expiry - now), and never
// beyond capMillis (a JWT's exp) when it is positive.
func (v *Verifier) fill(ctx context.Context, key string, h *[32]byte, s *verifier.Session, capMillis int64) {
	now := v.now()
	exp := now.Add(v.cfg.TTL)
	if s.ExpiresAt.Before(exp) {
		exp = s.ExpiresAt
	}
	if c := time.UnixMilli(capMillis); capMillis > 0 && c.Before(exp) {
		exp = c
	}
	if exp.Sub(now) < time.Millisecond {
		return
	}
	stored := *s
	stored.SessionJWT = "" // never cached
	val, err := v.keys.encode(key, &stored, exp.UnixMilli())
	if err != nil {
		v.log.Warn("cache: encode failed", "error", err)
		return
	}
	// Stores take a lifetime, which they count from their own clock read:
	// measure it after the encoding, with a millisecond to spare, so that a
	// store's absolute expiry (Redis PXAT) never falls after exp.
	ttl := exp.Sub(v.now()) - time.Millisecond
	if ttl < time.Millisecond {
		return
	}
	ctx, span := v.tracer.Start(ctx, telemetry.SpanFill)
	added := true
	if a, ok := v.store.(Adder); ok {
		// Fill only if absent: a tombstone written meanwhile wins.
		added, err = a.Add(ctx, key, val, ttl)
	} else {
		err = v.store.Set(ctx, key, val, ttl)
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.KeyStored.Bool(err == nil && added))
		if err != nil {
			span.SetStatus(codes.Error, "cache write failed")
		}
	}
	span.End()
	if err != nil {
		v.log.Debug("cache: fill failed", "error", err)
		return
	}
	hd, _ := parseHeader(val)
	v.memoize(key, h, hd, &stored)
}

// Revoke revokes the token's session upstream (the inner verifier must
// implement verifier.Revoker) and writes a tombstone under the token's key,
// so that every instance sharing the store refuses the token and a fill in
// flight cannot bring it back. The tombstone is written even when the
// upstream call fails; the upstream error is returned.
func (v *Verifier) Revoke(ctx context.Context, token string) (err error) {
	ctx, span := v.tracer.Start(ctx, telemetry.SpanRevoke)
	defer func() {
		if err != nil && span.IsRecording() {
			span.SetStatus(codes.Error, "revoke failed")
		}
		span.End()
	}()
	r, ok := v.inner.(verifier.Revoker)
	if !ok {
		return fmt.Errorf("%w: inner verifier cannot revoke", verifier.ErrMisconfigured)
	}
	if _, err := verifier.Classify(token); err != nil {
		return err
	}
	h := v.keys.tokenHash(token)
	key := storeKey(&h)
	ttl := max(v.cfg.TTL, tombstoneFloor) + v.cfg.FlightTimeout
	exp := v.now().Add(ttl)
	v.tombstone(&h, exp.UnixMilli())
	v.memo.del(&h)
	upErr := r.Revoke(ctx, token)
	if val, err := v.keys.encode(key, nil, exp.UnixMilli()); err == nil {
		// The tombstone must land even if the client hangs up now: write it
		// on a context of its own, and try twice.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tombstoneWriteTimeout)
		defer cancel()
		err := v.store.Set(wctx, key, val, ttl)
		if err != nil && wctx.Err() == nil {
			err = v.store.Set(wctx, key, val, ttl)
		}
		if err != nil {
			v.log.Warn("cache: tombstone write failed; other instances may serve the session until its cache entry expires", "error", err)
		}
	}
	return upErr
}

// tombstone remembers in process that the token was revoked: it closes the
// window in which a store may still return the old value (e.g. Redis
// client-side caching right after our own write) and stops fills in flight.
func (v *Verifier) tombstone(h *[32]byte, expMillis int64) {
	v.tombMu.Lock()
	defer v.tombMu.Unlock()
	nowMs := v.now().UnixMilli()
	for k, e := range v.tombs {
		if e <= nowMs {
			delete(v.tombs, k)
		}
	}
	if len(v.tombs) >= maxTombstones {
		// Revocations are rare; a flood is an attack. The store's
		// tombstone still refuses the token; only the in-process
		// shortcut is skipped.
		return
	}
	v.tombs[*h] = expMillis
	v.tombCount.Store(int64(len(v.tombs)))
}

func (v *Verifier) isTombstoned(h *[32]byte, nowMs int64) bool {
	v.tombMu.RLock()
	e, ok := v.tombs[*h]
	v.tombMu.RUnlock()
	return ok && nowMs < e
}

// tombstonedSince reports whether the token was revoked after startedMs.
func (v *Verifier) tombstonedSince(h *[32]byte, startedMs int64) bool {
	return v.tombCount.Load() > 0 && v.isTombstoned(h, startedMs)
}

func (v *Verifier) reject(h *[32]byte) {
	if v.cfg.NegativeTTL < 0 {
		return
	}
	nowMs := v.now().UnixMilli()
	v.negMu.Lock()
	defer v.negMu.Unlock()
	if len(v.neg) >= maxNegEntries {
		for k, e := range v.neg {
			if e <= nowMs {
				delete(v.neg, k)
			}
		}
		if len(v.neg) >= maxNegEntries {
			return
		}
	}
	v.neg[*h] = nowMs + v.cfg.NegativeTTL.Milliseconds()
}

func (v *Verifier) isRejected(h *[32]byte) bool {
	v.negMu.RLock()
	e, ok := v.neg[*h]
	v.negMu.RUnlock()
	return ok && v.now().UnixMilli() < e
}

// Close releases the in-process memo. It does not close the store or the
// inner verifier, which the caller owns. Call it after the HTTP server has
// stopped.
func (v *Verifier) Close() error {
	v.flightMu.Lock()
	first := v.closed.CompareAndSwap(false, true)
	v.flightMu.Unlock()
	if first {
		v.stop() // ends upstream verifications in flight
		v.flightWG.Wait()
		v.memo.clear()
	}
	return nil
}

package echostytch

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/rueidis"
	"github.com/sethvargo/go-envconfig"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/cache/tiered"
	"github.com/ayzauth/ayzauth/verifier"
)

// Stack is what FromEnv (or NewStack) builds from Settings: a ready
// middleware Config, and the parts behind it, which Close releases in a
// safe order.
type Stack struct {
	// Config is ready for New or ToMiddleware; adjust it before use (e.g.
	// set Optional on a copy for optional routes).
	Config Config
	// Settings are the settings the stack was built from.
	Settings *Settings
	// Stytch verifies tokens against Stytch (locally for JWTs).
	Stytch *verifier.Stytch
	// Policy is the project's RBAC policy, loaded on first use and
	// refreshed every 5 minutes, for RequirePermission.
	Policy *verifier.PolicyCache
	// Cache is the caching verifier in front of Stytch (Config.Verifier).
	Cache *cache.Verifier
	// Store is the cache backend: the one built from the settings, or the
	// one given with WithStore (which Close leaves open).
	Store cache.Store
	// Logger is the logger built from STYTCH_LOG_LEVEL.
	Logger *slog.Logger

	closeOnce sync.Once
	closers   []func() error
	closeErr  error
}

// StackOption adjusts how FromEnv and NewStack build a Stack.
type StackOption func(*stackOptions)

type stackOptions struct {
	mp       metric.MeterProvider
	tp       trace.TracerProvider
	logOut   io.Writer
	store    cache.Store
	storeSet bool // WithStore was given (store may still be nil: an error)
}

func buildStackOptions(opts []StackOption) stackOptions {
	var o stackOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithMeterProvider sends the metrics of every part of the stack (the
// middleware Config, the caches, the caching verifier, the Stytch client)
// to mp instead of the global provider (otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) StackOption {
	return func(o *stackOptions) { o.mp = mp }
}

// WithTracerProvider sends the spans of every part of the stack to tp
// instead of the global provider (otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) StackOption {
	return func(o *stackOptions) { o.tp = tp }
}

// WithLogOutput makes FromEnv write its logs (text, at STYTCH_LOG_LEVEL)
// to w instead of stderr, e.g. to collect them in a test. NewStack, which
// takes its logger as an argument, ignores it.
func WithLogOutput(w io.Writer) StackOption {
	return func(o *stackOptions) { o.logOut = w }
}

// WithStore makes FromEnv and NewStack cache sessions in store, built in
// code, instead of building a store from STYTCH_CACHE_BACKEND and
// STYTCH_REDIS_URL; a service can then swap caches without touching its
// handlers. For instance, an in-process L1 over a shared Redis L2:
//
//	l1, _ := memory.New(memory.Options{MeterProvider: noop.NewMeterProvider()})
//	l2, _ := redis.New(ctx, redis.Options{Addrs: []string{"localhost:6379"}, KeyPrefix: "ayz_auth"})
//	store, _ := tiered.New(l1, l2, tiered.Options{})
//	stack, err := echostytch.FromEnv(ctx, nil, echostytch.WithStore(store))
//
// The store given in code wins over the settings: STYTCH_CACHE_BACKEND
// and the Redis variables are still loaded and validated as without
// WithStore (a "redis" or "tiered" backend still needs a Redis URL that
// parses), but no store is built from them and no Redis connection is
// made; Stack.Settings.CacheBackend keeps what the settings said. The
// "ayz-auth ready" log line records cache_store=code and the store's Go
// type (cache_store=settings without WithStore).
//
// The caller owns store: Stack.Close (and a failed FromEnv or NewStack)
// leaves it open, and the caller closes it after Stack.Close. A nil store
// (or a nil pointer of a store type) makes FromEnv and NewStack fail.
func WithStore(store cache.Store) StackOption {
	return func(o *stackOptions) { o.store, o.storeSet = store, true }
}

// isNilStore reports whether store is nil or a nil pointer (or other nil
// value) of a store type, which would panic on first use.
func isNilStore(store cache.Store) bool {
	if store == nil {
		return true
	}
	switch v := reflect.ValueOf(store); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// FromEnv reads the STYTCH_* variables through lookuper (nil: the process
// environment) and builds a Stack: the Stytch verifier, the cache backend
// chosen by STYTCH_CACHE_BACKEND (or the store given with WithStore), the
// caching verifier and the middleware Config. Logs go to stderr (or
// WithLogOutput's writer) as text at STYTCH_LOG_LEVEL. Metrics and spans go to the global OpenTelemetry
// providers unless opts say otherwise.
func FromEnv(ctx context.Context, lookuper envconfig.Lookuper, opts ...StackOption) (*Stack, error) {
	s, err := LoadSettings(ctx, lookuper)
	if err != nil {
		return nil, err
	}
	var out io.Writer = os.Stderr
	if o := buildStackOptions(opts); o.logOut != nil {
		out = o.logOut
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: s.LogLevel}))
	return NewStack(ctx, s, log, opts...)
}

// NewStack builds a Stack from settings; log may be nil (slog.Default()).
// opts (WithMeterProvider, WithTracerProvider) apply to every part;
// WithStore replaces the store the settings would select.
func NewStack(ctx context.Context, s *Settings, log *slog.Logger, opts ...StackOption) (*Stack, error) {
	if s == nil {
		return nil, errors.New("echostytch: NewStack needs settings")
	}
	if log == nil {
		log = slog.Default()
	}
	o := buildStackOptions(opts)
	if o.storeSet && isNilStore(o.store) {
		return nil, errors.New("echostytch: WithStore needs a non-nil cache.Store")
	}
	st := &Stack{Settings: s, Logger: log}
	ok := false
	defer func() {
		if !ok {
			_ = st.Close()
		}
	}()

	sv, err := verifier.NewStytch(verifier.Config{
		ProjectID: s.ProjectID, Secret: s.Secret, BaseURL: s.BaseURL,
		Timeout: s.RequestTimeout, MaxRetries: s.MaxRetries, Logger: log,
		MeterProvider: o.mp, TracerProvider: o.tp,
	})
	if err != nil {
		return nil, err
	}
	st.Stytch = sv
	st.closers = append(st.closers, sv.Close)
	st.Policy = verifier.NewPolicyCache(sv.Client(), verifier.PolicyOptions{Logger: log})
	st.closers = append(st.closers, st.Policy.Close)

	storeFrom := "settings"
	if o.storeSet {
		// The caller's store: not closed by Close.
		if err := checkRedisURL(s); err != nil {
			return nil, err
		}
		st.Store, storeFrom = o.store, "code"
	} else {
		store, closeStore, err := newStore(ctx, s, log, &o)
		if err != nil {
			return nil, err
		}
		st.Store = store
		st.closers = append(st.closers, closeStore)
	}

	cv, err := cache.NewVerifier(sv, cache.VerifierConfig{
		Store: st.Store, Secret: []byte(s.Secret), Namespace: s.ProjectID,
		TTL: s.CacheTTL, Logger: log,
		// One shared verification may take every attempt the settings
		// allow: (retries+1) timeouts plus the backoff between them.
		FlightTimeout: time.Duration(s.MaxRetries+1)*s.RequestTimeout +
			time.Duration(s.MaxRetries)*verifier.DefaultRetryMaxDelay + time.Second,
		MeterProvider: o.mp, TracerProvider: o.tp,
	})
	if err != nil {
		return nil, err
	}
	st.Cache = cv
	st.closers = append(st.closers, cv.Close)

	st.Config = Config{Verifier: cv, Logger: log, LogSensitiveData: s.LogSensitiveData, MeterProvider: o.mp}
	if _, err := st.Config.ToMiddleware(); err != nil {
		return nil, err
	}
	log.Info("ayz-auth ready", "settings", s, "cache_store", storeFrom, "cache_store_type", fmt.Sprintf("%T", st.Store))
	ok = true
	return st, nil
}

func newStore(ctx context.Context, s *Settings, log *slog.Logger, o *stackOptions) (cache.Store, func() error, error) {
	mem := func() (*memory.Store, error) { return memory.New(memory.Options{MeterProvider: o.mp}) }
	switch s.CacheBackend {
	case CacheMemory:
		m, err := mem()
		if err != nil {
			return nil, nil, err
		}
		return m, m.Close, nil
	case CacheRedis:
		r, err := newRedis(ctx, s, log, o)
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	case CacheTiered:
		return newTiered(ctx, s, log, o)
	}
	return nil, nil, &SettingError{Variable: "STYTCH_CACHE_BACKEND", Problem: fmt.Sprintf("unknown backend %q", s.CacheBackend)}
}

// newTiered builds an in-process L1 (ristretto) over a Redis L2; L1 entries
// are dropped when Redis reports an invalidation or loses its connection.
// L1 lookups are counted by the tiered store (tier "l1"), not by the L1
// store itself.
func newTiered(ctx context.Context, s *Settings, log *slog.Logger, o *stackOptions) (cache.Store, func() error, error) {
	l2, err := newRedis(ctx, s, log, o)
	if err != nil {
		return nil, nil, err
	}
	l1, err := memory.New(memory.Options{MeterProvider: metricnoop.NewMeterProvider()})
	if err != nil {
		_ = l2.Close()
		return nil, nil, err
	}
	t, err := tiered.New(l1, l2, tiered.Options{MeterProvider: o.mp})
	if err != nil {
		_ = l1.Close()
		_ = l2.Close()
		return nil, nil, err
	}
	return t, func() error { return errors.Join(t.Close(), l1.Close(), l2.Close()) }, nil
}

// newRedis returns a Redis store that does not need Redis at start-up
// ("Redis down means slower, not broken"): until Redis is reachable every
// request is verified through Stytch, and caching begins once it connects.
// Only a URL that cannot be parsed is an error.
func newRedis(ctx context.Context, s *Settings, log *slog.Logger, o *stackOptions) (*redis.Lazy, error) {
	opts := redis.Options{Password: s.RedisPassword, DB: s.RedisDB, KeyPrefix: s.CachePrefix, Logger: log,
		MeterProvider: o.mp, TracerProvider: o.tp}
	if s.RedisSSL {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	r, err := redis.NewLazyFromURL(ctx, s.RedisURL, opts)
	if err != nil {
		return nil, redisURLError(s, err)
	}
	return r, nil
}

// checkRedisURL rejects, as newRedis would, a Redis URL that the Redis
// client cannot parse when the settings select a Redis backend: with
// WithStore no Redis store is built, but the settings are validated alike.
func checkRedisURL(s *Settings) error {
	if s.CacheBackend != CacheRedis && s.CacheBackend != CacheTiered {
		return nil
	}
	if _, err := rueidis.ParseURL(s.RedisURL); err != nil {
		return redisURLError(s, fmt.Errorf("redis: parse URL: %w", err))
	}
	return nil
}

// redisURLError is the start-up error for a Redis URL the Redis client
// rejects: it names the variable the URL came from (REDIS_URL is the
// fallback) and does not reveal a password in it.
func redisURLError(s *Settings, err error) error {
	return &SettingError{Variable: cmp.Or(s.redisURLVar, "STYTCH_REDIS_URL"), Problem: redactURLIn(err.Error(), s.RedisURL)}
}

// redactURLIn replaces rawURL (bare or quoted, as url.Error quotes it) in
// msg by its redacted form, so that an error about a URL the parser
// rejected does not reveal a password in it.
func redactURLIn(msg, rawURL string) string {
	if rawURL == "" {
		return msg
	}
	red := RedactURL(rawURL)
	msg = strings.ReplaceAll(msg, strconv.Quote(rawURL), strconv.Quote(red))
	return strings.ReplaceAll(msg, rawURL, red)
}

// Close releases everything the stack started, in an order that is safe
// once the HTTP server has stopped: the caching verifier, then the store,
// then the policy cache, then the Stytch verifier. It is idempotent. A
// store given with WithStore is not closed: the caller closes it after
// Close.
func (st *Stack) Close() error {
	st.closeOnce.Do(func() {
		for i := len(st.closers) - 1; i >= 0; i-- {
			st.closeErr = errors.Join(st.closeErr, st.closers[i]())
		}
	})
	return st.closeErr
}

// Logout returns a handler that revokes the session of every token the
// request carries (the Authorization header and both session cookies) at
// Stytch and in every cache tier (see cache.Verifier.Revoke), clears the
// session cookies and answers 204. Mount it behind the middleware, e.g.
// e.POST("/logout", stack.Logout(), echostytch.New(stack.Config)).
func (st *Stack) Logout() echo.HandlerFunc {
	cookieJWT := cmp.Or(st.Config.CookieJWT, DefaultCookieJWT)
	cookieToken := cmp.Or(st.Config.CookieToken, DefaultCookieToken)
	maxLen := cmp.Or(st.Config.MaxHeaderLength, DefaultMaxHeaderLength)
	fail := func(c echo.Context, err error) error {
		if st.Config.ErrorHandler != nil {
			return st.Config.ErrorHandler(c, err)
		}
		return WriteError(c, err, st.Config.Realm)
	}
	return func(c echo.Context) error {
		r := c.Request()
		var tokens []string
		if vals := r.Header.Values(echo.HeaderAuthorization); len(vals) == 1 {
			if tok, reason := parseAuthorization(vals[0], maxLen); reason == "" {
				tokens = append(tokens, tok)
			}
		}
		if !st.Config.NoCookies {
			for _, name := range []string{cookieJWT, cookieToken} {
				if v := cookieValue(r.Header.Values(echo.HeaderCookie), name); v != "" {
					tokens = append(tokens, v)
				}
			}
		}
		if len(tokens) == 0 {
			return fail(c, missingTokenError())
		}
		for _, tok := range tokens {
			if _, err := verifier.Classify(tok); err != nil {
				continue
			}
			// Revoke only live sessions: junk tokens cost no Stytch call
			// and leave no tombstone (a flood of them is an attack).
			if _, err := st.Cache.Verify(r.Context(), tok); err != nil {
				if errors.Is(err, verifier.ErrInvalidSession) || errors.Is(err, verifier.ErrMalformedToken) {
					continue
				}
				return fail(c, verifyError(err))
			}
			if err := st.Cache.Revoke(r.Context(), tok); err != nil {
				return fail(c, verifyError(err))
			}
		}
		if !st.Config.NoCookies {
			for _, name := range []string{cookieJWT, cookieToken} {
				c.SetCookie(&http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(0, 0)})
			}
		}
		return c.NoContent(http.StatusNoContent)
	}
}

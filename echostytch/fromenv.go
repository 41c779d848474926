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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

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
	// Store is the cache backend.
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
	mp     metric.MeterProvider
	tp     trace.TracerProvider
	logOut io.Writer
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

// FromEnv reads the STYTCH_* variables through lookuper (nil: the process
// environment) and builds a Stack: the Stytch verifier, the cache backend
// chosen by STYTCH_CACHE_BACKEND, the caching verifier and the middleware
// Config. Logs go to stderr (or WithLogOutput's writer) as text at
// STYTCH_LOG_LEVEL. Metrics and spans go to the global OpenTelemetry
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
// opts (WithMeterProvider, WithTracerProvider) apply to every part.
func NewStack(ctx context.Context, s *Settings, log *slog.Logger, opts ...StackOption) (*Stack, error) {
	if s == nil {
		return nil, errors.New("echostytch: NewStack needs settings")
	}
	if log == nil {
		log = slog.Default()
	}
	o := buildStackOptions(opts)
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

	store, closeStore, err := newStore(ctx, s, log, &o)
	if err != nil {
		return nil, err
	}
	st.Store = store
	st.closers = append(st.closers, closeStore)

	cv, err := cache.NewVerifier(sv, cache.VerifierConfig{
		Store: store, Secret: []byte(s.Secret), Namespace: s.ProjectID,
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
	log.Info("ayz-auth ready", "settings", s)
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
		// Name the variable the URL came from (REDIS_URL is the fallback).
		return nil, &SettingError{Variable: cmp.Or(s.redisURLVar, "STYTCH_REDIS_URL"), Problem: redactURLIn(err.Error(), s.RedisURL)}
	}
	return r, nil
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
// then the policy cache, then the Stytch verifier. It is idempotent.
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

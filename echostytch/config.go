package echostytch

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/otel/metric"

	"github.com/ayzauth/ayzauth/internal/telemetry"
	"github.com/ayzauth/ayzauth/verifier"
)

// Defaults applied by Config.ToMiddleware to zero-valued fields.
const (
	// DefaultCookieJWT is the cookie holding a session JWT (the Stytch
	// frontend SDKs' default name).
	DefaultCookieJWT = "stytch_session_jwt"
	// DefaultCookieToken is the cookie holding an opaque session token.
	DefaultCookieToken = "stytch_session"
	// DefaultMaxHeaderLength bounds the Authorization header value: the
	// longest session JWT a verifier accepts, plus room for the scheme.
	DefaultMaxHeaderLength = verifier.MaxJWTLength + 256
	// DefaultRealm is the realm of the WWW-Authenticate challenge.
	DefaultRealm = "api"
	// DefaultRetryAfter is the Retry-After advertised on a 503.
	DefaultRetryAfter = 5 * time.Second
)

// Config configures the authentication middleware. Only Verifier is
// required; the zero value of every other field selects a documented
// default.
type Config struct {
	// Skipper, when it returns true, makes the middleware call the next
	// handler without looking at the request (no session is stored).
	// Default: never skip.
	Skipper middleware.Skipper

	// BeforeFunc runs before the token is extracted (after Skipper).
	BeforeFunc middleware.BeforeFunc

	// Verifier checks tokens. Required.
	Verifier verifier.Verifier

	// Optional makes authentication optional, like the Python original's
	// verify_auth_optional: a request without a token, or with a malformed
	// or invalid one, continues anonymously (Member reports false), logged
	// at DEBUG. When the verifier cannot answer (outage, misconfiguration,
	// unexpected error) the request also continues anonymously, but that
	// is logged at WARN (ERROR for a misconfiguration or unexpected error)
	// and counted in Stats.Degraded.
	Optional bool

	// ErrorHandler writes the answer to a failed authentication, and to a
	// failed requirement (RequireClaims, ...) downstream of this
	// middleware. It receives an *Error (match it with errors.Is/As) and
	// its return value is returned to Echo. Default: WriteError with Realm,
	// returning nil.
	ErrorHandler func(c echo.Context, err error) error

	// SuccessHandler, if set, is called after a session was verified and
	// stored, before the next handler.
	SuccessHandler func(c echo.Context, s *verifier.Session)

	// Logger receives the middleware's log records. Default: slog.Default()
	// at the time of each request. Outcomes are logged at DEBUG, outages at
	// WARN; a token appears only as TokenFingerprint(token).
	Logger *slog.Logger

	// LogSensitiveData adds member and session IDs and member emails to log
	// records. Tokens and secrets are never logged.
	LogSensitiveData bool

	// CookieJWT is the cookie read for a session JWT when there is no
	// Authorization header. Default DefaultCookieJWT.
	CookieJWT string
	// CookieToken is the cookie read for a session token when there is no
	// Authorization header nor CookieJWT cookie. Default DefaultCookieToken.
	CookieToken string
	// NoCookies restricts extraction to the Authorization header. Consider
	// it for APIs that browsers do not call: cookie authentication needs
	// CSRF protection.
	NoCookies bool
	// MaxHeaderLength bounds the Authorization header value in bytes; a
	// longer header is rejected with a 401. Default DefaultMaxHeaderLength.
	MaxHeaderLength int

	// Realm is the realm of the WWW-Authenticate challenge on a 401. It
	// must not contain quotes, backslashes or control characters. Default
	// DefaultRealm.
	Realm string
	// RetryAfter is advertised in the Retry-After header of a 503, rounded
	// up to whole seconds. Default DefaultRetryAfter.
	RetryAfter time.Duration

	// SessionInContext also puts the session on the request's context
	// (c.SetRequest with a derived context), where FromContext finds it, for
	// code below the handler that only has a context.Context. It costs one
	// allocation per request (a copy of the *http.Request); Member and the
	// requirements do not need it.
	SessionInContext bool

	// ContextKey, if set, also stores the session with c.Set(ContextKey, s)
	// for code that reads it with c.Get under a name of its choosing.
	// Member does not need it.
	ContextKey string

	// Stats, if set, counts failures and degraded requests.
	Stats *Stats

	// MeterProvider receives the middleware's metrics: every request by
	// outcome (ayzauth.auth.requests) and, when the provider enables it,
	// the time to decide (ayzauth.auth.duration). Nil means the global
	// provider (otel.GetMeterProvider() when New is called). The caches
	// and the Stytch client have their own providers in their configs;
	// FromEnv and NewStack set them all (WithMeterProvider).
	MeterProvider metric.MeterProvider
}

// Stats counts the middleware's non-success outcomes. Successes are not
// counted, to keep shared counters off the hot path. The fields are safe for
// concurrent use; a Stats must not be copied after first use.
type Stats struct {
	// Unauthorized counts 401 answers (missing, malformed or invalid tokens).
	Unauthorized atomic.Uint64
	// Unavailable counts 503 answers (authentication service outage).
	Unavailable atomic.Uint64
	// Errors counts 500 answers (misconfiguration, unexpected errors).
	Errors atomic.Uint64
	// Degraded counts optional-authentication requests that continued
	// anonymously because the verifier could not answer.
	Degraded atomic.Uint64
}

// New returns the authentication middleware configured by cfg.
//
// Following Echo's WithConfig convention, New panics if cfg is invalid
// (nil Verifier, bad cookie name or realm, negative length): a programming
// error found at start-up. Use Config.ToMiddleware to get the error instead.
// New never panics because of a request.
func New(cfg Config) echo.MiddlewareFunc {
	mw, err := cfg.ToMiddleware()
	if err != nil {
		panic(err)
	}
	return mw
}

// ToMiddleware validates the configuration, applies defaults and returns the
// middleware, or an error describing what is wrong with the configuration.
func (cfg Config) ToMiddleware() (echo.MiddlewareFunc, error) {
	st, err := newState(cfg)
	if err != nil {
		return nil, err
	}
	return st.middleware, nil
}

func newState(cfg Config) (*state, error) {
	var errs []error
	if cfg.Verifier == nil {
		errs = append(errs, errors.New("Verifier is required"))
	}
	if cfg.CookieJWT == "" {
		cfg.CookieJWT = DefaultCookieJWT
	}
	if cfg.CookieToken == "" {
		cfg.CookieToken = DefaultCookieToken
	}
	if !validCookieName(cfg.CookieJWT) {
		errs = append(errs, fmt.Errorf("CookieJWT %q is not a valid cookie name", cfg.CookieJWT))
	}
	if !validCookieName(cfg.CookieToken) {
		errs = append(errs, fmt.Errorf("CookieToken %q is not a valid cookie name", cfg.CookieToken))
	}
	switch {
	case cfg.MaxHeaderLength < 0:
		errs = append(errs, fmt.Errorf("MaxHeaderLength %d is negative", cfg.MaxHeaderLength))
	case cfg.MaxHeaderLength == 0:
		cfg.MaxHeaderLength = DefaultMaxHeaderLength
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if !validRealm(cfg.Realm) {
		errs = append(errs, errors.New("Realm must be printable ASCII without quotes or backslashes"))
	}
	switch {
	case cfg.RetryAfter < 0:
		errs = append(errs, fmt.Errorf("RetryAfter %v is negative", cfg.RetryAfter))
	case cfg.RetryAfter == 0:
		cfg.RetryAfter = DefaultRetryAfter
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("echostytch: invalid Config: %w", errors.Join(errs...))
	}
	st := &state{cfg: cfg, headers: newHeaders(cfg.Realm, cfg.RetryAfter), tel: telemetry.NewMiddleware(cfg.MeterProvider)}
	if sc, ok := cfg.Verifier.(shapeChecker); ok && sc.ChecksTokenShape() {
		st.lazyShape = true
	}
	st.errorHandler = cfg.ErrorHandler
	if st.errorHandler == nil {
		st.errorHandler = func(c echo.Context, err error) error { return st.headers.write(c, err) }
	}
	return st, nil
}

// validCookieName reports whether name is an RFC 6265 cookie-name (token).
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}':
			return false
		}
	}
	return true
}

func validRealm(realm string) bool {
	for i := 0; i < len(realm); i++ {
		c := realm[i]
		if c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

package echostytch

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ayzauth/ayzauth/internal/telemetry"
	"github.com/ayzauth/ayzauth/verifier"
)

// state is a configured middleware instance.
type state struct {
	cfg          Config
	headers      headers
	errorHandler func(c echo.Context, err error) error
	tel          *telemetry.Middleware
	// lazyShape: the Verifier checks token shapes itself before anything
	// leaves the process (shapeChecker), so the fast path hands it tokens
	// unchecked and checks them only when it answers "malformed".
	lazyShape bool
}

// shapeChecker is implemented by verifiers that check a token's shape
// (verifier.Classify) before anything but a keyed hash of it leaves the
// process, and only ever accept well-formed tokens (cache.Verifier).
type shapeChecker interface{ ChecksTokenShape() bool }

const bearerPrefix = "Bearer "

// Where a token came from.
type source uint8

const (
	sourceNone source = iota
	sourceHeader
	sourceCookieJWT
	sourceCookieToken
)

func (s source) String() string {
	switch s {
	case sourceHeader:
		return "authorization_header"
	case sourceCookieJWT, sourceCookieToken:
		return "cookie"
	}
	return "none"
}

func (st *state) logger() *slog.Logger {
	if st.cfg.Logger != nil {
		return st.cfg.Logger
	}
	return slog.Default()
}

func (st *state) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if st.cfg.Skipper != nil && st.cfg.Skipper(c) {
			return next(c)
		}
		if st.cfg.BeforeFunc != nil {
			st.cfg.BeforeFunc(c)
		}
		req := c.Request()
		ctx := req.Context()
		// The clock is read only when an SDK records durations.
		var start time.Time
		timed := st.tel.Timed(ctx)
		if timed {
			start = time.Now()
		}
		token, src, e := st.extract(req, st.lazyShape)
		if e != nil {
			return st.fail(c, next, e, src, token, start)
		}
		s, err := st.cfg.Verifier.Verify(ctx, token)
		if st.lazyShape && errors.Is(err, verifier.ErrMalformedToken) {
			// The token was not checked: answer as the checking path
			// would (its reason, or the token it would have extracted).
			strict, ssrc, se := st.extract(req, false)
			if se != nil {
				return st.fail(c, next, se, ssrc, strict, start)
			}
			if strict != token {
				token, src = strict, ssrc
				s, err = st.cfg.Verifier.Verify(ctx, token)
			}
		}
		if err != nil || s == nil {
			return st.fail(c, next, verifyError(err), src, token, start)
		}
		st.tel.Count(ctx, telemetry.OutcomeOK)
		if timed {
			st.tel.Duration(ctx, telemetry.OutcomeOK, start)
		}
		if st.cfg.SessionInContext {
			c.SetRequest(withSession(req, s, st))
		}
		if st.cfg.ContextKey != "" {
			c.Set(st.cfg.ContextKey, s)
		}
		prev, had := enter(c, slot{session: s, state: st})
		defer leave(c, prev, had)
		if l := st.logger(); l.Enabled(req.Context(), slog.LevelDebug) {
			st.logSuccess(l, c, s, src, token)
		}
		if st.cfg.SuccessHandler != nil {
			st.cfg.SuccessHandler(c, s)
		}
		return next(c)
	}
}

// fail answers a failed authentication, or continues anonymously under
// Optional. start is when the middleware started, if it is timed.
func (st *state) fail(c echo.Context, next echo.HandlerFunc, e *Error, src source, token string, start time.Time) error {
	degraded := e.Status >= 500
	o := outcomeOf(e, st.cfg.Optional)
	ctx := c.Request().Context()
	st.tel.Count(ctx, o)
	if !start.IsZero() {
		st.tel.Duration(ctx, o, start)
	}
	if stats := st.cfg.Stats; stats != nil {
		switch {
		case st.cfg.Optional && degraded:
			stats.Degraded.Add(1)
		case st.cfg.Optional:
		case e.Status == http.StatusServiceUnavailable:
			stats.Unavailable.Add(1)
		case degraded:
			stats.Errors.Add(1)
		default:
			stats.Unauthorized.Add(1)
		}
	}
	st.logFailure(c, e, src, token)
	if st.cfg.Optional {
		// Anonymous, but keep the middleware where requirements find it,
		// so that they answer through its ErrorHandler.
		if st.cfg.SessionInContext {
			c.SetRequest(withSession(c.Request(), nil, st))
		}
		prev, had := enter(c, slot{state: st})
		defer leave(c, prev, had)
		return next(c)
	}
	return st.errorHandler(c, e)
}

// outcomeOf is the ayzauth.outcome of a failed authentication.
func outcomeOf(e *Error, optional bool) telemetry.Outcome {
	switch {
	case optional && e.Status >= 500:
		return telemetry.OutcomeDegraded
	case optional:
		return telemetry.OutcomeAnonymous
	case e.Kind == ErrTokenMissing:
		return telemetry.OutcomeMissing
	case e.Kind == ErrTokenMalformed:
		return telemetry.OutcomeMalformed
	case e.Kind == ErrTokenInvalid:
		return telemetry.OutcomeInvalid
	case e.Status == http.StatusForbidden:
		return telemetry.OutcomeForbidden
	case e.Status == http.StatusServiceUnavailable:
		return telemetry.OutcomeUnavailable
	}
	return telemetry.OutcomeError
}

func (st *state) logSuccess(l *slog.Logger, c echo.Context, s *verifier.Session, src source, token string) {
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs,
		slog.String("token_fp", TokenFingerprint(token)),
		slog.String("source", src.String()),
		slog.String("route", c.Path()))
	if st.cfg.LogSensitiveData {
		attrs = append(attrs,
			slog.String("member_id", s.MemberID),
			slog.String("member_email", s.MemberEmail),
			slog.String("organization_id", s.OrganizationID),
			slog.String("session_id", s.SessionID))
	}
	l.LogAttrs(c.Request().Context(), slog.LevelDebug, "echostytch: session verified", attrs...)
}

// failureLevel is the log level of a refusal: WARN for an outage (unless
// the client went away), ERROR for any other 5xx, DEBUG otherwise.
func failureLevel(ctx context.Context, e *Error) slog.Level {
	switch {
	case errors.Is(e, ErrServiceUnavailable):
		if ctx.Err() != nil {
			return slog.LevelDebug // the client went away: not an outage
		}
		return slog.LevelWarn
	case e.Status >= 500:
		return slog.LevelError
	}
	return slog.LevelDebug
}

func (st *state) logFailure(c echo.Context, e *Error, src source, token string) {
	l := st.logger()
	ctx := c.Request().Context()
	level := failureLevel(ctx, e)
	if !l.Enabled(ctx, level) {
		return
	}
	msg := "echostytch: authentication failed"
	if st.cfg.Optional {
		msg = "echostytch: continuing anonymously"
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs,
		slog.Int("status", e.Status),
		slog.String("type", e.Type),
		slog.String("reason", e.Message),
		slog.String("source", src.String()),
		slog.String("route", c.Path()))
	if token != "" {
		attrs = append(attrs, slog.String("token_fp", TokenFingerprint(token)))
	}
	if e.Err != nil && e.Status >= 500 {
		// Verifier errors never contain tokens (verifier's contract).
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	l.LogAttrs(ctx, level, msg, attrs...)
}

// extract finds the token: Authorization header, else the JWT cookie, else
// the session-token cookie, and checks its shape with verifier.Classify. It
// returns an *Error (missing or malformed) when there is no usable token;
// the token is then returned only if it was found (for its fingerprint).
// With lazy, a token of the common forms ("Bearer <token>", a cookie) is
// returned without its shape checked (see state.lazyShape).
func (st *state) extract(r *http.Request, lazy bool) (string, source, *Error) {
	if vals := r.Header[echo.HeaderAuthorization]; len(vals) > 0 {
		if len(vals) > 1 {
			return "", sourceHeader, malformedError("multiple Authorization headers are not allowed", nil)
		}
		v := vals[0]
		// Fast path for the common exact form "Bearer <token>": a token
		// that passes verifier.Classify has no spaces, control or
		// non-ASCII characters, so the full parse would find the same.
		if len(v) > len(bearerPrefix) && len(v) <= st.cfg.MaxHeaderLength && v[:len(bearerPrefix)] == bearerPrefix {
			if lazy || wellFormed(v[len(bearerPrefix):]) {
				return v[len(bearerPrefix):], sourceHeader, nil
			}
		}
		token, reason := parseAuthorization(v, st.cfg.MaxHeaderLength)
		if reason != "" {
			return "", sourceHeader, malformedError(reason, nil)
		}
		return classified(token, sourceHeader, lazy)
	}
	if st.cfg.NoCookies {
		return "", sourceNone, missingTokenError()
	}
	if cookies := r.Header[echo.HeaderCookie]; len(cookies) > 0 {
		if v := cookieValue(cookies, st.cfg.CookieJWT); v != "" {
			return classified(v, sourceCookieJWT, lazy)
		}
		if v := cookieValue(cookies, st.cfg.CookieToken); v != "" {
			return classified(v, sourceCookieToken, lazy)
		}
	}
	return "", sourceNone, missingTokenError()
}

func classified(token string, src source, lazy bool) (string, source, *Error) {
	if lazy || wellFormed(token) {
		return token, src, nil
	}
	if _, err := verifier.Classify(token); err != nil {
		return token, src, verifyError(err)
	}
	return token, src, nil
}

// base64url alphabet: 1 for the characters of a token segment.
var b64url = func() (t [256]uint8) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = 1
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	t['-'], t['_'] = 1, 1
	return t
}()

// wellFormed reports whether verifier.Classify accepts token (an opaque
// token of MinOpaqueLength to MaxOpaqueLength base64url characters, or
// three non-empty base64url segments of at most MaxJWTLength in all),
// faster: the dots are found with strings.IndexByte and the characters
// checked without a branch per byte (about 3x faster on a 1.7 KB JWT,
// which every cached JWT request pays). Classify stays the reference and
// gives the reasons; TestWellFormedMatchesClassify checks they agree.
func wellFormed(t string) bool {
	n := len(t)
	if n == 0 || n > verifier.MaxJWTLength {
		return false
	}
	i := strings.IndexByte(t, '.')
	if i < 0 {
		return n >= verifier.MinOpaqueLength && n <= verifier.MaxOpaqueLength && base64url(t)
	}
	j := strings.IndexByte(t[i+1:], '.')
	if j < 0 {
		return false // two segments
	}
	j += i + 1
	if i == 0 || j == i+1 || j == n-1 || strings.IndexByte(t[j+1:], '.') >= 0 {
		return false // an empty segment, or more than three
	}
	return base64url(t[:i]) && base64url(t[i+1:j]) && base64url(t[j+1:])
}

// base64url reports whether every byte of s is a base64url character.
func base64url(s string) bool {
	a, b := uint8(1), uint8(1) // two chains of ANDs run in parallel
	for len(s) >= 16 {
		a &= b64url[s[0]] & b64url[s[1]] & b64url[s[2]] & b64url[s[3]] &
			b64url[s[4]] & b64url[s[5]] & b64url[s[6]] & b64url[s[7]]
		b &= b64url[s[8]] & b64url[s[9]] & b64url[s[10]] & b64url[s[11]] &
			b64url[s[12]] & b64url[s[13]] & b64url[s[14]] & b64url[s[15]]
		s = s[16:]
	}
	for i := 0; i < len(s); i++ {
		a &= b64url[s[i]]
	}
	return a&b == 1
}

// parseAuthorization extracts the token of a "Bearer <token>" header value.
// The scheme is case-insensitive; spaces around the value and between the
// scheme and the token are tolerated; control characters (including tab)
// and non-ASCII bytes are rejected. The token's own shape is checked later
// by verifier.Classify.
func parseAuthorization(v string, maxLen int) (token, reason string) {
	if len(v) > maxLen {
		return "", "Authorization header is too long"
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' || c == 0x7f {
			return "", "Authorization header contains control characters"
		}
		if c >= 0x80 {
			return "", "Authorization header contains non-ASCII characters"
		}
	}
	v = strings.Trim(v, " ")
	if v == "" {
		return "", "Authorization header is empty"
	}
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "Authorization header must use the Bearer scheme: 'Bearer <token>'"
	}
	token = strings.TrimLeft(rest, " ")
	if token == "" {
		return "", "Authorization header has no token after 'Bearer'"
	}
	return token, ""
}

// cookieValue returns the value of the first cookie called name in the
// Cookie header values, without allocating (net/http's parser builds every
// cookie of the header). Surrounding double quotes are removed; an empty
// value counts as absent.
func cookieValue(headers []string, name string) string {
	for _, line := range headers {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.Trim(part, " \t")
			k, v, ok := strings.Cut(part, "=")
			if !ok || strings.TrimRight(k, " \t") != name {
				continue
			}
			v = strings.Trim(v, " \t")
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v != "" {
				return v
			}
		}
	}
	return ""
}

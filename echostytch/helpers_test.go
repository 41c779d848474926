package echostytch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/verifier"
)

const (
	tokPlain   = "tok_plain_0123456789abcdefghij" // plain member
	tokAdmin   = "tok_admin_0123456789abcdefghij" // custom claim admin=false
	tokMFA     = "tok_mfa_00123456789abcdefghijk" // totp factor
	tokSMS     = "tok_sms_00123456789abcdefghijk" // otp via sms
	tokInvalid = "tok_invalid_0123456789abcdefgh" // ErrInvalidSession
	tokDown    = "tok_down_0123456789abcdefghijk" // ErrUnavailable
	tokMisconf = "tok_misconf_0123456789abcdefgh" // ErrMisconfigured
	tokBoom    = "tok_boom_0123456789abcdefghijk" // unknown error
	tokVMalf   = "tok_vmalformed_0123456789abcde" // verifier says malformed
	tokNil     = "tok_nil_00123456789abcdefghijk" // (nil, nil)
	jwtPlain   = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtIn0.c2lnbmF0dXJl"
	secretWord = "secret-test-SUPERSECRETVALUE0123456789"
)

var errBoom = errors.New("boom")

func sessions() map[string]*verifier.Session {
	exp := time.Now().Add(time.Hour)
	return map[string]*verifier.Session{
		tokPlain: {MemberID: "member-plain-1", SessionID: "session-1", OrganizationID: "org-1",
			MemberEmail: "plain@example.com", ExpiresAt: exp, Roles: []string{"stytch_member"},
			AuthenticationFactors: []string{"magic_link"},
			Factors:               []verifier.Factor{{Type: "magic_link", DeliveryMethod: "email"}}},
		tokAdmin: {MemberID: "member-admin-2", OrganizationID: "org-1", MemberEmail: "admin@example.com",
			ExpiresAt: exp, Roles: []string{"stytch_member", "stytch_admin"},
			CustomClaims:          map[string]any{"admin": false},
			AuthenticationFactors: []string{"password"}},
		tokMFA: {MemberID: "member-mfa-3", OrganizationID: "org-1", MemberEmail: "mfa@example.com", ExpiresAt: exp,
			AuthenticationFactors: []string{"magic_link", "totp"},
			Factors: []verifier.Factor{{Type: "magic_link", DeliveryMethod: "email"},
				{Type: "totp", DeliveryMethod: "authenticator_app"}}},
		tokSMS: {MemberID: "member-sms-4", OrganizationID: "org-1", MemberEmail: "sms@example.com", ExpiresAt: exp,
			AuthenticationFactors: []string{"otp"},
			Factors:               []verifier.Factor{{Type: "otp", DeliveryMethod: "sms"}}},
		jwtPlain: {MemberID: "member-jwt-5", OrganizationID: "org-1", MemberEmail: "jwt@example.com", ExpiresAt: exp},
	}
}

// fakeVerifier returns a fixed outcome per token and records the tokens it
// was asked about.
type fakeVerifier struct {
	mu       sync.Mutex
	sessions map[string]*verifier.Session
	calls    []string
}

func newFake() *fakeVerifier { return &fakeVerifier{sessions: sessions()} }

func (f *fakeVerifier) Verify(_ context.Context, token string) (*verifier.Session, error) {
	f.mu.Lock()
	f.calls = append(f.calls, token)
	f.mu.Unlock()
	switch token {
	case tokInvalid:
		return nil, &verifier.APIError{Kind: verifier.ErrInvalidSession, StatusCode: 404, ErrorType: "session_not_found"}
	case tokDown:
		return nil, &verifier.APIError{Kind: verifier.ErrUnavailable, StatusCode: 503, ErrorType: "internal_server_error"}
	case tokMisconf:
		return nil, &verifier.APIError{Kind: verifier.ErrMisconfigured, StatusCode: 401, ErrorType: "unauthorized_credentials"}
	case tokBoom:
		return nil, errBoom
	case tokVMalf:
		return nil, &verifier.TokenError{Kind: verifier.ErrMalformedToken, Reason: "token is not a valid JWT"}
	case tokNil:
		return nil, nil
	}
	if s, ok := f.sessions[token]; ok {
		return s, nil
	}
	return nil, &verifier.TokenError{Kind: verifier.ErrInvalidSession, Reason: "unknown"}
}

func (f *fakeVerifier) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// memberHandler answers 200 {"member_id":…} or {"anonymous":true}.
func memberHandler(c echo.Context) error {
	s, ok := echostytch.Member(c)
	if !ok {
		return c.JSON(http.StatusOK, map[string]any{"anonymous": true})
	}
	return c.JSON(http.StatusOK, map[string]any{"member_id": s.MemberID})
}

// newEcho builds an Echo with the middleware on /r and extra routes.
func newEcho(t testing.TB, cfg echostytch.Config, routes ...func(e *echo.Echo)) *echo.Echo {
	t.Helper()
	mw, err := cfg.ToMiddleware()
	require.NoError(t, err)
	e := echo.New()
	e.Use(mw)
	e.GET("/r", memberHandler)
	for _, r := range routes {
		r(e)
	}
	return e
}

func serve(e *echo.Echo, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func get(target string, header ...string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return req
}

type body struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Type    string `json:"type"`
}

func decode(t testing.TB, rec *httptest.ResponseRecorder) body {
	t.Helper()
	var b body
	var raw map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw), rec.Body.String())
	require.Len(t, raw, 3, "flat body with exactly error, message, type: %s", rec.Body.String())
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b))
	return b
}

// logBuffer is a concurrency-safe buffer for a slog handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func debugLogger(buf *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

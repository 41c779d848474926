package verifier

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ayzauth/ayzauth/internal/telemetry"
)

// Stytch API base URLs, chosen from the project ID.
const (
	BaseURLTest = "https://test.stytch.com"
	BaseURLLive = "https://api.stytch.com"
)

// Defaults of ClientConfig.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultMaxRetries     = 3
	DefaultRetryBaseDelay = 100 * time.Millisecond
	DefaultRetryMaxDelay  = 2 * time.Second
	// maxResponseBytes bounds what we read of any Stytch answer.
	maxResponseBytes = 1 << 20
)

// API paths.
const (
	pathAuthenticate = "/v1/b2b/sessions/authenticate"
	pathRevoke       = "/v1/b2b/sessions/revoke"
	pathJWKS         = "/v1/b2b/sessions/jwks/"
	pathPolicy       = "/v1/b2b/rbac/policy"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// ProjectID and Secret are the project's API credentials (required).
	ProjectID string
	Secret    string
	// BaseURL overrides the API base URL chosen from the project ID
	// (project-live-… uses BaseURLLive, anything else BaseURLTest): a custom
	// domain, or an emulator such as stytchtest.
	BaseURL string
	// HTTPClient is used for every call. The default is a client of its own
	// with bounded connection pools and dial, TLS and header timeouts.
	HTTPClient *http.Client
	// Timeout bounds each attempt of a call (default DefaultTimeout). The
	// caller's context bounds the whole call, retries included.
	Timeout time.Duration
	// MaxRetries is how many times a call is retried after a network error,
	// a 5xx or a 429. Zero means no retry; DefaultMaxRetries is what the
	// STYTCH_MAX_RETRIES default gives.
	MaxRetries int
	// RetryBaseDelay and RetryMaxDelay shape the exponential backoff with
	// full jitter (defaults DefaultRetryBaseDelay, DefaultRetryMaxDelay).
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// UserAgent is sent with every call.
	UserAgent string
	// MeterProvider and TracerProvider receive the client's metrics
	// (ayzauth.stytch.requests and ayzauth.stytch.duration, per attempt)
	// and one client span per HTTP attempt. Nil means the global
	// providers (otel.GetMeterProvider, otel.GetTracerProvider).
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// Client is a small typed client for the Stytch B2B endpoints a session
// middleware needs. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	base    string
	auth    string
	jwksURL string
	hc      *http.Client
	tel     *telemetry.Stytch
}

// NewClient returns a Client. It makes no network call.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.ProjectID == "" {
		return nil, fmt.Errorf("%w: project ID is required", ErrMisconfigured)
	}
	if cfg.Secret == "" {
		return nil, fmt.Errorf("%w: secret is required", ErrMisconfigured)
	}
	base := cfg.BaseURL
	if base == "" {
		base = BaseURLTest
		if strings.HasPrefix(cfg.ProjectID, "project-live-") {
			base = BaseURLLive
		}
	}
	base = strings.TrimRight(base, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: base URL must be an absolute http(s) URL", ErrMisconfigured)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.RetryBaseDelay <= 0 {
		cfg.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if cfg.RetryMaxDelay <= 0 {
		cfg.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ayzauth-go"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: newTransport()}
	}
	return &Client{
		cfg:     cfg,
		base:    base,
		auth:    "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.ProjectID+":"+cfg.Secret)),
		jwksURL: base + pathJWKS + url.PathEscape(cfg.ProjectID),
		hc:      hc,
		tel:     telemetry.NewStytch(cfg.MeterProvider, cfg.TracerProvider, u.Hostname()),
	}, nil
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		MaxConnsPerHost:       256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// BaseURL returns the API base URL in use, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// ProjectID returns the project ID.
func (c *Client) ProjectID() string { return c.cfg.ProjectID }

// JWKSURL returns the URL of the project's B2B session JWKS.
func (c *Client) JWKSURL() string { return c.jwksURL }

// CloseIdleConnections closes idle connections of the client's transport.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// AuthorizationCheck asks Stytch to check a permission while
// authenticating.
type AuthorizationCheck struct {
	OrganizationID string `json:"organization_id"`
	ResourceID     string `json:"resource_id"`
	Action         string `json:"action"`
}

// AuthenticateParams is the body of POST /v1/b2b/sessions/authenticate.
// Exactly one of SessionToken and SessionJWT must be set.
type AuthenticateParams struct {
	SessionToken           string              `json:"session_token,omitempty"`
	SessionJWT             string              `json:"session_jwt,omitempty"`
	SessionDurationMinutes int32               `json:"session_duration_minutes,omitempty"`
	SessionCustomClaims    map[string]any      `json:"session_custom_claims,omitempty"`
	AuthorizationCheck     *AuthorizationCheck `json:"authorization_check,omitempty"`
}

// AuthenticationFactor is a factor as Stytch reports it. Only the fields a
// middleware needs are decoded; Raw keeps the rest.
type AuthenticationFactor struct {
	Type                string    `json:"type"`
	DeliveryMethod      string    `json:"delivery_method"`
	LastAuthenticatedAt time.Time `json:"last_authenticated_at"`
	EmailFactor         *struct {
		EmailAddress string `json:"email_address"`
	} `json:"email_factor,omitempty"`
}

// MemberSession is Stytch's member_session object.
type MemberSession struct {
	MemberSessionID       string                 `json:"member_session_id"`
	MemberID              string                 `json:"member_id"`
	OrganizationID        string                 `json:"organization_id"`
	OrganizationSlug      string                 `json:"organization_slug"`
	StartedAt             time.Time              `json:"started_at"`
	LastAccessedAt        time.Time              `json:"last_accessed_at"`
	ExpiresAt             time.Time              `json:"expires_at"`
	AuthenticationFactors []AuthenticationFactor `json:"authentication_factors"`
	Roles                 []string               `json:"roles"`
	CustomClaims          map[string]any         `json:"custom_claims"`
}

// Member is the part of Stytch's member object a middleware needs.
type Member struct {
	MemberID       string `json:"member_id"`
	OrganizationID string `json:"organization_id"`
	EmailAddress   string `json:"email_address"`
	Name           string `json:"name"`
	Status         string `json:"status"`
}

// Organization is the part of Stytch's organization object a middleware
// needs.
type Organization struct {
	OrganizationID   string `json:"organization_id"`
	OrganizationName string `json:"organization_name"`
	OrganizationSlug string `json:"organization_slug"`
}

// AuthenticateResponse is the answer of POST /v1/b2b/sessions/authenticate.
type AuthenticateResponse struct {
	RequestID     string        `json:"request_id"`
	StatusCode    int           `json:"status_code"`
	SessionToken  string        `json:"session_token"`
	SessionJWT    string        `json:"session_jwt"`
	MemberSession MemberSession `json:"member_session"`
	Member        Member        `json:"member"`
	Organization  Organization  `json:"organization"`
	Verdict       *struct {
		Authorized    bool     `json:"authorized"`
		GrantingRoles []string `json:"granting_roles"`
	} `json:"verdict,omitempty"`
	// Raw holds the member_session, member and organization objects exactly
	// as received (never the tokens).
	Raw json.RawMessage `json:"-"`
}

// Authenticate calls POST /v1/b2b/sessions/authenticate.
func (c *Client) Authenticate(ctx context.Context, p AuthenticateParams) (*AuthenticateResponse, error) {
	if (p.SessionToken == "") == (p.SessionJWT == "") {
		return nil, fmt.Errorf("%w: exactly one of session token and session JWT is required", ErrMalformedToken)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: encode request: %v", ErrMisconfigured, err)
	}
	raw, err := c.do(ctx, epAuthenticate, http.MethodPost, pathAuthenticate, body, true)
	if err != nil {
		return nil, err
	}
	var resp AuthenticateResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, &APIError{Kind: ErrUnavailable, StatusCode: http.StatusOK, Endpoint: pathAuthenticate, Err: fmt.Errorf("decode response: %w", err)}
	}
	var parts struct {
		MemberSession json.RawMessage `json:"member_session"`
		Member        json.RawMessage `json:"member"`
		Organization  json.RawMessage `json:"organization"`
	}
	_ = json.Unmarshal(raw, &parts) // cannot fail where the typed decode succeeded
	if resp.MemberSession.MemberSessionID == "" || resp.MemberSession.MemberID == "" {
		return nil, &APIError{Kind: ErrUnavailable, StatusCode: http.StatusOK, RequestID: resp.RequestID, Endpoint: pathAuthenticate, Err: errors.New("response lacks member_session")}
	}
	resp.Raw, _ = json.Marshal(parts)
	return &resp, nil
}

// RevokeParams is the body of POST /v1/b2b/sessions/revoke: set exactly one
// field. MemberID revokes all of the member's sessions.
type RevokeParams struct {
	MemberSessionID string `json:"member_session_id,omitempty"`
	SessionToken    string `json:"session_token,omitempty"`
	SessionJWT      string `json:"session_jwt,omitempty"`
	MemberID        string `json:"member_id,omitempty"`
}

// Revoke calls POST /v1/b2b/sessions/revoke.
func (c *Client) Revoke(ctx context.Context, p RevokeParams) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("%w: encode request: %v", ErrMisconfigured, err)
	}
	_, err = c.do(ctx, epRevoke, http.MethodPost, pathRevoke, body, true)
	return err
}

// JWKS fetches the project's B2B session JWKS and returns it as raw JSON.
func (c *Client) JWKS(ctx context.Context) (json.RawMessage, error) {
	return c.do(ctx, epJWKS, http.MethodGet, c.jwksURL[len(c.base):], nil, true)
}

// Permission grants actions on a resource ("*" grants every action).
type Permission struct {
	ResourceID string   `json:"resource_id"`
	Actions    []string `json:"actions"`
}

// Role is an RBAC role and its permissions.
type Role struct {
	RoleID      string       `json:"role_id"`
	Description string       `json:"description"`
	Permissions []Permission `json:"permissions"`
}

// Resource is an RBAC resource.
type Resource struct {
	ResourceID  string   `json:"resource_id"`
	Description string   `json:"description"`
	Actions     []string `json:"actions"`
}

// Policy is the project's RBAC policy.
type Policy struct {
	Roles     []Role     `json:"roles"`
	Resources []Resource `json:"resources"`
}

// Policy fetches the project's RBAC policy (GET /v1/b2b/rbac/policy).
func (c *Client) Policy(ctx context.Context) (*Policy, error) {
	raw, err := c.do(ctx, epPolicy, http.MethodGet, pathPolicy, nil, true)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Policy *Policy `json:"policy"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil || resp.Policy == nil {
		if err == nil {
			err = errors.New("response lacks policy")
		}
		return nil, &APIError{Kind: ErrUnavailable, StatusCode: http.StatusOK, Endpoint: pathPolicy, Err: err}
	}
	return resp.Policy, nil
}

// errorBody is Stytch's error shape.
type errorBody struct {
	StatusCode   int    `json:"status_code"`
	RequestID    string `json:"request_id"`
	ErrorType    string `json:"error_type"`
	ErrorMessage string `json:"error_message"`
}

// endpoint names an API endpoint in telemetry (ayzauth.stytch.endpoint)
// and its path template (url.template: never the project ID).
type endpoint struct{ name, template string }

var (
	epAuthenticate = endpoint{"authenticate", pathAuthenticate}
	epRevoke       = endpoint{"revoke", pathRevoke}
	epJWKS         = endpoint{"jwks", pathJWKS + "{project_id}"}
	epPolicy       = endpoint{"policy", pathPolicy}
)

// do performs a call with retries. It returns the body of a 200/201 answer,
// or an *APIError. Each attempt is recorded (span, count, duration).
func (c *Client) do(ctx context.Context, ep endpoint, method, path string, body []byte, retry bool) ([]byte, error) {
	attempts := 1
	if retry {
		attempts += c.cfg.MaxRetries
	}
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			d := c.backoff(attempt)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
				return nil, lastErr // the next attempt could not finish in time
			}
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, lastErr
			case <-t.C:
			}
		}
		actx, rec := c.tel.Start(ctx, ep.name, method, ep.template, attempt)
		raw, retryable, status, terr, err := c.once(actx, method, path, body)
		rec.End(actx, status, terr)
		if err == nil {
			return raw, nil
		}
		lastErr = err
		if !retryable || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// backoff returns the delay before retry number attempt (1-based):
// exponential with full jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.RetryBaseDelay << (attempt - 1)
	if d <= 0 || d > c.cfg.RetryMaxDelay {
		d = c.cfg.RetryMaxDelay
	}
	return d/2 + rand.N(d/2+1)
}

// once makes one attempt. For telemetry, it also returns the HTTP status
// received (0: none) and terr, the transport or read error when there was
// no usable answer.
func (c *Client) once(ctx context.Context, method, path string, body []byte) (raw []byte, retryable bool, status int, terr, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, c.base+path, rd)
	if err != nil {
		return nil, false, 0, err, &APIError{Kind: ErrMisconfigured, Endpoint: path, Err: err}
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, true, 0, err, &APIError{Kind: ErrUnavailable, Endpoint: path, Err: redactURLError(err)}
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err == nil && len(raw) > maxResponseBytes {
		err = errors.New("response too large")
	}
	if err != nil {
		return nil, true, resp.StatusCode, err, &APIError{Kind: ErrUnavailable, StatusCode: resp.StatusCode, Endpoint: path, Err: fmt.Errorf("read response: %w", err)}
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		return raw, false, resp.StatusCode, nil, nil
	}
	e, retryable := mapStatus(path, resp.StatusCode, raw)
	return nil, retryable, resp.StatusCode, nil, e
}

// mapStatus turns an error answer into an *APIError and says whether the
// call may be retried.
func mapStatus(path string, status int, raw []byte) (*APIError, bool) {
	var eb errorBody
	decodeErr := json.Unmarshal(raw, &eb)
	e := &APIError{StatusCode: status, Endpoint: path, RequestID: eb.RequestID, ErrorType: eb.ErrorType, Message: eb.ErrorMessage}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		e.Kind = ErrUnavailable
		if decodeErr != nil {
			e.Err = errors.New("non-JSON error answer")
		}
		return e, true
	case decodeErr != nil:
		// A 4xx that is not Stytch's JSON (a proxy, a wrong base URL).
		e.Kind, e.Err = ErrUnavailable, errors.New("non-JSON error answer")
		return e, false
	case status == http.StatusUnauthorized && path == pathAuthenticate && aboutToken(eb.ErrorType):
		// A JWT Stytch could not parse or accept (unable_to_parse_session_jwt,
		// jwt_invalid_audience, ...) may come back as a 401: the caller's
		// token is bad, our credentials are not in question.
		e.Kind = ErrInvalidSession
	case status == http.StatusUnauthorized:
		// unauthorized_credentials*, unauthorized_project_id_*: ours.
		e.Kind = ErrMisconfigured
	case status == http.StatusNotFound && eb.ErrorType == "session_not_found":
		e.Kind = ErrInvalidSession
	case status == http.StatusNotFound && path == pathAuthenticate && sessionGone(eb.ErrorType):
		// The session's member or organization no longer exists.
		e.Kind = ErrInvalidSession
	case status == http.StatusBadRequest && path == pathAuthenticate:
		// 400s of authenticate are about the token or JWT we passed on.
		e.Kind = ErrInvalidSession
	case status == http.StatusBadRequest && path == pathRevoke && aboutToken(eb.ErrorType):
		e.Kind = ErrInvalidSession
	case status == http.StatusForbidden && strings.HasPrefix(eb.ErrorType, "session_authorization"):
		e.Kind = ErrForbidden
	default:
		e.Kind = ErrMisconfigured
	}
	return e, false
}

// aboutToken reports whether a Stytch error_type is about the session,
// token or JWT passed on, rather than about our credentials
// (unauthorized_*).
func aboutToken(errorType string) bool {
	if strings.HasPrefix(errorType, "unauthorized") {
		return false
	}
	return strings.Contains(errorType, "session") || strings.Contains(errorType, "token") || strings.Contains(errorType, "jwt")
}

// sessionGone reports whether a 404 of authenticate says that what the
// session belongs to is gone.
func sessionGone(errorType string) bool {
	switch errorType {
	case "member_not_found", "organization_not_found":
		return true
	}
	return aboutToken(errorType)
}

// redactURLError drops the URL from a transport error: it is ours and not
// secret, but keeping errors short and free of query strings is cheap.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

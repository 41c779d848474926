package verifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of Config.
const (
	DefaultJWKSRefreshInterval = time.Hour
	DefaultJWKSRefetchInterval = 5 * time.Minute
	DefaultJWTLeeway           = 5 * time.Second
)

// Config configures the Stytch verifier.
type Config struct {
	// ProjectID and Secret are the project's API credentials (required).
	ProjectID string
	Secret    string
	// BaseURL overrides the API base URL (custom domain, emulator). JWTs
	// issued through a custom domain carry it as their issuer, so it is
	// accepted as an issuer besides stytch.com/{project_id}.
	BaseURL string
	// HTTPClient, Timeout, MaxRetries: see ClientConfig.
	HTTPClient *http.Client
	Timeout    time.Duration
	MaxRetries int
	// JWTLeeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// DefaultJWTLeeway; a negative value means none.
	JWTLeeway time.Duration
	// MaxTokenAge, when positive, sends JWTs issued longer ago than this to
	// the API instead of trusting them locally.
	MaxTokenAge time.Duration
	// JWKSRefreshInterval is how often the JWKS is refreshed in the
	// background (default DefaultJWKSRefreshInterval).
	JWKSRefreshInterval time.Duration
	// JWKSRefetchInterval is the least time between two refetches caused by
	// JWTs naming an unknown kid (default DefaultJWKSRefetchInterval).
	JWKSRefetchInterval time.Duration
	// Logger receives warnings (JWKS fetch failures). Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// MeterProvider and TracerProvider receive the Stytch calls' metrics
	// and spans (see ClientConfig). Nil means the global providers.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// Stytch is the production Verifier and Revoker. It routes each token by
// shape: an opaque session token is authenticated by the API; a session
// JWT is verified locally (RS256 against the project's JWKS, exact iss and
// aud, exp/nbf with leeway, optional max age) and goes to the API only when
// the API can still say yes: the JWT has expired or is too old (the
// session may live on, and the API then returns a fresh JWT, kept in
// Session.SessionJWT), or it names a key we do not know. A bad signature,
// algorithm, issuer or audience is refused with no call at all.
//
// Create one per process and Close it at shutdown: it runs one background
// goroutine that refreshes the JWKS.
type Stytch struct {
	client  *Client
	keys    *jwks
	parser  *jwt.Parser
	issuers []string
	cfg     Config
	now     func() time.Time
	log     *slog.Logger

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// NewStytch returns a Stytch verifier. It makes no blocking network call:
// the JWKS is fetched in the background, and on demand by the first JWT.
func NewStytch(cfg Config) (*Stytch, error) {
	c, err := NewClient(ClientConfig{
		ProjectID: cfg.ProjectID, Secret: cfg.Secret, BaseURL: cfg.BaseURL,
		HTTPClient: cfg.HTTPClient, Timeout: cfg.Timeout, MaxRetries: cfg.MaxRetries,
		MeterProvider: cfg.MeterProvider, TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	if cfg.JWKSRefreshInterval <= 0 {
		cfg.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	}
	if cfg.JWKSRefetchInterval <= 0 {
		cfg.JWKSRefetchInterval = DefaultJWKSRefetchInterval
	}
	switch {
	case cfg.JWTLeeway == 0:
		cfg.JWTLeeway = DefaultJWTLeeway
	case cfg.JWTLeeway < 0:
		cfg.JWTLeeway = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	s := &Stytch{
		client: c,
		keys:   newJWKS(c, cfg.Logger, cfg.JWKSRefetchInterval, timeout),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithAudience(cfg.ProjectID),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.JWTLeeway),
			jwt.WithTimeFunc(now),
		),
		issuers: []string{"stytch.com/" + cfg.ProjectID},
		cfg:     cfg,
		now:     now,
		log:     cfg.Logger,
		done:    make(chan struct{}),
	}
	if cfg.BaseURL != "" {
		s.issuers = append(s.issuers, c.BaseURL())
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go func() {
		defer close(s.done)
		s.keys.run(ctx, cfg.JWKSRefreshInterval)
	}()
	return s, nil
}

// Client returns the underlying Stytch API client.
func (s *Stytch) Client() *Client { return s.client }

// Close stops the JWKS refresher and cancels the JWKS fetches in flight
// (background or caused by a JWT), and waits for them all: no goroutine of
// the verifier outlives Close. It is idempotent.
func (s *Stytch) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.keys.close()
		<-s.done
		s.client.CloseIdleConnections()
	})
	return nil
}

// Verify implements Verifier.
func (s *Stytch) Verify(ctx context.Context, token string) (*Session, error) {
	kind, err := Classify(token)
	if err != nil {
		return nil, err
	}
	if kind == TokenOpaque {
		return s.remote(ctx, AuthenticateParams{SessionToken: token})
	}
	sess, err := s.VerifyJWT(ctx, token)
	if errors.Is(err, errAskAPI) {
		return s.remote(ctx, AuthenticateParams{SessionJWT: token})
	}
	return sess, err
}

// forThisProject reports whether the claims name one of our issuers and
// our project as audience.
func (s *Stytch) forThisProject(claims jwt.MapClaims) bool {
	iss, _ := claims.GetIssuer()
	aud, _ := claims.GetAudience()
	return slices.Contains(s.issuers, iss) && slices.Contains(aud, s.cfg.ProjectID)
}

// errAskAPI: the local check cannot decide; the API may still say yes.
var errAskAPI = errors.New("local JWT check inconclusive")

// VerifyJWT verifies a session JWT locally only. Besides the errors of
// Verify, it returns an error wrapping errAskAPI (matching
// ErrInvalidSession) when only the API could accept the token (expired,
// too old, unknown key).
func (s *Stytch) VerifyJWT(ctx context.Context, token string) (*Session, error) {
	claims := jwt.MapClaims{}
	t, err := s.parser.ParseWithClaims(token, claims, s.keys.key(ctx))
	switch {
	case err == nil && t.Valid:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, &TokenError{Kind: ErrMalformedToken, Reason: "JWT is malformed"}
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, invalid("JWT audience mismatch", nil)
	case errors.Is(err, errUnknownKID), errors.Is(err, jwt.ErrTokenExpired),
		errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		// Only the API can still say yes: the key may be newer than our
		// JWKS, the session may outlive the JWT, our clock may lag. Ask it
		// only about tokens issued for this project: the API would refuse
		// the others, and an unknown kid means the claims are unverified.
		if !s.forThisProject(claims) {
			return nil, invalid("JWT issuer or audience mismatch", nil)
		}
		reason := "JWT expired"
		switch {
		case errors.Is(err, errUnknownKID):
			reason = "JWT signed by an unknown key"
		case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
			reason = "JWT not valid yet (clock skew)"
		}
		return nil, &TokenError{Kind: ErrInvalidSession, Reason: reason, Err: errAskAPI}
	default:
		return nil, invalid("JWT rejected", err)
	}
	if !s.forThisProject(claims) {
		return nil, invalid("JWT issuer mismatch", nil)
	}
	if s.cfg.MaxTokenAge > 0 {
		iat, _ := claims.GetIssuedAt()
		if iat == nil || s.now().Sub(iat.Time) > s.cfg.MaxTokenAge {
			return nil, &TokenError{Kind: ErrInvalidSession, Reason: "JWT too old", Err: errAskAPI}
		}
	}
	sess, err := SessionFromClaims(claims)
	if err != nil {
		return nil, invalid("JWT claims", err)
	}
	if sess.isExpiredAt(s.now()) {
		return nil, invalid("session expired", nil)
	}
	return sess, nil
}

func (s *Stytch) remote(ctx context.Context, p AuthenticateParams) (*Session, error) {
	resp, err := s.client.Authenticate(ctx, p)
	if err != nil {
		return nil, err
	}
	sess := sessionFromResponse(resp, s.now())
	if sess.isExpiredAt(s.now()) {
		return nil, invalid("session expired", nil)
	}
	return sess, nil
}

// Revoke implements Revoker: it revokes the session the token (opaque or
// JWT) belongs to. Revoking a session that no longer exists succeeds.
func (s *Stytch) Revoke(ctx context.Context, token string) error {
	kind, err := Classify(token)
	if err != nil {
		return err
	}
	p := RevokeParams{SessionToken: token}
	if kind == TokenJWT {
		p = RevokeParams{SessionJWT: token}
	}
	err = s.client.Revoke(ctx, p)
	if errors.Is(err, ErrInvalidSession) {
		return nil
	}
	return err
}

// String describes the verifier without its secret.
func (s *Stytch) String() string {
	return fmt.Sprintf("verifier.Stytch(project=%s, base=%s, issuers=%s)", s.cfg.ProjectID, s.client.BaseURL(), strings.Join(s.issuers, ","))
}

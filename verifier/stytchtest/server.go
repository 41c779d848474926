package stytchtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"time"
)

// Server is an in-process Stytch B2B API emulator listening on a loopback
// address. Create it with [New] and stop it with [Server.Close]. All methods
// are safe for concurrent use, including while requests are being served.
type Server struct {
	ts        *httptest.Server
	projectID string
	secret    string
	clock     func() time.Time
	urlIss    bool
	noAlg     bool

	closeOnce sync.Once
	closing   chan struct{}

	mu       sync.Mutex
	orgs     map[string]*organization
	members  map[string]*member
	sessions map[string]*session
	tokens   map[string]string // session token -> session ID
	keys     []*signingKey     // oldest first
	policy   Policy

	statsMu sync.Mutex
	calls   map[Endpoint]int
	faults  map[Endpoint][]*Fault
}

// Option configures a Server created by [New].
type Option func(*config)

type config struct {
	projectID, secret string
	clock             func() time.Time
	urlIssuer         bool
	noJWKSAlg         bool
	key               *rsa.PrivateKey
	policy            *Policy
}

// WithProject sets the project ID and secret the server accepts in HTTP
// Basic auth and uses in JWTs (iss "stytch.com/"+projectID, aud
// [projectID]). By default both are random: "project-test-<uuid>" and
// "secret-test-<random>".
func WithProject(projectID, secret string) Option {
	return func(c *config) { c.projectID, c.secret = projectID, secret }
}

// WithClock makes the server read the time from now instead of time.Now:
// session start, last access and expiry, JWT iat/nbf/exp and liveness
// checks all use it. Tests use it to move time, e.g. past a JWT's exp.
// now must be safe for concurrent use.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.clock = now
		}
	}
}

// WithURLIssuer makes the server issue JWTs whose iss is [Server.URL]
// instead of "stytch.com/"+projectID, as Stytch does for requests made
// through a custom domain (CNAME). The server accepts both issuers either
// way.
func WithURLIssuer() Option {
	return func(c *config) { c.urlIssuer = true }
}

// WithoutJWKSAlg makes the JWKS omit each key's optional "alg" parameter
// (RFC 7517 section 4.4), so that a client cannot rely on it to refuse
// JWTs signed with another algorithm by the same key: it must restrict the
// algorithms itself. JWTs are still signed RS256.
func WithoutJWKSAlg() Option {
	return func(c *config) { c.noJWKSAlg = true }
}

// WithKey makes the server use key as its first signing key instead of
// generating one (RSA key generation takes a noticeable fraction of a
// second). Use an RSA key of at least 2048 bits, as Stytch does; a nil key
// is ignored.
func WithKey(key *rsa.PrivateKey) Option {
	return func(c *config) { c.key = key }
}

// WithPolicy sets the initial RBAC policy (see [Server.SetPolicy]).
func WithPolicy(p Policy) Option {
	return func(c *config) { c.policy = &p }
}

// New starts an emulator on an ephemeral port of 127.0.0.1. It panics only
// if it cannot listen on the loopback interface or cannot generate a key;
// once started, nothing a client sends makes it panic.
func New(opts ...Option) *Server {
	cfg := config{clock: time.Now}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.projectID == "" {
		cfg.projectID = "project-test-" + newUUID()
	}
	if cfg.secret == "" {
		cfg.secret = "secret-test-" + randomToken(27)
	}
	key := cfg.key
	if key == nil {
		var err error
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(fmt.Sprintf("stytchtest: generating RSA key: %v", err))
		}
	}
	policy := DefaultPolicy()
	if cfg.policy != nil {
		policy = cfg.policy.clone()
	}
	s := &Server{
		projectID: cfg.projectID,
		secret:    cfg.secret,
		clock:     cfg.clock,
		urlIss:    cfg.urlIssuer,
		noAlg:     cfg.noJWKSAlg,
		closing:   make(chan struct{}),
		orgs:      map[string]*organization{},
		members:   map[string]*member{},
		sessions:  map[string]*session{},
		tokens:    map[string]string{},
		keys:      []*signingKey{{kid: newKID(), priv: key}},
		policy:    policy,
		calls:     map[Endpoint]int{},
		faults:    map[Endpoint][]*Fault{},
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("stytchtest: listening on 127.0.0.1: %v", err))
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	_ = ts.Listener.Close()
	ts.Listener = ln
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.Config.ReadHeaderTimeout = 10 * time.Second
	ts.Config.MaxHeaderBytes = 64 << 10
	ts.Start()
	s.ts = ts
	return s
}

// URL returns the server's base URL, e.g. "http://127.0.0.1:41234", without
// a trailing slash. Point a Stytch client's base URI at it.
func (s *Server) URL() string { return s.ts.URL }

// Client returns an *http.Client configured for the server. Its idle
// connections are closed by [Server.Close].
func (s *Server) Client() *http.Client { return s.ts.Client() }

// ProjectID returns the project ID (the Basic auth user name).
func (s *Server) ProjectID() string { return s.projectID }

// Secret returns the project secret (the Basic auth password).
func (s *Server) Secret() string { return s.secret }

// JWKSURL returns the URL of the project's JWKS:
// URL()+"/v1/b2b/sessions/jwks/"+ProjectID().
func (s *Server) JWKSURL() string {
	return s.ts.URL + "/v1/b2b/sessions/jwks/" + url.PathEscape(s.projectID)
}

// Issuer returns the iss claim of the JWTs the server issues:
// "stytch.com/"+ProjectID(), or URL() with [WithURLIssuer].
func (s *Server) Issuer() string {
	if s.urlIss {
		return s.ts.URL
	}
	return "stytch.com/" + s.projectID
}

// Close stops the server. Requests blocked by a Hang or Delay fault are
// released and their connections closed. Close waits for every handler to
// return and is idempotent. The server's state (organizations, sessions,
// keys) stays readable after Close.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
}

// now returns the server's current time in UTC.
func (s *Server) now() time.Time { return s.clock().UTC() }

// stamp returns the current time truncated to whole seconds: every
// timestamp the server stores, and therefore serves, has second precision,
// so API responses and JWT claims agree.
func (s *Server) stamp() time.Time { return s.now().Truncate(time.Second) }

// newUUID returns a random (version 4) UUID string.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomToken returns n random bytes encoded as unpadded base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newSessionToken returns a 44-character opaque session token from the
// base64url alphabet, like Stytch's.
func newSessionToken() string { return randomToken(33) }

func newRequestID() string { return "request-id-test-" + newUUID() }

func newKID() string { return "jwk-test-" + newUUID() }

package stytchtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTLifetime is the lifetime of the session JWTs the server issues, fixed
// at five minutes as Stytch's.
const JWTLifetime = 5 * time.Minute

// Claim names of Stytch's session JWTs.
const (
	SessionClaim      = "https://stytch.com/session"
	OrganizationClaim = "https://stytch.com/organization"
)

type signingKey struct {
	kid     string
	priv    *rsa.PrivateKey
	retired bool
}

// RotateKey adds a new RSA-2048 signing key and returns its kid. JWTs
// minted from now on are signed with it; older keys stay in the JWKS until
// retired with [Server.RetireKey]. It returns "" if key generation fails.
func (s *Server) RotateKey() (kid string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return ""
	}
	return s.AddKey(key)
}

// AddKey is [Server.RotateKey] with a key of your own (e.g. one generated
// once per test binary). It returns the new kid.
func (s *Server) AddKey(key *rsa.PrivateKey) (kid string) {
	if key == nil {
		return ""
	}
	k := &signingKey{kid: newKID(), priv: key}
	s.mu.Lock()
	s.keys = append(s.keys, k)
	s.mu.Unlock()
	return k.kid
}

// RetireKey stops serving the key kid in the JWKS and accepting JWTs signed
// with it. If it was the current key, the newest remaining key becomes
// current; once no key remains, minting fails with [ErrNoSigningKey] (and
// authenticate answers 500). A retired key can still sign JWTs through
// [WithKID], to test JWTs signed with a key the JWKS no longer has.
func (s *Server) RetireKey(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.kid == kid {
			k.retired = true
		}
	}
}

// KIDs returns the kids of the keys served in the JWKS, oldest first. The
// last one signs new JWTs.
func (s *Server) KIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.keys {
		if !k.retired {
			out = append(out, k.kid)
		}
	}
	return out
}

// currentKeyLocked returns the newest served key, or nil.
func (s *Server) currentKeyLocked() *signingKey {
	for i := len(s.keys) - 1; i >= 0; i-- {
		if !s.keys[i].retired {
			return s.keys[i]
		}
	}
	return nil
}

func (s *Server) keyLocked(kid string) *signingKey {
	for _, k := range s.keys {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

// JWTOption changes one aspect of a JWT minted by [Server.MintJWT], to
// build adversarial tokens.
type JWTOption func(*jwtConfig)

type jwtConfig struct {
	issuer   *string
	audience []string
	hasAud   bool
	iat      *time.Time
	exp      *time.Time
	nbf      *time.Time
	kid      *string
	noKID    bool
	key      *rsa.PrivateKey
	method   jwt.SigningMethod
	set      map[string]any
	remove   []string
}

// WithIssuer sets the iss claim.
func WithIssuer(iss string) JWTOption { return func(c *jwtConfig) { c.issuer = &iss } }

// WithAudience sets the aud claim (always a JSON array; no arguments give
// an empty array).
func WithAudience(aud ...string) JWTOption {
	return func(c *jwtConfig) { c.audience, c.hasAud = slices.Clone(aud), true }
}

// WithIssuedAt mints the JWT as if at t: iat = nbf = t, exp = t + 5m
// (unless WithExpiry or WithNotBefore also apply). The session claim's
// timestamps are unchanged.
func WithIssuedAt(t time.Time) JWTOption { return func(c *jwtConfig) { c.iat = &t } }

// WithExpiry sets the exp claim.
func WithExpiry(t time.Time) JWTOption { return func(c *jwtConfig) { c.exp = &t } }

// WithNotBefore sets the nbf claim.
func WithNotBefore(t time.Time) JWTOption { return func(c *jwtConfig) { c.nbf = &t } }

// WithKID sets the header kid. If kid names a key the server holds
// (served or retired) the JWT is signed with that key; otherwise it is
// signed with the current key (or the WithSigningKey key) under a kid
// nobody knows.
func WithKID(kid string) JWTOption { return func(c *jwtConfig) { c.kid = &kid } }

// WithoutKID omits the kid header.
func WithoutKID() JWTOption { return func(c *jwtConfig) { c.noKID = true } }

// WithSigningKey signs the JWT with a foreign key. Unless WithKID is also
// given the header carries the current key's kid, so the signature does
// not match the key the kid names.
func WithSigningKey(key *rsa.PrivateKey) JWTOption { return func(c *jwtConfig) { c.key = key } }

// WithSigningMethod signs with another RSA-family method (e.g.
// jwt.SigningMethodRS512 or jwt.SigningMethodPS256) instead of RS256.
// jwt.SigningMethodNone is also accepted and produces an unsigned token
// ("alg":"none"). Methods that need another kind of key (HS256, ES256)
// make MintJWT fail; build such tokens with golang-jwt directly.
func WithSigningMethod(m jwt.SigningMethod) JWTOption { return func(c *jwtConfig) { c.method = m } }

// WithClaim sets a top-level claim, overriding any other value (including
// Stytch's own claims and registered claims).
func WithClaim(name string, value any) JWTOption {
	return func(c *jwtConfig) {
		if c.set == nil {
			c.set = map[string]any{}
		}
		c.set[name] = value
	}
}

// WithoutClaim removes a top-level claim (e.g. "iat" or SessionClaim).
func WithoutClaim(name string) JWTOption {
	return func(c *jwtConfig) { c.remove = append(c.remove, name) }
}

// MintJWT mints a session JWT for the session, exactly as the API would
// issue one now: RS256 with the current key, header {alg, kid, typ},
// iss, aud [projectID], sub member ID, iat = nbf = now, exp = now + 5m, the
// https://stytch.com/session and https://stytch.com/organization claims,
// and the session's custom claims at top level. Options alter it for
// adversarial tests. Revoked and expired sessions can still be minted for.
func (s *Server) MintJWT(sessionID string, opts ...JWTOption) (string, error) {
	var cfg jwtConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	s.mu.Lock()
	sess, ok := s.sessions[sessionID]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("%w: %q", ErrSessionNotFound, sessionID)
	}
	claims := s.claimsLocked(sess, s.now())
	key := s.currentKeyLocked()
	var kid string
	if key != nil {
		kid = key.kid
	}
	if cfg.kid != nil {
		kid = *cfg.kid
		if k := s.keyLocked(kid); k != nil {
			key = k
		}
	}
	s.mu.Unlock()

	priv := (*rsa.PrivateKey)(nil)
	if key != nil {
		priv = key.priv
	}
	if cfg.key != nil {
		priv = cfg.key
	}
	if cfg.issuer != nil {
		claims["iss"] = *cfg.issuer
	}
	if cfg.hasAud {
		claims["aud"] = cfg.audience
	}
	if cfg.iat != nil {
		iat := cfg.iat.Unix()
		claims["iat"], claims["nbf"], claims["exp"] = iat, iat, iat+int64(JWTLifetime/time.Second)
	}
	if cfg.exp != nil {
		claims["exp"] = cfg.exp.Unix()
	}
	if cfg.nbf != nil {
		claims["nbf"] = cfg.nbf.Unix()
	}
	for k, v := range cfg.set {
		claims[k] = v
	}
	for _, k := range cfg.remove {
		delete(claims, k)
	}

	method := cfg.method
	if method == nil {
		method = jwt.SigningMethodRS256
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = "JWT"
	if !cfg.noKID && kid != "" {
		tok.Header["kid"] = kid
	}
	if method == jwt.SigningMethodNone {
		return tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	}
	if priv == nil {
		return "", ErrNoSigningKey
	}
	return tok.SignedString(priv)
}

// claimsLocked builds the claims of a fresh JWT for sess issued at now.
func (s *Server) claimsLocked(sess *session, now time.Time) jwt.MapClaims {
	claims := jwt.MapClaims{}
	for k, v := range sess.customClaims {
		claims[k] = v
	}
	slug := ""
	if o, ok := s.orgs[sess.orgID]; ok {
		slug = o.slug
	}
	iat := now.Unix()
	claims["iss"] = s.Issuer()
	claims["aud"] = []string{s.projectID}
	claims["sub"] = sess.memberID
	claims["iat"] = iat
	claims["nbf"] = iat
	claims["exp"] = iat + int64(JWTLifetime/time.Second)
	claims[SessionClaim] = map[string]any{
		"id":                     sess.id,
		"started_at":             ts(sess.startedAt),
		"last_accessed_at":       ts(sess.lastAccessed),
		"expires_at":             ts(sess.expires),
		"attributes":             map[string]any{"ip_address": sess.ip, "user_agent": sess.userAgent},
		"authentication_factors": s.factorsJSONLocked(sess),
		"roles":                  cloneStrings(sess.roles),
	}
	claims[OrganizationClaim] = map[string]any{"organization_id": sess.orgID, "slug": slug}
	return claims
}

// signWith signs claims with key, as the API signs the JWTs it returns.
// It returns
// ErrNoSigningKey when every key is retired.
func signWith(key *signingKey, claims jwt.MapClaims) (string, error) {
	if key == nil {
		return "", ErrNoSigningKey
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["typ"] = "JWT"
	tok.Header["kid"] = key.kid
	return tok.SignedString(key.priv)
}

// jwtError is why a presented session JWT was refused.
type jwtError struct {
	errorType, message string
}

// verifyJWTLocked checks a session JWT presented to the API: RS256
// signature by a served key, iss (either accepted issuer), aud, and the
// Stytch session claim. exp and nbf are deliberately not checked: the API
// accepts expired JWTs of live sessions. It returns the session ID.
func (s *Server) verifyJWTLocked(raw string) (string, *jwtError) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k := s.keyLocked(kid)
		if k == nil || k.retired {
			return nil, errors.New("unknown kid")
		}
		return &k.priv.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		return "", &jwtError{"unable_to_parse_session_jwt", "The session JWT could not be parsed or its signature is invalid."}
	}
	iss, _ := claims["iss"].(string)
	if iss != "stytch.com/"+s.projectID && iss != s.ts.URL {
		return "", &jwtError{"jwt_invalid_issuer", "The session JWT has an invalid issuer."}
	}
	aud, err := claims.GetAudience()
	if err != nil || !slices.Contains([]string(aud), s.projectID) {
		return "", &jwtError{"jwt_invalid_audience", "The session JWT has an invalid audience."}
	}
	sc, _ := claims[SessionClaim].(map[string]any)
	id, _ := sc["id"].(string)
	sub, _ := claims["sub"].(string)
	if id == "" || sub == "" {
		return "", &jwtError{"jwt_invalid_claims", "The session JWT is missing required claims."}
	}
	if sess, ok := s.sessions[id]; ok && sess.memberID != sub {
		return "", &jwtError{"jwt_invalid_claims", "The session JWT's subject does not match its session."}
	}
	return id, nil
}

// jwk is one key of the JWKS.
type jwk struct {
	Kty    string   `json:"kty"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg,omitempty"`
	Kid    string   `json:"kid"`
	N      string   `json:"n"`
	E      string   `json:"e"`
}

func (s *Server) jwksLocked() []jwk {
	keys := []jwk{}
	alg := "RS256"
	if s.noAlg {
		alg = ""
	}
	for _, k := range s.keys {
		if k.retired {
			continue
		}
		pub := k.priv.PublicKey
		keys = append(keys, jwk{
			Kty:    "RSA",
			Use:    "sig",
			KeyOps: []string{"verify"},
			Alg:    alg,
			Kid:    k.kid,
			N:      base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E:      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	return keys
}

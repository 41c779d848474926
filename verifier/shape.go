package verifier

// TokenKind tells a session token from a session JWT.
type TokenKind int

const (
	// TokenOpaque is an opaque session token (Stytch's is 44 base64url
	// characters).
	TokenOpaque TokenKind = iota + 1
	// TokenJWT is a session JWT: three base64url segments.
	TokenJWT
)

func (k TokenKind) String() string {
	switch k {
	case TokenOpaque:
		return "session_token"
	case TokenJWT:
		return "session_jwt"
	}
	return "unknown"
}

// Bounds of the shape checks. Stytch's opaque tokens are 44 characters; the
// bounds leave room for a future format without letting junk through.
const (
	MinOpaqueLength = 20
	MaxOpaqueLength = 256
	// MaxJWTLength bounds a session JWT: a few KB of claims (custom claims
	// are limited to 4 KB) plus factors and the RS256 signature.
	MaxJWTLength = 8192
)

// base64url alphabet, as a lookup table.
var b64url = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()

// Classify checks a token's shape, cheaply and before any network call, and
// says which kind it is. It returns an error matching ErrMalformedToken
// (a *TokenError whose Reason never contains the token) when the token can
// be neither.
func Classify(token string) (TokenKind, error) {
	if token == "" {
		return 0, malformed("token is empty")
	}
	if len(token) > MaxJWTLength {
		return 0, malformed("token is too long")
	}
	dots := 0
	segLen := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c == '.' {
			if segLen == 0 {
				return 0, malformed("token has an empty segment")
			}
			dots++
			segLen = 0
			continue
		}
		if !b64url[c] {
			return 0, malformed("token contains invalid characters")
		}
		segLen++
	}
	switch dots {
	case 0:
		if len(token) < MinOpaqueLength {
			return 0, malformed("token is too short")
		}
		if len(token) > MaxOpaqueLength {
			return 0, malformed("token is too long")
		}
		return TokenOpaque, nil
	case 2:
		if segLen == 0 {
			return 0, malformed("token has an empty segment")
		}
		return TokenJWT, nil
	}
	return 0, malformed("token is neither a session token nor a JWT")
}

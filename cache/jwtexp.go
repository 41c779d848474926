package cache

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
)

// jwtExpiryMillis returns the exp claim of a JWT-shaped token in Unix
// milliseconds, or 0 when the token is not a JWT or has no readable exp.
// It is read without verification: it is only called for tokens the inner
// verifier has just accepted, to keep their cache entry from outliving the
// JWT (a JWT revoked at Stytch out of band is otherwise accepted from the
// cache after its exp, up to the cache TTL).
func jwtExpiryMillis(token string) int64 {
	_, rest, ok := strings.Cut(token, ".")
	if !ok {
		return 0
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return 0
	}
	var c struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Exp == nil || *c.Exp <= 0 || *c.Exp > math.MaxInt64/1000 {
		return 0
	}
	return int64(*c.Exp * 1000)
}

package echostytch

import (
	"crypto/sha256"
	"encoding/hex"
)

// TokenFingerprint identifies a token in logs without revealing it: the
// first 8 hex characters of its SHA-256. It is the only form in which this
// package logs a token. An empty token gives "".
func TokenFingerprint(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

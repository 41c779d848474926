package cache

import (
	"encoding/base64"
	"testing"
)

func TestJWTExpiryMillis(t *testing.T) {
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	h := seg(`{"alg":"RS256"}`)
	for tok, want := range map[string]int64{
		h + "." + seg(`{"exp":1700000000}`) + ".sig":   1700000000000,
		h + "." + seg(`{"exp":1700000000.5}`) + ".sig": 1700000000500,
		h + "." + seg(`{"sub":"x"}`) + ".sig":          0,
		h + "." + seg(`{"exp":"soon"}`) + ".sig":       0,
		h + "." + seg(`{"exp":-1}`) + ".sig":           0,
		h + "." + seg(`{"exp":1e300}`) + ".sig":        0,
		h + ".!!!.sig":                                 0,
		"opaque_token_0123456789abcdefghijklmnopqrstu": 0,
		h + "." + seg(`{"exp":1700000000}`):            0,
		"a.b.c":                                        0,
	} {
		if got := jwtExpiryMillis(tok); got != want {
			t.Errorf("jwtExpiryMillis(%q) = %d, want %d", tok, got, want)
		}
	}
}

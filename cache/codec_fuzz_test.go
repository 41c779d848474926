package cache

import (
	"testing"
	"time"

	"github.com/ayzauth/ayzauth/verifier"
)

// FuzzDecode: decoding any bytes read from a store never panics, and only
// values we authenticated decode.
func FuzzDecode(f *testing.F) {
	k := newKeys([]byte("secret"), "project-test-1")
	good, _ := k.encode("s:key", &verifier.Session{MemberID: "m", SessionID: "s", OrganizationID: "o", ExpiresAt: time.Unix(2e9, 0)}, 2e12)
	tomb, _ := k.encode("s:key", nil, 2e12)
	f.Add(good)
	f.Add(tomb)
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(append([]byte{1, 1}, make([]byte, 60)...))
	f.Fuzz(func(t *testing.T, v []byte) {
		_, _ = parseHeader(v)
		h, s, err := k.decode("s:key", v)
		if err != nil {
			return
		}
		// It authenticated: it must be one of the values we wrote.
		if h.kind == kindSession && (s == nil || s.MemberID != "m") {
			t.Fatalf("forged session decoded: %+v", s)
		}
		if _, _, err := k.decode("s:other", v); err == nil {
			t.Fatal("a value authenticated under another key")
		}
	})
}

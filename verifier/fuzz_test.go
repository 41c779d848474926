package verifier_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ayzauth/ayzauth/verifier"
)

// FuzzClassify: the shape check never panics, accepts only what it says,
// and its error never contains the input.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"", "mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
		"a..c", ".b.c", "a.b.", "tok en", "tok\x00en", "tok\r\nen", "ünï", strings.Repeat("A", 257), strings.Repeat("A", 20),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		kind, err := verifier.Classify(tok)
		if err != nil {
			if !errors.Is(err, verifier.ErrMalformedToken) {
				t.Fatalf("error %v does not match ErrMalformedToken", err)
			}
			if len(tok) >= 12 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error echoes the token")
			}
			return
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				t.Fatalf("accepted byte %q", c)
			}
		}
		switch kind {
		case verifier.TokenOpaque:
			if strings.Contains(tok, ".") || len(tok) < verifier.MinOpaqueLength || len(tok) > verifier.MaxOpaqueLength {
				t.Fatalf("bad opaque %q", tok)
			}
		case verifier.TokenJWT:
			parts := strings.Split(tok, ".")
			if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || len(tok) > verifier.MaxJWTLength {
				t.Fatalf("bad JWT shape %q", tok)
			}
		default:
			t.Fatalf("unknown kind %v", kind)
		}
	})
}

// FuzzSessionFromClaims: claim mapping never panics on any JSON claims
// object, and what it maps never leaks Stytch or registered claims into
// the custom claims.
func FuzzSessionFromClaims(f *testing.F) {
	f.Add(`{"sub":"member-test-1","iat":1,"exp":2,"https://stytch.com/session":{"id":"s","started_at":"2024-01-01T00:00:00Z","last_accessed_at":"2024-01-01T00:00:00Z","expires_at":"2024-01-01T02:00:00Z","authentication_factors":[{"type":"totp","delivery_method":"authenticator_app","last_authenticated_at":"2024-01-01T00:00:00Z"}],"roles":["stytch_member"]},"https://stytch.com/organization":{"organization_id":"o","slug":"acme"},"admin":true}`)
	f.Add(`{"sub":"m","https://stytch.com/session":{"id":"s","started_at":"bad"},"https://stytch.com/organization":{"organization_id":"o"}}`)
	f.Add(`{"sub":5,"https://stytch.com/session":[],"https://stytch.com/organization":"x"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var claims jwt.MapClaims
		if json.Unmarshal([]byte(raw), &claims) != nil {
			return
		}
		s, err := verifier.SessionFromClaims(claims)
		if err != nil {
			return
		}
		if s.MemberID == "" || s.SessionID == "" || s.OrganizationID == "" {
			t.Fatalf("mapped a session without IDs: %+v", s)
		}
		for k := range s.CustomClaims {
			if strings.HasPrefix(k, "https://stytch.com/") || k == "sub" || k == "exp" || k == "iat" || k == "aud" || k == "iss" || k == "nbf" || k == "jti" {
				t.Fatalf("custom claims contain %q", k)
			}
		}
		if len(s.AuthenticationFactors) != len(s.Factors) {
			t.Fatal("factor lists differ")
		}
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("session does not marshal: %v", err)
		}
	})
}

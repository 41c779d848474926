package verifier_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// FuzzVerifyJWT parses arbitrary strings as session JWTs through
// verifier.Stytch.VerifyJWT against a fixed JWKS (the emulator's one key):
// it never panics, and it never accepts a token that does not carry a
// valid RS256 signature by that key with our issuer and audience.
func FuzzVerifyJWT(f *testing.F) {
	key := testKey(nil)
	emu := stytchtest.New(stytchtest.WithKey(key))
	f.Cleanup(emu.Close)
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test"})
	if err != nil {
		f.Fatal(err)
	}
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{CustomClaims: map[string]any{"admin": true}})
	if err != nil {
		f.Fatal(err)
	}
	v, err := verifier.NewStytch(verifier.Config{
		ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(),
		Timeout: time.Second, JWKSRefetchInterval: time.Hour,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = v.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for emu.Calls(stytchtest.JWKS) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}

	mint := func(opts ...stytchtest.JWTOption) string {
		tok, err := emu.MintJWT(sess.ID, opts...)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	parts := strings.Split(sess.JWT, ".")
	for _, s := range []string{
		sess.JWT,
		mint(stytchtest.WithSigningMethod(jwt.SigningMethodNone)),
		mint(stytchtest.WithKID("../../etc/passwd")),
		mint(stytchtest.WithAudience("project-test-other")),
		mint(stytchtest.WithExpiry(time.Now().Add(-time.Hour))),
		mint(stytchtest.WithoutClaim(stytchtest.SessionClaim)),
		mint(stytchtest.WithClaim(stytchtest.SessionClaim, "not an object")),
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
		"a.b.c", "", ".", "..", "x.y.z.w",
	} {
		f.Add(s)
	}
	pub := &key.PublicKey
	strict := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(emu.ProjectID()),
		jwt.WithExpirationRequired(), jwt.WithLeeway(verifier.DefaultJWTLeeway))
	f.Fuzz(func(t *testing.T, tok string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := v.VerifyJWT(ctx, tok)
		if err != nil {
			if s != nil {
				t.Fatal("a session with an error")
			}
			return
		}
		if s == nil {
			t.Fatal("neither a session nor an error")
		}
		// Accepted: it must verify independently.
		claims := jwt.MapClaims{}
		if _, err := strict.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
			t.Fatalf("accepted a token that does not verify: %v", err)
		}
		if iss, _ := claims.GetIssuer(); iss != "stytch.com/"+emu.ProjectID() && iss != emu.URL() {
			t.Fatalf("accepted issuer %q", iss)
		}
		if s.MemberID == "" || s.SessionID == "" || s.OrganizationID == "" {
			t.Fatalf("accepted a session without identity: %+v", s)
		}
	})
}

package verifier_test

// Tests closing gaps an audit found: behaviours that no test could fail on.

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// newEmu starts an emulator (with the shared key) holding one organization,
// member and live session.
func newEmu(t *testing.T, opts ...stytchtest.Option) (*stytchtest.Server, stytchtest.Session) {
	t.Helper()
	emu := stytchtest.New(append([]stytchtest.Option{stytchtest.WithKey(testKey(t))}, opts...)...)
	t.Cleanup(emu.Close)
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme", Slug: "acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test", Name: "Ada"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	return emu, sess
}

// newVerifier returns a Stytch verifier pointed at emu, closed at cleanup.
func newVerifier(t *testing.T, emu *stytchtest.Server, mutate ...func(*verifier.Config)) *verifier.Stytch {
	t.Helper()
	cfg := verifier.Config{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(), Timeout: 2 * time.Second, MaxRetries: 3}
	for _, f := range mutate {
		f(&cfg)
	}
	v, err := verifier.NewStytch(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// awaitKeys waits until the background JWKS fetch has completed, proved by
// a fresh JWT verifying locally.
func awaitKeys(t *testing.T, emu *stytchtest.Server, v *verifier.Stytch, sess stytchtest.Session) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := v.VerifyJWT(context.Background(), sess.JWT)
		return err == nil
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 0, emu.Calls(stytchtest.Authenticate))
}

// TestOnlyRS256EvenWithoutJWKSAlg: the JWKS's "alg" is optional, so the
// parser's own RS256 restriction must refuse other algorithms with the
// genuine key, correct kid, iss and aud, and without asking the API.
func TestOnlyRS256EvenWithoutJWKSAlg(t *testing.T) {
	emu, sess := newEmu(t, stytchtest.WithoutJWKSAlg())
	v := newVerifier(t, emu)

	// Precondition: the JWKS really omits alg.
	resp, err := emu.Client().Get(emu.JWKSURL())
	require.NoError(t, err)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&set))
	require.NoError(t, resp.Body.Close())
	require.Len(t, set.Keys, 1)
	require.NotContains(t, set.Keys[0], "alg")
	kid := emu.KIDs()[0]
	require.Equal(t, kid, set.Keys[0]["kid"])

	awaitKeys(t, emu, v, sess)
	jwksCalls := emu.Calls(stytchtest.JWKS)
	cases := []struct {
		method jwt.SigningMethod
		ok     bool
	}{
		{jwt.SigningMethodRS256, true},
		{jwt.SigningMethodRS512, false},
		{jwt.SigningMethodPS256, false},
	}
	for _, tc := range cases {
		t.Run(tc.method.Alg(), func(t *testing.T) {
			tok, err := emu.MintJWT(sess.ID, stytchtest.WithSigningMethod(tc.method), stytchtest.WithKID(kid))
			require.NoError(t, err)
			hdr, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
			require.NoError(t, err)
			require.Equal(t, tc.method.Alg(), hdr.Header["alg"])
			require.Equal(t, kid, hdr.Header["kid"])
			claims := claimsOf(t, tok)
			require.Equal(t, emu.Issuer(), claims["iss"])
			require.Equal(t, []any{emu.ProjectID()}, claims["aud"])

			s, err := v.Verify(context.Background(), tok)
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, sess.MemberID, s.MemberID)
				return
			}
			require.ErrorIs(t, err, verifier.ErrInvalidSession)
			assert.NotErrorIs(t, err, verifier.ErrUnavailable)
			assert.Nil(t, s)
		})
	}
	assert.Equal(t, 0, emu.Calls(stytchtest.Authenticate), "no API call for any of them")
	assert.Equal(t, jwksCalls, emu.Calls(stytchtest.JWKS), "no JWKS refetch either")
}

// TestRetryBackoffStopsAtCallerDeadline: every attempt answers 500 and
// retries are plenty; the call gives up as soon as the next backoff would
// end past the caller's deadline, and never starts an attempt after it.
// Attempts are counted both at the emulator and as the client's
// per-attempt spans (which also count attempts that never reach it).
func TestRetryBackoffStopsAtCallerDeadline(t *testing.T) {
	cases := []struct {
		name     string
		delay    time.Duration // RetryBaseDelay = RetryMaxDelay: backoffs in [delay/2, delay]
		deadline time.Duration
		// early: the first backoff alone outlasts the deadline, so the call
		// returns at once instead of waiting the deadline out.
		early       bool
		minAttempts int
		maxAttempts int
	}{
		{"first backoff exceeds the deadline", 10 * time.Second, 2 * time.Second, true, 1, 1},
		{"backoffs fit until the deadline nears", 400 * time.Millisecond, 2 * time.Second, false, 2, 11},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu, sess := newEmu(t)
			emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: http.StatusInternalServerError})
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			c, err := verifier.NewClient(verifier.ClientConfig{
				ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(),
				Timeout: 5 * time.Second, MaxRetries: 100,
				RetryBaseDelay: tc.delay, RetryMaxDelay: tc.delay,
				TracerProvider: tp,
			})
			require.NoError(t, err)
			t.Cleanup(c.CloseIdleConnections)

			ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
			defer cancel()
			deadline, _ := ctx.Deadline()
			_, err = c.Authenticate(ctx, verifier.AuthenticateParams{SessionToken: sess.Token})
			ctxErr := ctx.Err()

			require.ErrorIs(t, err, verifier.ErrUnavailable)
			var ae *verifier.APIError
			require.ErrorAs(t, err, &ae)
			if tc.early {
				require.NoError(t, ctxErr, "the call gave up before the deadline instead of waiting for it")
				assert.Equal(t, http.StatusInternalServerError, ae.StatusCode, "the last answer is returned")
			}
			var attempts int
			for _, s := range rec.Ended() {
				if s.Name() != "POST /v1/b2b/sessions/authenticate" {
					continue
				}
				attempts++
				assert.True(t, s.StartTime().Before(deadline), "attempt started %v after the deadline", s.StartTime().Sub(deadline))
			}
			assert.Equal(t, emu.Calls(stytchtest.Authenticate), attempts, "every attempt reached the emulator")
			assert.GreaterOrEqual(t, attempts, tc.minAttempts)
			assert.LessOrEqual(t, attempts, tc.maxAttempts)
		})
	}
}

// TestJWTLeeway: a JWT that expired (or was issued) within the leeway is
// verified locally; beyond it, the API decides. Both clocks are frozen so
// the offsets are exact.
func TestJWTLeeway(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	// expiredAgo is the iat that gives a standard JWT an exp d in the past.
	expiredAgo := func(d time.Duration) time.Duration { return -stytchtest.JWTLifetime - d }
	cases := []struct {
		name   string
		leeway time.Duration // Config.JWTLeeway: 0 default (5 s), < 0 none
		iat    time.Duration // from now; exp = iat + JWTLifetime
		remote bool
	}{
		{"default, expired 2s ago", 0, expiredAgo(2 * time.Second), false},
		{"default, expired 4s ago", 0, expiredAgo(4 * time.Second), false},
		{"default, expired 6s ago", 0, expiredAgo(6 * time.Second), true},
		{"default, expired 30s ago", 0, expiredAgo(30 * time.Second), true},
		{"default, issued 3s ahead", 0, 3 * time.Second, false},
		{"1m, expired 30s ago", time.Minute, expiredAgo(30 * time.Second), false},
		{"1m, expired 2m ago", time.Minute, expiredAgo(2 * time.Minute), true},
		{"1m, issued 30s ahead", time.Minute, 30 * time.Second, false},
		{"1s, expired 2s ago", time.Second, expiredAgo(2 * time.Second), true},
		{"none, expired 2s ago", -1, expiredAgo(2 * time.Second), true},
		{"none, issued 3s ahead", -1, 3 * time.Second, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu, sess := newEmu(t, stytchtest.WithClock(clock))
			v := newVerifier(t, emu, func(c *verifier.Config) { c.JWTLeeway = tc.leeway; c.Now = clock })
			awaitKeys(t, emu, v, sess)
			tok, err := emu.MintJWT(sess.ID, stytchtest.WithIssuedAt(now.Add(tc.iat)))
			require.NoError(t, err)
			exp, err := claimsOf(t, tok).GetExpirationTime()
			require.NoError(t, err)
			require.Equal(t, now.Add(tc.iat+stytchtest.JWTLifetime), exp.Time.In(now.Location()))

			s, err := v.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, sess.MemberID, s.MemberID)
			if tc.remote {
				assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate), "beyond the leeway the API decides")
				assert.NotEmpty(t, s.SessionJWT, "the API's fresh JWT")
			} else {
				assert.Equal(t, 0, emu.Calls(stytchtest.Authenticate), "within the leeway it verifies locally")
				assert.True(t, s.SessionJWT == "", "no fresh JWT from the API")
			}
		})
	}
}

// TestBackgroundJWKSRefresh: without any traffic the JWKS is refetched
// every JWKSRefreshInterval, so a rotated key is known before the first JWT
// it signs arrives: that JWT verifies with no refetch (the JWKS is failing
// by then, so a refetch would send it to the API).
func TestBackgroundJWKSRefresh(t *testing.T) {
	emu, sess := newEmu(t)
	v := newVerifier(t, emu, func(c *verifier.Config) {
		c.JWKSRefreshInterval = 20 * time.Millisecond
		c.JWKSRefetchInterval = time.Hour
	})
	require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) >= 3 }, 5*time.Second, 5*time.Millisecond,
		"the JWKS is refreshed without traffic")

	newKID := emu.RotateKey()
	require.NotEmpty(t, newKID)
	// Fetches counted from here on arrived after the rotation. Refreshes
	// run one after another, so once the second of them has arrived the
	// first one (holding the new key) has completed.
	after := emu.Calls(stytchtest.JWKS)
	require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) >= after+2 }, 5*time.Second, 5*time.Millisecond)
	emu.InjectFault(stytchtest.JWKS, stytchtest.Fault{Status: http.StatusInternalServerError})

	tok, err := emu.MintJWT(sess.ID)
	require.NoError(t, err)
	hdr, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	require.NoError(t, err)
	require.Equal(t, newKID, hdr.Header["kid"])
	s, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, sess.MemberID, s.MemberID)
	assert.Equal(t, 0, emu.Calls(stytchtest.Authenticate), "the refreshed JWKS held the new key")
}

// TestCloseWaitsForJWKSFetchInFlight: Close cancels the JWKS fetches in
// flight, including those detached from a caller that stopped waiting, and
// waits for them: no goroutine of the verifier outlives it. The fetches
// hang at the emulator (which stays up until cleanup) and the attempt
// timeout is a minute, so only cancellation ends them.
func TestCloseWaitsForJWKSFetchInFlight(t *testing.T) {
	cases := []struct {
		name      string
		hangFirst bool // the JWKS hangs from the start
		// start leaves a JWKS fetch hanging at the emulator.
		start func(t *testing.T, emu *stytchtest.Server, v *verifier.Stytch, sess stytchtest.Session)
	}{
		{"background fetch", true, func(t *testing.T, emu *stytchtest.Server, v *verifier.Stytch, sess stytchtest.Session) {
			require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) >= 1 }, 5*time.Second, 5*time.Millisecond)
		}},
		{"unknown-kid fetch whose caller gave up", false, func(t *testing.T, emu *stytchtest.Server, v *verifier.Stytch, sess stytchtest.Session) {
			awaitKeys(t, emu, v, sess)
			emu.InjectFault(stytchtest.JWKS, stytchtest.Fault{Hang: true})
			before := emu.Calls(stytchtest.JWKS)
			emu.RotateKey()
			tok, err := emu.MintJWT(sess.ID)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err = v.Verify(ctx, tok)
			require.Error(t, err, "the caller stopped waiting")
			require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) > before }, 5*time.Second, 5*time.Millisecond)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			emu, sess := newEmu(t)
			if tc.hangFirst {
				emu.InjectFault(stytchtest.JWKS, stytchtest.Fault{Hang: true})
			}
			v, err := verifier.NewStytch(verifier.Config{
				ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(),
				Timeout: time.Minute, MaxRetries: 3,
			})
			require.NoError(t, err)
			tc.start(t, emu, v, sess)

			require.NoError(t, v.Close())
			// The emulator's goroutines (listener, hanging handlers) are not
			// the verifier's; it closes at cleanup, after this check.
			goleak.VerifyNone(t, ignore,
				goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
				goleak.IgnoreAnyFunction("net/http/httptest.(*Server).goServe.func1"),
			)
		})
	}
}

// TestSessionJSON: a Session marshals the same whether passed by value or
// by pointer, alone or inside another struct: empty lists and objects
// rather than null, never a session token or JWT.
func TestSessionJSON(t *testing.T) {
	emu, sess := newEmu(t)
	v := newVerifier(t, emu)
	fromAPI, err := v.Verify(context.Background(), sess.Token)
	require.NoError(t, err)
	require.NotEmpty(t, fromAPI.SessionJWT)
	require.NotEmpty(t, fromAPI.Raw)

	cases := []struct {
		name string
		sess verifier.Session
	}{
		{"zero", verifier.Session{}},
		{"JWT kept, lists nil", verifier.Session{MemberID: "member-test-1", SessionJWT: "eyJhbGciOi.secret.jwt"}},
		{"from the API", *fromAPI},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			byPtr, err := json.Marshal(&tc.sess)
			require.NoError(t, err)
			byVal, err := json.Marshal(tc.sess)
			require.NoError(t, err)
			assert.JSONEq(t, string(byPtr), string(byVal))
			inVal, err := json.Marshal(struct {
				S verifier.Session `json:"s"`
			}{tc.sess})
			require.NoError(t, err)
			inPtr, err := json.Marshal(struct {
				S *verifier.Session `json:"s"`
			}{&tc.sess})
			require.NoError(t, err)
			assert.JSONEq(t, string(inPtr), string(inVal))
			assert.JSONEq(t, `{"s":`+string(byPtr)+`}`, string(inVal))

			var m map[string]any
			require.NoError(t, json.Unmarshal(byVal, &m))
			for _, k := range []string{"roles", "session_custom_claims", "authentication_factors", "factors"} {
				require.Contains(t, m, k)
				assert.NotNil(t, m[k], "%s is empty, not null", k)
			}
			for _, secret := range []string{"session_token", "session_jwt", sess.Token, sess.JWT, fromAPI.SessionJWT, "secret.jwt"} {
				assert.NotContains(t, string(byVal), secret)
				assert.NotContains(t, string(byPtr), secret)
			}
		})
	}
}

func TestTimeUntilExpiry(t *testing.T) {
	cases := []struct {
		name     string
		expires  time.Time
		min, max time.Duration
	}{
		{"no expiry", time.Time{}, 0, 0},
		{"expired an hour ago", time.Now().Add(-time.Hour), 0, 0},
		{"expired a moment ago", time.Now().Add(-time.Millisecond), 0, 0},
		{"expires in an hour", time.Now().Add(time.Hour), time.Hour - time.Minute, time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &verifier.Session{ExpiresAt: tc.expires}
			d := s.TimeUntilExpiry()
			assert.GreaterOrEqual(t, d, tc.min)
			assert.LessOrEqual(t, d, tc.max)
			assert.Equal(t, tc.max == 0, s.IsExpired())
		})
	}
}

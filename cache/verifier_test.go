package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testKey() *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

// recorder is a cache.Store that records writes on top of a real store.
type recorder struct {
	cache.Store
	mu   sync.Mutex
	sets []write
}

type write struct {
	key   string
	value []byte
	ttl   time.Duration
}

func (r *recorder) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	r.mu.Lock()
	r.sets = append(r.sets, write{key, bytes.Clone(value), ttl})
	r.mu.Unlock()
	return r.Store.Set(ctx, key, value, ttl)
}

func (r *recorder) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	r.mu.Lock()
	r.sets = append(r.sets, write{key, bytes.Clone(value), ttl})
	r.mu.Unlock()
	return r.Store.(cache.Adder).Add(ctx, key, value, ttl)
}

func (r *recorder) writes() []write {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]write(nil), r.sets...)
}

type env struct {
	emu   *stytchtest.Server
	inner *verifier.Stytch
	mem   *memory.Store
	rec   *recorder
	cv    *cache.Verifier
	sess  stytchtest.Session
	logs  *bytes.Buffer
	clock *clock
}

type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

func newEnv(t *testing.T, mutate ...func(*cache.VerifierConfig)) *env {
	t.Helper()
	emu := stytchtest.New(stytchtest.WithKey(testKey()))
	t.Cleanup(emu.Close)
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme", Slug: "acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test", Name: "Ada"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{CustomClaims: map[string]any{"admin": true}})
	require.NoError(t, err)
	inner, err := verifier.NewStytch(verifier.Config{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL(), Timeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = inner.Close() })
	mem, err := memory.New(memory.Options{})
	require.NoError(t, err)
	rec := &recorder{Store: mem}
	logs := &bytes.Buffer{}
	clk := &clock{}
	cfg := cache.VerifierConfig{
		Store: rec, Secret: []byte(emu.Secret()), Namespace: emu.ProjectID(),
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    clk.now,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	cv, err := cache.NewVerifier(inner, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cv.Close(); _ = mem.Close() })
	require.Eventually(t, func() bool { return emu.Calls(stytchtest.JWKS) >= 1 }, 5*time.Second, 5*time.Millisecond)
	return &env{emu: emu, inner: inner, mem: mem, rec: rec, cv: cv, sess: sess, logs: logs, clock: clk}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestHitAfterMiss(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s1, err := e.cv.Verify(ctx, e.sess.Token)
	require.NoError(t, err)
	assert.Equal(t, 1, e.emu.Calls(stytchtest.Authenticate))
	for range 10 {
		s2, err := e.cv.Verify(ctx, e.sess.Token)
		require.NoError(t, err)
		assert.Equal(t, s1.MemberID, s2.MemberID)
		assert.Equal(t, map[string]any{"admin": true}, s2.CustomClaims)
	}
	assert.Equal(t, 1, e.emu.Calls(stytchtest.Authenticate), "hits make no call")
}

func TestNoRawTokenInStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.cv.Verify(ctx, e.sess.Token)
	require.NoError(t, err)
	s, err := e.cv.Verify(ctx, e.sess.JWT)
	require.NoError(t, err)
	_ = s
	expired, err := e.emu.MintJWT(e.sess.ID, stytchtest.WithIssuedAt(time.Now().Add(-time.Hour)))
	require.NoError(t, err)
	fresh, err := e.cv.Verify(ctx, expired)
	require.NoError(t, err)
	require.NotEmpty(t, fresh.SessionJWT)
	require.NoError(t, e.cv.Revoke(ctx, e.sess.Token))
	ws := e.rec.writes()
	// The opaque token, the fresh JWT and the tombstone; the expired JWT
	// is not cached (an entry never outlives its JWT's exp).
	require.GreaterOrEqual(t, len(ws), 3)
	for _, w := range ws {
		for _, secret := range []string{e.sess.Token, e.sess.JWT, expired, fresh.SessionJWT, "session_token", "session_jwt", e.emu.Secret()} {
			assert.NotContains(t, w.key, secret)
			assert.False(t, bytes.Contains(w.value, []byte(secret)), "value contains %.20s…", secret)
		}
		assert.True(t, strings.HasPrefix(w.key, "s:") && len(w.key) == 66, w.key)
	}
}

func TestTTLBoundedBySessionExpiry(t *testing.T) {
	e := newEnv(t, func(c *cache.VerifierConfig) { c.TTL = time.Hour })
	m, err := e.emu.CreateMember(e.sess.OrganizationID, stytchtest.MemberParams{Email: "short@acme.test"})
	require.NoError(t, err)
	short, err := e.emu.CreateSession(m.ID, stytchtest.SessionParams{Duration: 2 * time.Second})
	require.NoError(t, err)
	_, err = e.cv.Verify(context.Background(), short.Token)
	require.NoError(t, err)
	ws := e.rec.writes()
	require.Len(t, ws, 1)
	assert.LessOrEqual(t, ws[0].ttl, 2*time.Second)
	assert.Greater(t, ws[0].ttl, time.Duration(0))

	// The configured TTL bounds long sessions.
	e2 := newEnv(t, func(c *cache.VerifierConfig) { c.TTL = 30 * time.Second })
	_, err = e2.cv.Verify(context.Background(), e2.sess.Token)
	require.NoError(t, err)
	require.Len(t, e2.rec.writes(), 1)
	assert.LessOrEqual(t, e2.rec.writes()[0].ttl, 30*time.Second)
}

func TestExpiryCheckedOnEveryRead(t *testing.T) {
	e := newEnv(t, func(c *cache.VerifierConfig) { c.TTL = time.Hour })
	_, err := e.cv.Verify(context.Background(), e.sess.Token)
	require.NoError(t, err)
	// The store would still hold the entry, but the clock passes the
	// session's expiry (60 min): the cached copy must not be served.
	// (The emulator keeps real time, so upstream still vouches for it.)
	e.clock.advance(61 * time.Minute)
	_, err = e.cv.Verify(context.Background(), e.sess.Token)
	require.NoError(t, err)
	assert.Equal(t, 2, e.emu.Calls(stytchtest.Authenticate), "the expired copy went back upstream")
}

func TestOneFlightPerToken(t *testing.T) {
	e := newEnv(t)
	e.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			_, err := e.cv.Verify(context.Background(), e.sess.Token)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 1, e.emu.Calls(stytchtest.Authenticate))
}

func TestNegativeCache(t *testing.T) {
	e := newEnv(t, func(c *cache.VerifierConfig) { c.NegativeTTL = 300 * time.Millisecond })
	bad := strings.Repeat("b", 44)
	for range 20 {
		_, err := e.cv.Verify(context.Background(), bad)
		require.ErrorIs(t, err, verifier.ErrInvalidSession)
	}
	assert.Equal(t, 1, e.emu.Calls(stytchtest.Authenticate), "one call per negative-cache period")
	e.clock.advance(400 * time.Millisecond)
	_, err := e.cv.Verify(context.Background(), bad)
	require.ErrorIs(t, err, verifier.ErrInvalidSession)
	assert.Equal(t, 2, e.emu.Calls(stytchtest.Authenticate))
}

func TestOutagesAreNotCached(t *testing.T) {
	e := newEnv(t)
	e.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: 503})
	_, err := e.cv.Verify(context.Background(), e.sess.Token)
	require.ErrorIs(t, err, verifier.ErrUnavailable)
	e.emu.ClearFaults()
	_, err = e.cv.Verify(context.Background(), e.sess.Token)
	require.NoError(t, err, "the outage was not remembered")
}

func TestCachedSessionsSurviveStytchOutage(t *testing.T) {
	e := newEnv(t)
	_, err := e.cv.Verify(context.Background(), e.sess.Token)
	require.NoError(t, err)
	e.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: 500})
	_, err = e.cv.Verify(context.Background(), e.sess.Token)
	require.NoError(t, err)
}

func TestRevokeRefusesAtOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.cv.Verify(ctx, e.sess.Token)
	require.NoError(t, err)
	require.NoError(t, e.cv.Revoke(ctx, e.sess.Token))
	calls := e.emu.Calls(stytchtest.Authenticate)
	for range 100 {
		_, err = e.cv.Verify(ctx, e.sess.Token)
		require.ErrorIs(t, err, verifier.ErrInvalidSession)
	}
	assert.Equal(t, calls, e.emu.Calls(stytchtest.Authenticate), "the tombstone answers")
	assert.Equal(t, 1, e.emu.Calls(stytchtest.Revoke))
}

// TestRevokedJWTRefusedThroughCache: a JWT still verifies locally after
// its session is revoked, but not once our Revoke wrote its tombstone.
func TestRevokedJWTRefusedThroughCache(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.cv.Verify(ctx, e.sess.JWT)
	require.NoError(t, err)
	require.NoError(t, e.cv.Revoke(ctx, e.sess.JWT))
	_, err = e.inner.Verify(ctx, e.sess.JWT)
	require.NoError(t, err, "the bare JWT still verifies locally (Stytch's documented window)")
	_, err = e.cv.Verify(ctx, e.sess.JWT)
	require.ErrorIs(t, err, verifier.ErrInvalidSession)
}

// TestFillInFlightCannotResurrect: a verification that started before a
// revocation and finishes after it does not bring the session back.
func TestFillInFlightCannotResurrect(t *testing.T) {
	e := newEnv(t)
	e.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 300 * time.Millisecond, Times: 1})
	done := make(chan error, 1)
	go func() {
		_, err := e.cv.Verify(context.Background(), e.sess.Token)
		done <- err
	}()
	require.Eventually(t, func() bool { return e.emu.Calls(stytchtest.Authenticate) == 1 }, 2*time.Second, time.Millisecond)
	require.NoError(t, e.cv.Revoke(context.Background(), e.sess.Token))
	err := <-done
	require.ErrorIs(t, err, verifier.ErrInvalidSession, "the in-flight answer is discarded")
	_, err = e.cv.Verify(context.Background(), e.sess.Token)
	require.ErrorIs(t, err, verifier.ErrInvalidSession)
}

func TestTamperedValueIsAMiss(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.cv.Verify(ctx, e.sess.Token)
	require.NoError(t, err)
	w := e.rec.writes()[0]

	// A second instance sharing the store (nothing decoded in process yet)
	// reads a value whose payload was altered: it fails authentication.
	cv2, err := cache.NewVerifier(e.inner, cache.VerifierConfig{Store: e.mem, Secret: []byte(e.emu.Secret()), Namespace: e.emu.ProjectID(),
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: e.logs}, nil))})
	require.NoError(t, err)
	defer cv2.Close()
	for i, tamper := range []func([]byte){
		func(b []byte) { b[len(b)-2] ^= 1 },                              // payload
		func(b []byte) { b[12] ^= 1 },                                    // tag
		func(b []byte) { b[5]++ },                                        // expiry
		func(b []byte) { b[1] = 2 },                                      // kind
		func(b []byte) { copy(b[42:], `{"member_id":"member-evil"   `) }, // member
	} {
		bad := bytes.Clone(w.value)
		tamper(bad)
		require.NoError(t, e.mem.Set(ctx, w.key, bad, time.Minute))
		e.mem.Wait()
		s, err := cv2.Verify(ctx, e.sess.Token)
		require.NoError(t, err, "case %d", i)
		assert.Equal(t, e.sess.MemberID, s.MemberID)
		assert.Equal(t, 2+i, e.emu.Calls(stytchtest.Authenticate), "case %d: the tampered value was not trusted", i)
		require.NoError(t, e.mem.Delete(ctx, w.key))
	}
	assert.Contains(t, e.logs.String(), "failed authentication")
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items)")
	}
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.cv.Verify(ctx, e.sess.Token)
	require.NoError(t, err)
	e.mem.Wait()
	_, err = e.cv.Verify(ctx, e.sess.Token) // fills the memo if the fill raced
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // ristretto admits the memo entry asynchronously
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := e.cv.Verify(ctx, e.sess.Token); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

func TestStoreDownFallsBackToStytch(t *testing.T) {
	e := newEnv(t, func(c *cache.VerifierConfig) {})
	down := &failingStore{}
	cv, err := cache.NewVerifier(e.inner, cache.VerifierConfig{Store: down, Secret: []byte("s"), Namespace: "p"})
	require.NoError(t, err)
	defer cv.Close()
	s, err := cv.Verify(context.Background(), e.sess.Token)
	require.NoError(t, err)
	assert.Equal(t, e.sess.MemberID, s.MemberID)
}

type failingStore struct{}

func (failingStore) Get(context.Context, string) ([]byte, error) { return nil, cache.ErrUnavailable }
func (failingStore) Set(context.Context, string, []byte, time.Duration) error {
	return cache.ErrUnavailable
}
func (failingStore) Delete(context.Context, string) error { return cache.ErrUnavailable }

func TestConfigErrors(t *testing.T) {
	_, err := cache.NewVerifier(nil, cache.VerifierConfig{})
	require.Error(t, err)
	_, err = cache.NewVerifier(verifierFunc(nil), cache.VerifierConfig{Secret: []byte("x")})
	require.Error(t, err)
	mem, err := memory.New(memory.Options{})
	require.NoError(t, err)
	defer mem.Close()
	_, err = cache.NewVerifier(verifierFunc(nil), cache.VerifierConfig{Store: mem})
	require.Error(t, err)
	cv, err := cache.NewVerifier(verifierFunc(nil), cache.VerifierConfig{Store: mem, Secret: []byte("x")})
	require.NoError(t, err)
	defer cv.Close()
	err = cv.Revoke(context.Background(), strings.Repeat("a", 44))
	require.ErrorIs(t, err, verifier.ErrMisconfigured)
	assert.True(t, errors.Is(err, verifier.ErrMisconfigured))
}

type verifierFunc func(context.Context, string) (*verifier.Session, error)

func (f verifierFunc) Verify(ctx context.Context, tok string) (*verifier.Session, error) {
	return f(ctx, tok)
}

// TestExpiredJWTVouchedByAPIIsCached: an expired JWT (an idle tab's cookie)
// of a live session costs one Stytch call, not one per request.
func TestExpiredJWTVouchedByAPIIsCached(t *testing.T) {
	e := newEnv(t)
	expired, err := e.emu.MintJWT(e.sess.ID, stytchtest.WithIssuedAt(time.Now().Add(-time.Hour)))
	require.NoError(t, err)
	for range 20 {
		_, err := e.cv.Verify(context.Background(), expired)
		require.NoError(t, err)
	}
	assert.Equal(t, 1, e.emu.Calls(stytchtest.Authenticate))
}

// TestTombstoneLandsWhenClientLeaves: a revocation whose request context is
// cancelled right after the upstream call still writes its tombstone.
func TestTombstoneLandsWhenClientLeaves(t *testing.T) {
	e := newEnv(t)
	_, err := e.cv.Verify(context.Background(), e.sess.Token)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	inner := &cancelAfterRevoke{Stytch: e.inner, cancel: cancel}
	cv2, err := cache.NewVerifier(inner, cache.VerifierConfig{Store: &cancelOnSet{Store: e.mem}, Secret: []byte(e.emu.Secret()), Namespace: e.emu.ProjectID()})
	require.NoError(t, err)
	defer cv2.Close()
	require.NoError(t, cv2.Revoke(ctx, e.sess.Token))
	require.Error(t, ctx.Err(), "the client left before the tombstone write")
	e.mem.Wait()
	// A third instance sharing the store (no in-process tombstone) refuses it.
	cv3, err := cache.NewVerifier(e.inner, cache.VerifierConfig{Store: e.mem, Secret: []byte(e.emu.Secret()), Namespace: e.emu.ProjectID()})
	require.NoError(t, err)
	defer cv3.Close()
	calls := e.emu.Calls(stytchtest.Authenticate)
	_, err = cv3.Verify(context.Background(), e.sess.Token)
	require.ErrorIs(t, err, verifier.ErrInvalidSession)
	assert.Equal(t, calls, e.emu.Calls(stytchtest.Authenticate), "refused by the tombstone, not by Stytch")
}

// cancelAfterRevoke revokes upstream, then cancels the request's context,
// as a client hanging up at that moment would.
type cancelAfterRevoke struct {
	*verifier.Stytch
	cancel func()
}

func (c *cancelAfterRevoke) Revoke(ctx context.Context, token string) error {
	err := c.Stytch.Revoke(ctx, token)
	c.cancel()
	return err
}

// cancelOnSet refuses writes on a cancelled context, as a network store
// would.
type cancelOnSet struct{ cache.Store }

func (c *cancelOnSet) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.Store.Set(ctx, key, value, ttl)
}

// TestCloseEndsFlightsInFlight: Close cancels an upstream verification in
// flight and waits for it; later misses fail fast.
func TestCloseEndsFlightsInFlight(t *testing.T) {
	e := newEnv(t)
	e.emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := e.cv.Verify(context.Background(), e.sess.Token)
		done <- err
	}()
	require.Eventually(t, func() bool { return e.emu.Calls(stytchtest.Authenticate) == 1 }, 5*time.Second, time.Millisecond)
	closed := make(chan struct{})
	go func() { _ = e.cv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the hanging verification")
	}
	require.ErrorIs(t, <-done, verifier.ErrUnavailable)
	_, err := e.cv.Verify(context.Background(), strings.Repeat("n", 44))
	require.ErrorIs(t, err, verifier.ErrUnavailable)
}

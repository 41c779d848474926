package echostytch_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/cache/tiered"
	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

func emulatorEnv(emu *stytchtest.Server, extra map[string]string) envconfig.Lookuper {
	m := map[string]string{
		"STYTCH_PROJECT_ID": emu.ProjectID(),
		"STYTCH_SECRET":     emu.Secret(),
		"STYTCH_BASE_URL":   emu.URL(),
		"STYTCH_LOG_LEVEL":  "ERROR",
	}
	for k, v := range extra {
		m[k] = v
	}
	return envconfig.MapLookuper(m)
}

func TestFromEnvBackends(t *testing.T) {
	srv := redistest.Start(t)
	cases := []struct {
		name    string
		env     map[string]string
		backend string
	}{
		{"memory by default", nil, "memory"},
		{"redis when a URL is set", map[string]string{"STYTCH_REDIS_URL": "redis://" + srv.Addr()}, "redis"},
		{"REDIS_URL fallback", map[string]string{"REDIS_URL": "redis://" + srv.Addr()}, "redis"},
		{"tiered", map[string]string{"STYTCH_REDIS_URL": "redis://" + srv.Addr(), "STYTCH_CACHE_BACKEND": "tiered"}, "tiered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := stytchtest.New()
			defer emu.Close()
			sess := sessionFixture(t, emu)

			stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, tc.env))
			require.NoError(t, err)
			defer stack.Close()
			assert.Equal(t, tc.backend, stack.Settings.CacheBackend)

			e := echo.New()
			auth := echostytch.New(stack.Config)
			e.GET("/p", func(c echo.Context) error { return c.String(200, echostytch.MustMember(c).MemberID) }, auth)
			e.POST("/logout", stack.Logout(), auth)
			do := func(method, path string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(method, path, nil)
				req.Header.Set("Authorization", "Bearer "+sess.Token)
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				return rec
			}
			for range 3 {
				rec := do("GET", "/p")
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.Equal(t, sess.MemberID, rec.Body.String())
			}
			assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate))
			assert.Equal(t, http.StatusNoContent, do("POST", "/logout").Code)
			assert.Equal(t, 1, emu.Calls(stytchtest.Revoke))
			assert.Equal(t, http.StatusUnauthorized, do("GET", "/p").Code)
			require.NoError(t, stack.Close())
			require.NoError(t, stack.Close(), "Close is idempotent")
		})
	}
}

func TestFromEnvErrors(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	_, err := echostytch.FromEnv(context.Background(), envconfig.MapLookuper(map[string]string{}))
	var se *echostytch.SettingError
	require.ErrorAs(t, err, &se)

	// An unreachable Redis is not a start-up error (see faults_test.go);
	// a URL the Redis client cannot parse is.
	_, err = echostytch.FromEnv(context.Background(), emulatorEnv(emu, map[string]string{"STYTCH_REDIS_URL": "redis://127.0.0.1:1/notadb", "STYTCH_LOG_LEVEL": "ERROR"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STYTCH_REDIS_URL")
	assert.NotContains(t, err.Error(), emu.Secret())

	_, err = echostytch.NewStack(context.Background(), nil, nil)
	require.Error(t, err)
}

func TestLogoutWithoutToken(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, nil))
	require.NoError(t, err)
	defer stack.Close()
	e := echo.New()
	e.POST("/logout", stack.Logout())
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("POST", "/logout", nil))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)

	// Stytch down: the logout reports 503, the session is still refused
	// locally (tombstone).
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "a@acme.test"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	emu.InjectFault(stytchtest.Revoke, stytchtest.Fault{Status: 500})
	req := httptest.NewRequest("POST", "/logout", nil)
	req.AddCookie(&http.Cookie{Name: "stytch_session", Value: sess.Token})
	rec = httptest.NewRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.ServeHTTP(rec, req.WithContext(ctx))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	_, err = stack.Cache.Verify(context.Background(), sess.Token)
	assert.True(t, err != nil && !errors.Is(err, context.Canceled))
}

// TestLogoutIgnoresJunkTokens: a logged-in client sending random
// well-formed cookie tokens along costs no revoke call for them.
func TestLogoutIgnoresJunkTokens(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	sess := sessionFixture(t, emu)
	stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, nil))
	require.NoError(t, err)
	defer stack.Close()
	e := echo.New()
	e.POST("/logout", stack.Logout(), echostytch.New(stack.Config))
	req := httptest.NewRequest("POST", "/logout", nil)
	req.Header.Set("Authorization", "Bearer "+sess.Token)
	req.AddCookie(&http.Cookie{Name: "stytch_session", Value: strings.Repeat("j", 44)})
	req.AddCookie(&http.Cookie{Name: "stytch_session_jwt", Value: "aaaa.bbbb.cccc"})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, 1, emu.Calls(stytchtest.Revoke), "only the live session is revoked")
}

// TestFromEnvRedisURLErrorNamesVariable: a Redis URL that the Redis client
// rejects is a start-up error naming the variable it was read from,
// including the REDIS_URL fallback (design.md §4).
func TestFromEnvRedisURLErrorNamesVariable(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	const bad = "redis://127.0.0.1:1/notadb"
	cases := []struct {
		name     string
		env      map[string]string
		variable string
	}{
		{"STYTCH_REDIS_URL", map[string]string{"STYTCH_REDIS_URL": bad}, "STYTCH_REDIS_URL"},
		{"REDIS_URL fallback", map[string]string{"REDIS_URL": bad}, "REDIS_URL"},
		{"REDIS_URL fallback, bad ?db", map[string]string{"REDIS_URL": "redis://127.0.0.1:1?db=x"}, "REDIS_URL"},
		{"STYTCH_REDIS_URL wins", map[string]string{"STYTCH_REDIS_URL": bad, "REDIS_URL": "redis://127.0.0.1:1"}, "STYTCH_REDIS_URL"},
		{"tiered from REDIS_URL", map[string]string{"REDIS_URL": bad, "STYTCH_CACHE_BACKEND": "tiered"}, "REDIS_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, tc.env))
			require.Error(t, err)
			var se *echostytch.SettingError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.variable, se.Variable)
			assert.True(t, strings.HasPrefix(err.Error(), "echostytch: "+tc.variable+": "), err.Error())
			if tc.variable == "REDIS_URL" {
				assert.NotContains(t, err.Error(), "STYTCH_REDIS_URL")
			}
			assert.NotContains(t, err.Error(), emu.Secret())
		})
	}

	// Settings built by hand (not loaded): the error names
	// STYTCH_REDIS_URL and does not reveal a password in an unparsable URL.
	s, err := echostytch.LoadSettings(context.Background(), emulatorEnv(emu, nil))
	require.NoError(t, err)
	s.RedisURL, s.CacheBackend = "redis://user:hunter2hunter2@h%zz:6379", echostytch.CacheRedis
	_, err = echostytch.NewStack(context.Background(), s, nil)
	var se *echostytch.SettingError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "STYTCH_REDIS_URL", se.Variable)
	assert.NotContains(t, err.Error(), "hunter2hunter2")
}

// TestRealStackErrorAnswers drives error rows of design.md §3 through Echo
// with the real stack (FromEnv against the emulator): Stytch rejecting our
// credentials is the 500 "misconfigured" answer, and Stytch refusing an
// authorization check (verifier.ErrForbidden) is a 403.
func TestRealStackErrorAnswers(t *testing.T) {
	const (
		misconfigured = `{"error":"internal_server_error","message":"Authentication service misconfigured","type":"configuration"}`
		forbidden     = `{"error":"insufficient_permissions","message":"Not authorized for this resource","type":"authorization"}`
	)
	cases := []struct {
		name   string
		secret bool // a wrong STYTCH_SECRET
		fault  *stytchtest.Fault
		jwt    bool // send the session JWT instead of the opaque token
		status int
		body   string
		kind   error
	}{
		{name: "wrong secret", secret: true, status: http.StatusInternalServerError, body: misconfigured,
			kind: echostytch.ErrMisconfigured},
		{name: "wrong secret, JWT", secret: true, jwt: true, status: http.StatusInternalServerError, body: misconfigured,
			kind: echostytch.ErrMisconfigured},
		{name: "authorization refused", status: http.StatusForbidden, body: forbidden, kind: echostytch.ErrInsufficientPermissions,
			fault: &stytchtest.Fault{Status: http.StatusForbidden, ErrorType: "session_authorization_error"}},
		{name: "authorization refused, tenancy", status: http.StatusForbidden, body: forbidden, kind: echostytch.ErrInsufficientPermissions,
			fault: &stytchtest.Fault{Status: http.StatusForbidden, ErrorType: "session_authorization_tenancy_error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := stytchtest.New()
			defer emu.Close()
			sess := sessionFixture(t, emu)
			env := map[string]string{"STYTCH_MAX_RETRIES": "0"}
			if tc.secret {
				env["STYTCH_SECRET"] = "secret-test-WRONGWRONGWRONGWRONGWRONG"
			}
			if tc.fault != nil {
				emu.InjectFault(stytchtest.Authenticate, *tc.fault)
			}
			stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, env))
			require.NoError(t, err)
			defer stack.Close()

			var handled error
			cfg := stack.Config
			cfg.ErrorHandler = func(c echo.Context, err error) error {
				handled = err
				return echostytch.WriteError(c, err, "")
			}
			optCfg := stack.Config
			optCfg.Optional = true
			e := echo.New()
			e.GET("/p", memberHandler, echostytch.New(cfg))
			e.GET("/o", memberHandler, echostytch.New(optCfg))
			tok := sess.Token
			if tc.jwt {
				tok = sess.JWT
			}
			req := httptest.NewRequest(http.MethodGet, "/p", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			assert.Equal(t, tc.status, rec.Code)
			assert.JSONEq(t, tc.body, rec.Body.String())
			assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
			assert.Empty(t, rec.Header().Get("Retry-After"))
			require.Error(t, handled)
			assert.ErrorIs(t, handled, tc.kind)
			if tc.fault != nil {
				assert.ErrorIs(t, handled, verifier.ErrForbidden)
			} else {
				assert.ErrorIs(t, handled, verifier.ErrMisconfigured)
			}
			assert.Positive(t, emu.Calls(stytchtest.Authenticate)+emu.Calls(stytchtest.JWKS), "Stytch was asked")

			// Optional authentication: a 403 is anonymous; a
			// misconfiguration too (degraded), never the caller's fault.
			req = httptest.NewRequest(http.MethodGet, "/o", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec = httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.JSONEq(t, `{"anonymous":true}`, rec.Body.String())
		})
	}
}

// recordingStore is a memory store that records the keys written to it
// and counts calls to Close.
type recordingStore struct {
	*memory.Store
	mu     sync.Mutex
	keys   []string
	closes atomic.Int32
}

func (r *recordingStore) record(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, key)
}

func (r *recordingStore) Keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.keys...)
}

func (r *recordingStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	r.record(key)
	return r.Store.Set(ctx, key, value, ttl)
}

func (r *recordingStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	r.record(key)
	return r.Store.Add(ctx, key, value, ttl)
}

func (r *recordingStore) Close() error {
	r.closes.Add(1)
	return r.Store.Close()
}

// sessionFixture creates a member and a session in emu.
func sessionFixture(t *testing.T, emu *stytchtest.Server) stytchtest.Session {
	t.Helper()
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	return sess
}

// stackEcho mounts GET /p (answering the member ID) and POST /logout
// behind the stack's middleware and returns a function that calls them
// with token.
func stackEcho(stack *echostytch.Stack, token string) func(method, path string) *httptest.ResponseRecorder {
	e := echo.New()
	auth := echostytch.New(stack.Config)
	e.GET("/p", func(c echo.Context) error { return c.String(http.StatusOK, echostytch.MustMember(c).MemberID) }, auth)
	e.POST("/logout", stack.Logout(), auth)
	return func(method, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
}

// TestWithStore: a store given in code is the one the stack caches in,
// whatever STYTCH_CACHE_BACKEND says (an explicit tiered backend over an
// unreachable Redis is not even dialled), the ready log line says so, and
// Stack.Close leaves the store open for its owner to close.
func TestWithStore(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
	}{
		{"default backend", nil},
		{"explicit tiered backend", map[string]string{"STYTCH_CACHE_BACKEND": "tiered", "STYTCH_REDIS_URL": "redis://127.0.0.1:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := stytchtest.New()
			defer emu.Close()
			fix := sessionFixture(t, emu)
			memberID, token := fix.MemberID, fix.Token
			mem, err := memory.New(memory.Options{})
			require.NoError(t, err)
			store := &recordingStore{Store: mem}
			defer store.Close()

			env := map[string]string{"STYTCH_LOG_LEVEL": "INFO"}
			for k, v := range tc.env {
				env[k] = v
			}
			var logs logBuffer
			stack, err := echostytch.FromEnv(context.Background(), emulatorEnv(emu, env),
				echostytch.WithStore(store), echostytch.WithLogOutput(&logs))
			require.NoError(t, err)
			defer stack.Close()
			assert.Same(t, store, stack.Store.(*recordingStore))
			ready := ""
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "ayz-auth ready") {
					ready = line
				}
			}
			assert.Contains(t, ready, "cache_store=code")
			assert.Contains(t, ready, "cache_store_type=*echostytch_test.recordingStore")
			assert.NotContains(t, logs.String(), "redis: unreachable", "no Redis store is built")

			do := stackEcho(stack, token)
			for range 3 {
				rec := do("GET", "/p")
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.Equal(t, memberID, rec.Body.String())
			}
			assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate), "later requests are served from the store")
			keys := store.Keys()
			require.NotEmpty(t, keys, "the session was cached in the store given in code")
			for _, k := range keys {
				v, err := mem.Get(context.Background(), k)
				require.NoError(t, err, k)
				assert.NotEmpty(t, v)
			}

			assert.Equal(t, http.StatusNoContent, do("POST", "/logout").Code)
			assert.Equal(t, http.StatusUnauthorized, do("GET", "/p").Code)

			require.NoError(t, stack.Close())
			assert.Zero(t, store.closes.Load(), "Stack.Close leaves the caller's store open")
			ctx := context.Background()
			for _, k := range keys {
				_, err := mem.Get(ctx, k)
				assert.NoError(t, err, "entries survive Stack.Close")
			}
			require.NoError(t, mem.Set(ctx, "after-close", []byte("v"), time.Minute))
			v, err := mem.Get(ctx, "after-close")
			require.NoError(t, err)
			assert.Equal(t, "v", string(v))
			require.NoError(t, store.Close())
			_, err = mem.Get(ctx, "after-close")
			assert.ErrorIs(t, err, cache.ErrClosed, "the owner's Close does close it")
		})
	}

	t.Run("NewStack", func(t *testing.T) {
		emu := stytchtest.New()
		defer emu.Close()
		s, err := echostytch.LoadSettings(context.Background(), emulatorEnv(emu, nil))
		require.NoError(t, err)
		mem, err := memory.New(memory.Options{})
		require.NoError(t, err)
		defer mem.Close()
		stack, err := echostytch.NewStack(context.Background(), s, slog.New(slog.DiscardHandler), echostytch.WithStore(mem))
		require.NoError(t, err)
		assert.Same(t, mem, stack.Store.(*memory.Store))
		assert.Equal(t, echostytch.CacheMemory, stack.Settings.CacheBackend, "the settings are kept as loaded")
		require.NoError(t, stack.Close())
		require.NoError(t, mem.Set(context.Background(), "k", []byte("v"), time.Minute))
	})
}

// TestWithStoreErrors: a nil store is a start-up error, not a panic; the
// settings are validated as without WithStore; a failed start-up leaves
// the caller's store open.
func TestWithStoreErrors(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	ctx := context.Background()
	for name, store := range map[string]cache.Store{
		"nil":             nil,
		"nil *memory":     (*memory.Store)(nil),
		"nil *tiered":     (*tiered.Store)(nil),
		"nil *redis.Lazy": (*redis.Lazy)(nil),
	} {
		t.Run(name, func(t *testing.T) {
			var stack *echostytch.Stack
			var err error
			require.NotPanics(t, func() {
				stack, err = echostytch.FromEnv(ctx, emulatorEnv(emu, nil), echostytch.WithStore(store))
			})
			require.Error(t, err)
			assert.Nil(t, stack)
			assert.Contains(t, err.Error(), "WithStore")

			s, err := echostytch.LoadSettings(ctx, emulatorEnv(emu, nil))
			require.NoError(t, err)
			require.NotPanics(t, func() {
				stack, err = echostytch.NewStack(ctx, s, nil, echostytch.WithStore(store))
			})
			require.Error(t, err)
			assert.Nil(t, stack)
		})
	}

	mem, err := memory.New(memory.Options{})
	require.NoError(t, err)
	defer mem.Close()
	// A later WithStore wins, including a nil one.
	_, err = echostytch.FromEnv(ctx, emulatorEnv(emu, nil), echostytch.WithStore(mem), echostytch.WithStore(nil))
	require.Error(t, err)

	// Settings are validated as without WithStore: bad variables, and a
	// Redis URL the Redis client rejects for a Redis backend.
	_, err = echostytch.FromEnv(ctx, emulatorEnv(emu, map[string]string{"STYTCH_CACHE_BACKEND": "tiered"}), echostytch.WithStore(mem))
	var se *echostytch.SettingError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "STYTCH_CACHE_BACKEND", se.Variable)
	_, err = echostytch.FromEnv(ctx, emulatorEnv(emu, map[string]string{"REDIS_URL": "redis://u:hunter2hunter2@127.0.0.1:1/notadb"}), echostytch.WithStore(mem))
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "REDIS_URL", se.Variable)
	assert.NotContains(t, err.Error(), "hunter2hunter2")
	// ... but not when the backend is memory (as without WithStore).
	stack, err := echostytch.FromEnv(ctx, emulatorEnv(emu, map[string]string{
		"REDIS_URL": "redis://127.0.0.1:1/notadb", "STYTCH_CACHE_BACKEND": "memory",
	}), echostytch.WithStore(mem))
	require.NoError(t, err)
	require.NoError(t, stack.Close())

	// Failed start-ups did not close the caller's store.
	require.NoError(t, mem.Set(ctx, "k", []byte("v"), time.Minute))
	v, err := mem.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
}

// TestWithStoreTiered: a tiered store built in code (memory L1 over a real
// Redis L2) works end to end: sessions are cached in Redis under the
// store's prefix, a second instance with its own L1 over the same Redis
// is served from it, a logout on one instance is seen by the other, and
// the store outlives Stack.Close.
func TestWithStoreTiered(t *testing.T) {
	srv := redistest.Start(t)
	emu := stytchtest.New()
	defer emu.Close()
	fix := sessionFixture(t, emu)
	memberID, token := fix.MemberID, fix.Token
	ctx := context.Background()

	newTiered := func(t *testing.T) cache.Store {
		l1, err := memory.New(memory.Options{MeterProvider: metricnoop.NewMeterProvider()})
		require.NoError(t, err)
		l2, err := redis.New(ctx, redis.Options{Addrs: []string{srv.Addr()}, KeyPrefix: "svc"})
		require.NoError(t, err)
		store, err := tiered.New(l1, l2, tiered.Options{})
		require.NoError(t, err)
		// The owner closes the store, its L1 and its L2 after Stack.Close.
		t.Cleanup(func() {
			assert.NoError(t, errors.Join(store.Close(), l1.Close(), l2.Close()))
		})
		return store
	}
	storeA, storeB := newTiered(t), newTiered(t)
	stackA, err := echostytch.FromEnv(ctx, emulatorEnv(emu, nil), echostytch.WithStore(storeA))
	require.NoError(t, err)
	defer stackA.Close()
	stackB, err := echostytch.FromEnv(ctx, emulatorEnv(emu, nil), echostytch.WithStore(storeB))
	require.NoError(t, err)
	defer stackB.Close()
	assert.Same(t, storeA, stackA.Store)

	doA, doB := stackEcho(stackA, token), stackEcho(stackB, token)
	for range 3 {
		rec := doA("GET", "/p")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, memberID, rec.Body.String())
	}
	assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate))
	keys, err := srv.Do("KEYS", "svc:*")
	require.NoError(t, err)
	assert.NotEmpty(t, keys, "the session is cached in Redis under the store's prefix")

	rec := doB("GET", "/p")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate), "instance B is served from the shared Redis")

	assert.Equal(t, http.StatusNoContent, doA("POST", "/logout").Code)
	assert.Equal(t, http.StatusUnauthorized, doA("GET", "/p").Code)
	assert.Eventually(t, func() bool { return doB("GET", "/p").Code == http.StatusUnauthorized },
		3*time.Second, 20*time.Millisecond, "instance B sees the logout")

	require.NoError(t, stackA.Close())
	require.NoError(t, stackB.Close())
	// Both stores are still open: the caller closes them (at cleanup).
	for _, store := range []cache.Store{storeA, storeB} {
		require.NoError(t, store.Set(ctx, "after-close", []byte("v"), time.Minute))
		v, err := store.Get(ctx, "after-close")
		require.NoError(t, err)
		assert.Equal(t, "v", string(v))
	}
}

package echostytch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sethvargo/go-envconfig"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/cache/tiered"
	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// exampleVerifier stands in for the real (cached Stytch) verifier.
var exampleVerifier = mapVerifier{
	"example_session_token_0123456789": {
		MemberID: "member-test-1", OrganizationID: "organization-test-1",
		MemberEmail: "ada@example.com", ExpiresAt: time.Now().Add(time.Hour),
		CustomClaims: map[string]any{"admin": true},
	},
}

func call(e *echo.Echo, path, token string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
}

func ExampleNew() {
	e := echo.New()
	e.Use(echostytch.New(echostytch.Config{Verifier: exampleVerifier}))
	e.GET("/protected", func(c echo.Context) error {
		m := echostytch.MustMember(c)
		return c.JSON(http.StatusOK, map[string]string{"message": "Hello " + m.MemberEmail})
	})

	call(e, "/protected", "example_session_token_0123456789")
	call(e, "/protected", "")
	call(e, "/protected", "unknown_session_token_0123456789")
	// Output:
	// 200 {"message":"Hello ada@example.com"}
	// 401 {"error":"authentication_failed","message":"Authorization header is required","type":"token_extraction"}
	// 401 {"error":"authentication_failed","message":"Invalid or expired session token","type":"token_verification"}
}

func ExampleMember() {
	e := echo.New()
	// Optional authentication: anonymous requests reach the handler.
	e.Use(echostytch.New(echostytch.Config{Verifier: exampleVerifier, Optional: true}))
	e.GET("/optional-auth", func(c echo.Context) error {
		if m, ok := echostytch.Member(c); ok {
			return c.String(http.StatusOK, "Hello "+m.MemberEmail)
		}
		return c.String(http.StatusOK, "Hello anonymous user")
	})

	call(e, "/optional-auth", "example_session_token_0123456789")
	call(e, "/optional-auth", "")
	// Output:
	// 200 Hello ada@example.com
	// 200 Hello anonymous user
}

func ExampleRequireClaims() {
	e := echo.New()
	e.Use(echostytch.New(echostytch.Config{Verifier: exampleVerifier}))
	ok := func(msg string) echo.HandlerFunc {
		return func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"message": msg}) }
	}
	e.GET("/admin", ok("Admin access granted"), echostytch.RequireClaims("admin"))
	e.GET("/sensitive", ok("MFA verified access"), echostytch.RequireFactors("mfa"))

	call(e, "/admin", "example_session_token_0123456789")
	call(e, "/sensitive", "example_session_token_0123456789")
	// Output:
	// 200 {"message":"Admin access granted"}
	// 403 {"error":"insufficient_authentication","message":"Missing required authentication factors: [mfa]","type":"authorization"}
}

func ExampleLoadSettings() {
	// A nil lookuper reads the process environment; a map is handy in tests.
	env := envconfig.MapLookuper(map[string]string{
		"STYTCH_PROJECT_ID": "project-test-11111111-2222-3333-4444-555555555555",
		"STYTCH_SECRET":     "secret-test-do-not-print-me",
		"REDIS_URL":         "redis://default:hunter2@localhost:6379/0",
		"STYTCH_CACHE_TTL":  "2.5",
	})
	s, err := echostytch.LoadSettings(context.Background(), env)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Environment, s.BaseURL, s.CacheBackend, s.CacheTTL)
	fmt.Println(echostytch.RedactURL(s.RedisURL))

	_, err = echostytch.LoadSettings(context.Background(), envconfig.MapLookuper(map[string]string{
		"STYTCH_PROJECT_ID":  "project-live-11111111-2222-3333-4444-555555555555",
		"STYTCH_SECRET":      "x",
		"STYTCH_ENVIRONMENT": "test",
	}))
	fmt.Println(err)
	// Output:
	// test https://test.stytch.com redis 2.5s
	// redis://default:REDACTED@localhost:6379/0
	// echostytch: STYTCH_ENVIRONMENT: "test" contradicts STYTCH_PROJECT_ID, which is a live project
}

func ExampleConfig_errorHandler() {
	e := echo.New()
	e.Use(echostytch.New(echostytch.Config{
		Verifier: exampleVerifier,
		ErrorHandler: func(c echo.Context, err error) error {
			if errors.Is(err, verifier.ErrUnavailable) {
				c.Response().Header().Set("X-Degraded", "1")
			}
			return echostytch.WriteError(c, err, "example")
		},
	}))
	e.GET("/r", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	call(e, "/r", "")
	// Output:
	// 401 {"error":"authentication_failed","message":"Authorization header is required","type":"token_extraction"}
}

// The cache store is chosen in code rather than by STYTCH_CACHE_BACKEND;
// the handlers do not change. Here an in-process store and a Stytch
// emulator; see the tiered example for a shared Redis behind it.
func ExampleWithStore() {
	emu := stytchtest.New() // stands in for Stytch
	defer emu.Close()
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, _ := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test"})
	sess, _ := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	env := envconfig.MapLookuper(map[string]string{
		"STYTCH_PROJECT_ID": emu.ProjectID(), "STYTCH_SECRET": emu.Secret(),
		"STYTCH_BASE_URL": emu.URL(), "STYTCH_LOG_LEVEL": "ERROR",
	})

	store, err := memory.New(memory.Options{MaxCost: 16 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close() // the caller owns the store: close it after the stack
	stack, err := echostytch.FromEnv(context.Background(), env, echostytch.WithStore(store))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stack.Close()

	e := echo.New()
	e.GET("/me", func(c echo.Context) error {
		return c.String(http.StatusOK, echostytch.MustMember(c).MemberEmail)
	}, echostytch.New(stack.Config))
	for range 2 {
		call(e, "/me", sess.Token)
	}
	fmt.Println("store from code:", stack.Store == store, "Stytch calls:", emu.Calls(stytchtest.Authenticate))
	// Output:
	// 200 ada@acme.test
	// 200 ada@acme.test
	// store from code: true Stytch calls: 1
}

// A tiered store (an in-process L1 kept coherent with a shared Redis L2)
// built in code. Not run: it needs a Redis server.
func ExampleWithStore_tiered() {
	ctx := context.Background()
	// The tiered store counts L1 lookups itself: give L1 a no-op provider.
	l1, err := memory.New(memory.Options{MeterProvider: metricnoop.NewMeterProvider()})
	if err != nil {
		panic(err)
	}
	defer l1.Close()
	l2, err := redis.NewFromURL(ctx, "redis://localhost:6379/0", redis.Options{KeyPrefix: "ayz_auth"})
	if err != nil {
		panic(err)
	}
	defer l2.Close()
	store, err := tiered.New(l1, l2, tiered.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close() // deferred calls run in reverse: store, then L2, then L1

	// STYTCH_PROJECT_ID and STYTCH_SECRET from the process environment.
	stack, err := echostytch.FromEnv(ctx, nil, echostytch.WithStore(store))
	if err != nil {
		panic(err)
	}
	defer stack.Close() // runs first: Stack.Close leaves the store open

	e := echo.New()
	e.Use(echostytch.New(stack.Config))
	_ = e.Start(":8080")
}

// Command basic is the example server of ayz-auth for Go: the Python
// package's Quick Start, in Echo.
//
// It reads its configuration from the environment (STYTCH_* variables, see
// the README) and ADDR (default localhost:8080). With no STYTCH_PROJECT_ID
// it runs in demo mode: it starts the embedded Stytch emulator, creates a
// demo organization with three members (plain, with the custom claim
// "admin", and one who completed MFA) and prints ready-to-paste curl
// commands.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sethvargo/go-envconfig"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down: the HTTP server first, then
// the caches and the verifier.
func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	addr := cmp.Or(getenv("ADDR"), "localhost:8080")
	lookuper := envconfig.OsLookuper()
	var demo *demoData
	if getenv("STYTCH_PROJECT_ID") == "" {
		emu := stytchtest.New()
		defer emu.Close()
		var err error
		if demo, err = createDemo(emu); err != nil {
			return err
		}
		lookuper = envconfig.MultiLookuper(envconfig.MapLookuper(map[string]string{
			"STYTCH_PROJECT_ID": emu.ProjectID(),
			"STYTCH_SECRET":     emu.Secret(),
			"STYTCH_BASE_URL":   emu.URL(),
		}), envconfig.OsLookuper())
	}
	stack, err := echostytch.FromEnv(ctx, lookuper)
	if err != nil {
		return err
	}
	defer stack.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	e := newServer(stack)
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	base := "http://" + displayAddr(addr, ln.Addr())
	fmt.Fprintf(out, "Listening on %s (cache backend: %s)\n", base, stack.Settings.CacheBackend)
	if demo != nil {
		demo.print(out, base, stack.Settings.ProjectID)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newServer mounts the routes of the seed's Quick Start.
func newServer(stack *echostytch.Stack) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true

	auth := echostytch.New(stack.Config)
	optionalCfg := stack.Config
	optionalCfg.Optional = true
	optional := echostytch.New(optionalCfg)

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, status{Status: "ok"})
	})
	e.GET("/protected", func(c echo.Context) error {
		m := echostytch.MustMember(c)
		return c.JSON(http.StatusOK, greeting{
			Message:        "Hello " + m.MemberEmail,
			MemberID:       m.MemberID,
			OrganizationID: m.OrganizationID,
		})
	}, auth)
	e.GET("/user-info", func(c echo.Context) error {
		m := echostytch.MustMember(c)
		factors := m.AuthenticationFactors
		if factors == nil {
			factors = []string{}
		}
		return c.JSON(http.StatusOK, userInfo{
			MemberID:              m.MemberID,
			Email:                 m.MemberEmail,
			Name:                  m.MemberName,
			OrganizationID:        m.OrganizationID,
			SessionExpiresAt:      m.ExpiresAt.UTC().Format(time.RFC3339),
			AuthenticationFactors: factors,
		})
	}, auth)
	e.GET("/optional-auth", func(c echo.Context) error {
		if m, ok := echostytch.Member(c); ok {
			return c.JSON(http.StatusOK, message{Message: "Hello " + m.MemberEmail})
		}
		return c.JSON(http.StatusOK, message{Message: "Hello anonymous user"})
	}, optional)
	e.GET("/admin", func(c echo.Context) error {
		return c.JSON(http.StatusOK, message{Message: "Admin access granted"})
	}, auth, echostytch.RequireClaims("admin"))
	e.GET("/sensitive", func(c echo.Context) error {
		return c.JSON(http.StatusOK, message{Message: "MFA verified access"})
	}, auth, echostytch.RequireFactors("mfa"))
	e.POST("/logout", stack.Logout(), auth)
	return e
}

// displayAddr shows the address as configured, with the port actually
// bound (ADDR may ask for port 0).
func displayAddr(configured string, bound net.Addr) string {
	host, _, err := net.SplitHostPort(configured)
	_, port, err2 := net.SplitHostPort(bound.String())
	if err != nil || err2 != nil {
		return bound.String()
	}
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Response bodies. Typed responses (rather than maps) encode several times
// faster and fix the field order.
type (
	status struct {
		Status string `json:"status"`
	}
	message struct {
		Message string `json:"message"`
	}
	greeting struct {
		Message        string `json:"message"`
		MemberID       string `json:"member_id"`
		OrganizationID string `json:"organization_id"`
	}
	userInfo struct {
		MemberID              string   `json:"member_id"`
		Email                 string   `json:"email"`
		Name                  string   `json:"name"`
		OrganizationID        string   `json:"organization_id"`
		SessionExpiresAt      string   `json:"session_expires_at"`
		AuthenticationFactors []string `json:"authentication_factors"`
	}
)

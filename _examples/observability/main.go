// Command observability is the example server with OpenTelemetry metrics
// exported for Prometheus: the middleware, the caches and the Stytch client
// record through the OpenTelemetry API; this program installs the SDK's
// MeterProvider with the Prometheus exporter and serves the metrics at
// /metrics. It lives in its own module so that the SDK and the exporter
// stay out of the library's dependencies.
//
// It reads the STYTCH_* variables (see the README) and ADDR (default
// localhost:8080). With no STYTCH_PROJECT_ID it runs in demo mode against
// the embedded Stytch emulator, with two members, and prints curl commands.
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
	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sethvargo/go-envconfig"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

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

// app is the service: the stack, its metrics pipeline and its routes, and in
// demo mode the emulator and the demo sessions.
type app struct {
	emu   *stytchtest.Server // nil unless demo mode
	demo  *demoData
	stack *echostytch.Stack
	mp    *sdkmetric.MeterProvider
	e     *echo.Echo
}

// getenvLookuper reads the settings through getenv (an empty value is unset).
type getenvLookuper func(string) string

func (g getenvLookuper) Lookup(key string) (string, bool) {
	v := g(key)
	return v, v != ""
}

func newApp(ctx context.Context, getenv func(string) string) (_ *app, err error) {
	a := &app{}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	var lookuper envconfig.Lookuper = getenvLookuper(getenv)
	if getenv("STYTCH_PROJECT_ID") == "" {
		a.emu = stytchtest.New()
		if a.demo, err = createDemo(a.emu); err != nil {
			return nil, err
		}
		lookuper = envconfig.MultiLookuper(envconfig.MapLookuper(map[string]string{
			"STYTCH_PROJECT_ID": a.emu.ProjectID(),
			"STYTCH_SECRET":     a.emu.Secret(),
			"STYTCH_BASE_URL":   a.emu.URL(),
		}), lookuper)
	}

	// The metrics pipeline: the SDK's MeterProvider, read by the Prometheus
	// exporter, which registers with a registry of our own that /metrics
	// serves. Passing the provider to FromEnv reaches every part of the
	// stack; otel.SetMeterProvider(a.mp) would do the same globally.
	reg := promclient.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	a.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))

	if a.stack, err = echostytch.FromEnv(ctx, lookuper, echostytch.WithMeterProvider(a.mp)); err != nil {
		return nil, err
	}
	a.e = newServer(a.stack, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return a, nil
}

// Close releases the stack, the metrics pipeline and the emulator; call it
// after the HTTP server has stopped.
func (a *app) Close() {
	if a.stack != nil {
		_ = a.stack.Close()
	}
	if a.mp != nil {
		_ = a.mp.Shutdown(context.Background())
	}
	if a.emu != nil {
		a.emu.Close()
	}
}

// run serves until ctx ends, then shuts down: the HTTP server first, then
// the stack.
func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	a, err := newApp(ctx, getenv)
	if err != nil {
		return err
	}
	defer a.Close()
	addr := cmp.Or(getenv("ADDR"), "localhost:8080")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "Listening on %s (cache backend: %s); metrics at %s/metrics\n", base, a.stack.Settings.CacheBackend, base)
	if a.demo != nil {
		a.demo.print(out, base)
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

// newServer mounts a subset of _examples/basic's routes, and /metrics.
func newServer(stack *echostytch.Stack, metrics http.Handler) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true

	auth := echostytch.New(stack.Config)
	optionalCfg := stack.Config
	optionalCfg.Optional = true
	optional := echostytch.New(optionalCfg)

	e.GET("/metrics", echo.WrapHandler(metrics))
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/protected", func(c echo.Context) error {
		m := echostytch.MustMember(c)
		return c.JSON(http.StatusOK, map[string]string{"message": "Hello " + m.MemberEmail})
	}, auth)
	e.GET("/optional-auth", func(c echo.Context) error {
		if m, ok := echostytch.Member(c); ok {
			return c.JSON(http.StatusOK, map[string]string{"message": "Hello " + m.MemberEmail})
		}
		return c.JSON(http.StatusOK, map[string]string{"message": "Hello anonymous user"})
	}, optional)
	e.GET("/admin", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"message": "Admin access granted"})
	}, auth, echostytch.RequireClaims("admin"))
	e.POST("/logout", stack.Logout(), auth)
	return e
}

// demoData holds the demo members' sessions.
type demoData struct {
	plain, admin stytchtest.Session
}

// createDemo creates an organization with a plain member and one whose
// session carries the custom claim "admin".
func createDemo(emu *stytchtest.Server) (*demoData, error) {
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Demo Inc", Slug: "demo"})
	var d demoData
	for _, m := range []struct {
		email string
		into  *stytchtest.Session
		p     stytchtest.SessionParams
	}{
		{"ada@demo.test", &d.plain, stytchtest.SessionParams{Duration: 24 * time.Hour}},
		{"grace@demo.test", &d.admin, stytchtest.SessionParams{Duration: 24 * time.Hour, CustomClaims: map[string]any{"admin": true}}},
	} {
		member, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: m.email})
		if err != nil {
			return nil, err
		}
		if *m.into, err = emu.CreateSession(member.ID, m.p); err != nil {
			return nil, err
		}
	}
	return &d, nil
}

func (d *demoData) print(w io.Writer, base string) {
	fmt.Fprintf(w, `
Demo mode: the embedded Stytch emulator answers. Send some traffic, then read the metrics:

  curl -H 'Authorization: Bearer %s' %s/protected     # a miss, then hits
  curl -H 'Authorization: Bearer %s' %s/admin         # 403: no admin claim
  curl -H 'Authorization: Bearer %s' %s/admin         # the admin member
  curl -H 'Authorization: Bearer unknownSessionToken0123456789abcdefghijklmn' %s/protected   # 401
  curl %s/optional-auth                                                                        # anonymous
  curl -s %s/metrics | grep ^ayzauth_

`, d.plain.Token, base, d.plain.Token, base, d.admin.Token, base, base, base, base)
}

// Command rbac is a small multi-tenant API of ayz-auth for Go: documents
// that belong to organizations, with read, write and delete routes guarded
// by Stytch B2B RBAC, evaluated locally against the project's policy.
//
//	GET    /orgs/:org/documents      documents:read
//	POST   /orgs/:org/documents      documents:write   body {"title": "..."}
//	DELETE /orgs/:org/documents/:id  documents:delete
//
// :org is the organization's ID or slug, and must be the session's own
// organization (else 403). Roles are defined in the Stytch dashboard (the
// demo defines viewer, editor and admin).
//
// It reads its configuration from the environment (STYTCH_* variables, see
// the README) and ADDR (default localhost:8080). With no STYTCH_PROJECT_ID
// it runs in demo mode: it starts the embedded Stytch emulator, sets a demo
// policy, creates two organizations with a viewer, an editor and an admin
// each, and prints ready-to-paste curl commands.
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
// the policy cache, the caches and the verifier.
func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	addr := cmp.Or(getenv("ADDR"), "localhost:8080")
	lookuper := envconfig.OsLookuper()
	var demo *demoData
	if getenv("STYTCH_PROJECT_ID") == "" {
		emu := stytchtest.New(stytchtest.WithPolicy(demoPolicy()))
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
	st := newStore()
	if demo != nil {
		demo.seed(st)
	}
	e := newServer(stack, st)
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

// newServer mounts the API. Every /orgs/:org route authenticates the
// session, checks that :org is the session's organization, then checks
// the permission the route needs. Handlers key the store by the session's
// organization ID, never by the path, so a slug and an ID reach the same
// documents.
func newServer(stack *echostytch.Stack, st *store) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})

	org := e.Group("/orgs/:org", echostytch.New(stack.Config), echostytch.RequireOrganization("org"))
	can := func(action string) echo.MiddlewareFunc {
		return echostytch.RequirePermission(stack.Policy, "documents", action)
	}
	org.GET("/documents", func(c echo.Context) error {
		m := echostytch.MustMember(c)
		return c.JSON(http.StatusOK, map[string]any{
			"organization_id": m.OrganizationID,
			"documents":       st.list(m.OrganizationID),
		})
	}, can("read"))
	org.POST("/documents", func(c echo.Context) error {
		m := echostytch.MustMember(c)
		title, err := readTitle(c)
		if err != nil {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": "bad_request", "message": err.Error()})
		}
		d, ok := st.add(m.OrganizationID, title, m.MemberID)
		if !ok {
			return c.JSON(http.StatusConflict, map[string]string{"error": "too_many_documents", "message": "The organization has too many documents"})
		}
		return c.JSON(http.StatusCreated, d)
	}, can("write"))
	org.DELETE("/documents/:id", func(c echo.Context) error {
		m := echostytch.MustMember(c)
		if !st.remove(m.OrganizationID, c.Param("id")) {
			return c.JSON(http.StatusNotFound, map[string]string{"error": "not_found", "message": "No such document"})
		}
		return c.NoContent(http.StatusNoContent)
	}, can("delete"))
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

package echostytch_test

import (
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
)

func TestRequirements(t *testing.T) {
	ok := func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"message": "ok"}) }
	tests := []struct {
		name    string
		mw      echo.MiddlewareFunc
		token   string
		status  int
		code    string
		message string
		kind    error
		missing []string
	}{
		{"claim present with value false", echostytch.RequireClaims("admin"), tokAdmin, 200, "", "", nil, nil},
		{"claim missing", echostytch.RequireClaims("admin"), tokPlain, 403, "insufficient_permissions",
			"Missing required claims: [admin]", echostytch.ErrInsufficientPermissions, []string{"admin"}},
		{"several claims missing, in order", echostytch.RequireClaims("b", "admin", "a"), tokAdmin, 403, "insufficient_permissions",
			"Missing required claims: [b, a]", echostytch.ErrInsufficientPermissions, []string{"b", "a"}},
		{"claims with nil map", echostytch.RequireClaims("admin"), tokMFA, 403, "insufficient_permissions",
			"Missing required claims: [admin]", echostytch.ErrInsufficientPermissions, []string{"admin"}},
		{"mfa by totp", echostytch.RequireFactors("mfa"), tokMFA, 200, "", "", nil, nil},
		{"mfa by otp", echostytch.RequireFactors("mfa"), tokSMS, 200, "", "", nil, nil},
		{"mfa missing", echostytch.RequireFactors("mfa"), tokPlain, 403, "insufficient_authentication",
			"Missing required authentication factors: [mfa]", echostytch.ErrInsufficientAuthentication, []string{"mfa"}},
		{"sms delivery method", echostytch.RequireFactors("sms"), tokSMS, 200, "", "", nil, nil},
		{"sms missing", echostytch.RequireFactors("mfa", "sms"), tokMFA, 403, "insufficient_authentication",
			"Missing required authentication factors: [sms]", echostytch.ErrInsufficientAuthentication, []string{"sms"}},
		{"factor type", echostytch.RequireFactors("password"), tokAdmin, 200, "", "", nil, nil},
		{"factor by delivery method email", echostytch.RequireFactors("email"), tokPlain, 200, "", "", nil, nil},
		{"role present", echostytch.RequireRoles("stytch_admin"), tokAdmin, 200, "", "", nil, nil},
		{"role missing", echostytch.RequireRoles("stytch_admin", "billing"), tokPlain, 403, "insufficient_permissions",
			"Missing required roles: [stytch_admin, billing]", echostytch.ErrInsufficientPermissions, []string{"stytch_admin", "billing"}},
		{"claims before factors", echostytch.Require(echostytch.Requirements{Claims: []string{"admin"}, Factors: []string{"mfa"}}),
			tokPlain, 403, "insufficient_permissions", "Missing required claims: [admin]", echostytch.ErrInsufficientPermissions, []string{"admin"}},
		{"factors after claims pass", echostytch.Require(echostytch.Requirements{Claims: []string{"admin"}, Factors: []string{"mfa"}}),
			tokAdmin, 403, "insufficient_authentication", "Missing required authentication factors: [mfa]",
			echostytch.ErrInsufficientAuthentication, []string{"mfa"}},
		{"roles before factors", echostytch.Require(echostytch.Requirements{Roles: []string{"x"}, Factors: []string{"mfa"}}),
			tokPlain, 403, "insufficient_permissions", "Missing required roles: [x]", echostytch.ErrInsufficientPermissions, []string{"x"}},
		{"all satisfied", echostytch.Require(echostytch.Requirements{Claims: []string{"admin"}, Roles: []string{"stytch_admin"},
			Factors: []string{"password"}}), tokAdmin, 200, "", "", nil, nil},
		{"empty requirements", echostytch.Require(echostytch.Requirements{}), tokPlain, 200, "", "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got error
			e := newEcho(t, echostytch.Config{Verifier: newFake(), ErrorHandler: func(c echo.Context, err error) error {
				got = err
				return echostytch.WriteError(c, err, "")
			}}, func(e *echo.Echo) { e.GET("/req", ok, tc.mw) })
			rec := serve(e, get("/req", "Authorization", "Bearer "+tc.token))
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.status == 200 {
				assert.Nil(t, got)
				return
			}
			assert.Equal(t, body{tc.code, tc.message, "authorization"}, decode(t, rec))
			assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
			assert.ErrorIs(t, got, tc.kind)
			var ee *echostytch.Error
			require.ErrorAs(t, got, &ee)
			assert.Equal(t, tc.missing, ee.Missing)
		})
	}
}

func TestRequirementWithoutSession(t *testing.T) {
	ok := func(c echo.Context) error { return c.NoContent(204) }

	// Optional middleware, anonymous request: 401 through the configured handler.
	var got error
	e := newEcho(t, echostytch.Config{Verifier: newFake(), Optional: true, Realm: "opt",
		ErrorHandler: func(c echo.Context, err error) error {
			got = err
			return echostytch.WriteError(c, err, "opt")
		}}, func(e *echo.Echo) { e.GET("/admin", ok, echostytch.RequireClaims("admin")) })
	rec := serve(e, get("/admin"))
	assert.Equal(t, 401, rec.Code)
	assert.Equal(t, body{"authentication_failed", "Authorization header is required", "token_extraction"}, decode(t, rec))
	assert.Equal(t, `Bearer realm="opt"`, rec.Header().Get("WWW-Authenticate"))
	assert.ErrorIs(t, got, echostytch.ErrTokenMissing)
	// Optional, authenticated and entitled.
	rec = serve(e, get("/admin", "Authorization", "Bearer "+tokAdmin))
	assert.Equal(t, 204, rec.Code)

	// No middleware at all: default writer.
	e2 := echo.New()
	e2.GET("/admin", ok, echostytch.RequireClaims("admin"))
	rec = serve(e2, get("/admin", "Authorization", "Bearer "+tokAdmin))
	assert.Equal(t, 401, rec.Code)
	assert.Equal(t, challengeMissing, rec.Header().Get("WWW-Authenticate"))

	// Skipped by the Skipper.
	e3 := newEcho(t, echostytch.Config{Verifier: newFake(), Skipper: func(echo.Context) bool { return true }},
		func(e *echo.Echo) { e.GET("/admin", ok, echostytch.RequireClaims("admin")) })
	assert.Equal(t, 401, serve(e3, get("/admin", "Authorization", "Bearer "+tokAdmin)).Code)
}

func TestRequireCopiesItsArguments(t *testing.T) {
	claims := []string{"admin"}
	mw := echostytch.RequireClaims(claims...)
	claims[0] = "other"
	e := newEcho(t, echostytch.Config{Verifier: newFake()}, func(e *echo.Echo) {
		e.GET("/a", func(c echo.Context) error { return c.NoContent(204) }, mw)
	})
	assert.Equal(t, 204, serve(e, get("/a", "Authorization", "Bearer "+tokAdmin)).Code)
}

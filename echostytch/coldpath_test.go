package echostytch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// coldConcurrency is the number of simultaneous requests for one token.
const coldConcurrency = 1000

// 1000 concurrent requests for one uncached token, through the middleware
// of a FromEnv stack, make exactly one Stytch call (counted at the
// emulator), with each cache backend; 1000 concurrent requests with one
// rejected token make at most one. The emulator holds its answer back so
// that every request arrives while the first verification is in flight.
func TestColdPathOneStytchCall(t *testing.T) {
	type backend struct {
		name string
		env  map[string]string
	}
	backends := []backend{{"memory", nil}}
	if _, err := exec.LookPath("redis-server"); err == nil {
		url := "redis://" + redistest.Start(t).Addr()
		backends = append(backends,
			backend{"redis", map[string]string{"STYTCH_REDIS_URL": url}},
			backend{"tiered", map[string]string{"STYTCH_REDIS_URL": url, "STYTCH_CACHE_BACKEND": "tiered"}})
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			emu := stytchtest.New()
			defer emu.Close()
			sess := sessionFixture(t, emu)

			env := map[string]string{
				"STYTCH_PROJECT_ID": emu.ProjectID(), "STYTCH_SECRET": emu.Secret(),
				"STYTCH_BASE_URL": emu.URL(), "STYTCH_LOG_LEVEL": "ERROR",
			}
			for k, v := range b.env {
				env[k] = v
			}
			stack, err := echostytch.FromEnv(context.Background(), envconfig.MapLookuper(env))
			require.NoError(t, err)
			defer stack.Close()
			if r, ok := stack.Store.(interface{ Ready() <-chan struct{} }); ok {
				select { // the Redis store connects in the background
				case <-r.Ready():
				case <-time.After(10 * time.Second):
					t.Fatal("Redis store did not connect")
				}
			}
			e := echo.New()
			e.GET("/r", func(c echo.Context) error {
				return c.String(http.StatusOK, echostytch.MustMember(c).MemberID)
			}, echostytch.New(stack.Config))

			codes := coldBurst(e, "Bearer "+sess.Token, func() {
				emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 300 * time.Millisecond, Times: 1})
			})
			require.Equal(t, map[int]int{http.StatusOK: coldConcurrency}, codes)
			require.Equal(t, 1, emu.Calls(stytchtest.Authenticate), "Stytch calls for %d concurrent requests", coldConcurrency)

			// The same again: served from the cache. (With Redis, within
			// the own-write window each request reads Redis over the
			// network under a 100 ms deadline, and a read that misses it
			// falls back to Stytch by design: on a loaded machine that can
			// cost a call, so the count is checked in process only.)
			codes = coldBurst(e, "Bearer "+sess.Token, func() {})
			require.Equal(t, map[int]int{http.StatusOK: coldConcurrency}, codes)
			if b.name == "memory" {
				require.Equal(t, 1, emu.Calls(stytchtest.Authenticate))
			}

			// A token Stytch rejects: at most one call per negative-cache period.
			emu.ResetCalls()
			codes = coldBurst(e, "Bearer "+"unknownSessionToken0123456789abcdefghijklmn", func() {
				emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 300 * time.Millisecond, Times: 1})
			})
			require.Equal(t, map[int]int{http.StatusUnauthorized: coldConcurrency}, codes)
			require.Equal(t, 1, emu.Calls(stytchtest.Authenticate))
		})
	}
}

// coldBurst sends coldConcurrency requests at once (after prepare) and
// counts the answers by status.
func coldBurst(e *echo.Echo, auth string, prepare func()) map[int]int {
	prepare()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range coldConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodGet, "/r", nil)
			req.Header.Set(echo.HeaderAuthorization, auth)
			rec := httptest.NewRecorder()
			<-start
			e.ServeHTTP(rec, req)
			mu.Lock()
			codes[rec.Code]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return codes
}

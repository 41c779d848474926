package echostytch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// leakIgnores are the rueidis goroutines that sleep past Client.Close and
// end by themselves (see cache/redis's TestMain).
var leakIgnores = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
}

// TestGracefulShutdownUnderTraffic: traffic (hits, misses with a slow
// Stytch, logouts) runs against a real HTTP server on each backend; the
// server shuts down while requests are in flight, then Stack.Close
// releases everything. Nothing panics (ristretto's Close never races a Set:
// the memo and the L1 are closed after the server stopped, and late fills
// are refused), the stack refuses further work, and no goroutine is left.
func TestGracefulShutdownUnderTraffic(t *testing.T) {
	srv := redistest.Start(t)
	for _, backend := range []string{"memory", "redis", "tiered"} {
		t.Run(backend, func(t *testing.T) {
			ignore := append([]goleak.Option{goleak.IgnoreCurrent()}, leakIgnores...)
			emu := stytchtest.New()
			env := map[string]string{"STYTCH_CACHE_BACKEND": backend}
			if backend != "memory" {
				env["STYTCH_REDIS_URL"] = "redis://" + srv.Addr()
			}
			r := newRig(t, emu, env)
			var tokens []string
			for range 20 {
				s := r.session(t, stytchtest.SessionParams{})
				tokens = append(tokens, s.Token, s.JWT)
			}
			// Misses wait on Stytch, so flights are in progress at shutdown.
			emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Delay: 50 * time.Millisecond})
			hs := httptest.NewServer(r.e)
			client := hs.Client()

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var served, failed atomic.Int64
			for w := range 8 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						tok := tokens[(w*7+i)%len(tokens)]
						method := http.MethodGet
						if i%50 == 49 {
							method = http.MethodPost
						}
						path := map[string]string{http.MethodGet: "/p", http.MethodPost: "/logout"}[method]
						ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
						req, _ := http.NewRequestWithContext(ctx, method, hs.URL+path, nil)
						req.Header.Set("Authorization", "Bearer "+tok)
						resp, err := client.Do(req)
						cancel()
						if err != nil {
							failed.Add(1) // the server went away
							continue
						}
						resp.Body.Close()
						served.Add(1)
						assert.Contains(t, []int{200, 204, 401, 503}, resp.StatusCode)
					}
				})
			}
			time.Sleep(400 * time.Millisecond)
			// The order Stack.Close documents: the HTTP server first...
			hs.Close()
			close(stop)
			wg.Wait()
			// ...then everything the stack started.
			require.NoError(t, r.stack.Close())
			require.NoError(t, r.stack.Close(), "idempotent")
			t.Logf("%s: %d requests served, %d cut by the shutdown", backend, served.Load(), failed.Load())
			assert.Positive(t, served.Load())

			// A closed stack refuses work instead of panicking.
			_, err := r.stack.Cache.Verify(context.Background(), tokens[0])
			_ = err
			_, err = r.stack.Store.Get(context.Background(), "k")
			require.Error(t, err)
			emu.Close()
			client.CloseIdleConnections()
			goleak.VerifyNone(t, ignore...)
		})
	}
}

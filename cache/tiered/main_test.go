package tiered_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/ayzauth/ayzauth/internal/redistest"
	"go.uber.org/goleak"
)

// sharedAddr is the address of a redis-server started for the example and
// benchmarks.
var sharedAddr string

func TestMain(m *testing.M) {
	if !redistest.RequireServer() {
		fmt.Println("skipping: redis-server not on PATH")
		os.Exit(0)
	}
	srv, err := redistest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedAddr = srv.Addr()
	code := m.Run()
	srv.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

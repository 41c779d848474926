package redis

import (
	"fmt"
	"os"
	"testing"

	"github.com/ayzauth/ayzauth/internal/redistest"
	"go.uber.org/goleak"
)

// exampleAddr is the address of a redis-server started for the examples.
var exampleAddr string

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
	exampleAddr = srv.Addr()
	code := m.Run()
	srv.Stop()
	if code == 0 {
		if err := goleak.Find(leakOptions...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// leakOptions ignores the rueidis cluster goroutines that genuinely
// outlive Client.Close, because they sleep uninterruptibly before acting
// (and end by themselves): the delayed topology refresh (singleflight.go
// DelayDo, up to ~1 s) and the delayed close of connections removed by a
// refresh (cluster.go _refresh, 5 s).
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
}

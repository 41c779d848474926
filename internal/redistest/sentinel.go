package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sentinel is a redis-server in Sentinel mode started by StartSentinel.
type Sentinel struct {
	s         *Server
	masterSet string
}

// StartSentinel starts a Sentinel on a free loopback port that monitors
// master under the name masterSet (quorum 1, down-after-milliseconds
// 1000), and waits until it reports master's address for masterSet
// (SENTINEL GET-MASTER-ADDR-BY-NAME). Its configuration file, which
// Sentinel rewrites, is in its own t.TempDir(). It is stopped at cleanup
// like a Server.
func StartSentinel(t testing.TB, masterSet string, master *Server) *Sentinel {
	t.Helper()
	x := &Sentinel{
		s:         &Server{t: t, bin: lookup(t, "redis-server"), dir: t.TempDir()},
		masterSet: masterSet,
	}
	var err error
	for range 5 { // a free port can be taken between probing and binding
		if x.s.port, err = freePort(false); err != nil {
			continue
		}
		if err = x.start(master.Port()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start sentinel: %v", err)
	}
	t.Cleanup(x.s.Stop)

	want := []any{"127.0.0.1", strconv.Itoa(master.Port())}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := x.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterSet)
		if err == nil && fmt.Sprint(r) == fmt.Sprint(want) {
			return x
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: sentinel does not report master %s at %v after 10s: %v, %v; log:\n%s", masterSet, want, r, err, x.s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start writes the configuration file and starts the Sentinel process,
// waiting until it answers PING. Sentinel mode needs the configuration
// file as the first argument, so it gives Server.launch its own
// arguments instead of using Server.start.
func (x *Sentinel) start(masterPort int) error {
	s := x.s
	conf := filepath.Join(s.dir, "sentinel.conf")
	text := strings.Join([]string{
		"port " + strconv.Itoa(s.port),
		"bind 127.0.0.1",
		"daemonize no",
		"dir " + s.dir,
		"logfile redis.log",
		"sentinel monitor " + x.masterSet + " 127.0.0.1 " + strconv.Itoa(masterPort) + " 1",
		"sentinel down-after-milliseconds " + x.masterSet + " 1000",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	stderr, err := os.Create(filepath.Join(s.dir, "stderr.log"))
	if err != nil {
		return err
	}
	defer stderr.Close() // the child has its own descriptor
	return s.launch("sentinel", []string{conf, "--sentinel"}, stderr)
}

// Addr returns the Sentinel's "127.0.0.1:port" address.
func (x *Sentinel) Addr() string { return x.s.Addr() }

// Port returns the Sentinel's TCP port.
func (x *Sentinel) Port() int { return x.s.Port() }

// Dir returns the Sentinel's working directory (sentinel.conf, redis.log).
func (x *Sentinel) Dir() string { return x.s.Dir() }

// Running reports whether the process is alive.
func (x *Sentinel) Running() bool { return x.s.Running() }

// Do sends one command to the Sentinel; see Server.Do.
func (x *Sentinel) Do(args ...string) (any, error) { return x.s.Do(args...) }

// MustDo is Do that fails the test on error.
func (x *Sentinel) MustDo(args ...string) any {
	x.s.t.Helper()
	return x.s.MustDo(args...)
}

// Stop shuts the Sentinel down and waits for it to exit; see Server.Stop.
func (x *Sentinel) Stop() { x.s.Stop() }

// Kill kills the Sentinel with SIGKILL and waits for it to exit.
func (x *Sentinel) Kill() { x.s.Kill() }

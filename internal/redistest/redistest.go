// Package redistest starts throwaway redis-server processes for tests.
//
// Servers listen on a free loopback port with persistence off and their
// working directory in t.TempDir(). They are stopped by PID at cleanup
// (SHUTDOWN NOSAVE, then SIGKILL). If redis-server is not on PATH, Start
// skips the test, or fails it when the environment variable CI is "true".
//
// The package never touches a Redis it did not start.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Option configures Start.
type Option func(*config)

type config struct {
	args []string
}

// WithArgs adds command-line arguments to redis-server, for instance
// WithArgs("--rename-command", "CLIENT", "").
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is a redis-server process started by Start.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string

	ownDir bool // StartMain: remove dir on Stop

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Lookup returns the path of the named binary, skipping the test when it is
// missing (failing it when CI=true).
func lookup(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redistest: %s not found on PATH (required when CI=true): %v", name, err)
		}
		t.Skipf("redistest: %s not found on PATH: %v", name, err)
	}
	return p
}

// Start starts a redis-server on a free loopback port and registers its
// shutdown with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	s := &Server{t: t, bin: lookup(t, "redis-server"), dir: t.TempDir(), args: c.args}
	var err error
	for range 5 { // a free port can be taken between probing and binding
		s.port, err = freePort(false)
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartMain starts a redis-server outside any test, for TestMain and
// examples. It returns an error wrapping ErrNoServer when redis-server is
// not on PATH. The caller must call Stop. Methods that report through a
// testing.TB (MustDo, Info, CommandCalls, ResetStats, Restart) must not be
// used on it.
func StartMain(opts ...Option) (*Server, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoServer, err)
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, args: c.args, ownDir: true}
	for range 5 {
		if s.port, err = freePort(false); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			return s, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

// ErrNoServer is returned by StartMain when redis-server is not on PATH.
var ErrNoServer = errors.New("redistest: redis-server not found")

// RequireServer reports whether tests needing redis-server can run: false
// when it is missing (callers then skip), or exits the process with status
// 1 when it is missing and CI=true. For TestMain.
func RequireServer() bool {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "redistest: redis-server not found on PATH (required when CI=true)")
			os.Exit(1)
		}
		return false
	}
	return true
}

func freePort(needBus bool) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !needBus {
			l.Close()
			return port, nil
		}
		// Cluster nodes also bind port+10000 for the cluster bus.
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		l.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return port, nil
	}
	return 0, errors.New("no free port")
}

func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "redis.log",
	}
	args = append(args, s.args...)
	return s.launch("redis-server", args, nil)
}

// launch starts s.bin with args in s.dir (its output to out, if not nil)
// and waits until the process answers PING on s.port. what names the
// process in errors; an early exit reports the log, and what out received
// when it is an *os.File.
func (s *Server) launch(what string, args []string, out *os.File) error {
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			var output []byte
			if out != nil {
				output, _ = os.ReadFile(out.Name())
			}
			return fmt.Errorf("%s exited early; output:\n%s\nlog:\n%s", what, output, s.log())
		default:
		}
		r, err := s.Do("PING")
		var e *Error
		if (err == nil && r == "PONG") || (errors.As(err, &e) && strings.HasPrefix(e.Msg, "NOAUTH")) {
			return nil // NOAUTH: up, with requirepass
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("%s did not answer PING; log:\n%s", what, s.log())
}

func (s *Server) log() string {
	b, _ := os.ReadFile(s.dir + "/redis.log")
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Addr returns the server's "127.0.0.1:port" address.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Dir returns the server's working directory.
func (s *Server) Dir() string { return s.dir }

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Stop shuts the server down (SHUTDOWN NOSAVE, or SIGTERM if refused,
// then SIGKILL after 3 s) and
// waits for the process to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
	default:
		_, err := s.Do("SHUTDOWN", "NOSAVE")
		var e *Error
		if errors.As(err, &e) { // e.g. NOAUTH: ask by signal instead
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	s.mu.Lock()
	if s.cmd == cmd {
		s.cmd = nil
	}
	s.mu.Unlock()
	if s.ownDir {
		_ = os.RemoveAll(s.dir)
	}
}

// Kill kills the server with SIGKILL (connections are reset, nothing is
// sent) and waits for it to exit.
func (s *Server) Kill() { s.kill() }

func (s *Server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart stops the server if it runs and starts it again on the same port
// and directory (with an empty dataset, persistence being off).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for range 50 { // the port may linger briefly
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
}

// Do sends one command over a fresh connection and returns the decoded
// reply: string (simple and bulk strings), int64, nil (null), []any
// (arrays, maps flattened) or an error (*Error for server errors).
func (s *Server) Do(args ...string) (any, error) {
	return Do(s.Addr(), args...)
}

// MustDo is Do that fails the test on error.
func (s *Server) MustDo(args ...string) any {
	s.t.Helper()
	r, err := s.Do(args...)
	if err != nil {
		s.t.Fatalf("redistest: %v: %v", args, err)
	}
	return r
}

// Info returns the "field:value" pairs of INFO section.
func (s *Server) Info(section string) map[string]string {
	s.t.Helper()
	r, _ := s.MustDo("INFO", section).(string)
	m := make(map[string]string)
	for _, line := range strings.Split(r, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// CommandCalls returns the number of calls of cmd (for instance "get" or
// "client|caching") recorded in INFO commandstats.
func (s *Server) CommandCalls(cmd string) int {
	s.t.Helper()
	v, ok := s.Info("commandstats")["cmdstat_"+strings.ToLower(cmd)]
	if !ok {
		return 0
	}
	for _, f := range strings.Split(v, ",") {
		if n, ok := strings.CutPrefix(f, "calls="); ok {
			c, _ := strconv.Atoi(n)
			return c
		}
	}
	return 0
}

// ResetStats runs CONFIG RESETSTAT.
func (s *Server) ResetStats() { s.t.Helper(); s.MustDo("CONFIG", "RESETSTAT") }

// Error is a server error reply.
type Error struct{ Msg string }

func (e *Error) Error() string { return "redis: " + e.Msg }

// Do sends one command to addr over a fresh connection (2 s deadline) using
// RESP2 and returns the decoded reply; see Server.Do.
func Do(addr string, args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, err
	}
	r, err := readReply(bufio.NewReader(c))
	if e, ok := r.(*Error); ok && err == nil {
		return nil, e
	}
	return r, err
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redistest: empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return &Error{Msg: body}, nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]any, 0, n)
		for range n {
			v, err := readReply(r)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("redistest: unexpected reply %q", line)
}

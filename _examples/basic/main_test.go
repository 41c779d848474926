package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

var (
	buildOnce sync.Once
	buildDir  string // removed by removeBuildDir after the tests
	binPath   string
	buildErr  error
)

// removeBuildDir removes the directory build compiled into, if any.
func removeBuildDir() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// build compiles the example once per test run, into a temporary directory
// that removeBuildDir deletes at the end of the run.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ayzauth-basic")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		binPath = filepath.Join(dir, "basic")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// server is a running example binary.
type server struct {
	cmd    *exec.Cmd
	base   string
	stdout strings.Builder
	mu     sync.Mutex
	lines  chan string
}

// start runs the example with env (plus PATH/HOME) on a free port and waits
// for its "Listening on" line.
func start(t *testing.T, env map[string]string) *server {
	t.Helper()
	cmd := exec.Command(build(t))
	cmd.Env = []string{"ADDR=127.0.0.1:0", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	s := &server{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.stdout.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	listening := regexp.MustCompile(`^Listening on (http://\S+)`)
	timeout := time.After(30 * time.Second)
	for s.base == "" {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("server exited: %s", stderr.String())
			}
			if m := listening.FindStringSubmatch(l); m != nil {
				s.base = m[1]
			}
		case <-timeout:
			t.Fatalf("server did not start: %s", stderr.String())
		}
	}
	return s
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stdout.String()
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "clean exit on SIGTERM")
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, method, url string, hdr map[string]string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &r.body), "%s", raw)
	}
	return r
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// TestDemoMode: `make run` without any configuration prints curl commands
// that work, for every route of design.md §2.
func TestDemoMode(t *testing.T) {
	s := start(t, nil)
	// Wait for the printed commands.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.output(), "/logout") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := s.output()
	token := func(route string) string {
		m := regexp.MustCompile(`curl -H 'Authorization: Bearer (\S+)' ` + regexp.QuoteMeta(s.base+route) + `\n`).FindStringSubmatch(out)
		require.NotNil(t, m, "no curl line for %s in:\n%s", route, out)
		return m[1]
	}
	plain, admin := token("/protected"), token("/admin")
	jwtm := regexp.MustCompile(`stytch_session_jwt=(\S+)' `).FindStringSubmatch(out)
	require.NotNil(t, jwtm)

	r := call(t, "GET", s.base+"/healthz", nil)
	assert.Equal(t, 200, r.status)
	assert.Equal(t, map[string]any{"status": "ok"}, r.body)

	r = call(t, "GET", s.base+"/protected", bearer(plain))
	require.Equal(t, 200, r.status)
	assert.Equal(t, "Hello ada@demo.test", r.body["message"])
	assert.NotEmpty(t, r.body["member_id"])
	assert.NotEmpty(t, r.body["organization_id"])

	r = call(t, "GET", s.base+"/user-info", bearer(plain))
	require.Equal(t, 200, r.status)
	assert.Equal(t, "ada@demo.test", r.body["email"])
	assert.Equal(t, "Ada Lovelace", r.body["name"])
	assert.Equal(t, []any{"magic_link"}, r.body["authentication_factors"])
	_, err := time.Parse(time.RFC3339, r.body["session_expires_at"].(string))
	assert.NoError(t, err)

	r = call(t, "GET", s.base+"/optional-auth", bearer(plain))
	assert.Equal(t, "Hello ada@demo.test", r.body["message"])
	r = call(t, "GET", s.base+"/optional-auth", nil)
	assert.Equal(t, "Hello anonymous user", r.body["message"])
	r = call(t, "GET", s.base+"/optional-auth", bearer(strings.Repeat("x", 44)))
	assert.Equal(t, 200, r.status)
	assert.Equal(t, "Hello anonymous user", r.body["message"])

	r = call(t, "GET", s.base+"/admin", bearer(admin))
	assert.Equal(t, 200, r.status)
	assert.Equal(t, "Admin access granted", r.body["message"])
	r = call(t, "GET", s.base+"/admin", bearer(plain))
	assert.Equal(t, 403, r.status)
	assert.Equal(t, map[string]any{"error": "insufficient_permissions", "message": "Missing required claims: [admin]", "type": "authorization"}, r.body)

	r = call(t, "GET", s.base+"/sensitive", map[string]string{"Cookie": "stytch_session_jwt=" + jwtm[1]})
	assert.Equal(t, 200, r.status)
	assert.Equal(t, "MFA verified access", r.body["message"])
	r = call(t, "GET", s.base+"/sensitive", bearer(plain))
	assert.Equal(t, 403, r.status)
	assert.Equal(t, "insufficient_authentication", r.body["error"])

	r = call(t, "GET", s.base+"/protected", nil)
	assert.Equal(t, 401, r.status)
	assert.Equal(t, map[string]any{"error": "authentication_failed", "message": "Authorization header is required", "type": "token_extraction"}, r.body)
	assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer realm=")

	r = call(t, "POST", s.base+"/logout", bearer(plain))
	assert.Equal(t, 204, r.status)
	r = call(t, "GET", s.base+"/protected", bearer(plain))
	assert.Equal(t, 401, r.status)
	assert.Equal(t, "token_verification", r.body["type"])
	// Other members are unaffected.
	r = call(t, "GET", s.base+"/admin", bearer(admin))
	assert.Equal(t, 200, r.status)

	s.stop(t)
}

// TestAgainstEmulator: the example configured like production
// (STYTCH_PROJECT_ID, STYTCH_SECRET, STYTCH_BASE_URL) against an emulator
// the test owns, so calls can be counted.
func TestAgainstEmulator(t *testing.T) {
	emu := stytchtest.New()
	defer emu.Close()
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada@acme.test", Name: "Ada"})
	require.NoError(t, err)
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{CustomClaims: map[string]any{"admin": false}})
	require.NoError(t, err)

	s := start(t, map[string]string{
		"STYTCH_PROJECT_ID": emu.ProjectID(), "STYTCH_SECRET": emu.Secret(), "STYTCH_BASE_URL": emu.URL(),
		"STYTCH_LOG_LEVEL": "DEBUG",
	})
	assert.NotContains(t, s.output(), "Demo mode")

	for range 5 {
		r := call(t, "GET", s.base+"/protected", bearer(sess.Token))
		require.Equal(t, 200, r.status)
	}
	assert.Equal(t, 1, emu.Calls(stytchtest.Authenticate), "one Stytch call, then cache hits")
	r := call(t, "GET", s.base+"/admin", bearer(sess.Token))
	assert.Equal(t, 200, r.status, "a claim whose value is false is present")

	emu.InjectFault(stytchtest.Authenticate, stytchtest.Fault{Status: 503})
	other, err := emu.CreateSession(m.ID, stytchtest.SessionParams{})
	require.NoError(t, err)
	r = call(t, "GET", s.base+"/protected", bearer(other.Token))
	assert.Equal(t, 503, r.status)
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	assert.Equal(t, map[string]any{"error": "service_unavailable", "message": "Authentication service temporarily unavailable", "type": "stytch_api"}, r.body)
	r = call(t, "GET", s.base+"/protected", bearer(sess.Token))
	assert.Equal(t, 200, r.status, "cached sessions keep working during an outage")
	r = call(t, "GET", s.base+"/optional-auth", bearer(other.Token))
	assert.Equal(t, 200, r.status, "an outage makes optional auth anonymous")
	assert.Equal(t, "Hello anonymous user", r.body["message"])
	emu.ClearFaults()

	r = call(t, "POST", s.base+"/logout", map[string]string{"Cookie": "stytch_session=" + sess.Token})
	assert.Equal(t, 204, r.status)
	assert.Equal(t, 1, emu.Calls(stytchtest.Revoke))
	assert.Contains(t, strings.Join(r.header.Values("Set-Cookie"), "\n"), "stytch_session=;")
	r = call(t, "GET", s.base+"/protected", bearer(sess.Token))
	assert.Equal(t, 401, r.status)
	s.stop(t)
}

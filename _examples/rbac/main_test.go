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

// TestMain removes the build directory once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	removeBuildDir()
	os.Exit(code)
}

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
		dir, err := os.MkdirTemp("", "ayzauth-rbac")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		binPath = filepath.Join(dir, "rbac")
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
	mu     sync.Mutex
	stdout strings.Builder
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
			select {
			case s.lines <- sc.Text():
			default:
			}
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
	timeout := time.After(60 * time.Second)
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

// call sends a request with token (none if empty) and an optional JSON body.
func call(t *testing.T, method, url, token, body string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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

func forbidden(msg string) map[string]any {
	return map[string]any{"error": "insufficient_permissions", "message": msg, "type": "authorization"}
}

func titles(t *testing.T, r reply) []string {
	t.Helper()
	docs, ok := r.body["documents"].([]any)
	require.True(t, ok, "%v", r.body)
	var out []string
	for _, d := range docs {
		out = append(out, d.(map[string]any)["title"].(string))
	}
	return out
}

// TestDemoMode: `go run ./_examples/rbac` without any configuration prints
// tokens and curl commands that work: reads for every role, writes for
// editors and admins, deletes for admins, and no access across
// organizations.
func TestDemoMode(t *testing.T) {
	s := start(t, nil)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.output(), "even for its admin") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := s.output()
	tok := map[string]string{}
	for _, m := range regexp.MustCompile(`export (\w+)='(\S+)'`).FindAllStringSubmatch(out, -1) {
		tok[m[1]] = m[2]
	}
	require.Len(t, tok, 6, out)
	ids := regexp.MustCompile(`(?m)^  (acme|globex)\s+(organization-\S+)$`).FindAllStringSubmatch(out, -1)
	require.Len(t, ids, 2, out)
	acmeID := ids[0][2]
	assert.Contains(t, out, s.base+"/orgs/"+acmeID+"/documents")
	docs := s.base + "/orgs/acme/documents"

	r := call(t, "GET", s.base+"/healthz", "", "")
	assert.Equal(t, 200, r.status)

	// Read: every role, by slug or ID.
	for _, who := range []string{"ACME_VIEWER", "ACME_EDITOR", "ACME_ADMIN"} {
		r = call(t, "GET", docs, tok[who], "")
		require.Equal(t, 200, r.status, who)
		assert.Equal(t, []string{"Acme roadmap"}, titles(t, r))
		assert.Equal(t, acmeID, r.body["organization_id"])
	}
	r = call(t, "GET", s.base+"/orgs/"+acmeID+"/documents", tok["ACME_VIEWER"], "")
	assert.Equal(t, 200, r.status)

	// Write: editors and admins.
	r = call(t, "POST", docs, tok["ACME_VIEWER"], `{"title":"Nope"}`)
	assert.Equal(t, 403, r.status)
	assert.Equal(t, forbidden("Missing permission: documents:write"), r.body)
	r = call(t, "POST", docs, tok["ACME_EDITOR"], `{"title":"Launch plan"}`)
	require.Equal(t, 201, r.status, "%v", r.body)
	assert.Equal(t, "Launch plan", r.body["title"])
	launchID := r.body["id"].(string)
	r = call(t, "POST", docs, tok["ACME_ADMIN"], `{"title":"Admin note"}`)
	assert.Equal(t, 201, r.status)
	r = call(t, "POST", docs, tok["ACME_EDITOR"], `{"title":""}`)
	assert.Equal(t, 400, r.status)
	r = call(t, "POST", docs, tok["ACME_EDITOR"], `{"title":"`+strings.Repeat("x", 8000)+`"}`)
	assert.Equal(t, 400, r.status)
	r = call(t, "POST", docs, tok["ACME_VIEWER"], `not json`)
	assert.Equal(t, 403, r.status, "the permission is checked before the body is read")

	// Delete: admins only (the "*" action).
	r = call(t, "DELETE", docs+"/doc-1", tok["ACME_EDITOR"], "")
	assert.Equal(t, 403, r.status)
	assert.Equal(t, forbidden("Missing permission: documents:delete"), r.body)
	r = call(t, "DELETE", docs+"/doc-1", tok["ACME_VIEWER"], "")
	assert.Equal(t, 403, r.status)
	r = call(t, "DELETE", docs+"/doc-1", tok["ACME_ADMIN"], "")
	assert.Equal(t, 204, r.status)
	r = call(t, "DELETE", docs+"/doc-1", tok["ACME_ADMIN"], "")
	assert.Equal(t, 404, r.status)
	r = call(t, "GET", docs, tok["ACME_VIEWER"], "")
	assert.Equal(t, []string{"Launch plan", "Admin note"}, titles(t, r))

	// Tenancy: another organization's admin gets nowhere, by slug or ID.
	r = call(t, "GET", docs, tok["GLOBEX_ADMIN"], "")
	assert.Equal(t, 403, r.status)
	assert.Equal(t, forbidden("Not authorized for organization: acme"), r.body)
	r = call(t, "DELETE", s.base+"/orgs/"+acmeID+"/documents/"+launchID, tok["GLOBEX_ADMIN"], "")
	assert.Equal(t, 403, r.status)
	assert.Equal(t, forbidden("Not authorized for organization: "+acmeID), r.body)
	r = call(t, "GET", s.base+"/orgs/globex/documents", tok["GLOBEX_VIEWER"], "")
	require.Equal(t, 200, r.status)
	assert.Equal(t, []string{"Globex budget"}, titles(t, r), "each organization sees its own documents")
	r = call(t, "DELETE", s.base+"/orgs/globex/documents/"+launchID, tok["GLOBEX_ADMIN"], "")
	assert.Equal(t, 404, r.status, "an Acme document is not in Globex")

	// Authentication still comes first.
	r = call(t, "GET", docs, "", "")
	assert.Equal(t, 401, r.status)
	assert.Equal(t, "authentication_failed", r.body["error"])
	r = call(t, "GET", docs, strings.Repeat("x", 44), "")
	assert.Equal(t, 401, r.status)

	s.stop(t)
}

// TestAgainstEmulator: the example configured like production against an
// emulator the test owns: the permission checks cost no Stytch call per
// request, and a policy that cannot be loaded answers 503.
func TestAgainstEmulator(t *testing.T) {
	emu := stytchtest.New(stytchtest.WithPolicy(demoPolicy()))
	defer emu.Close()
	d, err := createDemo(emu)
	require.NoError(t, err)
	env := map[string]string{
		"STYTCH_PROJECT_ID": emu.ProjectID(), "STYTCH_SECRET": emu.Secret(), "STYTCH_BASE_URL": emu.URL(),
		"STYTCH_MAX_RETRIES": "0",
	}

	t.Run("policy endpoint down", func(t *testing.T) {
		emu.InjectFault(stytchtest.RBACPolicy, stytchtest.Fault{Status: 500})
		defer emu.ClearFaults()
		s := start(t, env)
		assert.NotContains(t, s.output(), "Demo mode")
		for _, role := range demoRoles {
			r := call(t, "GET", s.base+"/orgs/acme/documents", d.acme.sessions[role].Token, "")
			assert.Equal(t, 503, r.status, role)
			assert.Equal(t, map[string]any{"error": "service_unavailable", "message": "Authentication service temporarily unavailable", "type": "stytch_api"}, r.body)
			assert.NotEmpty(t, r.header.Get("Retry-After"))
		}
		r := call(t, "DELETE", s.base+"/orgs/acme/documents/doc-1", d.acme.sessions["admin"].Token, "")
		assert.Equal(t, 503, r.status, "never allow")
		assert.Equal(t, 1, emu.Calls(stytchtest.RBACPolicy), "a failed fetch is not retried on every request")
		s.stop(t)
	})

	emu.ResetCalls()
	s := start(t, env)
	var wg sync.WaitGroup
	for _, o := range []demoOrg{d.acme, d.globex} {
		for _, role := range demoRoles {
			wg.Go(func() {
				base := s.base + "/orgs/" + o.org.Slug + "/documents"
				for range 25 {
					r := call(t, "GET", base, o.sessions[role].Token, "")
					assert.Equal(t, 200, r.status)
					r = call(t, "POST", base, o.sessions[role].Token, `{"title":"t"}`)
					want := 201
					if role == "viewer" {
						want = 403
					}
					assert.Equal(t, want, r.status, role)
				}
			})
		}
	}
	wg.Wait()
	assert.Equal(t, 1, emu.Calls(stytchtest.RBACPolicy), "300 permission checks, one policy fetch")
	assert.Equal(t, 6, emu.Calls(stytchtest.Authenticate), "one per session, then the session cache")
	s.stop(t)
}

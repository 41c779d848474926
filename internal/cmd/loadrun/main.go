// Command loadrun puts the example server (_examples/basic) under wrk on
// loopback: the unprotected /healthz against /protected (a cache hit after
// warm-up) with each cache backend, in alternating rounds, and reports
// requests/s and the ratio protected/healthz (the median of the ratios of
// each round: both routes of a round run back to back, so machine noise
// moves them together).
//
// The server runs in demo mode (embedded Stytch emulator; loadrun reads a
// demo token from the curl lines it prints) with STYTCH_CACHE_BACKEND set
// per backend; redis and tiered use a throwaway redis-server that loadrun
// starts on a free loopback port and stops. It never touches another
// Redis.
//
//	go build -o bin/basic ./_examples/basic
//	go run ./internal/cmd/loadrun -server bin/basic [-rounds 3 -duration 5s -csv load.csv]
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ayzauth/ayzauth/internal/redistest"
)

type options struct {
	server      string
	backends    []string
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	threads     int
	connections int
	csv         string
	pin         bool
}

func main() {
	var o options
	var backends string
	flag.StringVar(&o.server, "server", "bin/basic", "the example server binary (go build ./_examples/basic)")
	flag.StringVar(&backends, "backends", "memory,redis,tiered", "cache backends, comma-separated")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per backend (each runs both routes)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "wrk duration per route and round")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "wrk warm-up on /protected (longer than the Redis store's own-write window, 3 s)")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.IntVar(&o.connections, "connections", 32, "wrk connections")
	flag.StringVar(&o.csv, "csv", "", "also write the results to this CSV file")
	flag.BoolVar(&o.pin, "pin", false, "with taskset and 2 or more CPUs: the server on CPU 0 (GOMAXPROCS 1), wrk on CPU 1")
	flag.Parse()
	o.backends = strings.Split(backends, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadrun:", err)
		os.Exit(1)
	}
}

type result struct {
	backend             string
	healthz, protected  []float64 // requests/s per round
	ratios              []float64 // protected/healthz per round
	medH, medP, medRate float64
}

func run(o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found on PATH (make load installs it: apt-get install -y wrk)")
	}
	if _, err := os.Stat(o.server); err != nil {
		return fmt.Errorf("server binary: %w", err)
	}
	if o.pin {
		if _, err := exec.LookPath("taskset"); err != nil || runtime.NumCPU() < 2 {
			o.pin = false
		}
	}
	var redisURL string
	if slices.ContainsFunc(o.backends, func(b string) bool { return b != "memory" }) {
		srv, err := redistest.StartMain()
		if err != nil {
			return fmt.Errorf("start a throwaway redis-server: %w", err)
		}
		defer srv.Stop()
		redisURL = "redis://" + srv.Addr()
		fmt.Printf("throwaway redis-server on %s\n", srv.Addr())
	}
	fmt.Printf("wrk -t%d -c%d -d%s per route and round, %d rounds, alternating order; warm-up %s\n",
		o.threads, o.connections, o.duration, o.rounds, o.warmup)
	if o.pin {
		fmt.Print("server pinned to CPU 0 (GOMAXPROCS 1), wrk to CPU 1\n\n")
	} else {
		fmt.Print("server and wrk share every CPU\n\n")
	}
	var results []result
	for _, b := range o.backends {
		r, err := runBackend(o, b, redisURL)
		if err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		results = append(results, r)
	}
	report(os.Stdout, results)
	if o.csv != "" {
		return writeCSV(o.csv, results)
	}
	return nil
}

var (
	listenRE = regexp.MustCompile(`Listening on (http://\S+)`)
	tokenRE  = regexp.MustCompile(`Authorization: Bearer (\S+)' \S+/protected`)
	rpsRE    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	non2xxRE = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	errorsRE = regexp.MustCompile(`Socket errors:.*`)
)

func runBackend(o options, backend, redisURL string) (result, error) {
	res := result{backend: backend}
	cmd := exec.Command(o.server)
	if o.pin {
		cmd = exec.Command("taskset", "-c", "0", o.server)
	}
	cmd.Env = serverEnv(backend, redisURL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	base, token, err := readDemo(stdout)
	if err != nil {
		return res, err
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if err := waitOK(base+"/protected", token); err != nil {
		return res, err
	}
	fmt.Printf("%s: server %s, warming up\n", backend, base)
	if _, err := wrk(o, base+"/protected", token, o.warmup); err != nil {
		return res, err
	}
	for round := range o.rounds {
		routes := []string{"/healthz", "/protected"}
		if round%2 == 1 {
			slices.Reverse(routes)
		}
		var h, p float64
		for _, route := range routes {
			rps, err := wrk(o, base+route, token, o.duration)
			if err != nil {
				return res, err
			}
			if route == "/healthz" {
				h = rps
			} else {
				p = rps
			}
		}
		res.healthz = append(res.healthz, h)
		res.protected = append(res.protected, p)
		res.ratios = append(res.ratios, p/h)
		fmt.Printf("%s: round %d: /healthz %.0f req/s, /protected %.0f req/s, ratio %.3f\n", backend, round+1, h, p, p/h)
	}
	res.medH, res.medP, res.medRate = median(res.healthz), median(res.protected), median(res.ratios)
	return res, nil
}

// serverEnv is the process environment without STYTCH_* and REDIS_URL
// (demo mode), plus the backend's settings.
func serverEnv(backend, redisURL string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STYTCH_") || strings.HasPrefix(kv, "REDIS_URL=") || strings.HasPrefix(kv, "ADDR=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "ADDR=127.0.0.1:0", "STYTCH_LOG_LEVEL=ERROR", "STYTCH_CACHE_BACKEND="+backend)
	if backend != "memory" {
		env = append(env, "STYTCH_REDIS_URL="+redisURL)
	}
	return env
}

// readDemo reads the server's start-up output until it has the base URL
// and a demo member's token.
func readDemo(r io.Reader) (base, token string, err error) {
	sc := bufio.NewScanner(r)
	deadline := time.AfterFunc(30*time.Second, func() {
		if c, ok := r.(io.Closer); ok {
			_ = c.Close()
		}
	})
	defer deadline.Stop()
	for sc.Scan() && (base == "" || token == "") {
		line := sc.Text()
		if m := listenRE.FindStringSubmatch(line); m != nil {
			base = strings.Replace(m[1], "localhost", "127.0.0.1", 1)
		}
		if m := tokenRE.FindStringSubmatch(line); m != nil && token == "" {
			token = m[1]
		}
	}
	if base == "" || token == "" {
		return "", "", fmt.Errorf("no base URL or demo token in the server's output (%v)", sc.Err())
	}
	return base, token, nil
}

func waitOK(url, token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never answered 200: %w", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wrk runs wrk against url and returns its requests/s. Any non-2xx answer
// or socket error is an error: the run would not measure what it claims.
func wrk(o options, url, token string, d time.Duration) (float64, error) {
	args := []string{"-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.connections),
		"-d", strconv.Itoa(max(1, int(d.Seconds()))) + "s", "-H", "Authorization: Bearer " + token, url}
	name := "wrk"
	if o.pin {
		name, args = "taskset", append([]string{"-c", "1", "wrk"}, args...)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %w: %s", err, out)
	}
	if m := non2xxRE.FindSubmatch(out); m != nil {
		return 0, fmt.Errorf("wrk %s: %s non-2xx responses", url, m[1])
	}
	if m := errorsRE.Find(out); m != nil {
		return 0, fmt.Errorf("wrk %s: %s", url, m)
	}
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk %s: no Requests/sec in: %s", url, out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func report(w io.Writer, results []result) {
	fmt.Fprintln(w, "\nMedians over rounds (ratio: median of the per-round ratios):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\t/healthz req/s\t/protected req/s\tprotected / healthz\ttarget >= 0.9\t")
	for _, r := range results {
		status := "met"
		if r.medRate < 0.9 {
			status = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.3f\t%s\t\n", r.backend, r.medH, r.medP, r.medRate, status)
	}
	tw.Flush()
}

func writeCSV(name string, results []result) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"backend", "healthz_rps", "protected_rps", "ratio", "rounds"})
	for _, r := range results {
		_ = w.Write([]string{r.backend, strconv.FormatFloat(r.medH, 'f', 0, 64), strconv.FormatFloat(r.medP, 'f', 0, 64),
			strconv.FormatFloat(r.medRate, 'f', 3, 64), strconv.Itoa(len(r.ratios))})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

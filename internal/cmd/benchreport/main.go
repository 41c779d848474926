// Command benchreport summarises the output of BenchmarkPaths
// (echostytch/paths_bench_test.go) run several times: for each path, the
// median time per request, its added cost over the unauthenticated
// baseline, and its ratios to the floor (a token hash and one map lookup)
// and to echo-jwt RS256, then checks the figures against the targets of
// design.md §5. Other benchmarks with custom metrics (bytes per session,
// ...) are listed with their medians.
//
// Ratios are computed within each round (one run of every path, in a row)
// and their median across rounds is reported, so that a slow round on a
// noisy machine moves numerator and denominator together.
//
//	go test -run '^$' -bench Paths -benchmem ./echostytch/ > bench.txt   # several times
//	go run ./internal/cmd/benchreport [-csv paths.csv] bench.txt
//
// The exit status is 0 even when a target is missed: benchreport reports,
// it does not judge a noisy machine.
package main

import (
	"bufio"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Path names, as in BenchmarkPaths.
const (
	baseline = "baseline"
	echoMW   = "echo-set-mw" // Echo's middleware closure and its c.Set store, nothing else
	floor    = "floor"
	floorJWT = "floor-jwt"
	peer     = "echo-jwt-rs256"
	memHit   = "memory-hit"
	memJWT   = "memory-hit-jwt"
	redisHit = "redis-csc-hit"
	l1Hit    = "tiered-l1-hit"
)

// Targets (design.md §5, issue 5).
const (
	maxHitAddedNs   = 1500 // memory and tiered L1 hits
	minPeerRatio    = 50   // echo-jwt's added cost / a hit's added cost
	maxRedisVsMem   = 2    // Redis client-side hit / memory hit, added costs
	pathsBenchmark  = "BenchmarkPaths/"
	floorNote       = "floor: SHA-256 of the token + one ristretto lookup, outside Echo"
	benchmarkPrefix = "Benchmark"
)

// sample is one benchmark result line.
type sample struct {
	name    string
	metrics map[string]float64 // unit -> value ("ns/op", "B/op", ...)
}

// round is one run of BenchmarkPaths: path -> samples.
type round map[string][]sample

func main() {
	csvOut := flag.String("csv", "", "also write the per-path medians to this CSV file (for internal/cmd/chart)")
	flag.Parse()
	var in io.Reader = os.Stdin
	if flag.NArg() > 0 {
		var readers []io.Reader
		for _, name := range flag.Args() {
			f, err := os.Open(name)
			if err != nil {
				fail(err)
			}
			defer f.Close()
			readers = append(readers, f)
		}
		in = io.MultiReader(readers...)
	}
	rounds, others, order, err := parse(in)
	if err != nil {
		fail(err)
	}
	if len(rounds) == 0 {
		fail(fmt.Errorf("no %s results in the input", pathsBenchmark))
	}
	rows := summarise(rounds, order)
	printPaths(os.Stdout, rows, len(rounds))
	printTargets(os.Stdout, rows)
	printOthers(os.Stdout, others)
	if *csvOut != "" {
		if err := writeCSV(*csvOut, rows); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchreport:", err)
	os.Exit(1)
}

// parse reads benchmark output. A new round starts at every baseline
// result. Results of other benchmarks are kept by name.
func parse(r io.Reader) (rounds []round, others map[string][]sample, order []string, err error) {
	others = map[string][]sample{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur round
	for sc.Scan() {
		s, ok := parseLine(sc.Text())
		if !ok {
			continue
		}
		path, isPath := strings.CutPrefix(s.name, pathsBenchmark)
		if !isPath {
			others[s.name] = append(others[s.name], s)
			continue
		}
		if path == baseline || cur == nil {
			cur = round{}
			rounds = append(rounds, cur)
		}
		if !slices.Contains(order, path) {
			order = append(order, path)
		}
		cur[path] = append(cur[path], s)
	}
	return rounds, others, order, sc.Err()
}

// parseLine parses "BenchmarkX/y-2  1000  123 ns/op  4 B/op ...".
func parseLine(line string) (sample, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], benchmarkPrefix) {
		return sample{}, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return sample{}, false
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i] // the GOMAXPROCS suffix
		}
	}
	s := sample{name: name, metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return sample{}, false
		}
		s.metrics[f[i+1]] = v
	}
	return s, len(s.metrics) > 0
}

func median(xs []float64) float64 {
	xs = slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// value is the median of a metric over a path's samples in one round.
func (r round) value(path, unit string) float64 {
	var xs []float64
	for _, s := range r[path] {
		if v, ok := s.metrics[unit]; ok {
			xs = append(xs, v)
		}
	}
	return median(xs)
}

// row is one path's summary (medians over rounds).
type row struct {
	path      string
	ns        float64 // ns per request (or per operation for the floors)
	added     float64 // ns over the baseline of the same round
	vsFloor   float64 // added / floor
	peerRatio float64 // echo-jwt's added / added
	bytes     float64
	allocs    float64
	ownAllocs float64 // allocs - the Echo no-op middleware's
	rounds    int
}

func summarise(rounds []round, order []string) []row {
	var rows []row
	for _, path := range order {
		var ns, added, vsFloor, peerRatio, bytes, allocs, own []float64
		n := 0
		for _, r := range rounds {
			v := r.value(path, "ns/op")
			if math.IsNaN(v) {
				continue
			}
			n++
			ns = append(ns, v)
			bytes = append(bytes, r.value(path, "B/op"))
			allocs = append(allocs, r.value(path, "allocs/op"))
			own = append(own, r.value(path, "allocs/op")-r.value(echoMW, "allocs/op"))
			a := v - r.value(baseline, "ns/op")
			if path == floor || path == floorJWT {
				a = v // not a request: its whole cost is the floor
			}
			added = append(added, a)
			vsFloor = append(vsFloor, a/r.value(floor, "ns/op"))
			peerRatio = append(peerRatio, (r.value(peer, "ns/op")-r.value(baseline, "ns/op"))/a)
		}
		rows = append(rows, row{path: path, ns: median(ns), added: median(added), vsFloor: median(vsFloor),
			peerRatio: median(peerRatio), bytes: median(bytes), allocs: median(allocs), ownAllocs: median(own), rounds: n})
	}
	return rows
}

func find(rows []row, path string) (row, bool) {
	for _, r := range rows {
		if r.path == path {
			return r, true
		}
	}
	return row{}, false
}

func fmtNs(ns float64) string {
	switch {
	case math.IsNaN(ns):
		return "-"
	case math.Abs(ns) >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case math.Abs(ns) >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func fmtX(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "-"
	case x >= 100:
		return fmt.Sprintf("%.0fx", x)
	case x >= 10:
		return fmt.Sprintf("%.1fx", x)
	}
	return fmt.Sprintf("%.2fx", x)
}

func printPaths(w io.Writer, rows []row, nRounds int) {
	fmt.Fprintf(w, "BenchmarkPaths: medians of %d rounds (added cost and ratios computed within each round)\n\n", nRounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tper request\tadded over baseline\tx floor\techo-jwt added / added\tB/op\tallocs/op\tof our own\t")
	for _, r := range rows {
		ratio, vsFloor, own := fmtX(r.peerRatio), fmtX(r.vsFloor), fmt.Sprintf("%.0f", r.ownAllocs)
		added := fmtNs(r.added)
		switch r.path {
		case baseline:
			added, vsFloor, ratio, own = "-", "-", "-", "-"
		case peer:
			ratio = "1x"
		case floor, floorJWT:
			added, own = fmtNs(r.added)+" (not a request)", "-"
		case echoMW:
			own = "(Echo's)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%s\t\n", r.path, fmtNs(r.ns), added, vsFloor, ratio, r.bytes, r.allocs, own)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s; \"of our own\": allocs/op minus the %s path's (Echo's per-request middleware closure and the context store its c.Set allocates).\n", floorNote, echoMW)
}

func printTargets(w io.Writer, rows []row) {
	fmt.Fprintln(w, "\nTargets:")
	status := func(ok bool) string {
		if ok {
			return "MET   "
		}
		return "MISSED"
	}
	for _, p := range []string{memHit, l1Hit} {
		r, ok := find(rows, p)
		if !ok || r.rounds == 0 {
			fmt.Fprintf(w, "  ?      %s: not measured\n", p)
			continue
		}
		fmt.Fprintf(w, "  %s %s: added %s (target <= %s), %.0f allocations of our own (target 0), echo-jwt costs %s more (target >= %dx)\n",
			status(r.added <= maxHitAddedNs && r.ownAllocs <= 0 && r.peerRatio >= minPeerRatio), p,
			fmtNs(r.added), fmtNs(maxHitAddedNs), r.ownAllocs, fmtX(r.peerRatio), minPeerRatio)
	}
	mem, okM := find(rows, memHit)
	if rd, ok := find(rows, redisHit); ok && okM && rd.rounds > 0 {
		x := rd.added / mem.added
		fmt.Fprintf(w, "  %s %s: added %s = %s the memory hit's (target <= %dx); no network round trip is checked by the benchmark\n",
			status(x <= maxRedisVsMem), redisHit, fmtNs(rd.added), fmtX(x), maxRedisVsMem)
	} else {
		fmt.Fprintf(w, "  ?      %s: not measured\n", redisHit)
	}
	jwt, okJ := find(rows, memJWT)
	f, okF := find(rows, floor)
	fj, okFJ := find(rows, floorJWT)
	if okM && okJ && okF && okFJ {
		extra, hash := jwt.added-mem.added, fj.ns-f.ns
		fmt.Fprintf(w, "  %s %s: costs %s more than an opaque token's hit; hashing the JWT instead of the token costs %s more (excess %s)\n",
			status(extra <= hash*1.5), memJWT, fmtNs(extra), fmtNs(hash), fmtNs(extra-hash))
	}
}

func printOthers(w io.Writer, others map[string][]sample) {
	var names []string
	for name, ss := range others {
		for _, s := range ss {
			for unit := range s.metrics {
				if !slices.Contains([]string{"ns/op", "B/op", "allocs/op"}, unit) {
					names = append(names, name)
					break
				}
			}
			break
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	fmt.Fprintln(w, "\nOther benchmarks (medians):")
	for _, name := range names {
		units := map[string][]float64{}
		for _, s := range others[name] {
			for u, v := range s.metrics {
				units[u] = append(units[u], v)
			}
		}
		var us []string
		for u := range units {
			if u != "ns/op" && u != "B/op" && u != "allocs/op" {
				us = append(us, u)
			}
		}
		slices.Sort(us)
		var parts []string
		for _, u := range us {
			parts = append(parts, fmt.Sprintf("%s %s", strconv.FormatFloat(median(units[u]), 'f', -1, 64), u))
		}
		fmt.Fprintf(w, "  %s: %s\n", name, strings.Join(parts, ", "))
	}
}

func writeCSV(name string, rows []row) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	_ = cw.Write([]string{"path", "ns_per_op", "added_ns", "x_floor", "peer_ratio", "bytes_per_op", "allocs_per_op", "own_allocs", "rounds"})
	for _, r := range rows {
		ff := func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
		_ = cw.Write([]string{r.path, ff(r.ns), ff(r.added), ff(r.vsFloor), ff(r.peerRatio), ff(r.bytes), ff(r.allocs), ff(r.ownAllocs), strconv.Itoa(r.rounds)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

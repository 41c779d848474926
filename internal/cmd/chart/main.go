// Command chart draws docs/perf.png from the CSV files that make bench and
// make load write (internal/cmd/benchreport -csv, internal/cmd/loadrun
// -csv): the added cost per request of each path over Echo's
// unauthenticated route, on a log scale, and the requests/s of /protected
// relative to /healthz under wrk per cache backend.
//
// It is a module of its own so that its font dependency (golang.org/x/image)
// stays out of the library's go.mod:
//
//	cd internal/cmd/chart && go run . -paths ../../../bin/bench/paths.csv -load ../../../bin/bench/load.csv -out ../../../docs/perf.png
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// The paths drawn, in order, with their labels and kinds.
var paths = []struct{ name, label, kind string }{
	{"memory-hit", "memory hit", "hit"},
	{"tiered-l1-hit", "tiered, L1 hit", "hit"},
	{"redis-csc-hit", "Redis client-side hit", "hit"},
	{"memory-hit-jwt", "memory hit, 1.7 KB JWT", "hit"},
	{"memory-hit-ctx", "memory hit + SessionInContext", "hit"},
	{"tiered-l2-hit", "tiered, L2 hit (+ L1 fill)", "hit"},
	{"floor", "floor: SHA-256 + map lookup", "floor"},
	{"jwt-local", "local JWT check, uncached", "slow"},
	{"echo-jwt-rs256", "echo-jwt RS256 (peer)", "peer"},
	{"cold-miss", "cold miss (emulator, loopback)", "slow"},
}

var colors = map[string]color.RGBA{
	"hit":   {0x2b, 0x7b, 0xb9, 0xff},
	"floor": {0x99, 0x99, 0x99, 0xff},
	"slow":  {0xab, 0xab, 0xab, 0xff},
	"peer":  {0xd7, 0x19, 0x1c, 0xff},
	"ok":    {0x1a, 0x96, 0x41, 0xff},
	"text":  {0x22, 0x22, 0x22, 0xff},
	"grid":  {0xe0, 0xe0, 0xe0, 0xff},
	"mark":  {0x55, 0x55, 0x55, 0xff},
}

func main() {
	pathsCSV := flag.String("paths", "bin/bench/paths.csv", "benchreport -csv output")
	loadCSV := flag.String("load", "", "loadrun -csv output (optional)")
	machine := flag.String("machine", "", "a line describing the machine, printed under the title")
	out := flag.String("out", "docs/perf.png", "PNG to write")
	flag.Parse()
	if err := run(*pathsCSV, *loadCSV, *machine, *out); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func readCSV(name string) ([]map[string]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			if i < len(r) {
				m[h] = r[i]
			}
		}
		rows = append(rows, m)
	}
	return rows, nil
}

func num(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

type canvas struct {
	img            *image.RGBA
	regular, bold  font.Face
	small          font.Face
	width, height  int
	left, right, y int
}

func face(ttf []byte, size float64) (font.Face, error) {
	f, err := opentype.Parse(ttf)
	if err != nil {
		return nil, err
	}
	return opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
}

func (c *canvas) text(f font.Face, x, y int, s string, col color.Color) {
	d := &font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: f, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func (c *canvas) textWidth(f font.Face, s string) int {
	return (&font.Drawer{Face: f}).MeasureString(s).Round()
}

func (c *canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	draw.Draw(c.img, image.Rect(x0, y0, x1, y1), image.NewUniform(col), image.Point{}, draw.Src)
}

func run(pathsCSV, loadCSV, machine, out string) error {
	rows, err := readCSV(pathsCSV)
	if err != nil {
		return err
	}
	added := map[string]float64{}
	rounds := ""
	for _, r := range rows {
		added[r["path"]] = num(r["added_ns"])
		rounds = r["rounds"]
	}
	var load []map[string]string
	if loadCSV != "" {
		if load, err = readCSV(loadCSV); err != nil {
			return err
		}
	}

	c := &canvas{width: 1000}
	barH, gap := 22, 8
	c.height = 110 + len(paths)*(barH+gap) + 60
	if len(load) > 0 {
		c.height += 70 + len(load)*(barH+gap) + 40
	}
	c.img = image.NewRGBA(image.Rect(0, 0, c.width, c.height))
	draw.Draw(c.img, c.img.Bounds(), image.White, image.Point{}, draw.Src)
	if c.regular, err = face(goregular.TTF, 14); err != nil {
		return err
	}
	if c.bold, err = face(gobold.TTF, 17); err != nil {
		return err
	}
	if c.small, err = face(goregular.TTF, 12); err != nil {
		return err
	}

	c.text(c.bold, 20, 30, "Added cost per request over Echo's unauthenticated route (median of "+rounds+" rounds, log scale)", colors["text"])
	if machine != "" {
		c.text(c.small, 20, 50, machine, colors["mark"])
	}

	// Log axis from 100 ns to 10 ms.
	c.left, c.right = 290, c.width-110
	lo, hi := math.Log10(100), math.Log10(1e7)
	xOf := func(ns float64) int {
		v := math.Log10(math.Max(ns, 100))
		return c.left + int(float64(c.right-c.left)*(v-lo)/(hi-lo))
	}
	top := 75
	bottom := top + len(paths)*(barH+gap)
	for _, t := range []struct {
		ns    float64
		label string
	}{{100, "100 ns"}, {1e3, "1 µs"}, {1e4, "10 µs"}, {1e5, "100 µs"}, {1e6, "1 ms"}, {1e7, "10 ms"}} {
		x := xOf(t.ns)
		c.rect(x, top-5, x+1, bottom, colors["grid"])
		c.text(c.small, x-c.textWidth(c.small, t.label)/2, bottom+16, t.label, colors["mark"])
	}
	y := top
	for _, p := range paths {
		v, ok := added[p.name]
		if !ok || math.IsNaN(v) {
			continue
		}
		c.text(c.regular, c.left-10-c.textWidth(c.regular, p.label), y+barH-6, p.label, colors["text"])
		x1 := xOf(v)
		c.rect(c.left, y, max(x1, c.left+2), y+barH, colors[p.kind])
		c.text(c.regular, max(x1, c.left+2)+6, y+barH-6, human(v), colors["text"])
		y += barH + gap
	}
	if peer, ok := added["echo-jwt-rs256"]; ok {
		if hit, ok := added["memory-hit"]; ok && hit > 0 {
			c.text(c.small, c.left, bottom+36, fmt.Sprintf("A memory cache hit adds %s; echo-jwt RS256 adds %.0fx more. Blue: this module's cache hits.", human(hit), peer/hit), colors["mark"])
		}
	}

	if len(load) > 0 {
		y = bottom + 80
		c.text(c.bold, 20, y, "Under wrk on loopback: /protected (cache hit) req/s relative to /healthz (no auth)", colors["text"])
		y += 20
		x0, x1 := c.left, c.right
		xr := func(r float64) int { return x0 + int(float64(x1-x0-250)*r/1.2) } // room for the labels
		for _, r := range load {
			ratio := num(r["ratio"])
			label := r["backend"] + " backend"
			c.text(c.regular, c.left-10-c.textWidth(c.regular, label), y+barH-6, label, colors["text"])
			c.rect(x0, y, xr(math.Min(ratio, 1.2)), y+barH, colors["ok"])
			c.text(c.regular, xr(math.Min(ratio, 1.2))+6, y+barH-6,
				fmt.Sprintf("%.2f  (%s vs %s req/s)", ratio, r["protected_rps"], r["healthz_rps"]), colors["text"])
			y += barH + gap
		}
		tx := xr(0.9)
		c.rect(tx, y-len(load)*(barH+gap)-4, tx+2, y, colors["peer"])
		c.text(c.small, tx-20, y+14, "target 0.9", colors["peer"])
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func human(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

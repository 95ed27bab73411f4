package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/mtcagent/mtcagent/attest
cpu: Example CPU @ 2.00GHz
BenchmarkSignBinding-2   	   10000	    120000 ns/op	       290.0 B/token	    4096 B/op	      12 allocs/op
BenchmarkSignBinding-2   	   10000	    100000 ns/op	       290.0 B/token	    4096 B/op	      12 allocs/op
BenchmarkSignBinding-2   	   10000	    500000 ns/op	       290.0 B/token	    4096 B/op	      12 allocs/op
BenchmarkVerify/ed25519-2	    5000	    200000 ns/op
BenchmarkVerify/ed25519-2	    5000	    300000 ns/op
PASS
ok  	github.com/mtcagent/mtcagent/attest	12.3s
goos: linux
goarch: amd64
pkg: github.com/mtcagent/mtcagent/privacy
BenchmarkMask
    mask_test.go:12: a log line from the benchmark
BenchmarkMask-2   	 1000000	      1050 ns/op	        18.5 m-err
BenchmarkMask-2   	 1000000	      1070 ns/op	        21.5 m-err
PASS
ok  	github.com/mtcagent/mtcagent/privacy	3.1s
`

func TestParse(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if res.CPU != "Example CPU @ 2.00GHz" {
		t.Errorf("cpu = %q", res.CPU)
	}
	type fig struct {
		pkg, name, unit string
		vals            []float64
	}
	const a, p = "github.com/mtcagent/mtcagent/attest", "github.com/mtcagent/mtcagent/privacy"
	want := []fig{
		{a, "BenchmarkSignBinding", "ns/op", []float64{120000, 100000, 500000}},
		{a, "BenchmarkSignBinding", "B/token", []float64{290, 290, 290}},
		{a, "BenchmarkSignBinding", "B/op", []float64{4096, 4096, 4096}},
		{a, "BenchmarkSignBinding", "allocs/op", []float64{12, 12, 12}},
		{a, "BenchmarkVerify/ed25519", "ns/op", []float64{200000, 300000}},
		{p, "BenchmarkMask", "ns/op", []float64{1050, 1070}},
		{p, "BenchmarkMask", "m-err", []float64{18.5, 21.5}},
	}
	var got []fig
	for _, f := range res.Figures {
		got = append(got, fig{f.Pkg, f.Name, f.Unit, f.Values})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("figures:\n got %v\nwant %v", got, want)
	}
	if len(res.Failures) != 0 {
		t.Errorf("failures = %q", res.Failures)
	}
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		line string
		name string // "" when the line is not a result
		n    int    // pairs
	}{
		{"BenchmarkX-8 100 5 ns/op", "BenchmarkX", 1},
		{"BenchmarkX 100 5 ns/op", "BenchmarkX", 1},
		{"Benchmark-4 100 5 ns/op", "Benchmark", 1},
		{"BenchmarkX/size-1024-2 100 5 ns/op", "BenchmarkX/size-1024", 1},
		{"BenchmarkX-8 100 1.5e+06 ns/op 3 p99-ms", "BenchmarkX", 2},
		{"BenchmarkX-8", "", 0},
		{"BenchmarkX-8 \tsome output", "", 0},
		{"BenchmarkX-8 100 5", "", 0},
		{"BenchmarkX-8 0 5 ns/op", "", 0},
		{"BenchmarkX-8 100 NaN ns/op", "", 0},
		{"BenchmarkX-8 100 +Inf ns/op", "", 0},
		{"Benchmarkx-8 100 5 ns/op", "", 0},
		{"BenchmarkX-8 x 5 ns/op", "", 0},
	}
	for _, tt := range tests {
		name, pairs, ok := splitBenchLine(tt.line)
		if ok != (tt.name != "") || name != tt.name || len(pairs) != tt.n {
			t.Errorf("splitBenchLine(%q) = %q, %d pairs, %v; want %q, %d", tt.line, name, len(pairs), ok, tt.name, tt.n)
		}
	}
}

func TestParseFailures(t *testing.T) {
	in := "pkg: x\nBenchmarkA-2 10 5 ns/op\n--- FAIL: BenchmarkB\nFAIL\nFAIL\tx\t1.0s\n"
	res, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 3 || len(res.Figures) != 1 {
		t.Errorf("failures %q, figures %d", res.Failures, len(res.Figures))
	}
}

func TestParseLongLine(t *testing.T) {
	in := "BenchmarkA-2 10 5 ns/op\n" + strings.Repeat("x", maxLine+10) + "\n"
	if _, err := Parse(strings.NewReader(in)); err == nil {
		t.Error("no error for an over-long line")
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{120000, 100000, 500000}, 120000},
		{[]float64{-1, 1}, 0},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", in, got, tt.want)
		}
		if !reflect.DeepEqual(in, tt.in) {
			t.Errorf("Median modified its input")
		}
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		goal, unit string
		v          float64
		want       Verdict
	}{
		{"<= 300", "B/token", 290, Met},
		{"<= 300", "B/token", 300, Met},
		{"<= 300", "B/token", 301, NotMet},
		{"<=300", "B/token", 290, Met},
		{"<= 300 B/token", "B/token", 290, Met},
		{"<= 300 B/op", "B/token", 290, NotComparable},
		{">= 1000", "ops/s", 999, NotMet},
		{">= 1e3", "ops/s", 1000, Met},
		{"< 5", "p99-ms", 5, NotMet},
		{"> 5", "p99-ms", 6, Met},
		{"about 300", "B/token", 290, NotComparable},
		{"<= fast", "ns/op", 1, NotComparable},
		{"<= 300 and small", "B", 1, NotComparable},
		{"", "B", 1, NotComparable},
		{"<= NaN", "B", 1, NotComparable},
	}
	for _, tt := range tests {
		if got := Judge(tt.goal, tt.unit, tt.v); got != tt.want {
			t.Errorf("Judge(%q, %q, %v) = %v, want %v", tt.goal, tt.unit, tt.v, got, tt.want)
		}
	}
}

func TestParseGoals(t *testing.T) {
	in := "# goals\n\nBenchmarkSignBinding\tB/token\t<= 300\n" +
		"BenchmarkMask  m-err   >= 100 (mean of 1000 reports)\n" +
		"BenchmarkSignBinding-2\tB/token\t<= 250\n"
	goals, err := ParseGoals("g.tsv", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Goal{
		{Name: "BenchmarkSignBinding", Unit: "B/token", Text: "<= 250", Line: 5},
		{Name: "BenchmarkMask", Unit: "m-err", Text: ">= 100 (mean of 1000 reports)", Line: 4},
	}
	if !reflect.DeepEqual(goals, want) {
		t.Errorf("goals:\n got %+v\nwant %+v", goals, want)
	}
	for _, bad := range []string{"BenchmarkA\tns/op\n", "TestA\tns/op\t<= 1\n"} {
		_, err := ParseGoals("g.tsv", strings.NewReader("# c\n"+bad))
		if ge, ok := err.(*GoalError); !ok || ge.Line != 2 {
			t.Errorf("ParseGoals(%q) error = %v, want a GoalError on line 2", bad, err)
		}
	}
}

func TestFormatValue(t *testing.T) {
	tests := map[float64]string{120000: "120000", 2.5: "2.5", 1234.56: "1234.6", 0.000123456: "0.0001235", 18.55: "18.55", 0: "0"}
	for v, want := range tests {
		if got := FormatValue(v); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestRenderGolden(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	goals := []Goal{
		{Name: "BenchmarkSignBinding", Unit: "B/token", Text: "<= 300"},
		{Name: "BenchmarkSignBinding", Unit: "ns/op", Text: "<= 100000"},
		{Name: "BenchmarkMask", Unit: "m-err", Text: "large, see DESIGN §6"},
		{Name: "BenchmarkMissing", Unit: "x/op", Text: "<= 1"},
	}
	m := Machine{CPU: "Test | CPU", Cores: 2, MemBytes: 24 << 30, GOOS: "linux", GOARCH: "amd64", Go: "go1.26"}
	var b bytes.Buffer
	if err := Render(&b, m, time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC), Rows(res.Figures, goals), nil); err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\n" +
		"Generated by `make bench` (`go run ./internal/benchtable`); do not edit by hand.\n" +
		"Each figure is the median over the runs of `go test -bench -count N`.\n" +
		"Goals come from `docs/bench-goals.tsv`.\n\n" +
		"- Date: 2026-11-23 16:00 UTC\n- CPU: Test \\| CPU\n- Cores: 2\n- Memory: 24.0 GiB\n- Platform: linux/amd64, go1.26\n\n" +
		"| package | benchmark | metric | median | runs | goal | met |\n" +
		"|---|---|---|---:|---:|---|---|\n" +
		"| attest | BenchmarkSignBinding | ns/op | 120000 | 3 | <= 100000 | NOT MET |\n" +
		"| attest | BenchmarkSignBinding | B/token | 290 | 3 | <= 300 | met |\n" +
		"| attest | BenchmarkSignBinding | B/op | 4096 | 3 | — |  |\n" +
		"| attest | BenchmarkSignBinding | allocs/op | 12 | 3 | — |  |\n" +
		"| attest | BenchmarkVerify/ed25519 | ns/op | 250000 | 2 | — |  |\n" +
		"| privacy | BenchmarkMask | ns/op | 1060 | 2 | — |  |\n" +
		"| privacy | BenchmarkMask | m-err | 20 | 2 | large, see DESIGN §6 |  |\n" +
		"| — | BenchmarkMissing | x/op | — | 0 | <= 1 | no figure |\n"
	if b.String() != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	goals := filepath.Join(dir, "goals.tsv")
	if err := os.WriteFile(goals, []byte("# g\nBenchmarkSignBinding\tB/token\t<= 300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "benchmarks.md")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-goals", goals, "-o", out}, strings.NewReader(sample), &stdout, &stderr, time.Unix(0, 0))
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != stdout.String() {
		t.Error("file and stdout differ")
	}
	if !strings.Contains(stdout.String(), "| attest | BenchmarkSignBinding | B/token | 290 | 3 | <= 300 | met |") {
		t.Errorf("table misses the goal row:\n%s", stdout.String())
	}

	// A missing goals file is no goals; failures in the input give exit 1
	// but still a table.
	stdout.Reset()
	code = run([]string{"-goals", filepath.Join(dir, "none.tsv")}, strings.NewReader(sample+"--- FAIL: BenchmarkZ\nFAIL\n"), &stdout, &stderr, time.Unix(0, 0))
	if code != 1 || !strings.Contains(stdout.String(), "reported failures") {
		t.Errorf("exit %d with failures; output:\n%s", code, stdout.String())
	}
	if code := run([]string{"extra"}, strings.NewReader(""), &stdout, &stderr, time.Unix(0, 0)); code != 2 {
		t.Errorf("exit %d for a positional argument, want 2", code)
	}
	if err := os.WriteFile(goals, []byte("BenchmarkX\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run([]string{"-goals", goals}, strings.NewReader(sample), &stdout, &stderr, time.Unix(0, 0)); code != 1 || !strings.Contains(stderr.String(), "goals.tsv:1:") {
		t.Errorf("bad goals: exit %d, stderr %q", code, stderr.String())
	}
}

func TestMachineInfo(t *testing.T) {
	tests := []struct{ cpuinfo, want string }{
		{"processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R)\n", "Intel(R) Xeon(R)"},
		{"processor\t: 0\nBogoMIPS\t: 108.00\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n", "Raspberry Pi 4 Model B Rev 1.4"},
		{"system type\t\t: MIPS Malta\ncpu model\t\t: MIPS 24Kc V0.0  FPU V0.0\n", "MIPS 24Kc V0.0  FPU V0.0"},
		{"nothing here\n", ""},
	}
	for _, tt := range tests {
		if got := cpuModel(strings.NewReader(tt.cpuinfo)); got != tt.want {
			t.Errorf("cpuModel = %q, want %q", got, tt.want)
		}
	}
	if got := memTotal(strings.NewReader("MemTotal:       24683520 kB\nMemFree: 1 kB\n")); got != 24683520*1024 {
		t.Errorf("memTotal = %d", got)
	}
	if m := LocalMachine(); m.Cores < 1 || m.GOOS == "" || m.Go == "" {
		t.Errorf("LocalMachine = %+v", m)
	}
}

// FuzzParse checks that the parser never panics, that every figure has
// values, and that printing the figures back as bench lines and parsing
// again gives the same figures.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("BenchmarkX-8 100 1.5e+06 ns/op 3 p99-ms\n")
	f.Add("pkg: a\nBenchmark 1 0 x\npkg: b\nBenchmark 1 -0 x\n")
	f.Add("--- FAIL: x\nFAIL\n")
	f.Fuzz(func(t *testing.T, in string) {
		res, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, fig := range res.Figures {
			if len(fig.Values) == 0 {
				t.Fatalf("figure %q %q without values", fig.Name, fig.Unit)
			}
			for _, v := range fig.Values {
				if !isFinite(v) {
					t.Fatalf("non-finite value %v", v)
				}
				fmt.Fprintf(&b, "pkg: %s\n%s-2 1 %v %s\n", fig.Pkg, fig.Name, v, fig.Unit)
			}
			_ = Median(fig.Values)
		}
		again, err := Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if len(again.Figures) != len(res.Figures) {
			t.Fatalf("reparse: %d figures, want %d", len(again.Figures), len(res.Figures))
		}
		for i, fig := range res.Figures {
			g := again.Figures[i]
			if g.Pkg != fig.Pkg || g.Name != fig.Name || g.Unit != fig.Unit || !reflect.DeepEqual(g.Values, fig.Values) {
				t.Fatalf("reparse: figure %d = %+v, want %+v", i, g, fig)
			}
		}
	})
}

// FuzzGoals checks the goals parser and Judge never panic.
func FuzzGoals(f *testing.F) {
	f.Add("# c\nBenchmarkA\tns/op\t<= 300\n", 1.0)
	f.Add("BenchmarkA ns/op >=1e3 ns/op\n", 2000.0)
	f.Fuzz(func(t *testing.T, in string, v float64) {
		goals, err := ParseGoals("g", strings.NewReader(in))
		if err != nil {
			return
		}
		for _, g := range goals {
			_ = Judge(g.Text, g.Unit, v)
		}
	})
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Figure is one metric of one benchmark, with every value the runs reported.
type Figure struct {
	Pkg    string    // import path from the preceding "pkg:" line, may be empty
	Name   string    // benchmark name without the -GOMAXPROCS suffix
	Unit   string    // "ns/op", "B/op", or a custom unit from b.ReportMetric
	Values []float64 // one per run, in input order
}

// Result is what Parse found in a `go test -bench` output.
type Result struct {
	Figures  []*Figure // in order of first appearance
	CPU      string    // from the last "cpu:" header line, if any
	Failures []string  // "--- FAIL" and "FAIL" lines, kept for the report
}

// ParseError is a benchmark line that could not be read.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// maxLine bounds one input line; longer lines are an error rather than a
// silent truncation.
const maxLine = 1 << 20

// Parse reads `go test -bench` output (any number of packages and -count
// runs). Lines that are not benchmark results are ignored, except the
// pkg:/cpu: headers and failure markers.
func Parse(r io.Reader) (*Result, error) {
	res := &Result{}
	index := map[[3]string]*Figure{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	pkg := ""
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimSpace(line[len("pkg: "):])
			continue
		case strings.HasPrefix(line, "cpu: "):
			res.CPU = strings.TrimSpace(line[len("cpu: "):])
			continue
		case strings.HasPrefix(line, "--- FAIL"), line == "FAIL", strings.HasPrefix(line, "FAIL\t"), strings.HasPrefix(line, "FAIL "):
			res.Failures = append(res.Failures, line)
			continue
		case !strings.HasPrefix(line, "Benchmark"):
			continue
		}
		name, pairs, ok := splitBenchLine(line)
		if !ok {
			continue // the name line of a benchmark that printed, or a log line
		}
		for _, p := range pairs {
			k := [3]string{pkg, name, p.unit}
			f := index[k]
			if f == nil {
				f = &Figure{Pkg: pkg, Name: name, Unit: p.unit}
				index[k] = f
				res.Figures = append(res.Figures, f)
			}
			f.Values = append(f.Values, p.value)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{Line: n + 1, Msg: fmt.Sprintf("read bench output: %v", err)}
	}
	return res, nil
}

type pair struct {
	value float64
	unit  string
}

// splitBenchLine splits "BenchmarkX-8  1000  12.5 ns/op  3 B/op" into the
// name without the -8 and its value/unit pairs. ok is false when the line is
// not a complete result line.
func splitBenchLine(line string) (name string, pairs []pair, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return "", nil, false
	}
	if !validName(f[0]) {
		return "", nil, false
	}
	if it, err := strconv.ParseUint(f[1], 10, 64); err != nil || it == 0 {
		return "", nil, false
	}
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || !isFinite(v) || !validUnit(f[i+1]) {
			return "", nil, false
		}
		pairs = append(pairs, pair{v, f[i+1]})
	}
	return stripProcs(f[0]), pairs, true
}

// validName accepts "Benchmark" alone or followed by a name that does not
// start with a lower-case letter (Go's rule for test functions).
func validName(s string) bool {
	rest := strings.TrimPrefix(s, "Benchmark")
	if rest == s {
		return false
	}
	if rest == "" {
		return true
	}
	c := rest[0]
	return !(c >= 'a' && c <= 'z')
}

func validUnit(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

func isFinite(v float64) bool { return v == v && v-v == 0 }

// stripProcs removes the "-N" GOMAXPROCS suffix the testing package appends
// (golang.org/x/perf's convention: a trailing -digits is always that).
func stripProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return name
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name
		}
	}
	return name[:i]
}

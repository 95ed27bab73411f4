// Command benchtable turns `go test -bench -count N` output into the
// markdown table of docs/benchmarks.md: the median of every benchmark figure
// (ns/op, B/op, allocs/op and custom b.ReportMetric units) next to its goal
// from docs/bench-goals.tsv, with whether a simple "<= X" / ">= X" goal is met.
//
//	go test -run '^$' -bench . -count 5 ./... > bench.out
//	go run ./internal/benchtable -goals docs/bench-goals.tsv -o docs/benchmarks.md < bench.out
//
// It is a developer tool, its own main package, never linked into the device
// binary. It writes the table to -o (replaced atomically) and to stdout.
// Errors go to stderr as "benchtable: ..."; exit status 1 when the input
// could not be read or the benchmark run reported failures (the table is
// still written), 2 on bad usage.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, time.Now()))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, now time.Time) int {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	goalsPath := fs.String("goals", "", "goals file: BenchmarkName<TAB>unit<TAB>goal lines")
	out := fs.String("o", "", "write the markdown table to this file (also printed on stdout)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "benchtable: unexpected argument %q (bench output is read from stdin)\n", fs.Arg(0))
		return 2
	}
	res, err := Parse(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "benchtable: %v\n", err)
		return 1
	}
	var goals []Goal
	if *goalsPath != "" {
		goals, err = loadGoals(*goalsPath)
		if err != nil {
			fmt.Fprintf(stderr, "benchtable: %v\n", err)
			return 1
		}
	}
	m := LocalMachine()
	if m.CPU == "" {
		m.CPU = res.CPU
	}
	var doc strings.Builder
	if err := Render(&doc, m, now, Rows(res.Figures, goals), res.Failures); err != nil {
		fmt.Fprintf(stderr, "benchtable: %v\n", err)
		return 1
	}
	if *out != "" {
		if err := writeFileAtomic(*out, []byte(doc.String())); err != nil {
			fmt.Fprintf(stderr, "benchtable: %v\n", err)
			return 1
		}
	}
	io.WriteString(stdout, doc.String())
	if len(res.Failures) > 0 {
		fmt.Fprintf(stderr, "benchtable: the benchmark run reported %d failure line(s)\n", len(res.Failures))
		return 1
	}
	return 0
}

// loadGoals reads the goals file; a missing file means no goals.
func loadGoals(path string) ([]Goal, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open goals: %w", err)
	}
	defer f.Close()
	return ParseGoals(path, f)
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".benchtable-*")
	if err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write table: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write table: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// LocalMachine describes this machine from /proc and the runtime.
func LocalMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(f)
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		m.MemBytes = memTotal(f)
		f.Close()
	}
	return m
}

// cpuModel picks the processor name from /proc/cpuinfo; the key differs
// per architecture (x86 "model name", ARM "Model"/"Hardware", MIPS "cpu model").
func cpuModel(r io.Reader) string {
	found := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := found[k]; !dup && v != "" {
			found[k] = v
		}
	}
	for _, k := range []string{"model name", "Model", "Hardware", "cpu model", "Processor", "uarch"} {
		if v := found[k]; v != "" {
			return v
		}
	}
	return ""
}

// memTotal returns MemTotal from /proc/meminfo in bytes, 0 when absent.
func memTotal(r io.Reader) uint64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Goal is one line of the goals file: a target for one benchmark figure.
type Goal struct {
	Name, Unit, Text string
	Line             int
}

// GoalError is a malformed line of the goals file.
type GoalError struct {
	Path string
	Line int
	Msg  string
}

func (e *GoalError) Error() string { return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg) }

// ParseGoals reads lines "BenchmarkName<TAB>unit<TAB>goal text"; blank lines
// and lines starting with # are skipped. Names and units never contain
// spaces (testing refuses such units), so runs of spaces are accepted in
// place of tabs. A later line for the same name and unit replaces an earlier
// one.
func ParseGoals(path string, r io.Reader) ([]Goal, error) {
	var goals []Goal
	seen := map[[2]string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, &GoalError{path, n, "want BenchmarkName<TAB>unit<TAB>goal"}
		}
		if !validName(f[0]) {
			return nil, &GoalError{path, n, fmt.Sprintf("%q is not a benchmark name", f[0])}
		}
		g := Goal{Name: stripProcs(f[0]), Unit: f[1], Text: strings.Join(f[2:], " "), Line: n}
		k := [2]string{g.Name, g.Unit}
		if i, ok := seen[k]; ok {
			goals[i] = g
			continue
		}
		seen[k] = len(goals)
		goals = append(goals, g)
	}
	if err := sc.Err(); err != nil {
		return nil, &GoalError{path, n + 1, fmt.Sprintf("read goals: %v", err)}
	}
	return goals, nil
}

// Verdict is whether a median meets a goal.
type Verdict int

const (
	NotComparable Verdict = iota // the goal is prose, not "<= X" or ">= X"
	Met
	NotMet
)

func (v Verdict) String() string {
	switch v {
	case Met:
		return "met"
	case NotMet:
		return "NOT MET"
	}
	return ""
}

// Judge compares a median with a goal of the form "OP NUMBER [UNIT]" where
// OP is <=, >=, < or > and UNIT, when present, is the figure's unit. Any other
// goal text is NotComparable.
func Judge(goal, unit string, median float64) Verdict {
	s := strings.TrimSpace(goal)
	op := ""
	for _, o := range []string{"<=", ">=", "<", ">"} {
		if strings.HasPrefix(s, o) {
			op = o
			break
		}
	}
	if op == "" {
		return NotComparable
	}
	rest := strings.Fields(s[len(op):])
	if len(rest) == 0 || len(rest) > 2 || len(rest) == 2 && rest[1] != unit {
		return NotComparable
	}
	x, err := strconv.ParseFloat(rest[0], 64)
	if err != nil || !isFinite(x) {
		return NotComparable
	}
	var ok bool
	switch op {
	case "<=":
		ok = median <= x
	case ">=":
		ok = median >= x
	case "<":
		ok = median < x
	default:
		ok = median > x
	}
	if ok {
		return Met
	}
	return NotMet
}

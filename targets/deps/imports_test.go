package deps

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/mtcagent/mtcagent/"

// rule is one row of the package map in docs/architecture.md.
type rule struct {
	pkg   string   // relative to the module; "x/*" covers the packages under x
	allow []string // same form; "*" allows anything
}

var backticked = regexp.MustCompile("`([^`]+)`")

// readMap parses the package map: the table rows of docs/architecture.md
// whose first cell is a backticked package.
func readMap(t *testing.T) []rule {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []rule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(sc.Text(), "|")
		if len(cells) != 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		r := rule{pkg: strings.Trim(strings.TrimSpace(cells[1]), "`")}
		for _, m := range backticked.FindAllStringSubmatch(cells[3], -1) {
			r.allow = append(r.allow, m[1])
		}
		rules = append(rules, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rules) < 10 {
		t.Fatalf("docs/architecture.md: found %d rows of the package map", len(rules))
	}
	return rules
}

// covers reports whether pattern ("x", "x/*", "*") names pkg.
func covers(pattern, pkg string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "/*"):
		return strings.HasPrefix(pkg, strings.TrimSuffix(pattern, "*"))
	}
	return pattern == pkg
}

// ruleFor is the most specific row naming pkg: an exact row wins over a
// wildcard.
func ruleFor(rules []rule, pkg string) (rule, bool) {
	var best rule
	found := false
	for _, r := range rules {
		if r.pkg == pkg {
			return r, true
		}
		if !found && covers(r.pkg, pkg) {
			best, found = r, true
		}
	}
	return best, found
}

// TestImportMap: every package of the module is in the package map of
// docs/architecture.md, and imports (in its non-test files, in the default
// build and each feature-dropping one) only what its row allows.
func TestImportMap(t *testing.T) {
	rules := readMap(t)
	for _, tags := range []string{"", "mtc_omit_coap", "mtc_omit_sim"} {
		cmd := exec.Command("go", "list", "-tags", tags, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list ./... (tags %q): %v", tags, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			pkg := strings.TrimPrefix(f[0], module)
			r, ok := ruleFor(rules, pkg)
			if !ok {
				t.Errorf("package %s is not in the package map of docs/architecture.md: add its row (what it owns, what it may import)", pkg)
				continue
			}
		imports:
			for _, imp := range f[1:] {
				if !strings.HasPrefix(imp, module) {
					continue
				}
				imp = strings.TrimPrefix(imp, module)
				for _, a := range r.allow {
					if covers(a, imp) {
						continue imports
					}
				}
				t.Errorf("%s imports %s (tags %q): docs/architecture.md allows it only %v", pkg, imp, tags, r.allow)
			}
		}
	}
}

// TestImportMapCatches: the map's matching refuses what it should.
func TestImportMapCatches(t *testing.T) {
	rules := []rule{{pkg: "agent", allow: []string{"agent/*", "atmodem"}}, {pkg: "targets/*", allow: []string{"*"}}}
	for _, tc := range []struct {
		pkg, imp string
		ok       bool
	}{
		{"agent", "agent/outbox", true},
		{"agent", "atmodem", true},
		{"agent", "atmodem/modemsim", false},
		{"agent", "agentx", false},
		{"targets/qemu/powercut", "mdtlog", true},
	} {
		r, found := ruleFor(rules, tc.pkg)
		ok := false
		for _, a := range r.allow {
			ok = ok || covers(a, tc.imp)
		}
		if !found || ok != tc.ok {
			t.Errorf("%s → %s: allowed %v, want %v", tc.pkg, tc.imp, ok, tc.ok)
		}
	}
	if _, found := ruleFor(rules, "privacy"); found {
		t.Error("a package without a row was found")
	}
}

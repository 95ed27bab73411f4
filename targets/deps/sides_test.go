package deps

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The wire contract (package wire) is shared by the device and the
// collector; each side's own packages stay on its side.
var (
	// deviceSide are the packages (import-path prefixes) of the device
	// agent, which the collector must not import.
	deviceSide = []string{
		"github.com/mtcagent/mtcagent/agent",
		"github.com/mtcagent/mtcagent/atmodem",
		"github.com/mtcagent/mtcagent/mdtlog",
		"github.com/mtcagent/mtcagent/privacy",
	}
	// shared may be imported by both sides although under a device-side
	// prefix: the identifier types.
	shared = []string{"github.com/mtcagent/mtcagent/privacy/ident"}
	// transport are what the contract package must not pull in.
	transport = []string{"github.com/plgd-dev/go-coap/", "github.com/pion/", "crypto/tls", "net"}
)

func listDeps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func hasPrefix(p string, prefixes []string) bool {
	for _, x := range prefixes {
		if p == x || strings.HasPrefix(p, strings.TrimSuffix(x, "/")+"/") {
			return true
		}
	}
	return false
}

// TestCollectorImportsNoDevicePackage: the collector and its command reach
// the contract through package wire, never through the device's packages.
func TestCollectorImportsNoDevicePackage(t *testing.T) {
	for _, pkg := range []string{"./collector", "./cmd/mtccollector"} {
		for _, d := range listDeps(t, pkg) {
			if hasPrefix(d, deviceSide) && !hasPrefix(d, shared) {
				t.Errorf("%s imports the device-side package %s: move what both sides need to package wire", pkg, d)
			}
		}
	}
}

// TestWireIsTransportFree: the contract package knows nothing of CoAP,
// DTLS or sockets, so either side may change its transport.
func TestWireIsTransportFree(t *testing.T) {
	for _, d := range listDeps(t, "./wire") {
		if hasPrefix(d, transport) {
			t.Errorf("package wire imports %s", d)
		}
	}
}

// TestNoSyncTagStaysInTests: the mtc_test_nosync tag (fsync off, for the
// power-cut test's proof that it catches a store that never syncs) is named
// only by that test and the files it selects, never by a build of the
// product (Makefile, packaging, scripts).
func TestNoSyncTagStaysInTests(t *testing.T) {
	root := filepath.Join("..", "..")
	allowed := map[string]bool{
		"targets/qemu/powercut_test.go":  true,
		"internal/fsutil/sync_nosync.go": true,
		"internal/fsutil/sync_linux.go":  true,
		"internal/fsutil/sync_other.go":  true,
		"docs/power-cut.md":              true,
		"targets/deps/sides_test.go":     true,
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == ".git" || rel == "dist" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "mtc_test_nosync") {
			return nil
		}
		if !allowed[filepath.ToSlash(rel)] {
			t.Errorf("%s names mtc_test_nosync: only the power-cut test may build with fsync off", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

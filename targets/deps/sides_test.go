package deps

import (
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

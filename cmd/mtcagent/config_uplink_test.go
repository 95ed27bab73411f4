//go:build !mtc_omit_coap

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWarnServerWithoutRecipient: an uplink server with no [recipient]
// grant gets no status; the daemon says so at start.
func TestWarnServerWithoutRecipient(t *testing.T) {
	state := t.TempDir()
	conf := filepath.Join(t.TempDir(), "agent.conf")
	os.WriteFile(conf, []byte("[agent]\nheartbeat = 1m\n[uplink]\naddr = 127.0.0.1:9\nname = operator\npsk_identity = d\npsk = 000102030405060708090a0b0c0d0e0f\n"), 0o600)
	d := startDaemon(t, state, writeScenario(t, `{"dialect": "generic"}`), conf)
	d.stop(t)
	if !strings.Contains(d.stderr.String(), "level=WARN") || !strings.Contains(d.stderr.String(), "no [recipient] section") || !strings.Contains(d.stderr.String(), `[recipient \"operator\"]`) {
		t.Fatalf("no warning for a server without a grant:\n%s", d.stderr)
	}
}

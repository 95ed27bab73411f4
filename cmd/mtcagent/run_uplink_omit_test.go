//go:build mtc_omit_coap

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A build without the uplink refuses a config that asks for one, instead
// of queueing forever what the operator expects to be delivered.
func TestRunRefusesUplinkWithoutCoAP(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "a.conf")
	os.WriteFile(conf, []byte("[uplink]\naddr = 127.0.0.1:5684\npsk_identity = d\npsk = 000102030405060708090a0b0c0d0e0f\n"), 0o600)
	sc := writeScenario(t, `{"dialect": "generic"}`)
	code, _, errs := run(t, "run", "--modem", "sim:"+sc, "--state-dir", t.TempDir(), "--config", conf)
	if code == 0 || !strings.Contains(errs, "no CoAP/DTLS uplink") {
		t.Fatalf("exit %d, stderr %q; want a refusal naming the missing uplink", code, errs)
	}
}

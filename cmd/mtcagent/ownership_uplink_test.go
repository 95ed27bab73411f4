//go:build !mtc_omit_coap

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRunRefusesUnprotectedPSKFile: the [uplink] PSK file is a secret like
// the device key: readable by others, or owned by another user, it stops
// the daemon with exit 1 (a state problem, not bad input) naming the file.
func TestRunRefusesUnprotectedPSKFile(t *testing.T) {
	psk := filepath.Join(t.TempDir(), "psk")
	os.WriteFile(psk, []byte("000102030405060708090a0b0c0d0e0f\n"), 0o600)
	conf := filepath.Join(t.TempDir(), "a.conf")
	os.WriteFile(conf, []byte("[agent]\nheartbeat = off\n[uplink]\naddr = 127.0.0.1:9\npsk_identity = meter-1\npsk_file = "+psk+"\n"), 0o600)
	os.Chmod(psk, 0o644)
	runRefused(t, t.TempDir(), conf, psk, "chmod 600 "+psk)
	os.Chmod(psk, 0o600)
	needRoot(t)
	os.Chown(psk, otherUID, otherUID)
	runRefused(t, t.TempDir(), conf, psk, "chown ")
}

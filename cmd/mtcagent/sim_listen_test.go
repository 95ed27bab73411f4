//go:build !mtc_omit_sim

package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/testexec"
)

// `sim --listen` serves the simulated modem on a socket; the agent reads it
// as a network-attached modem (tcp:) and, on a second connection, again.
func TestSimListen(t *testing.T) {
	sc := writeScenario(t, `{"dialect": "quectel"}`)
	for _, listen := range []string{"tcp:127.0.0.1:0", "unix:" + filepath.Join(t.TempDir(), "modem.sock")} {
		cmd, err := testexec.Self("sim", "--scenario", sc, "--listen", listen)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), "MTCAGENT_TEST_MAIN=1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addr, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("sim --listen %s printed nothing: %v", listen, err)
		}
		addr = strings.TrimSpace(addr)
		if strings.HasPrefix(addr, "tcp:") {
			for range 2 {
				code, js, errs := run(t, "status", "--modem", addr, "--json")
				var st map[string]any
				if code != 0 || json.Unmarshal([]byte(js), &st) != nil || st["dialect"] != "quectel" {
					t.Fatalf("status over %s: %d %s %s", addr, code, js, errs)
				}
			}
		} else if _, err := os.Stat(strings.TrimPrefix(addr, "unix:")); err != nil {
			t.Fatalf("sim printed %q but: %v", addr, err)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sim --listen %s after SIGTERM: %v", listen, err)
			}
		case <-time.After(scaled(10 * time.Second)):
			cmd.Process.Kill()
			t.Errorf("sim --listen %s did not stop on SIGTERM", listen)
		}
	}
	code, _, errs := run(t, "sim", "--scenario", sc, "--listen", "udp:1.2.3.4:5")
	if code != 2 || !strings.Contains(errs, "want unix:PATH or tcp:HOST:PORT") {
		t.Fatalf("bad --listen: %d %s", code, errs)
	}
}

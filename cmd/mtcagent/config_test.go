package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/testexec"
)

// TestOneConfigTruth: every command that reads the configuration file
// checks all of it the same way. A typo anywhere (a section, a key, a
// value) is refused by each with exit 2 and the file:line, rather than
// accepted by one command and refused by another.
func TestOneConfigTruth(t *testing.T) {
	base := "[agent]\nheartbeat = 1m\n\n[recipient \"operator\"]\nidentity = psk:operator-1\nstatus = full\n"
	cases := []struct {
		name, text, line, want string
	}{
		{"misspelled section", base + "\n[uplnk]\naddr = 127.0.0.1:5684\n", ":8:", "unknown section [uplnk]"},
		{"agent key typo", "[agent]\nhearbeat = 1m\n", ":2:", `unknown key "hearbeat"`},
		{"recipient key typo", base + "locaton = exact\n", ":7:", `unknown key "locaton"`},
		{"mdt key typo", base + "[mdt]\nintervall = 5s\n", ":8:", `unknown key "intervall"`},
		{"uplink key typo", base + "[uplink]\naddr = 127.0.0.1:5684\npsk_identiy = x\n", ":9:", `unknown key "psk_identiy"`},
		{"uplink bad psk", base + "[uplink]\naddr = 127.0.0.1:5684\npsk_identity = d\npsk = 00zz\n", ":10:", "psk: want at least 32 hex digits"},
		{"uplink bad keepalive", base + "[uplink]\naddr = 127.0.0.1:5684\npsk_identity = d\npsk = 000102030405060708090a0b0c0d0e0f\nkeepalive = soon\n", ":11:", "keepalive: want a duration"},
		{"section twice", base + "[agent]\npoll = 5s\n", ":7:", "[agent] given twice"},
		{"privacy bad duration", base + "[privacy]\nschedule = often\n", ":8:", "schedule"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "agent.conf")
			if err := os.WriteFile(conf, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(dir, "state")
			for _, args := range [][]string{
				{"report", "preview", "--recipient", "operator", "--config", conf, "--state-dir", state},
				{"mdt", "status", "--config", conf, "--state-dir", state},
			} {
				code, _, errs := run(t, args...)
				if code != 2 || !strings.Contains(errs, conf+tc.line) || !strings.Contains(errs, tc.want) {
					t.Errorf("%s: exit %d, stderr %q; want 2 with %s%s and %q", args[0], code, errs, conf, tc.line, tc.want)
				}
			}
			// run as a process, bounded: on a file it accepted it would
			// start the daemon.
			ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
			defer cancel()
			cmd, err := testexec.Self("run", "--config", conf, "--state-dir", state, "--modem", "sim:"+writeScenario(t, `{"dialect": "generic"}`))
			if err != nil {
				t.Fatal(err)
			}
			cmd.Env = append(os.Environ(), "MTCAGENT_TEST_MAIN=1")
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-ctx.Done():
				cmd.Process.Kill()
				<-done
				t.Fatalf("run: started with the bad file:\n%s", stderr.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(stderr.String(), conf+tc.line) || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("run: exit %d, stderr %q; want 2 with %s%s and %q", code, stderr.String(), conf, tc.line, tc.want)
			}
		})
	}
}

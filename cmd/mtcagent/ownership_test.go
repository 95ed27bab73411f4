package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/testexec"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// runRefused runs `mtcagent run` as a real process and expects it to
// refuse to start: exit 1 soon, naming path on stderr with a hint that
// contains hint. A daemon that starts instead is stopped and reported.
func runRefused(t *testing.T, state, conf, path, hint string) string {
	t.Helper()
	sc := writeScenario(t, `{"dialect": "generic"}`)
	args := []string{"run", "--modem", "sim:" + sc, "--state-dir", state}
	if conf != "" {
		args = append(args, "--config", conf)
	}
	cmd, err := testexec.Self(args...)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Env = append(os.Environ(), "MTCAGENT_TEST_MAIN=1")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(scaled(5 * time.Second)):
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		t.Fatalf("the daemon started although %s is unprotected:\n%s", path, stderr.String())
	}
	var ee *exec.ExitError
	errs := stderr.String()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1:\n%s", err, errs)
	}
	if !strings.Contains(errs, "mtcagent: error: ") || !strings.Contains(errs, path) {
		t.Errorf("the error does not name %s:\n%s", path, errs)
	}
	if !strings.Contains(errs, "mtcagent: hint: "+hint) {
		t.Errorf("no hint %q:\n%s", hint, errs)
	}
	return errs
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
}

const otherUID = 12345 // neither the agent's user nor root

// TestRunRefusesUnprotectedState: docs/agent.md says a too-open state
// directory or key file is refused with exit 1 and a hint. A directory
// that group or others may write, and secret files that another user
// owns (replaced) or others can read, stop the daemon before it starts.
func TestRunRefusesUnprotectedState(t *testing.T) {
	t.Run("state dir 0777", func(t *testing.T) {
		state := t.TempDir()
		os.Chmod(state, 0o777)
		runRefused(t, state, "", state, "chmod 700 "+state)
	})
	t.Run("outbox dir 0777", func(t *testing.T) {
		state := t.TempDir()
		ob := filepath.Join(state, "outbox")
		os.Mkdir(ob, 0o700)
		os.Chmod(ob, 0o777)
		runRefused(t, state, "", ob, "chmod 700 "+ob)
	})
	t.Run("state dir of another user", func(t *testing.T) {
		needRoot(t)
		state := t.TempDir()
		os.Chown(state, otherUID, otherUID)
		runRefused(t, state, "", state, "chown ")
	})
	t.Run("device key replaced by another user", func(t *testing.T) {
		needRoot(t)
		state := t.TempDir()
		if _, _, err := attest.LoadOrCreateDeviceKey(state); err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(state, attest.DeviceKeyFile)
		os.Chown(key, otherUID, otherUID)
		errs := runRefused(t, state, "", key, "chown ")
		if !strings.Contains(errs, "owned by uid 12345") {
			t.Errorf("the error does not say who owns the key:\n%s", errs)
		}
	})
	t.Run("mdt key of another user", func(t *testing.T) {
		needRoot(t)
		state := t.TempDir()
		s, err := mdtlog.Open(state, mdtlog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Consent(mdtlog.ConsentRequest{})
		if err := s.Append(mdtlog.Record{Time: time.Unix(1_800_000_000, 0), Serving: mdtlog.Cell{RAT: "lte"}}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		key := filepath.Join(mdtlog.Dir(state), "key")
		os.Chown(key, otherUID, otherUID)
		runRefused(t, state, "", key, "chown ")
		// The mdt commands refuse it too.
		code, _, errs := run(t, "mdt", "status", "--state-dir", state)
		if code != 1 || !strings.Contains(errs, key) || !strings.Contains(errs, "hint: chown ") {
			t.Errorf("mdt status with a foreign key: exit %d\n%s", code, errs)
		}
	})
}

// TestRunHintFitsTheCause: a state problem that is not a lock held by
// another process is not reported as "another mtcagent running".
func TestRunHintFitsTheCause(t *testing.T) {
	t.Run("outbox is a file", func(t *testing.T) {
		state := t.TempDir()
		ob := filepath.Join(state, "outbox")
		os.WriteFile(ob, nil, 0o600)
		errs := runRefused(t, state, "", ob, "")
		if strings.Contains(errs, "another mtcagent") || !strings.Contains(errs, "not a directory") {
			t.Errorf("hint does not fit a file in the outbox's place:\n%s", errs)
		}
	})
	t.Run("read-only file system", func(t *testing.T) {
		needRoot(t)
		state := t.TempDir()
		if err := syscall.Mount("tmpfs", state, "tmpfs", syscall.MS_RDONLY, "size=64k,mode=0700"); err != nil {
			t.Skipf("cannot mount a read-only tmpfs here: %v", err)
		}
		t.Cleanup(func() { syscall.Unmount(state, 0) })
		errs := runRefused(t, state, "", state, "")
		if strings.Contains(errs, "another mtcagent") || !strings.Contains(errs, "read-only") {
			t.Errorf("hint does not fit a read-only state dir:\n%s", errs)
		}
	})
}

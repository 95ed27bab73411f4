// Package testexec starts helper processes from tests in a way that also
// works when the test binary itself runs under qemu-user (make test-qemu):
// there the kernel cannot exec a foreign binary directly, so the emulator
// named in MTC_TEST_EXEC is put in front.
package testexec

import (
	"os"
	"os/exec"
	"strings"
)

// Command is exec.Command with the emulator prefix, if any.
func Command(name string, args ...string) *exec.Cmd {
	if pre := strings.Fields(os.Getenv("MTC_TEST_EXEC")); len(pre) > 0 {
		return exec.Command(pre[0], append(append(pre[1:], name), args...)...)
	}
	return exec.Command(name, args...)
}

// Self returns a command that runs the current test binary again with args,
// for tests that need a child process to kill or to crash.
func Self(args ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return Command(exe, args...), nil
}

// Emulated reports whether the tests run under an emulator; timing-bound
// loops may scale down, never skip.
func Emulated() bool { return os.Getenv("MTC_TEST_EXEC") != "" }

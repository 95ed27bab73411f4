package main

import (
	"os"
	"testing"
)

// TestMain lets tests run this very binary as the real mtcagent (a daemon
// to talk to, a process to kill): with MTCAGENT_TEST_MAIN=1 it is main.
func TestMain(m *testing.M) {
	if os.Getenv("MTCAGENT_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

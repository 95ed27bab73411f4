package attest

import (
	"fmt"
	"os"
	"testing"
)

// childCounterEnv makes the test binary act as the power-cut test's child:
// issue sequence numbers from the counter in that state directory forever,
// printing each one only after Next returned it.
const childCounterEnv = "MTC_ATTEST_COUNTER_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childCounterEnv); dir != "" {
		os.Exit(counterChild(dir))
	}
	os.Exit(m.Run())
}

func counterChild(dir string) int {
	c, err := OpenCounter(dir, 3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	for range 1_000_000 {
		n, err := c.Next()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 3
		}
		if _, err := fmt.Fprintf(os.Stdout, "%d\n", n); err != nil {
			return 3
		}
	}
	return 0
}

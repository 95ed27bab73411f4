package fleetbench

import "testing"

// TestParseCPULine: the steal figure comes only from a whole "cpu" line;
// a short, foreign or garbled one gives no figure rather than a zero.
func TestParseCPULine(t *testing.T) {
	got, ok := parseCPULine("cpu  100 5 50 800 10 1 2 32 7 0")
	if !ok || got.total != 1000 || got.steal != 32 {
		t.Fatalf("whole line: got %+v, %v; want total 1000 (guest not counted twice), steal 32", got, ok)
	}
	for _, line := range []string{
		"",
		"cpu  100 5 50 800 10 1 2",          // no steal field
		"cpu0 100 5 50 800 10 1 2 32",       // a single CPU's line
		"cpu  100 5 50 800 10 1 2 x3",       // garbled
		"cpu  100 5 50 800 10 1 2 -3 0 0",   // negative
		"intr 100 5 50 800 10 1 2 32 7 0 1", // another line
	} {
		if got, ok := parseCPULine(line); ok {
			t.Errorf("%q: got %+v, want no figure", line, got)
		}
	}
}

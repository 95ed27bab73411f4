package agent

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/agent/control"
)

// TestOpenRunClose: Open assembles the daemon once, Run serves the control
// socket and returns only after every goroutine ended, Close releases the
// locks so that the next Open succeeds; a second daemon on the same state
// directory is refused while the first runs.
func TestOpenRunClose(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StateDir = t.TempDir()
	noModem := func(context.Context) (io.ReadWriteCloser, error) { return nil, errors.New("no modem here") }
	for round := 0; round < 2; round++ {
		d, err := Open(cfg, DaemonDeps{Open: noModem})
		if err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		// The socket listens from Open on: no waiting for Run.
		if _, err := (&control.Client{StateDir: cfg.StateDir}).Outbox(ctx); err != nil {
			t.Fatalf("round %d: outbox over the control socket: %v", round, err)
		}
		if _, err := Open(cfg, DaemonDeps{Open: noModem}); err == nil {
			t.Fatalf("round %d: a second daemon opened the same state directory", round)
		} else if se := (*StateError)(nil); !errors.As(err, &se) || !strings.Contains(err.Error(), "outbox") {
			t.Fatalf("round %d: second Open: %v, want a StateError for the outbox lock", round, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: Run: %v", round, err)
		}
		if err := d.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
	}
}

package atmodem

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mtcagent/mtcagent/atmodem/at"
)

// ErrNoAnswer: the modem did not answer the initialisation of ReadOnce
// (not its AT port, still booting, or not a modem at all).
var ErrNoAnswer = errors.New("modem does not answer")

// ReadOnce takes one full reading of the modem on port, for a one-shot
// command: an engine that knows the dialects' URCs (at.WithURCs), so one
// arriving mid-command is never taken for a reply line and is dropped;
// Init; Status. It closes port and returns after the engine's goroutines
// have ended. A failed Init is ErrNoAnswer wrapping the cause.
func ReadOnce(ctx context.Context, port io.ReadWriteCloser) (*Status, error) {
	e := at.New(port, at.WithURCs(URCPrefixes()...))
	defer func() {
		e.Close()
		port.Close()
		e.Wait()
	}()
	m := NewModem(e, nil)
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoAnswer, err)
	}
	return m.Status(ctx)
}

package atmodem

import "errors"

// The modem layer's own errors; the engine's (ErrTimeout, ErrClosed,
// ErrModemError, ErrOverflow, CommandError, CMEError, CMSError) are
// package at's.
var (
	// ErrUnsupported: the modem does not know the command.
	ErrUnsupported = errors.New("not supported by this modem")
	// ErrNoReading: the reply held no line of the expected form.
	ErrNoReading = errors.New("no reading in reply")
)

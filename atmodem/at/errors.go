package at

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var (
	// ErrTimeout: the modem did not finish answering in time.
	ErrTimeout = errors.New("timeout")
	// ErrClosed: the engine was closed or the port went away.
	ErrClosed = errors.New("port closed")
	// ErrModemError: the modem answered a plain ERROR (or NO CARRIER,
	// BUSY, NO ANSWER, NO DIALTONE, ABORTED).
	ErrModemError = errors.New("modem answered ERROR")
	// ErrOverflow: the reply outgrew a bound (MaxLineBytes,
	// MaxReplyLines, MaxReplyBytes); what was read is not a value. The
	// detail is an *OverflowError.
	ErrOverflow = errors.New("reply too long")
)

// OverflowError says which bound a reply outgrew: "line" (one line over
// MaxLineBytes, dropped as noise), "lines" (over MaxReplyLines) or
// "bytes" (over MaxReplyBytes). It matches ErrOverflow.
type OverflowError struct {
	Bound string
	Limit int
}

func (e *OverflowError) Error() string {
	switch e.Bound {
	case "line":
		return fmt.Sprintf("reply too long: a line over %d bytes dropped", e.Limit)
	case "lines":
		return fmt.Sprintf("reply too long: over %d lines", e.Limit)
	}
	return fmt.Sprintf("reply too long: over %d bytes", e.Limit)
}

func (e *OverflowError) Unwrap() error { return ErrOverflow }

// CMEError is a +CME ERROR (mobile equipment error, TS 27.007 §9.2).
type CMEError struct {
	Code int    // -1 when the modem gave text only
	Text string // verbose text when the modem gave it
}

func (e *CMEError) Error() string {
	if e.Code >= 0 {
		if d := cmeText[e.Code]; d != "" {
			return fmt.Sprintf("+CME ERROR %d (%s)", e.Code, d)
		}
		return fmt.Sprintf("+CME ERROR %d", e.Code)
	}
	return "+CME ERROR: " + e.Text
}

// CMSError is a +CMS ERROR (message service error, TS 27.005 §3.2.5).
type CMSError struct {
	Code int
	Text string
}

func (e *CMSError) Error() string {
	if e.Code >= 0 {
		return fmt.Sprintf("+CMS ERROR %d", e.Code)
	}
	return "+CMS ERROR: " + e.Text
}

// Well-known +CME ERROR codes.
const (
	CMESIMNotInserted = 10
	CMESIMPINRequired = 11
	CMESIMPUKRequired = 12
	CMESIMFailure     = 13
	CMESIMBusy        = 14
	CMESIMWrong       = 15
)

var cmeText = map[int]string{
	3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
	11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
	15: "SIM wrong", 30: "no network service", 100: "unknown",
}

// CommandError is the failure of one command. Cmd is the command name only
// (e.g. "AT+CPIN"), never its arguments, which may hold a PIN.
type CommandError struct {
	Cmd string
	Err error
}

func (e *CommandError) Error() string { return e.Cmd + ": " + e.Err.Error() }
func (e *CommandError) Unwrap() error { return e.Err }

// commandName strips arguments: "AT+CPIN=\"1234\"" -> "AT+CPIN".
func commandName(line string) string {
	if i := strings.IndexAny(line, "=?"); i > 0 {
		return line[:i]
	}
	return line
}

// IsCME reports whether err is a +CME ERROR with the given code.
func IsCME(err error, code int) bool {
	var ce *CMEError
	return errors.As(err, &ce) && ce.Code == code
}

// atoiDefault parses a decimal number, or returns def.
func atoiDefault(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return n
}

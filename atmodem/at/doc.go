// Package at runs AT commands (3GPP TS 27.007 / V.250 framing) over any
// io.ReadWriter: a serial port, a pty, a TCP socket, a test fake. It is the
// bottom layer of package atmodem and knows no modem, dialect or reading:
// it turns bytes into lines, lines into replies and unsolicited result
// codes (URCs), and failures into errors.
//
// What it copes with: URCs in the middle of replies, late replies after a
// timeout, echo switched on by a reset, one-byte reads, garbage and NULs on
// the line, invalid UTF-8, a modem that floods lines or sends a line without
// end, a port that vanishes.
//
// Engine owns one reader goroutine and one URC dispatcher goroutine; Close,
// then closing the port, stops both, and Wait joins them. Commands are
// serialised; every call takes a context.Context. URCs go, in arrival
// order, to the handler registered for their prefix (WithHandler, Handle;
// the longest prefix wins) and never into a command's reply; WithURCs
// declares prefixes the caller knows but does not follow. The engine knows
// no URCs itself: the modem layer passes its dialects' prefixes. After a
// timeout the engine resynchronises before the next command, so a late
// reply is discarded, not taken as the next command's answer.
//
// Bounds (MaxLineBytes, MaxReplyLines, MaxReplyBytes, and a bounded URC
// queue) cap what the engine keeps whatever the modem sends; a reply over
// them ends its command with an *OverflowError.
//
// Errors: every command failure is a *CommandError naming the command
// (never its arguments, which may hold a PIN) and wrapping ErrTimeout,
// ErrClosed (the engine or port is gone), ErrModemError (a plain ERROR),
// *CMEError, *CMSError, *OverflowError (ErrOverflow) or the context's
// error. Lines are logged at debug level by length and command name only,
// never raw replies.
package at

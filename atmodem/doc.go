// Package atmodem reads a cellular modem over AT commands (3GPP TS 27.007
// plus the Quectel and SIMCom dialects) correctly under real-world
// conditions: URCs in the middle of replies, late replies after a timeout,
// echo switched on by a reset, one-byte reads, garbage on the line, a modem
// that reboots or a USB port that vanishes.
//
// The layers, bottom up:
//
//   - Package atmodem/at runs AT commands over any io.ReadWriter: framing,
//     serialised commands, URC dispatch, resynchronisation after a timeout,
//     bounds on what the modem may send, and the command errors
//     (at.ErrTimeout, at.ErrClosed, at.CommandError, at.CMEError, ...). It
//     knows no dialect.
//   - The parsers (Parse*) turn reply lines into typed readings; they accept
//     what real modems print (optional quotes, hex or decimal LAC/TAC/CI,
//     missing optional fields, vendor extras).
//   - Modem drives an at.Engine in the modem's dialect and reads a whole
//     Status; Monitor starts one engine per port session, with handlers for
//     the URCs the dialects know, keeps a Modem alive across resets and
//     unplugs and turns URCs and polled changes into Events.
//
// Opening the port is not this package's: atmodem/serialport resolves a
// --modem spec (device path, auto, tcp:HOST:PORT) to an io.ReadWriteCloser
// and locks serial ports against other users, so that everything here runs
// over any io.ReadWriter and links no serial driver.
//
// Errors: the engine's errors are package at's and reach callers wrapped
// (match them with errors.Is and errors.As); this package adds
// ErrNoReading (a reply without the expected line), ErrUnsupported,
// ErrNoAnswer (ReadOnce) and the GNSS errors. Identifiers (IMEI, IMSI,
// ICCID) are ident types that redact themselves when printed or logged.
//
// Fakes: package atmodem/transcript replays recorded sessions strictly and
// has fault wrappers; package atmodem/modemsim is a stateful simulator that
// serves scenarios over a real pseudo-terminal or in process.
package atmodem

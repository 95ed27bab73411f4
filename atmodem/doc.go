// Package atmodem reads a cellular modem over AT commands (3GPP TS 27.007
// plus the Quectel and SIMCom dialects) correctly under real-world
// conditions: URCs in the middle of replies, late replies after a timeout,
// echo switched on by a reset, one-byte reads, garbage on the line, a modem
// that reboots or a USB port that vanishes.
//
// The layers, bottom up:
//
//   - Engine runs AT commands over any io.ReadWriter (a serial port, a pty,
//     a TCP socket, a test fake). It owns one reader goroutine and one URC
//     delivery goroutine; Close stops both. Commands are serialised; every
//     call takes a context.Context. Unsolicited result codes go, in arrival
//     order, to the handler registered for their prefix and never into a
//     command's reply. After a timeout the engine resynchronises before the
//     next command, so a late reply is discarded, not taken as the next
//     command's answer.
//   - The parsers (Parse*) turn reply lines into typed readings; they accept
//     what real modems print (optional quotes, hex or decimal LAC/TAC/CI,
//     missing optional fields, vendor extras).
//   - Modem knows the dialect and reads a whole Status; Monitor keeps a
//     Modem alive across resets and unplugs and turns URCs and polled
//     changes into Events.
//
// Opening the port is not this package's: atmodem/serialport resolves a
// --modem spec (device path, auto, tcp:HOST:PORT) to an io.ReadWriteCloser
// and locks serial ports against other users, so that everything here runs
// over any io.ReadWriter and links no serial driver.
//
// Errors: sentinels ErrTimeout and ErrClosed for what callers branch on;
// CommandError wraps every command failure and names the command (never its
// arguments); CMEError and CMSError carry the modem's error codes; a plain
// ERROR is ErrModemError. Identifiers (IMEI, IMSI, ICCID) are ident types
// that redact themselves when printed or logged.
//
// Fakes: package atmodem/transcript replays recorded sessions strictly and
// has fault wrappers; package atmodem/modemsim is a stateful simulator that
// serves scenarios over a real pseudo-terminal or in process.
package atmodem

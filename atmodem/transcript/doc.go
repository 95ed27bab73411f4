// Package transcript records and strictly replays AT sessions, and wraps
// ports with faults, so the atmodem engine and everything above it can be
// tested without hardware.
//
// A transcript is one session per file, one step per line:
//
//	# source: where it came from (a device and firmware, a manual, modemsim)
//	# kind: real | synthetic
//	> AT+CSQ             the host writes "AT+CSQ" and a CR
//	< +CSQ: 20,99        the modem sends "\r\n+CSQ: 20,99\r\n"
//	<< \r\r\nOK\r\r\n    the modem sends exactly these bytes
//	~ 50ms               the modem pauses
//
// "#" lines before the first step are the header ("key: value" lines can be
// read with Meta); later "#" lines and blank lines are comments. Step text
// is taken verbatim after the marker and one space, with the escapes \\,
// \r, \n, \t and \xHH; WriteTo writes every byte outside printable ASCII as
// an escape, so files stay ASCII and exact. atmodem/modemsim's Sim.Record
// writes this format.
//
// Replayer plays a transcript as the modem: an io.ReadWriteCloser for the
// engine. It is strict: a host line that differs from the next ">" step, or
// that comes after the last step, fails the replay with a *StepError naming
// the step and its line in the file; Close reports steps never used with an
// *UnusedError. Modem output before a ">" step is released when the host
// reaches that step; delays are waited out unless the host writes first.
// Recorder wraps a live io.ReadWriter and turns what passes into steps.
//
// Fault wrappers for any io.ReadWriteCloser: OneByte (one byte per Read),
// Stall (a pause every n bytes) and Vanish (the port fails mid-read, as an
// unplugged USB modem).
//
// Goroutines: none of the types starts one, except the timer that ends a
// replayed delay. Errors are lower-case, start with "transcript", and wrap
// the sentinels ErrMismatch, ErrUnused, ErrClosed and ErrVanished.
package transcript

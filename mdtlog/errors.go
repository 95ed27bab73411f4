package mdtlog

import (
	"errors"
	"fmt"
)

// Sentinel errors.
var (
	// ErrNoConsent: logging is off because the user has not consented.
	ErrNoConsent = errors.New("mdt logging is off: no consent")
	// ErrOptedOut: the user opted out; only a local consent reverses it.
	ErrOptedOut = errors.New("mdt logging is off: the user opted out")
	// ErrRemoteConsent: consent cannot be given remotely.
	ErrRemoteConsent = errors.New("mdt consent must be given on the device by the user")
	// ErrLocked: another process (usually the daemon) holds the log.
	ErrLocked = errors.New("mdt log is in use by another process")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("mdt log is closed")
	// ErrAuth: a record failed authentication (tampered, corrupt, or
	// written under another key).
	ErrAuth = errors.New("record failed authentication")
	// ErrTorn: a record was cut short (a write interrupted by a crash).
	ErrTorn = errors.New("record incomplete (torn write)")
	// ErrBadLength: a frame length is out of range, so the rest of the
	// segment cannot be parsed.
	ErrBadLength = errors.New("record length out of range")
	// ErrBadHeader: a segment header is missing or not ours.
	ErrBadHeader = errors.New("bad segment header")
	// ErrNoKey: segments exist but the master key is missing.
	ErrNoKey = errors.New("master key missing")
	// ErrTooLarge: a record is larger than MaxRecordSize once encoded.
	ErrTooLarge = errors.New("record too large")
)

// RecordError is a record that could not be read back.
type RecordError struct {
	Segment uint64 // segment sequence number
	Index   uint64 // record index in the segment
	Offset  int64  // byte offset of the frame in the segment file
	Err     error  // ErrAuth, ErrTorn, ErrBadLength, or a decoding error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("mdt segment %d record %d (offset %d): %v", e.Segment, e.Index, e.Offset, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// SegmentError is a segment file that could not be used at all.
type SegmentError struct {
	Op   string // "open", "read", "create", ...
	Name string // file name within the mdt directory
	Err  error
}

func (e *SegmentError) Error() string {
	return fmt.Sprintf("mdt %s segment %s: %v", e.Op, e.Name, e.Err)
}

func (e *SegmentError) Unwrap() error { return e.Err }

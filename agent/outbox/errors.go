package outbox

import (
	"errors"
	"fmt"
)

// Sentinel errors, for callers to branch on with errors.Is.
var (
	// ErrFull: the outbox holds MaxMessages messages or MaxBytes bytes;
	// the message was refused (nothing is ever dropped to make room).
	ErrFull = errors.New("outbox is full")
	// ErrTooLarge: a message is larger than MaxMessageSize.
	ErrTooLarge = errors.New("message too large")
	// ErrLocked: another process holds the outbox directory.
	ErrLocked = errors.New("outbox is in use by another process")
	// ErrClosed: the Outbox was closed.
	ErrClosed = errors.New("outbox is closed")
	// ErrAckAhead: Ack named an id that was never appended.
	ErrAckAhead = errors.New("ack beyond the last appended id")
	// ErrBroken: an earlier write or sync failed and re-validating the
	// segment it went to failed too (the medium still does not work);
	// nothing was stored. The next Append tries again; no reopen is
	// needed.
	ErrBroken = errors.New("outbox is recovering from a failed write")

	// ErrTorn: a record was cut short (a write interrupted by a crash).
	ErrTorn = errors.New("record incomplete (torn write)")
	// ErrChecksum: a record's CRC does not match its bytes.
	ErrChecksum = errors.New("record checksum mismatch")
	// ErrBadLength: a record's length field is out of range.
	ErrBadLength = errors.New("record length out of range")
	// ErrBadID: a record's id is out of order for its segment.
	ErrBadID = errors.New("record id out of order")
	// ErrBadHeader: a segment or ack file header is missing or not ours.
	ErrBadHeader = errors.New("bad header")
)

// RecordError is a stretch of a segment file that did not hold valid
// records: a torn tail after a crash, or corruption. Its bytes are never
// returned as messages.
type RecordError struct {
	Segment string // segment file name within the outbox directory
	Offset  int64  // byte offset where the bad stretch starts
	Length  int64  // length of the bad stretch in bytes
	// FirstID..LastID are the ids known to be lost with it (both 0 when
	// not known, e.g. for a torn tail, whose record was never reported
	// appended).
	FirstID, LastID uint64
	Err             error // ErrTorn, ErrChecksum, ErrBadLength, ErrBadID, ErrBadHeader
}

func (e *RecordError) Error() string {
	s := fmt.Sprintf("outbox segment %s offset %d (+%d bytes): %v", e.Segment, e.Offset, e.Length, e.Err)
	if e.FirstID != 0 {
		s += fmt.Sprintf(" (lost ids %d..%d)", e.FirstID, e.LastID)
	}
	return s
}

func (e *RecordError) Unwrap() error { return e.Err }

// FileError is an operation on one of the outbox's files that failed.
type FileError struct {
	Op   string // "open", "read", "write", "sync", "create", "remove", ...
	Name string // file name within the outbox directory
	Err  error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("outbox %s %s: %v", e.Op, e.Name, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

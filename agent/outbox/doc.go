// Package outbox is the agent's store-and-forward queue on disk: signed
// messages (opaque bytes, typically 100–400 B CBOR/COSE tokens) wait here,
// in order, until the collector acknowledges them.
//
// Append returns an id once the message is on disk (fsync); ids strictly
// increase, also across restarts. Pending reads waiting messages back in id
// order; Ack(id) acknowledges everything up to id, durably, after which
// those messages never come back. The outbox is bounded (Options.MaxMessages
// and MaxBytes): when full, Append refuses with ErrFull and stores nothing;
// nothing is ever dropped to make room, so the caller decides what to give
// up (docs/outbox.md suggests what).
//
// Files and goroutines: an Outbox owns its directory (segment files
// seg-<first id>.log, the ack file, and a lock file held with flock, so one
// process at a time); it starts no goroutines and is safe for use from
// several. Crash safety: every record carries its length, id and CRC-32C;
// Open drops a torn last record (a crash mid-append, never reported
// appended) and skips damaged records, listing them in Report; no record
// whose check fails is ever returned. The format is in docs/outbox.md.
//
// A failed write or sync (ENOSPC, EIO, a read-only remount) fails that
// Append only: the next Append re-validates the segment from disk, as Open
// would, and appending resumes by itself when the medium works again.
//
// Errors: sentinels to branch on (ErrFull, ErrTooLarge, ErrLocked,
// ErrClosed, ErrAckAhead, ErrBroken), *fsutil.PermissionError from Open for
// a directory another user owns or group or others may write, *FileError
// for a failed file operation, *RecordError for damaged records; messages
// are lower-case and
// name the operation, and never contain message bytes.
//
// Fakes: the outbox is its own fake; tests open one in t.TempDir() and
// inject write, sync and creation failures through the segFile seam
// (file.go).
package outbox

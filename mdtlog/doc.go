// Package mdtlog is the device's MDT-style radio measurement log (TS 37.320
// "logged MDT" in spirit): an append-only, encrypted, crash-safe log of
// serving and neighbour cell measurements that is off until the user
// consents, can be cleared at any time by crypto-erase, and stops for good on
// opt-out.
//
// # Files
//
// Everything lives in <state-dir>/mdt/:
//
//	key                 32-byte master key (0600); destroyed by Clear
//	consent             consent state, written atomically (tmp, fsync, rename)
//	lock                flock(2) target: one writer (daemon or CLI) at a time
//	<seq>.seg           segment files, append-only
//
// A segment starts with a 24-byte header (magic, version, sequence number and
// 8 random bytes: the segment id) and then holds frames
// [4-byte masked length][ChaCha20-Poly1305 ciphertext + 16-byte tag]. The
// per-segment keys come from HKDF-SHA256(master key, header); the nonce is
// the record's index in its segment and the associated data is the segment
// id and the index, so a record moved, reordered or spliced in from another
// segment fails authentication. The length is masked with a keystream of its
// own, so without the key the files say nothing but their size.
//
// # Ownership
//
// A Store owns its directory while open: it holds the flock, and its methods
// are safe for concurrent use (one mutex). It starts no goroutines. The
// daemon keeps one Store open and serves the `mdt` commands through its
// control socket; the CLI opens one itself when the daemon is not running.
//
// # Errors
//
// Sentinels for what callers branch on (ErrNoConsent, ErrOptedOut,
// ErrRemoteConsent, ErrLocked, ErrAuth, ErrTorn); *RecordError and
// *SegmentError carry where a problem was found and unwrap to a sentinel.
// Open refuses a state or mdt directory, or a key file, that another user
// owns or group or others may access, with *fsutil.PermissionError
// (fsutil.ErrUnprotected). No error carries record contents or key
// material.
//
// # Fakes
//
// Options.Now and Options.Rand inject the clock and the randomness; tests
// use a temporary directory as the state dir.
package mdtlog

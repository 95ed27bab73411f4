// Package privacy decides what each recipient learns about the device, masks
// it, and keeps an audit of every disclosure (requirements R5–R7).
//
// The flow is one way:
//
//	Snapshot ──Policy.View(recipient)──► Report ──Audit.Disclose()──► bytes sent
//	                                               (Encode + a metadata-only audit record)
//
// A Policy is read from the agent's configuration file (ParsePolicy): one
// [recipient "NAME"] section per party, each naming the identity it
// authenticates with and a level per privacy class (status, location, cell,
// identity, radio), plus a [privacy] section for the device class, padding
// and the reporting schedule. An unknown recipient gets nothing, and the
// device class no_location_tracking forces location and cell to none for
// everyone. See docs/privacy.md for the reference.
//
// Every field of a report carries a privacy class in a struct tag, and the
// only way out of a Report (Encode, MarshalJSON) runs one check that refuses
// a field without a class and a non-empty field the recipient is not granted.
// Report values are unexported: only View builds them.
//
// Location is masked as Android's coarse location is: a secret per-device
// offset, fixed plus a part that drifts over days, is added before snapping to
// the recipient's grid (Masker). No fresh noise is drawn per report, so
// averaging reports converges to the secret offset, not to the truth. The
// secret lives in <state-dir>/privacy.secret (LoadSecret).
//
// The package starts no goroutines. It owns two files in the state
// directory: privacy.secret and privacy-audit.log (with one rotated .1).
// Errors are lower-case, start with "privacy:", wrap the sentinels
// (ErrUnknownRecipient, ErrUnclassified, ErrNotGranted, ...) inside
// FieldError and RecipientError, and never contain a value from a snapshot.
// Tests build Snapshots directly and use a fake IdentitySource; there is no
// other fake. ScanForIdentifiers helps whole-session tests prove that no
// identifier leaks.
package privacy

// Package attest is the device's evidence: its signing key, the signed
// UICC–IMEI binding token and the other signed records (events, heartbeats)
// that share one signing path, per-recipient identifiers and pseudonyms,
// crash-safe counters, the SIM binding policy, SUCI concealment (TS 33.501
// Annex C), and the verifier a receiver runs.
//
// # Pieces
//
//   - Keys: LoadOrCreateDeviceKey (Ed25519 in <state>/device.key, PEM
//     PKCS#8, 0600) returns a crypto.Signer; anything else implementing it (a
//     TPM, a secure element) can sign instead. Files that group or others can
//     access are refused with a *PermissionError (ErrKeyPermissions).
//   - Derivation: a Deriver holds the 32-byte device secret
//     (<state>/device.secret) and derives per-recipient RAND UEIDs and
//     IMSI/ICCID pseudonyms (Deriver.Pseudonyms), all domain-separated
//     HMAC-SHA-256. IMEIUEID gives the IMEI-type UEID where policy allows.
//   - Counters: Counter reserves blocks of sequence numbers ahead in
//     <state>/seq.bound (write, fsync, rename) so a number is never issued
//     twice, even across power cuts or two processes; IncrementBootCount is
//     called once per daemon start.
//   - Tokens: Issuer.Sign(kind, claims...) is the one signing path; binding
//     (SignBinding), event (BindingEvent.Sign) and heartbeat (SignHeartbeat)
//     tokens use it. Verifier.Verify checks a token and fails closed.
//   - Binding: BindingPolicy remembers the first (or provisioned) SIM,
//     reports typed changes, and with ActionLock stays Locked until
//     Provision or Reprovision.
//   - SUCI: Conceal / Decode with HNPublicKey / HNPrivateKey, key files in
//     the config format (ParseHNPublicKey, ParseHNPrivateKey).
//
// The token format, the files and the SUCI key file are documented in
// docs/attestation.md.
//
// # Goroutines and files
//
// The package starts no goroutines. Counter, Issuer and BindingPolicy are
// safe for concurrent use. All state files live in the state directory
// (created 0700), are written atomically (temporary file, fsync, rename,
// fsync of the directory) and are read back strictly: a damaged counter or
// binding file is an error, never a silent reset. Read-modify-write of the
// counters takes an flock on <state>/attest.lock.
//
// # Errors
//
// Sentinels for what callers branch on (ErrKeyPermissions, ErrBadKey,
// ErrCounterCorrupt, ErrSUCI, ErrSUCIMAC, ErrClaim, and the verification
// reasons ErrMalformed, ErrAlgorithm, ErrSignature, ErrNonce, ErrReplay,
// ErrStale, ErrKind), with detail in *PermissionError, *CounterError and
// *VerifyError. No error or String method contains a key, a secret or an
// identifier.
//
// # Fakes
//
// MemSequence is an in-memory Sequencer; ClockFunc makes a Clock from a
// function (tests pin time and the synchronised flag), and clock.Fake
// (internal/clock) is one too; Conceal takes the
// randomness source, so the TS 33.501 vectors are reproduced exactly.
package attest

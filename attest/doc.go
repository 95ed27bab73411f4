// Package attest is the device's evidence: its signing key, the signed
// UICC–IMEI binding token and the other signed records (events, heartbeats)
// that reuse the same path, per-recipient identifiers and pseudonyms, crash-
// safe counters, the binding policy, SUCI concealment (TS 33.501 Annex C),
// and the verifier a receiver runs.
package attest

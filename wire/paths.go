package wire

// Paths the device posts to (device → collector); the payload is one token
// from attest (COSE_Sign1), content-format 60.
const (
	PathEvent     = "/e" // a signed event token
	PathHeartbeat = "/h" // a signed heartbeat token
	PathBinding   = "/b" // an unsolicited binding attestation (no nonce)
	PathReport    = "/r" // the status report masked for the server, sent at each slot of a fixed schedule
)

// Paths the device serves (collector → device, over the same session).
const (
	PathStatus  = "/status"  // GET: the masked status for this server (CBOR)
	PathAttest  = "/attest"  // POST {1: nonce bstr, ?2: formats bstr}: a binding token answering the nonce
	PathTrigger = "/trigger" // POST a Trigger (EncodeTrigger); 2.04 when accepted
	PathMDT     = "/mdt"     // GET: the measurement log upload, if consented and granted
)

// Keys of the attestation request (POST PathAttest, a CBOR map of byte
// strings).
const (
	AttestNonce   = 1 // the challenge, 8..64 bytes
	AttestFormats = 2 // the token claims formats the collector reads, one byte each (attest.Format); absent: format 1 only
	// AttestLater, present (h'01'): the collector confirms non-confirmable
	// posts later, in the answer to the device's next confirmable one
	// that asks with QueryConfirm; absent: send everything confirmable.
	AttestLater = 3
)

// QueryConfirm is the Uri-Query name ("c=N") of a confirmable post (an
// event or a heartbeat, seq H) by which the device asks whether the
// collector has every message up to seq H-N, the last one it sent
// non-confirmable. The collector answers 2.04 with the CBOR unsigned
// N as the body when it has them (and took the post), or
// CodeNotConfirmed without taking the post when it does not: the device
// then sends them again, confirmable, before the post.
const QueryConfirm = "c"

// CodeNotConfirmed (4.12 Precondition Failed) answers a post asking
// QueryConfirm when the collector lacks a message the device sent
// non-confirmable; the post itself was not taken.
const CodeNotConfirmed = 0x8c

// Token claims formats (attest.FormatLabels and attest.FormatCompact).
const (
	FormatLabels  = 1
	FormatCompact = 2
)

// TokenFormat is the best claims format a device may sign in for a
// collector that reads formats (an AttestFormats value): 2 (compact) when
// it is among them, else 1.
func TokenFormat(formats []byte) uint8 {
	for _, f := range formats {
		if f == FormatCompact {
			return FormatCompact
		}
	}
	return FormatLabels
}

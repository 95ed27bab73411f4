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
)

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

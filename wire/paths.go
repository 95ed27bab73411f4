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
	PathAttest  = "/attest"  // POST {1: nonce bstr}: a binding token answering the nonce
	PathTrigger = "/trigger" // POST a Trigger (EncodeTrigger); 2.04 when accepted
	PathMDT     = "/mdt"     // GET: the measurement log upload, if consented and granted
)

// Package uplink is the device's secure channel to its collector: CoAP
// (RFC 7252) over DTLS 1.2 with mutual authentication, dialled out by the
// device (it usually sits behind carrier NAT), with the server's requests
// served back over the same session.
//
// Dial forces the DTLS handshake, so a wrong server key or a refused PSK
// shows up there as ErrServerKey or ErrPSKRejected (inside a *DialError),
// not on the first request. A Client talks to exactly one configured server:
// the server is authenticated by its PSK or by the SHA-256 pin of its
// SubjectPublicKeyInfo, and the device by its PSK or by a certificate over
// its own key.
//
// Goroutines: a Client owns the go-coap read loop and its keep-alive; both
// end with Close or when the session drops (Done is closed). The caller
// owns reconnecting: Dial again (the supervisor re-sends from its outbox).
// Handler methods run on go-coap's goroutines, one request at a time per
// session; they must not block for long.
//
// Triggers: Trigger, EncodeTrigger/DecodeTrigger and TriggerGuard implement
// the replay protection described in docs/uplink.md (a strictly increasing
// per-device counter from the collector plus an issue time, on the
// authenticated session).
//
// Errors are lower-case, name the operation, and wrap the sentinels below.
// No secret (PSK, key) appears in an error. Tests use the real collector
// package on loopback; there is no fake server.
package uplink

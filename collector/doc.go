// Package collector is the network side that mtcagent devices report to
// (the reference collector behind `mtccollector serve`).
//
// Devices dial in over CoAP/DTLS 1.2 (PSK, or certificates with key pins)
// and post signed tokens from attest: events (PathEvent), heartbeats
// (PathHeartbeat) and binding attestations (PathBinding); on every new
// session the collector also challenges the device for a binding
// attestation with a fresh nonce over the same session. Every token is
// verified (signature, kind, sequence number beyond the last one seen,
// nonce); a token already seen is acknowledged but not processed again
// (de-duplication by sequence number). Alarms: binding-changed,
// sim-removed, sequence-gap (suppressed messages), heartbeat-overdue (loss
// of connectivity or suppression), verify-failed.
//
// Application servers (SCSs) connect to a second DTLS listener with their
// own PSK and may read a device's status, observe its events and send it
// triggers only when the configuration grants them that device and class
// (UE-level authorization, R9). An unknown device, a device not granted and
// a meaningless path all get the same 4.04 and body. Every SCS access and
// every notification is appended to the audit log.
//
// Storage: device state, alarms and the audit log go through a Store
// (store.go): the embedded default, one bbolt file in the state directory
// (collector.db, with alarms.log and audit.log as JSON lines beside it),
// or PostgreSQL (store_pg.go, schema migrations in migrations/). Every
// operation touches one device; accepting a token is one transaction
// with the device locked. The state directory also holds the pulled
// measurement logs (mdt/) and the collector's key. Goroutines: the
// listeners' accept loops, one per session (go-coap), one per new device
// session for the challenge, and Run's heartbeat check; with PostgreSQL
// also the instance's lease renewal, its LISTEN connection and one per
// request another instance relays to it (cluster_pg.go: many instances
// on one database, SCS requests reaching the instance holding the
// device's session). Close stops and waits for all of them, removes the
// instance from the database, then closes the store.
//
// Errors name the operation and never contain keys. Tests run the real
// server on loopback with agent/uplink as the device and coap-client-openssl
// as an SCS, on both stores (PostgreSQL from internal/pgtest); there are no
// fakes.
package collector

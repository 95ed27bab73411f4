// Package agent is mtcagent's supervisor: it ties the modem monitor
// (atmodem), the evidence (attest), the privacy policy and the measurement
// log together, turns what happens on the modem into signed, sequenced
// monitoring events and heartbeats, keeps them in an outbox until the
// uplink delivers them, and answers the local control socket.
//
// Goroutines: Run owns them all (monitor, event loop, heartbeat, control
// socket) and returns after they have ended. Time comes from an injected
// attest.Clock (wall time plus "is it synchronised"), tickers from an
// injected function, logs go to an injected *slog.Logger, so tests are
// exact. Errors from Run are fatal configuration or state problems (exit
// status 1); everything the modem or the network does is an event.
//
// Fakes: MemOutbox keeps messages in memory; the modem is the simulator.
package agent

// Package agent is mtcagent's supervisor: it ties the modem monitor
// (atmodem), the evidence (attest), the privacy policy and the measurement
// log together, turns what happens on the modem into signed, sequenced
// monitoring events and heartbeats, keeps them in an outbox until the
// uplink delivers them, and answers the local control socket.
//
// Assembly: Open builds the whole daemon once (state directory, outbox,
// measurement log, keys and counters, uplink and deliverer) and Daemon.Run
// serves it with the control socket (package agent/control); cmd/mtcagent
// keeps only flags, output and hints. The device key is a crypto.Signer
// (Deps.Signer, DaemonDeps.Signer); the file key is the default.
//
// Goroutines: Agent.Run owns the monitor, event loop, heartbeat, storage
// retry and measurement-log goroutines; Daemon.Run adds the deliverer and
// the control socket; each returns after all of its goroutines have ended.
// Time, timers and tickers come from one injected internal/clock Clock
// (Deps.Clock: wall time plus "is it synchronised", durations, the
// heartbeat, storm, storage-retry and MDT timers, the modem monitor's poll
// and reopen back-off, the deliverer's waits); logs go to an injected
// *slog.Logger, so tests are exact. Errors from Open and Run are fatal
// configuration (ConfigError) or state (StateError) problems;
// everything the modem or the network does is an event.
//
// Fakes: MemOutbox keeps messages in memory; clock.Fake is the clock;
// the modem is the simulator.
package agent

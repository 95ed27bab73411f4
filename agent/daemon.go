package agent

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mtcagent/mtcagent/agent/control"
	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/internal/clock"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// Daemon is the whole running agent, assembled once by Open: the state
// directory, the outbox, the measurement log, the agent (keys, counters,
// binding policy), the uplink with its deliverer, and the control socket.
// Run starts every goroutine and joins them all before it returns; Close
// then releases what Open opened, in reverse order.
type Daemon struct {
	Agent *Agent
	cfg   Config
	log   *slog.Logger
	ob    *outbox.Outbox
	store *mdtlog.Store
	ctl   net.Listener // the control socket

	deliver   *Deliverer // nil without an uplink
	closeLink func()
}

// DaemonDeps are what Open takes from its caller.
type DaemonDeps struct {
	// Open opens the modem's port, at start and after each loss.
	Open atmodem.Opener
	// Log receives the daemon's log (discarded when nil).
	Log *slog.Logger
	// Clock is the daemon's one source of time (wall time, whether it is
	// synchronised, timers), handed to the agent and the deliverer
	// (clock.System when nil).
	Clock clock.Clock
	// Signer is the device key; nil means the file key in the state
	// directory (created on first use).
	Signer crypto.Signer
	// Version is logged at start.
	Version string
}

// ConfigError is a configuration the daemon cannot run with: bad input.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "config: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// StateError is a failure to use the state directory: its owner or mode,
// a lock another process holds, a full or read-only file system.
type StateError struct{ Err error }

func (e *StateError) Error() string { return e.Err.Error() }
func (e *StateError) Unwrap() error { return e.Err }

// ErrNoUplinkBuild refuses an [uplink] section in a build without the
// CoAP/DTLS uplink (tag mtc_omit_coap), rather than queueing forever what
// the operator expects to be delivered.
var ErrNoUplinkBuild = errors.New("config: [uplink]: this build has no CoAP/DTLS uplink (built with mtc_omit_coap)")

// Open checks the state directory and opens every part of the daemon
// once. On error, whatever it had opened is closed again.
func Open(cfg Config, deps DaemonDeps) (_ *Daemon, err error) {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, log: log, closeLink: func() {}}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	// The state directory first: nobody else may own or write it.
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, &StateError{fmt.Errorf("state directory: %w", err)}
	}
	if err := fsutil.CheckPrivateDir(cfg.StateDir); err != nil {
		return nil, &StateError{fmt.Errorf("state directory: %w", err)}
	}
	if d.ob, err = outbox.Open(filepath.Join(cfg.StateDir, "outbox"), outbox.Options{}); err != nil {
		return nil, &StateError{fmt.Errorf("outbox: %w", err)}
	}
	logOutboxReport(log, d.ob.Report())
	clk := clock.Or(deps.Clock) // the one clock: the agent's, the deliverer's, the log's
	mdtOpts := cfg.MDT.Options()
	mdtOpts.Now = func() time.Time { return clock.Mono(clk) }
	if d.store, err = mdtlog.Open(cfg.StateDir, mdtOpts); err != nil {
		return nil, &StateError{fmt.Errorf("measurement log: %w", err)}
	}
	logMDTReport(log, d.store)
	queue := DurableQueue{O: d.ob}
	a, err := New(cfg, Deps{Open: deps.Open, Outbox: queue, Log: log, Clock: clk, Signer: deps.Signer,
		MDT: &MDT{Store: d.store, Config: cfg.MDT}})
	if err != nil {
		return nil, &StateError{err}
	}
	d.Agent = a
	if err := d.openUplink(queue); err != nil {
		return nil, err
	}
	if d.ctl, err = control.Listen(cfg.StateDir); err != nil {
		return nil, err
	}
	log.Info("mtcagent starting", "version", deps.Version, "state_dir", cfg.StateDir)
	return d, nil
}

// Run serves until ctx ends or a part fails: the agent (monitor, events,
// heartbeats, measurement log), the deliverer and the control socket. It
// returns after every goroutine it started has ended.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if d.deliver != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.deliver.Run(ctx) }()
	}
	ctlErr := make(chan error, 1)
	go func() { ctlErr <- control.Serve(ctx, d.ctl, d.Agent.Handle) }()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Agent.Run(ctx) }()
	select {
	case err := <-ctlErr:
		if err != nil {
			cancel()
			<-runErr
			return err
		}
		return <-runErr
	case err := <-runErr:
		cancel()
		<-ctlErr
		return err
	}
}

// Close releases what Open opened, after Run has returned: the uplink,
// then the sequence counter (nothing signs afterwards), the measurement
// log and the outbox. Only the counter's error matters to the next start,
// and it is logged as well as returned.
func (d *Daemon) Close() error {
	var err error
	if d.ctl != nil {
		d.ctl.Close() // Run has closed it; Open may not have reached Run
	}
	d.closeLink()
	if d.Agent != nil {
		if err = d.Agent.Close(); err != nil {
			d.log.Error("sequence counter not closed: the next start skips the rest of its block", "err", err)
		}
	}
	if d.store != nil {
		d.store.Close()
	}
	if d.ob != nil {
		d.ob.Close()
	}
	return err
}

// maxReportLines bounds how many damaged stretches a start logs one by one.
const maxReportLines = 16

// logOutboxReport logs what outbox.Open found on disk (docs/outbox.md):
// a torn tail is what a crash mid-append leaves (that record was never
// reported appended); a damaged record in the middle means a failing
// medium, and the ids it lost. Offsets and ids only, never content.
func logOutboxReport(log *slog.Logger, r outbox.Report) {
	log.Info("outbox opened", "segments", r.Segments, "next_id", r.NextID, "acked", r.Acked,
		"torn_bytes", r.TornBytes, "damaged", len(r.Corrupt))
	if r.TornBytes > 0 {
		log.Warn("outbox: torn tail dropped at start (a crash mid-append; that record was never reported appended)",
			"torn_bytes", r.TornBytes)
	}
	for i, re := range r.Corrupt {
		if i == maxReportLines {
			log.Error("outbox: more damaged records at start", "not_listed", len(r.Corrupt)-i)
			break
		}
		log.Error("outbox: damaged record skipped at start (a failing medium?)", "err", re)
	}
}

// logMDTReport reads the measurement log once at start and logs what it
// found: records that do not authenticate (tampering or a failing medium)
// and torn tails (a crash mid-append; repaired at the next append).
func logMDTReport(log *slog.Logger, store *mdtlog.Store) {
	rep, err := store.Records(nil)
	if err != nil {
		log.Error("measurement log: not readable at start", "err", err)
		return
	}
	log.Info("measurement log opened", "consent", store.ConsentState().State.String(), "segments", rep.Segments,
		"records", rep.Records, "damaged", rep.Failed, "torn", rep.Torn)
	if rep.Torn > 0 {
		log.Warn("measurement log: torn tail found at start (a crash mid-append; repaired at the next append)", "segments", rep.Torn)
	}
	if rep.Failed > 0 {
		log.Error("measurement log: records that do not authenticate found at start (tampering or a failing medium); they are skipped",
			"records", rep.Failed)
		for _, e := range rep.Errors {
			log.Error("measurement log: damaged", "err", e)
		}
	}
}

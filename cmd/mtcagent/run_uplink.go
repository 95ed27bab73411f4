//go:build !mtc_omit_coap

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
)

// startUplink dials the [uplink] server and delivers the outbox to it
// until ctx ends; without the section the agent only queues.
func startUplink(ctx context.Context, cfg agent.Config, a *agent.Agent, queue agent.DurableQueue, log *slog.Logger) (stop func(), err error) {
	up, err := agent.ParseUplink(cfg)
	if errors.Is(err, fsutil.ErrUnprotected) {
		return nil, stateHint(err, cfg.StateDir) // a PSK file or the key: a state problem, exit 1
	}
	if err != nil {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("config: %v", err)}
	}
	if up == nil {
		log.Info("no [uplink] configured: events are signed and kept in the outbox only")
		return func() {}, nil
	}
	h, err := linkHandler(cfg, a)
	if err != nil {
		return nil, err
	}
	if _, granted := h.Policy.Recipient(up.Name); !granted {
		log.Warn("the uplink server has no [recipient] section: it gets signed events and heartbeats, but no status, location or identity (default deny)",
			"server", up.Name, "hint", fmt.Sprintf("add [recipient %q] with the grants it should have (docs/privacy.md)", up.Name))
	}
	up.Handler = h
	if m := a.MDT(); m != nil {
		// The log keeps a position only as precise as the collector, the
		// MDT recipient, is granted.
		m.Locate = func(loc privacy.Location, t time.Time) *mdtlog.Location {
			l, err := h.Policy.MaskLocation(up.Name, loc, t)
			if err != nil || l == nil {
				return nil
			}
			return &mdtlog.Location{Lat: l.Lat, Lon: l.Lon, AccuracyM: l.AccuracyM}
		}
	}
	link := &agent.LinkSender{Config: *up, Log: log}
	d := &agent.Deliverer{Q: queue, S: link, Log: log, BackoffMin: time.Second, BackoffMax: time.Minute, Online: a.Online}
	if slot := h.Policy.Schedule; slot > 0 {
		// [privacy] schedule: send only at slot starts, each with the
		// status report for the uplink's recipient (docs/privacy.md).
		d.Slot = slot
		d.SlotReport = func() []byte { return h.ScheduledReport(up.Name) }
		log.Info("sending on a fixed schedule", "slot", slot)
	}
	a.SetWake(d.Wake)
	go d.Run(ctx)
	return link.Close, nil
}

// linkHandler builds what serves the collector's requests: the privacy
// policy (default deny), its audit, the trigger replay guard.
func linkHandler(cfg agent.Config, a *agent.Agent) (*agent.LinkHandler, error) {
	pol, err := privacy.ParsePolicy(cfg.File)
	if err != nil {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("config: %v", err)}
	}
	secret, err := privacy.LoadSecret(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if err := pol.SetSecret(secret); err != nil {
		return nil, err
	}
	guard, err := uplink.OpenTriggerGuard(filepath.Join(cfg.StateDir, "trigger.guard"), 0)
	if err != nil {
		return nil, err
	}
	d, err := attest.LoadOrCreateDeriver(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &agent.LinkHandler{A: a, Policy: pol, Audit: privacy.OpenAudit(cfg.StateDir, pol.AuditMax), Guard: guard, Deriver: d}, nil
}

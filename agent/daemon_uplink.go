//go:build !mtc_omit_coap

package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
)

// openUplink prepares the [uplink] server's link and the deliverer of the
// outbox to it (Run starts it); without the section the agent only queues.
func (d *Daemon) openUplink(queue DurableQueue) error {
	cfg, a, log := d.cfg, d.Agent, d.log
	up, err := parseUplink(cfg, a.signer) // the agent's own key: a certificate of the key that signs
	if errors.Is(err, fsutil.ErrUnprotected) {
		return &StateError{err} // a PSK file or the key: a state problem, exit 1
	}
	if err != nil {
		return &ConfigError{err}
	}
	if up == nil {
		log.Info("no [uplink] configured: events are signed and kept in the outbox only")
		return nil
	}
	h, err := NewLinkHandler(cfg, a)
	if err != nil {
		return err
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
	link := &LinkSender{Config: *up, Log: log}
	d.closeLink = link.Close
	dl := &Deliverer{Q: queue, S: link, Log: log, Clock: a.deps.Clock, BackoffMin: time.Second, BackoffMax: time.Minute, Online: a.Online}
	if hb := cfg.Heartbeat; hb > 0 && hb < 8*dl.BackoffMin {
		// The spread after an outage stays well inside a heartbeat
		// interval, so it never makes the collector see a heartbeat as
		// overdue (a fleet's spread matters at minutes-long heartbeats).
		dl.RejoinSpread = hb / 2
	}
	if slot := h.Policy.Schedule; slot > 0 {
		// [privacy] schedule: send only at slot starts, each with the
		// status report for the uplink's recipient (docs/privacy.md).
		dl.Slot = slot
		dl.SlotReport = func() []byte { return h.ScheduledReport(up.Name) }
		log.Info("sending on a fixed schedule", "slot", slot)
	}
	ConfirmLater(a, h, link, dl, cfg.Heartbeat)
	a.SetWake(dl.Wake)
	d.deliver = dl
	return nil
}

// ConfirmLater lets dl send a's cell events non-confirmable through link
// to a collector that confirms later (wire.AttestLater, learned by h):
// the next heartbeat's answer confirms them at the latest; without one in
// 1.5 heartbeat intervals they go again, confirmable. Without heartbeats
// (heartbeat 0) everything stays confirmable.
func ConfirmLater(a *Agent, h *LinkHandler, link *LinkSender, dl *Deliverer, heartbeat time.Duration) {
	if heartbeat <= 0 {
		return
	}
	h.Later = link.SetLater
	dl.Seq, dl.LaterWait = a.DeliverySeq, heartbeat+heartbeat/2
}

// NewLinkHandler builds what serves the collector's requests for a: the
// privacy policy of cfg (default deny), its audit, the trigger replay
// guard, and the agent's own deriver.
func NewLinkHandler(cfg Config, a *Agent) (*LinkHandler, error) {
	pol, err := privacy.ParsePolicy(cfg.File)
	if err != nil {
		return nil, &ConfigError{err}
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
	return &LinkHandler{A: a, Policy: pol, Audit: privacy.OpenAudit(cfg.StateDir, pol.AuditMax), Guard: guard, Deriver: a.deriver}, nil
}

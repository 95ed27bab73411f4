//go:build !mtc_omit_coap

package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/coapx"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
	"github.com/mtcagent/mtcagent/wire"
)

// ParseUplink builds the uplink from the [uplink] section (LoadConfig has
// checked it: see UplinkSettings): reads the PSK file and, in certificate
// mode, makes the device certificate from the attestation key. Nil
// without the section (the agent then only queues).
func ParseUplink(cfg Config) (*uplink.Config, error) { return parseUplink(cfg, nil) }

// parseUplink is ParseUplink with the device key; nil means the file key
// of the state directory.
func parseUplink(cfg Config, key crypto.Signer) (*uplink.Config, error) {
	u := cfg.Uplink
	if u == nil {
		return nil, nil
	}
	c := &uplink.Config{Addr: u.Addr, Name: u.Name, PSKIdentity: u.PSKIdentity, PSK: u.PSK,
		ServerPin: u.ServerPin, Keepalive: u.Keepalive}
	if u.PSKFile != "" {
		b, err := readSecretFile(u.PSKFile)
		if errors.Is(err, fsutil.ErrUnprotected) {
			return nil, err // a state problem (exit 1), not bad input: it names the file
		}
		if err == nil {
			c.PSK, err = hex.DecodeString(strings.TrimSpace(string(b)))
		}
		if err != nil {
			return nil, fmt.Errorf("[uplink] psk_file: %w", err)
		}
	}
	if len(c.ServerPin) > 0 {
		var err error
		if key == nil {
			if key, _, err = attest.LoadOrCreateDeviceKey(cfg.StateDir); err != nil {
				return nil, err
			}
		}
		if c.Certificate, err = coapx.SelfSigned(key, "mtcagent"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// readSecretFile reads a PSK file: fsutil's one check of private files
// (owner, mode 0600 or stricter).
func readSecretFile(path string) ([]byte, error) {
	return fsutil.ReadPrivateFile(path, 4096)
}

// LinkSender delivers queued messages over the uplink, dialling (again)
// when there is no session.
type LinkSender struct {
	Config uplink.Config
	Log    *slog.Logger

	mu sync.Mutex
	c  *uplink.Client
	// later: the collector of this session confirms non-confirmable
	// posts later (wire.AttestLater in its attestation request).
	later atomic.Bool
}

// SetLater records whether the collector of the current session said it
// confirms non-confirmable posts later (LinkHandler calls it on the
// collector's attestation request).
func (l *LinkSender) SetLater(ok bool) { l.later.Store(ok) }

// Later says whether a message may go non-confirmable now: the session
// is up and its collector offered to confirm later. (Should the session
// drop just after, the message goes on a new one, maybe to a collector
// that does not confirm later: it stays queued and is sent again,
// confirmable, at worst a duplicate.)
func (l *LinkSender) Later() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		return false
	}
	select {
	case <-l.c.Done():
		return false
	default:
	}
	return l.later.Load()
}

func (l *LinkSender) client(ctx context.Context) (*uplink.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		select {
		case <-l.c.Done():
			l.c.Close()
			l.c = nil
		default:
			return l.c, nil
		}
	}
	// A new session learns again whether its collector confirms later
	// (its attestation request comes right after the handshake).
	l.later.Store(false)
	c, err := uplink.Dial(ctx, l.Config)
	if err != nil {
		return nil, err
	}
	l.Log.Info("uplink connected", "server", l.Config.Name, "addr", l.Config.Addr)
	l.c = c
	return c, nil
}

func (l *LinkSender) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		l.c.Close()
		l.c = nil
	}
}

// Close ends the session.
func (l *LinkSender) Close() { l.drop() }

func msgPath(msg []byte) string {
	switch msg[0] {
	case KindHeartbeatMsg:
		return wire.PathHeartbeat
	case KindReportMsg:
		return wire.PathReport
	}
	return wire.PathEvent
}

// Send posts one queued message and returns once the collector confirmed.
func (l *LinkSender) Send(ctx context.Context, msg []byte) error {
	return l.SendAsking(ctx, msg, 0)
}

// SendLater posts msg non-confirmable: it returns once the datagram is
// written; the collector confirms it later (SendAsking).
func (l *LinkSender) SendLater(ctx context.Context, msg []byte) error {
	if len(msg) < 2 {
		return fmt.Errorf("%w: empty message", ErrRejected)
	}
	c, err := l.client(ctx)
	if err != nil {
		return err
	}
	if err := c.PostNon(ctx, msgPath(msg), msg[1:]); err != nil {
		l.drop()
		return err
	}
	return nil
}

// SendAsking posts msg confirmable; with back > 0 it also asks whether the
// collector has every message up to back sequence numbers before msg's
// (wire.QueryConfirm), and returns ErrNotConfirmed when it has not (msg
// was then not taken either).
func (l *LinkSender) SendAsking(ctx context.Context, msg []byte, back uint64) error {
	if len(msg) < 2 {
		return fmt.Errorf("%w: empty message", ErrRejected)
	}
	path := msgPath(msg)
	c, err := l.client(ctx)
	if err != nil {
		return err
	}
	var (
		code uplink.Code
		body []byte
	)
	if back > 0 {
		code, body, err = c.PostQuery(ctx, path, msg[1:], wire.QueryConfirm+"="+strconv.FormatUint(back, 10))
	} else {
		code, _, err = c.Post(ctx, path, msg[1:])
	}
	if err != nil {
		l.drop()
		return err
	}
	if back > 0 {
		switch {
		case code == wire.CodeNotConfirmed:
			return ErrNotConfirmed
		case code >= 0x40 && code < 0x60:
			var got uint64
			if cbor.Unmarshal(body, &got) != nil || got != back {
				// Taken, but the non-confirmable ones not confirmed: a
				// collector that does not confirm later answered.
				l.Log.Warn("collector took a message without confirming the non-confirmable ones before it", "code", code)
			}
			return nil
		}
	}
	switch {
	case code >= 0x40 && code < 0x60: // 2.xx
		return nil
	case code >= 0x80 && code < 0xa0: // 4.xx: refused for good
		return fmt.Errorf("%w: %v", ErrRejected, code)
	}
	return fmt.Errorf("collector answered %v", code)
}

// TriggerPing is the one trigger action the agent implements: it answers
// 2.04 and queues a signed, sequenced trigger_accepted event, proof that
// the device is alive and reachable now. Any other action is refused with
// 4.00 and the reason, never acknowledged.
const TriggerPing = "ping"

var triggerActions = map[string]bool{TriggerPing: true}

// TriggerActions lists the trigger actions the agent acts on, sorted.
func TriggerActions() []string {
	out := make([]string, 0, len(triggerActions))
	for k := range triggerActions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LinkHandler serves what the collector asks over the session, each only
// when the policy grants it to that server (the authenticated peer).
type LinkHandler struct {
	A       *Agent
	Policy  *privacy.Policy
	Audit   *privacy.Audit
	Guard   *uplink.TriggerGuard
	Deriver *attest.Deriver
	// Later, when set, learns from each attestation request whether the
	// collector confirms non-confirmable posts later (wire.AttestLater).
	Later func(bool)

	auditFault fsutil.FaultLog
}

// auditFailed logs a disclosure refused because the audit could not be
// written: a storage fault once (then at most every ten minutes) with a
// hint, anything else every time. The disclosure is not made either way
// (fail closed: nothing leaves unaudited); the audit file is opened anew
// for every entry, so disclosures resume by themselves once it can be
// written.
func (h *LinkHandler) auditFailed(what string, err error) {
	if f := fsutil.FaultOf(err); f != "" {
		if ok, n := h.auditFault.Fail(); ok {
			h.A.log.Error(what+" not sent: audit cannot be written", "err", err, "hint", f.Hint(h.A.cfg.StateDir), "refused", n)
		}
		return
	}
	h.A.log.Error(what+" not sent: audit failed", "err", err)
}

func (h *LinkHandler) auditOK() {
	if ok, since := h.auditFault.Ok(); ok {
		h.A.log.Info("storage works again: audit written", "store", "audit", "failing_for", time.Since(since).Round(time.Millisecond))
	}
}

// ServeUplink implements uplink.Handler.
func (h *LinkHandler) ServeUplink(ctx context.Context, r *uplink.Request) (uplink.Code, []byte) {
	a := h.A
	log := a.log.With("server", r.Peer, "path", r.Path)
	switch {
	case r.Method == "GET" && r.Path == wire.PathStatus:
		return h.statusReport(r.Peer)
	case r.Method == "POST" && r.Path == wire.PathAttest:
		var req map[int][]byte
		if err := cbor.Unmarshal(r.Payload, &req); err != nil || len(req[1]) < 8 || len(req[1]) > 64 {
			return uplink.BadRequest, nil
		}
		// Key 2: the token formats the collector reads, one byte each
		// (wire.AttestFormats). A collector that does not say reads
		// format 1 only.
		a.SetTokenFormat(attest.Format(wire.TokenFormat(req[wire.AttestFormats])))
		// Key 3: it confirms non-confirmable posts later.
		if h.Later != nil {
			h.Later(len(req[wire.AttestLater]) > 0 && req[wire.AttestLater][0] >= 1)
		}
		b, err := BindingFromStatus(a.Status(), r.Peer, req[1])
		if err != nil {
			return uplink.Unavailable, nil // an unknown reading never enters a signed claim
		}
		tok, err := a.issuer.SignBinding(h.Deriver, b) // the IMEI without AllowIMEI: not carried
		if err != nil {
			log.Error("attestation not signed", "err", err)
			return uplink.ServerError, nil
		}
		return uplink.Content, tok
	case r.Method == "POST" && r.Path == wire.PathTrigger:
		if a.policy.Locked() {
			log.Warn("trigger refused: binding locked until re-provisioned")
			return uplink.Forbidden, nil
		}
		t, err := wire.DecodeTrigger(r.Payload)
		if err != nil {
			return uplink.BadRequest, nil
		}
		if !triggerActions[t.Action] {
			// Never acknowledge what is not done: the sender learns why.
			err := fmt.Errorf("trigger %d: %w %q (this device implements: %s)", t.Counter, uplink.ErrTriggerAction, t.Action, strings.Join(TriggerActions(), ", "))
			log.Warn("trigger refused", "err", err, "from", t.From)
			return uplink.BadRequest, []byte(err.Error())
		}
		now, synced := a.deps.Clock.Now()
		if err := h.Guard.Accept(t, now, synced); err != nil {
			log.Warn("trigger refused", "err", err)
			a.emit("trigger_refused", map[string]any{"reason": err.Error()})
			return uplink.Forbidden, nil
		}
		a.emit("trigger_accepted", map[string]any{"action": t.Action, "from": t.From})
		return uplink.Changed, nil
	case r.Path == wire.PathMDT || r.Path == wire.PathMDTAck:
		return h.serveMDT(r)
	}
	return uplink.NotFound, nil
}

// statusReport is the status masked, padded and audited for recipient.
func (h *LinkHandler) statusReport(recipient string) (uplink.Code, []byte) {
	a := h.A
	log := a.log.With("recipient", recipient)
	if a.policy.Locked() {
		log.Warn("status refused: binding locked until re-provisioned")
		return uplink.Forbidden, nil
	}
	st := a.Status()
	if st == nil || h.Policy == nil || !st.SIM.Known() {
		// Without a known SIM reading the report's identity would say
		// "no SIM": not what is so.
		return uplink.Unavailable, nil
	}
	snap := SnapshotFromStatus(st)
	snap.Identity = Identity{D: h.Deriver, IMSI: st.SIM.IMSI, ICCID: st.SIM.ICCID, StateDir: a.cfg.StateDir}
	rep, err := h.Policy.View(recipient, snap)
	if err != nil {
		log.Warn("status refused", "err", err)
		return uplink.NotFound, nil
	}
	b, err := h.Audit.Disclose(rep, h.A.now())
	if err != nil {
		h.auditFailed("status", err)
		return uplink.ServerError, nil
	}
	h.auditOK()
	return uplink.Content, b
}

// ScheduledReport is the message the deliverer sends at each slot of the
// privacy schedule: the status report for recipient, as a KindReportMsg;
// nil when there is nothing the recipient may have.
func (h *LinkHandler) ScheduledReport(recipient string) []byte {
	code, b := h.statusReport(recipient)
	if code != uplink.Content {
		return nil
	}
	return append([]byte{KindReportMsg}, b...)
}

// serveMDT serves the measurement log upload (uplink/mdt.go) to a server
// granted radio measurements, while the user's consent stands.
func (h *LinkHandler) serveMDT(r *uplink.Request) (uplink.Code, []byte) {
	a := h.A
	m := a.deps.MDT
	g, ok := h.Policy.Grants(r.Peer)
	if !ok || g.Radio == privacy.LevelNone || m == nil || !m.Store.Logging() {
		return uplink.NotFound, nil
	}
	switch {
	case r.Method == "GET" && r.Path == wire.PathMDT:
		var after *mdtlog.Position
		for _, q := range r.Query {
			if v, ok := strings.CutPrefix(q, "after="); ok {
				p, err := wire.ParseMDTPos(v)
				if err != nil {
					return uplink.BadRequest, nil
				}
				after = &mdtlog.Position{Segment: p.Segment, Index: p.Index}
			}
		}
		recs, last, more, err := m.Page(after, wire.MDTPageBytes, func(rec *mdtlog.Record) { MaskMDT(rec, g) })
		if err != nil {
			a.log.Error("mdt upload: reading the log", "err", err)
			return uplink.ServerError, nil
		}
		page := wire.MDTPage{Records: make([]cbor.RawMessage, len(recs)), More: more}
		for i, b := range recs {
			page.Records[i] = b
		}
		if len(recs) > 0 {
			page.Last = &wire.MDTPos{Segment: last.Segment, Index: last.Index}
		}
		b, err := cbor.Marshal(page)
		if err != nil {
			return uplink.ServerError, nil
		}
		if len(recs) > 0 {
			// Audited like every disclosure; not sent when it cannot be.
			carries := map[string]string{}
			for _, c := range []privacy.Class{privacy.ClassRadio, privacy.ClassCell, privacy.ClassLocation} {
				if g.Level(c) > privacy.LevelNone {
					carries[c.String()] = g.Precision(c)
				}
			}
			if err := h.Audit.Append(privacy.AuditEntry{Time: h.A.now(), Recipient: r.Peer, Carries: carries, Size: len(b)}); err != nil {
				h.auditFailed("mdt upload", err)
				return uplink.ServerError, nil
			}
			h.auditOK()
			a.log.Info("mdt upload", "to", r.Peer, "records", len(recs), "up_to", page.Last.String())
		}
		return uplink.Content, b
	case r.Method == "POST" && r.Path == wire.PathMDTAck:
		var ack wire.MDTAck
		if err := cbor.Unmarshal(r.Payload, &ack); err != nil {
			return uplink.BadRequest, nil
		}
		d, err := m.UploadConfirmed(mdtlog.Position{Segment: ack.Upto.Segment, Index: ack.Upto.Index})
		if err != nil {
			a.log.Error("mdt upload confirmed, deleting failed", "err", err)
			return uplink.ServerError, nil
		}
		a.log.Info("mdt upload confirmed", "by", r.Peer, "up_to", ack.Upto.String(), "segments_deleted", d.Segments, "records_deleted", d.Records)
		b, _ := cbor.Marshal(wire.MDTAckResult{Segments: d.Segments, Records: d.Records})
		return uplink.Changed, b
	}
	return uplink.NotFound, nil
}

// NewNonce returns a fresh 16-byte nonce (for tests and tools).
func NewNonce() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

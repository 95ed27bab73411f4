package agent

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/clock"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Outbox keeps signed messages until they are delivered (agent/outbox is
// the durable one).
type Outbox interface {
	Append(msg []byte) (uint64, error)
}

// Deps are the agent's connections to the outside world.
type Deps struct {
	Open   atmodem.Opener
	Outbox Outbox
	Log    *slog.Logger
	// Clock is the agent's one source of time: wall time and whether it
	// is synchronised (tokens, events), durations (outages, cell storms,
	// MDT intervals), and the heartbeat, storm, MDT and storage-retry
	// timers (clock.System when nil; tests give a clock.Fake).
	Clock clock.Clock
	// Signer is the device key (a TPM, a secure element, ...); nil means
	// the file key in the state directory, created on first use.
	Signer crypto.Signer
	// Engine options for the modem (timeouts).
	EngineOptions []at.Option
	// MDT, when set, is the measurement log the daemon owns while it runs.
	MDT *MDT
	// StorageRetry is how often what is held in memory while storage
	// fails is written again (DefaultRetry when zero).
	StorageRetry time.Duration
}

// Agent is the running daemon.
type Agent struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	issuer  *attest.Issuer
	seq     *attest.Counter
	policy  *attest.BindingPolicy
	deriver *attest.Deriver // the one deriver of pseudonyms and UEIDs
	signer  crypto.Signer   // the device key
	mon     *atmodem.Monitor
	events  chan atmodem.Event // cell and registration events
	urgent  chan atmodem.Event // SIM, port and reset events: never behind a storm
	regKick chan struct{}      // a registration event was dropped: check connectivity

	storm       cellStorm    // under the Run goroutine
	cellDropped atomic.Int64 // cell events the queue had no room for

	queueMu sync.Mutex // sign and append in one step: outbox order = sequence order
	hold    holdState  // under queueMu: what waits in memory while storage fails
	wake    func()     // tells the deliverer something was queued

	mu       sync.Mutex
	lostAt   time.Time // connectivity lost (monotonic), zero when connected
	lostWall time.Time
	online   bool
	recent   []EventRecord // the last events, for the control socket
	recentC  chan struct{} // closed when recent grows; nil until someone waits
	state    persisted
	counts   map[string]int
}

// EventRecord is a monitoring event as the agent signed and queued it.
type EventRecord struct {
	Type    string         `json:"type"`
	Time    time.Time      `json:"time"`
	Synced  bool           `json:"clock_synced"`
	Seq     uint64         `json:"outbox_id"`
	Details map[string]any `json:"details,omitempty"`
}

// persisted is <state>/agent.json: what must survive restarts to notice
// changes across them. No identifiers.
type persisted struct {
	ConfigDigest string `json:"config_sha256,omitempty"`
	Firmware     string `json:"firmware_sha256,omitempty"` // of manufacturer/model/revision
	// TokenFormat is the claims format the collector last said it reads
	// (attest.Format; 0: not said, format 1).
	TokenFormat uint8 `json:"token_format,omitempty"`
}

// Private claim labels of monitoring events (attest's are -65537..-65545).
const (
	LabelDetails int64 = -65560 // map: event details (no identifiers)
)

// New checks the state directory and prepares keys and counters.
func New(cfg Config, deps Deps) (*Agent, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	deps.Clock = clock.Or(deps.Clock)
	if deps.Open == nil || deps.Outbox == nil {
		return nil, errors.New("agent: needs a modem opener and an outbox")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := fsutil.CheckPrivateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	sg, err := attest.OpenSigning(cfg.StateDir, attest.SigningOptions{Signer: deps.Signer, Clock: deps.Clock, CountBoot: true})
	if err != nil {
		return nil, err
	}
	if sg.KeyCreated {
		deps.Log.Info("device key created", "dir", cfg.StateDir)
	}
	key, d, seq, is := sg.Key, sg.Deriver, sg.Counter, sg.Issuer
	pol, err := attest.OpenBindingPolicy(cfg.StateDir, d, cfg.BindingAction, []string{cfg.Recipient})
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, deps: deps, log: deps.Log, issuer: is, seq: seq, policy: pol, deriver: d, signer: key, counts: map[string]int{}}
	a.storm.burst = cfg.CellBurst
	if a.storm.burst == 0 {
		a.storm.burst = CellBurst
	}
	a.loadState()
	is.SetFormat(attest.Format(a.state.TokenFormat))
	a.events = make(chan atmodem.Event, 256)
	a.urgent = make(chan atmodem.Event, 64)
	a.regKick = make(chan struct{}, 1)
	a.mon = atmodem.NewMonitor(atmodem.MonitorConfig{
		Open:          a.deps.Open,
		Poll:          a.cfg.Poll,
		GNSS:          a.cfg.GNSS,
		Log:           a.log,
		EngineOptions: a.deps.EngineOptions,
		OnEvent:       a.onEvent,
		Clock:         a.deps.Clock,
	})
	return a, nil
}

// Close ends the agent's use of the state directory after Run returned
// and whatever else signs through Issuer (the uplink) has stopped: it gives
// the unused rest of the reserved block of sequence numbers back, so that a
// clean restart continues at the next number and the receiver sees no gap
// (a crash still skips up to a block: that gap is the evidence of it).
// Nothing can be signed afterwards.
func (a *Agent) Close() error {
	if err := a.seq.Close(); err != nil {
		return fmt.Errorf("agent: close the sequence counter: %w", err)
	}
	return nil
}

// Online reports whether the device has connectivity (a registered
// domain, port present) as the monitoring events last saw it.
func (a *Agent) Online() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.online
}

// SetWake registers a function called whenever a message was queued (the
// deliverer's Wake). Call it before Run.
func (a *Agent) SetWake(f func()) { a.wake = f }

// MDT returns the measurement log the agent drives, or nil.
func (a *Agent) MDT() *MDT { return a.deps.MDT }

// Policy returns the SIM binding policy.
func (a *Agent) Policy() *attest.BindingPolicy { return a.policy }

// Issuer returns the agent's token issuer (for attestation requests).
func (a *Agent) Issuer() *attest.Issuer { return a.issuer }

// Status returns the modem's last full reading, or nil.
func (a *Agent) Status() *atmodem.Status {
	return a.mon.Status()
}

// Recent returns the last monitoring events, oldest first.
func (a *Agent) Recent() []EventRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]EventRecord(nil), a.recent...)
}

// recentWait returns Recent and a channel closed at the next event, so a
// waiter needs no polling.
func (a *Agent) recentWait() ([]EventRecord, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.recentC == nil {
		a.recentC = make(chan struct{})
	}
	return append([]EventRecord(nil), a.recent...), a.recentC
}

// Run works until ctx ends; it returns nil on a clean shutdown.
func (a *Agent) Run(ctx context.Context) error {
	events := a.events
	a.emit("agent_started", map[string]any{"heartbeat_s": int(a.cfg.Heartbeat / time.Second)})
	if d := hex.EncodeToString(a.cfg.Digest[:]); a.cfg.Digest != ([32]byte{}) && a.state.ConfigDigest != "" && a.state.ConfigDigest != d {
		a.emit("config_changed", nil)
	}
	if a.cfg.Digest != ([32]byte{}) {
		a.state.ConfigDigest = hex.EncodeToString(a.cfg.Digest[:])
		a.saveState()
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() { defer wg.Done(); a.mon.Run(ctx) }()
	if a.deps.MDT != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.mdtLoop(ctx) }()
	}
	if a.cfg.Heartbeat > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); a.heartbeats(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.retryStorage(ctx) }()
	first := true
	for {
		// SIM, port and reset events first: a storm of cell events never
		// delays them.
		select {
		case ev := <-a.urgent:
			a.onModemEvent(ev)
			continue
		default:
		}
		var ready <-chan struct{}
		if first {
			ready = a.mon.Ready()
		}
		select {
		case <-ctx.Done():
			a.log.Info("agent stopping")
			return nil
		case <-ready:
			first = false
			a.onFirstReading()
		case ev := <-a.urgent:
			a.onModemEvent(ev)
		case ev := <-events:
			a.onModemEvent(ev)
		case <-a.regKick:
			a.onModemEvent(atmodem.Event{Kind: atmodem.EventRegistration})
		case <-a.stormC():
			a.checkStorm(a.mono())
		}
	}
}

// onEvent takes a modem event from the monitor. It never blocks the
// modem: SIM, port and reset events have their own queue; a cell event
// the queue has no room for is counted into the storm, a registration
// event makes the agent look at connectivity again.
func (a *Agent) onEvent(ev atmodem.Event) {
	q := a.events
	switch ev.Kind {
	case atmodem.EventCellChanged, atmodem.EventRegistration:
	default:
		q = a.urgent
	}
	select {
	case q <- ev:
		return
	default:
	}
	switch ev.Kind {
	case atmodem.EventCellChanged:
		a.cellDropped.Add(1)
	case atmodem.EventRegistration:
		select {
		case a.regKick <- struct{}{}:
		default:
		}
	default:
		a.log.Error("event queue full: modem event not processed", "event", string(ev.Kind))
	}
}

func (a *Agent) heartbeats(ctx context.Context) {
	tick := a.deps.Clock.NewTicker(a.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			a.signAndQueue("heartbeat", KindHeartbeatMsg, nil, func() ([]byte, error) { return a.issuer.SignHeartbeat() })
		}
	}
}

func (a *Agent) onFirstReading() {
	st := a.mon.Status()
	a.checkFirmware(st)
	a.observeSIM(st.SIM)
	a.mu.Lock()
	a.online = st.Registered() // unknown counts as offline until a read says
	if !a.online {
		a.lostAt, a.lostWall = a.mono(), a.now()
	}
	a.mu.Unlock()
	_, reg := st.Serving()
	state := "not_registered"
	if reg != nil {
		state = reg.State
	}
	a.log.Info("modem ready", "dialect", st.Dialect, "model", st.Modem.Model, "sim", st.SIM.State, "registration", state)
	if a.online {
		a.checkWindow()
	}
}

func (a *Agent) now() time.Time { t, _ := a.deps.Clock.Now(); return t }

// onModemEvent turns a modem event into monitoring events (R2).
func (a *Agent) onModemEvent(ev atmodem.Event) {
	switch ev.Kind {
	case atmodem.EventSIMRemoved, atmodem.EventSIMInserted, atmodem.EventSIMChanged, atmodem.EventSIMIdentified:
		a.observeSIM(ev.NewSIM)
	case atmodem.EventCellChanged:
		a.onCellChanged(ev)
	case atmodem.EventModemReset:
		a.emit("modem_reset", nil)
		if st := a.mon.Status(); st != nil {
			a.checkFirmware(st)
		}
	case atmodem.EventPortLost:
		a.emit("port_lost", nil)
		a.connectivity(false)
	case atmodem.EventPortRegained:
		a.emit("port_regained", nil)
	}
	if ev.Kind == atmodem.EventRegistration || ev.Kind == atmodem.EventPortRegained {
		if st := a.mon.Status(); st != nil && st.RegistrationKnown() {
			a.connectivity(st.Registered())
		}
	}
}

func sameArea(x, y *atmodem.Registration) bool {
	if x == nil || y == nil {
		return x == y
	}
	eq := func(p, q *uint32) bool { return (p == nil && q == nil) || (p != nil && q != nil && *p == *q) }
	return eq(x.TAC, y.TAC) && eq(x.LAC, y.LAC)
}

// connectivity reports loss and return of service, with the outage length.
func (a *Agent) connectivity(up bool) {
	a.mu.Lock()
	was := a.online
	a.online = up
	lostAt, lostWall := a.lostAt, a.lostWall
	if was && !up {
		a.lostAt, a.lostWall = a.mono(), a.now()
	}
	a.mu.Unlock()
	switch {
	case was && !up:
		a.emit("connectivity_lost", nil)
	case !was && up:
		d := map[string]any{}
		if !lostAt.IsZero() {
			d["outage_ms"] = a.mono().Sub(lostAt).Milliseconds()
			d["lost_at"] = lostWall.UTC().Format(time.RFC3339)
		}
		a.emit("connectivity_restored", d)
		a.checkWindow()
	}
}

// checkWindow reports a misaligned access: the device is on the network
// outside its configured time windows.
func (a *Agent) checkWindow() {
	if len(a.cfg.AccessWindows) == 0 {
		return
	}
	now, synced := a.deps.Clock.Now()
	for _, w := range a.cfg.AccessWindows {
		if w.Contains(now) {
			return
		}
	}
	a.emit("misaligned_access", map[string]any{"windows": fmt.Sprint(a.cfg.AccessWindows), "clock_synced": synced})
}

// observeSIM gives one SIM reading to the binding policy. A reading that
// failed (unknown state, IMSI or ICCID) never reaches it: a glitch must
// not report, let alone lock, a SIM change.
func (a *Agent) observeSIM(sim atmodem.SIMInfo) {
	if !sim.Known() {
		a.log.Debug("binding not checked: SIM reading unknown")
		return
	}
	imsi, iccid := sim.IMSI, sim.ICCID
	switch sim.State {
	case atmodem.SIMReady:
	case atmodem.SIMAbsent:
		imsi, iccid = ident.IMSI{}, ident.ICCID{}
	default:
		return // PIN, busy, error: no reading of the binding either way
	}
	bev, err := a.policy.Observe(imsi, iccid)
	if err != nil {
		a.log.Error("binding check failed", "err", err)
		return
	}
	if bev == nil {
		return
	}
	a.signAndQueue(bev.Kind.String(), KindEventMsg, map[string]any{"locked": bev.Locked, "action": bev.Action.String()},
		func() ([]byte, error) { return bev.Sign(a.issuer, a.cfg.Recipient) })
}

// checkFirmware compares the modem's manufacturer, model and revision
// with the last run's; an identity read that failed is no change.
func (a *Agent) checkFirmware(st *atmodem.Status) {
	if st.Unknown(atmodem.ReadFirmware) {
		a.log.Debug("firmware not checked: modem identity unknown")
		return
	}
	sum := sha256.Sum256([]byte(st.Modem.Manufacturer + "\x00" + st.Modem.Model + "\x00" + st.Modem.Revision))
	h := hex.EncodeToString(sum[:])
	a.mu.Lock()
	old := a.state.Firmware
	a.state.Firmware = h
	a.mu.Unlock()
	if old != h {
		a.saveState()
	}
	if old != "" && old != h {
		a.emit("firmware_changed", nil)
	}
}

// emit signs a monitoring event and queues it.
func (a *Agent) emit(typ string, details map[string]any) {
	a.signAndQueue(typ, KindEventMsg, details, func() ([]byte, error) { return a.signEvent(typ, details) })
}

// signEvent signs an event token in the issuer's format, the details
// laid out for it (details.go).
func (a *Agent) signEvent(typ string, details map[string]any) ([]byte, error) {
	f := a.issuer.Format()
	claims := []attest.Claim{attest.EventClaim(typ)}
	if len(details) > 0 {
		claims = append(claims, attest.Claim{Label: LabelDetails, Value: detailsValue(f, details)})
	}
	return a.issuer.SignFormat(f, attest.KindEvent, claims...)
}

// TokenFormat is the claims format the agent signs in now.
func (a *Agent) TokenFormat() attest.Format { return a.issuer.Format() }

// SetTokenFormat sets the claims format of the tokens signed from now on,
// as the collector's attestation request says it reads (link.go), and
// keeps it in <state>/agent.json for the next start: tokens signed before
// the next session (an outage, a restart) are in a format the collector
// is known to read.
func (a *Agent) SetTokenFormat(f attest.Format) {
	if a.issuer.Format() == f {
		return
	}
	a.issuer.SetFormat(f)
	a.mu.Lock()
	a.state.TokenFormat = uint8(a.issuer.Format())
	a.mu.Unlock()
	a.saveState()
	a.log.Info("token format changed: the collector reads it", "format", a.issuer.Format().String())
}

// Outbox message kinds: the first byte of each queued message says where
// the deliverer posts the token that follows.
const (
	KindEventMsg     byte = 'e'
	KindHeartbeatMsg byte = 'h'
	KindReportMsg    byte = 'r' // a scheduled status report; never queued (stale at once)
)

// signAndQueue signs and queues under one lock, so the outbox holds
// tokens in sequence-number order: the collector reads a gap in sequence
// numbers as suppressed messages. While the outbox cannot write (a storage
// fault), signed messages wait in memory, in order, and are queued when it
// can again (storage.go); what does not fit is counted and reported in a
// storage_gap event.
func (a *Agent) signAndQueue(typ string, kind byte, details map[string]any, sign func() ([]byte, error)) {
	a.queueMu.Lock()
	defer a.queueMu.Unlock()
	empty := len(a.hold.msgs) == 0 || a.flushLocked()
	p := priority(typ, kind)
	if empty && !a.admitLocked(p) {
		// Cell events beyond their share of the outbox are not signed
		// (no sequence number taken); storage_gap counts them.
		a.loseLocked(typ, causeOutboxFull)
		return
	}
	tok, err := sign()
	if err != nil {
		if isStorageFault(err) { // the sequence counter could not be saved
			a.storageFault(&a.hold.obFault, "sequence counter", err)
			a.loseLocked(typ, causeStorage)
			return
		}
		a.log.Error("not signed", "event", typ, "err", err)
		return
	}
	m := held{typ: typ, kind: kind, details: details, data: append([]byte{kind}, tok...)}
	if !empty {
		a.holdLocked(m, causeStorage)
		return
	}
	id, err := a.appendLocked(m.data, p)
	if err != nil && isStorageFault(err) {
		a.storageFault(&a.hold.obFault, "outbox", err)
		a.holdLocked(m, causeStorage)
		return
	}
	if errors.Is(err, outbox.ErrFull) {
		if p == prioLow {
			a.loseLocked(typ, causeOutboxFull)
			return
		}
		// Nothing lower to evict: held in memory until the deliverer
		// makes room (RetryStorage), as during a storage fault.
		a.fullFault(err)
		a.holdLocked(m, causeOutboxFull)
		return
	}
	if err != nil {
		a.log.Error("not queued", "event", typ, "err", err)
		return
	}
	a.queuedLocked(typ, kind, details, id)
	if len(a.hold.lost) > 0 && a.gapDueLocked(p) { // storage came back with nothing held
		a.hold.obFault.Ok()
		a.queueGapLocked()
	}
}

// queuedLocked records and announces a message the outbox took durably.
func (a *Agent) queuedLocked(typ string, kind byte, details map[string]any, id uint64) {
	if kind == KindHeartbeatMsg {
		a.log.Debug("heartbeat", "outbox_id", id)
		if a.wake != nil {
			a.wake()
		}
		return
	}
	now, synced := a.deps.Clock.Now()
	attrs := []any{"type", typ, "outbox_id", id}
	for _, k := range sortedKeys(details) {
		attrs = append(attrs, k, details[k])
	}
	a.log.Info("event", attrs...)
	a.mu.Lock()
	a.recent = append(a.recent, EventRecord{Type: typ, Time: now, Synced: synced, Seq: id, Details: details})
	if len(a.recent) > 100 {
		a.recent = a.recent[len(a.recent)-100:]
	}
	if a.recentC != nil {
		close(a.recentC)
		a.recentC = nil
	}
	a.counts[typ]++
	a.mu.Unlock()
	if a.wake != nil {
		a.wake()
	}
}

func (a *Agent) statePath() string { return filepath.Join(a.cfg.StateDir, "agent.json") }

func (a *Agent) loadState() {
	b, err := os.ReadFile(a.statePath())
	if err != nil {
		return
	}
	if err := json.Unmarshal(b, &a.state); err != nil {
		a.log.Warn("agent state unreadable; starting afresh", "err", err)
	}
}

func (a *Agent) saveState() {
	a.mu.Lock()
	b, _ := json.Marshal(a.state)
	a.mu.Unlock()
	if err := fsutil.WriteFileAtomic(a.statePath(), b, 0o600); err != nil {
		a.log.Error("agent state not saved", "err", err)
	}
}

// MemOutbox is an in-memory Outbox for tests and for running without an
// uplink.
type MemOutbox struct {
	mu    sync.Mutex
	msgs  [][]byte
	acked int
}

// Append keeps msg.
func (m *MemOutbox) Append(msg []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, append([]byte(nil), msg...))
	return uint64(len(m.msgs)), nil
}

// Messages returns a copy of what was appended.
func (m *MemOutbox) Messages() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.msgs...)
}

// Pending returns up to max messages not yet acknowledged, oldest first.
func (m *MemOutbox) Pending(max int) ([]Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Message
	for i := m.acked; i < len(m.msgs) && len(out) < max; i++ {
		out = append(out, Message{ID: uint64(i + 1), Data: m.msgs[i]})
	}
	return out, nil
}

// Ack acknowledges every message up to and including id.
func (m *MemOutbox) Ack(id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(id) > m.acked && int(id) <= len(m.msgs) {
		m.acked = int(id)
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

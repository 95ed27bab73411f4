package attest

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"

	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Action is what the binding policy does when the SIM departs from the
// binding.
type Action uint8

// Actions on a binding change.
const (
	ActionReport Action = iota // emit a signed event, carry on
	ActionLock                 // also stop privacy-sensitive data and refuse triggers until re-provisioned
)

// String returns "report" or "lock".
func (a Action) String() string {
	if a == ActionLock {
		return "lock"
	}
	return "report"
}

// ParseAction accepts "report" (or "report-only") and "lock".
func ParseAction(s string) (Action, error) {
	switch s {
	case "report", "report-only":
		return ActionReport, nil
	case "lock":
		return ActionLock, nil
	}
	return 0, fmt.Errorf("attest: unknown binding action %q (want report or lock)", s)
}

// ErrLocked is what the daemon returns for a trigger refused because the
// binding policy is locked (BindingPolicy.Locked).
var ErrLocked = errors.New("attest: device locked after a SIM change: re-provision it")

// ChangeKind is a typed binding change.
type ChangeKind uint8

// Binding changes.
const (
	SIMBound    ChangeKind = iota + 1 // first SIM seen (or provisioned): now the binding
	SIMRemoved                        // no SIM where the bound one was
	SIMChanged                        // a different SIM than the bound one
	SIMRestored                       // the bound SIM is back (a lock stays until re-provisioned)
)

// String is the event name carried in the token's event claim.
func (k ChangeKind) String() string {
	switch k {
	case SIMBound:
		return "sim_bound"
	case SIMRemoved:
		return "sim_removed"
	case SIMChanged:
		return "sim_changed"
	case SIMRestored:
		return "sim_restored"
	}
	return fmt.Sprintf("change(%d)", uint8(k))
}

// BindingEvent is one change, with the pseudonyms each configured recipient
// is to see: Old of the bound SIM, New of the SIM now present (empty when
// none). Identifiers themselves are not kept.
type BindingEvent struct {
	Kind   ChangeKind
	Old    map[string]Pseudonyms
	New    map[string]Pseudonyms
	Action Action
	Locked bool // the policy is locked after this event
}

// Claims returns the event token's claims for recipient. A recipient not
// among the policy's recipients gets the event without pseudonyms.
func (e *BindingEvent) Claims(recipient string) []Claim {
	c := []Claim{EventClaim(e.Kind.String())}
	c = append(c, OldPseudonymClaims(e.Old[recipient])...)
	return append(c, PseudonymClaims(e.New[recipient])...)
}

// Sign makes the signed event token for recipient.
func (e *BindingEvent) Sign(is *Issuer, recipient string) ([]byte, error) {
	return is.Sign(KindEvent, e.Claims(recipient)...)
}

// bindingRecord is <stateDir>/binding.cbor. It keeps no identifier: a
// device-local keyed fingerprint to compare readings, and the recipients'
// pseudonyms of the bound SIM to report as "old" after a restart.
type bindingRecord struct {
	Version     int                      `cbor:"1,keyasint"`
	Bound       []byte                   `cbor:"2,keyasint,omitempty"` // fingerprint of the bound SIM; nil: none yet
	Pseudonyms  map[string]pseudonymPair `cbor:"3,keyasint,omitempty"`
	Locked      bool                     `cbor:"4,keyasint"`
	Last        []byte                   `cbor:"5,keyasint,omitempty"` // fingerprint of the last reading
	LastPresent bool                     `cbor:"6,keyasint"`
	Observed    bool                     `cbor:"7,keyasint"` // Last/LastPresent are meaningful
}

type pseudonymPair struct {
	IMSI  []byte `cbor:"1,keyasint,omitempty"`
	ICCID []byte `cbor:"2,keyasint,omitempty"`
}

// BindingPolicy remembers the UICC–device binding, compares each reading
// with it, and reports typed changes. With ActionLock a departure locks the
// policy (Locked) until Provision or Reprovision. State lives in
// <stateDir>/binding.cbor (0600, written atomically). Safe for concurrent use.
type BindingPolicy struct {
	mu         sync.Mutex
	path       string
	d          *Deriver
	action     Action
	recipients []string
	rec        bindingRecord
}

// OpenBindingPolicy loads (or starts) the binding state. recipients are the
// names whose pseudonyms events carry.
func OpenBindingPolicy(stateDir string, d *Deriver, action Action, recipients []string) (*BindingPolicy, error) {
	if err := ensureStateDir(stateDir); err != nil {
		return nil, err
	}
	p := &BindingPolicy{path: filepath.Join(stateDir, BindingFile), d: d, action: action, recipients: slices.Clone(recipients)}
	b, err := readPrivateFile(p.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.rec = bindingRecord{Version: 1}
	case err != nil:
		return nil, err
	default:
		if err := claimDec.Unmarshal(b, &p.rec); err != nil || p.rec.Version != 1 {
			return nil, fmt.Errorf("attest: %s: unreadable binding state (remove it and re-provision)", p.path)
		}
	}
	return p, nil
}

// Locked reports whether privacy-sensitive data must stop and triggers be
// refused.
func (p *BindingPolicy) Locked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec.Locked
}

// Bound reports whether a binding is remembered.
func (p *BindingPolicy) Bound() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec.Bound != nil
}

// Observe compares one reading of the SIM (zero identifiers: no SIM) with
// the binding. It returns an event on a transition, nil when nothing
// changed since the last reading.
func (p *BindingPolicy) Observe(imsi ident.IMSI, iccid ident.ICCID) (*BindingEvent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	present := !imsi.IsZero() || !iccid.IsZero()
	var fp []byte
	if present {
		fp = p.d.bindingFingerprint(imsi, iccid)
	}
	if p.rec.Observed && p.rec.LastPresent == present && hmac.Equal(p.rec.Last, fp) {
		return nil, nil
	}
	next := p.rec
	next.Observed, next.LastPresent, next.Last = true, present, fp
	ev := &BindingEvent{Action: p.action, New: p.pseudonyms(imsi, iccid)}
	switch {
	case p.rec.Bound == nil && !present:
		// Nothing bound and no SIM: nothing to say yet.
		if err := p.save(next); err != nil {
			return nil, err
		}
		return nil, nil
	case p.rec.Bound == nil:
		ev.Kind = SIMBound
		next.Bound = fp
		next.Pseudonyms = toPairs(ev.New)
	case !present:
		ev.Kind = SIMRemoved
	case hmac.Equal(p.rec.Bound, fp) && !p.rec.Observed:
		// First reading after provisioning, and it is the bound SIM.
		if err := p.save(next); err != nil {
			return nil, err
		}
		return nil, nil
	case hmac.Equal(p.rec.Bound, fp):
		ev.Kind = SIMRestored
	default:
		ev.Kind = SIMChanged
	}
	if ev.Kind != SIMBound {
		ev.Old = fromPairs(p.rec.Pseudonyms)
	}
	if (ev.Kind == SIMRemoved || ev.Kind == SIMChanged) && p.action == ActionLock {
		next.Locked = true
	}
	ev.Locked = next.Locked
	if err := p.save(next); err != nil {
		return nil, err
	}
	return ev, nil
}

// Provision takes the given SIM as the binding (a provisioned binding, or
// the owner accepting a new SIM) and clears the lock.
func (p *BindingPolicy) Provision(imsi ident.IMSI, iccid ident.ICCID) error {
	if imsi.IsZero() && iccid.IsZero() {
		return errors.New("attest: provision: no SIM identifiers")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	next := p.rec
	next.Bound = p.d.bindingFingerprint(imsi, iccid)
	next.Pseudonyms = toPairs(p.pseudonyms(imsi, iccid))
	next.Locked = false
	next.Observed = false // the next reading is compared afresh
	return p.save(next)
}

// Reprovision clears the lock and forgets the binding: the next SIM
// observed becomes the binding.
func (p *BindingPolicy) Reprovision() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.save(bindingRecord{Version: 1})
}

func (p *BindingPolicy) pseudonyms(imsi ident.IMSI, iccid ident.ICCID) map[string]Pseudonyms {
	m := make(map[string]Pseudonyms, len(p.recipients))
	if imsi.IsZero() && iccid.IsZero() {
		return m
	}
	for _, r := range p.recipients {
		m[r] = p.d.Pseudonyms(r, imsi, iccid)
	}
	return m
}

func (p *BindingPolicy) save(next bindingRecord) error {
	b, err := claimEnc.Marshal(next)
	if err != nil {
		return fmt.Errorf("attest: encode binding state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(p.path, b, 0o600); err != nil {
		return fmt.Errorf("attest: save binding state: %w", err)
	}
	p.rec = next
	return nil
}

func toPairs(m map[string]Pseudonyms) map[string]pseudonymPair {
	out := make(map[string]pseudonymPair, len(m))
	for k, v := range m {
		out[k] = pseudonymPair{IMSI: v.IMSI, ICCID: v.ICCID}
	}
	return out
}

func fromPairs(m map[string]pseudonymPair) map[string]Pseudonyms {
	out := make(map[string]Pseudonyms, len(m))
	for k, v := range m {
		out[k] = Pseudonyms{IMSI: v.IMSI, ICCID: v.ICCID}
	}
	return out
}

// bindingFingerprint identifies a SIM on this device only (keyed by the
// device secret), so the state file holds no identifier.
func (d *Deriver) bindingFingerprint(imsi ident.IMSI, iccid ident.ICCID) []byte {
	return d.mac(d.secret[:], "mtcagent/v1/binding\x00", imsi.Reveal()+"\x00"+iccid.Reveal())
}

package uplink

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// Trigger is a device trigger as the collector sends it on PathTrigger.
//
// Replay protection: the collector keeps, per device and durably, a
// counter it increments for every trigger it sends; the device accepts a
// trigger only when its Counter is strictly greater than the last one it
// accepted from that server (TriggerGuard, persisted) and, when the device
// clock is synchronised, when Time is within the guard's window. The
// trigger rides the mutually authenticated DTLS session, so only the
// configured server can produce one; DTLS's own record replay window
// stops a re-sent datagram, and the counter stops a replay at the
// application level (e.g. an SCS re-posting an old trigger, which the
// collector also refuses by the SCS's own sequence number).
type Trigger struct {
	Counter uint64    // strictly increasing per device, from 1
	Time    time.Time // when the collector issued it (whole seconds)
	Action  string    // what the device is asked to do; the agent implements "ping" only
	From    string    // the SCS on whose behalf (for the device's audit)
}

type triggerWire struct {
	Counter uint64 `cbor:"1,keyasint"`
	Time    uint64 `cbor:"2,keyasint"`
	Action  string `cbor:"3,keyasint"`
	From    string `cbor:"4,keyasint,omitempty"`
}

// ErrTrigger is wrapped when a trigger is malformed; ErrTriggerReplay when
// its counter is not new; ErrTriggerStale when its time is out of window;
// ErrTriggerAction when the device does not implement its action.
var (
	ErrTrigger       = errors.New("bad trigger")
	ErrTriggerAction = errors.New("unknown trigger action")
	ErrTriggerReplay = errors.New("trigger replayed: counter not new")
	ErrTriggerStale  = errors.New("trigger not fresh")
)

var triggerEnc = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

var triggerDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxMapPairs: 16, MaxNestedLevels: 4}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// EncodeTrigger is a trigger's wire form: CBOR {1: counter, 2: time (unix
// seconds), 3: action, 4: from}.
func EncodeTrigger(t Trigger) ([]byte, error) {
	if t.Counter == 0 || t.Action == "" {
		return nil, fmt.Errorf("uplink: encode trigger: %w: counter and action required", ErrTrigger)
	}
	return triggerEnc.Marshal(triggerWire{t.Counter, uint64(max(t.Time.Unix(), 0)), t.Action, t.From})
}

// DecodeTrigger parses EncodeTrigger's output.
func DecodeTrigger(b []byte) (Trigger, error) {
	var w triggerWire
	if len(b) > 512 {
		return Trigger{}, fmt.Errorf("uplink: decode trigger: %w: too long", ErrTrigger)
	}
	if err := triggerDec.Unmarshal(b, &w); err != nil {
		return Trigger{}, fmt.Errorf("uplink: decode trigger: %w: not a trigger map", ErrTrigger)
	}
	if w.Counter == 0 || w.Action == "" || len(w.Action) > 64 || len(w.From) > 128 || w.Time > 1<<40 {
		return Trigger{}, fmt.Errorf("uplink: decode trigger: %w: missing or oversized field", ErrTrigger)
	}
	return Trigger{Counter: w.Counter, Time: time.Unix(int64(w.Time), 0), Action: w.Action, From: w.From}, nil
}

// TriggerGuard remembers the last trigger counter accepted from one server.
// With a path it is durable (atomic rename), so a replay after a restart is
// refused too. Safe for concurrent use.
type TriggerGuard struct {
	mu     sync.Mutex
	path   string
	last   uint64
	window time.Duration
}

// OpenTriggerGuard loads the guard kept at path ("" keeps it in memory).
// window bounds |now - Trigger.Time| when the caller's clock is
// synchronised; 0 means 5 minutes.
func OpenTriggerGuard(path string, window time.Duration) (*TriggerGuard, error) {
	if window <= 0 {
		window = 5 * time.Minute
	}
	g := &TriggerGuard{path: path, window: window}
	if path == "" {
		return g, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return g, nil
	case err != nil:
		return nil, fmt.Errorf("uplink: trigger guard: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("uplink: trigger guard %s: corrupt", path)
	}
	g.last = n
	return g, nil
}

// Last is the last accepted counter.
func (g *TriggerGuard) Last() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// Accept checks t and, when it passes, records its counter (durably) before
// returning nil; the caller acts on the trigger only then. clockSynced says
// whether now can judge t.Time.
func (g *TriggerGuard) Accept(t Trigger, now time.Time, clockSynced bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.Counter <= g.last {
		return fmt.Errorf("uplink: trigger %d: %w (last %d)", t.Counter, ErrTriggerReplay, g.last)
	}
	if clockSynced {
		d := now.Sub(t.Time)
		if d < 0 {
			d = -d
		}
		if d > g.window {
			return fmt.Errorf("uplink: trigger %d: %w (issued %s from now)", t.Counter, ErrTriggerStale, d.Round(time.Second))
		}
	}
	if g.path != "" {
		if err := fsutil.WriteFileAtomic(g.path, []byte(strconv.FormatUint(t.Counter, 10)+"\n"), 0o600); err != nil {
			return fmt.Errorf("uplink: trigger guard: %w", err)
		}
	}
	g.last = t.Counter
	return nil
}

// SelfSigned returns a self-signed certificate over key (e.g. the device's
// Ed25519 attestation key), for certificate mode: the peer pins the key,
// not the certificate, so name and validity carry no meaning here.
func SelfSigned(key crypto.Signer, name string) (*tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("uplink: self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

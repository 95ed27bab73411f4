package collector

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/attest"
)

// Registry is who may talk to the collector: devices, SCSs and the grants
// between them, provisioned while the collector runs (mtccollector device,
// scs, grant, revoke). Both stores implement it; the Server looks devices,
// SCSs and grants up in it on every handshake and request (a device
// session's messages use the record it looked up, while the registry's
// generation says it is current), so a change takes effect on the next
// one without a restart.
//
// Errors: ErrNotFound when a named entry does not exist, *DuplicateError
// when an id, name or PSK identity is taken. No error contains a PSK.
type Registry interface {
	// AddDevices adds devices in one transaction: all or none. With
	// replace, a device of the same id is replaced (its grants kept);
	// otherwise an existing id is a *DuplicateError.
	AddDevices(ctx context.Context, ds []*Device, replace bool) error
	// RemoveDevice removes a device and its grants (its state and history
	// stay until the id is reused).
	RemoveDevice(ctx context.Context, id string) error
	// DeviceByID, DeviceByPSK and DeviceByPin return nil (and no error)
	// for a device not registered.
	DeviceByID(ctx context.Context, id string) (*Device, error)
	DeviceByPSK(ctx context.Context, identity string) (*Device, error)
	DeviceByPin(ctx context.Context, pin []byte) (*Device, error)
	// ListDevices returns the registered devices by id.
	ListDevices(ctx context.Context) ([]*Device, error)
	CountDevices(ctx context.Context) (int, error)

	// AddSCS adds an application server (replace: as AddDevices).
	AddSCS(ctx context.Context, x *SCS, replace bool) error
	// RemoveSCS removes an SCS and its grants.
	RemoveSCS(ctx context.Context, name string) error
	SCSByName(ctx context.Context, name string) (*SCS, error)
	SCSByPSK(ctx context.Context, identity string) (*SCS, error)
	ListSCS(ctx context.Context) ([]*SCS, error)

	// Grant lets an SCS use classes on devices; Revoke takes them back
	// (no classes: all of them). The SCS must exist.
	Grant(ctx context.Context, scs string, devices, classes []string) error
	Revoke(ctx context.Context, scs string, devices, classes []string) error
	// Granted reports whether the SCS may use class on the device.
	Granted(ctx context.Context, scs, device, class string) (bool, error)
	// Grants returns an SCS's grants ("" for every SCS), by SCS and device.
	Grants(ctx context.Context, scs string) ([]Grant, error)
}

// Grant is what an SCS may do with one device.
type Grant struct {
	SCS     string   `json:"scs"`
	Device  string   `json:"device"`
	Classes []string `json:"classes"`
}

// ErrNotFound: no device or SCS of that id.
var ErrNotFound = errors.New("not found")

// DuplicateError is an id, name or PSK identity already taken.
type DuplicateError struct {
	What  string // "device id", "device psk identity", "scs name", "scs psk identity"
	Value string
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%s %q already registered", e.What, e.Value)
}

// NotFoundError names what was not found; it matches ErrNotFound.
type NotFoundError struct{ What, Value string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q not registered", e.What, e.Value) }
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// Classes lists the classes an SCS may be granted.
var Classes = []string{ClassStatus, ClassEvents, ClassTrigger, ClassHistory}

// CheckClasses refuses a class that is not one of Classes.
func CheckClasses(cs []string) error {
	for _, c := range cs {
		if !slices.Contains(Classes, c) {
			return fmt.Errorf("unknown class %q (want %s)", c, strings.Join(Classes, ", "))
		}
	}
	return nil
}

// Fingerprint identifies a secret without revealing it: the first 8 bytes
// of its SHA-256, "sha256:0123456789abcdef". What list and show print
// instead of a PSK.
func Fingerprint(secret []byte) string {
	if len(secret) == 0 {
		return ""
	}
	h := sha256.Sum256(secret)
	return "sha256:" + hex.EncodeToString(h[:8])
}

// CheckDevice completes and checks a device before it is stored: an id,
// a public key, a PSK identity and PSK together (PSK of 16 bytes or more),
// the key pin defaulting to the SHA-256 of the public key's
// SubjectPublicKeyInfo.
func CheckDevice(d *Device) error {
	switch {
	case !goodName(d.ID):
		return fmt.Errorf("device id %q: want a non-empty UTF-8 id without spaces, control characters or /", d.ID)
	case !goodText(d.PSKIdentity):
		return fmt.Errorf("device %s: psk_identity %q: want UTF-8 without control characters", d.ID, d.PSKIdentity)
	case len(d.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("device %s: public key: want an Ed25519 key (the PEM from 'mtcagent key public', or 64 hex digits)", d.ID)
	case (d.PSKIdentity == "") != (len(d.PSK) == 0):
		return fmt.Errorf("device %s: psk_identity and psk go together", d.ID)
	case len(d.PSK) > 0 && len(d.PSK) < 16:
		return fmt.Errorf("device %s: psk: want at least 32 hex digits (16 bytes)", d.ID)
	case len(d.KeyPin) != 0 && len(d.KeyPin) != sha256.Size:
		return fmt.Errorf("device %s: key_pin: want 64 hex digits (SHA-256 of the SubjectPublicKeyInfo)", d.ID)
	case d.HeartbeatTimeout != 0 && d.HeartbeatTimeout < time.Millisecond:
		// PostgreSQL keeps whole milliseconds: 1ns was 0 there (the
		// default) and 1ns in the embedded store (overdue at once).
		return fmt.Errorf("device %s: heartbeat_timeout: want a duration of 1ms or more, like 90s or 15m", d.ID)
	}
	d.HeartbeatTimeout = d.HeartbeatTimeout.Truncate(time.Millisecond)
	if d.Binding != nil && (len(d.Binding.IMSI) != attest.PseudonymSize || len(d.Binding.ICCID) != attest.PseudonymSize) {
		return fmt.Errorf("device %s: binding: want two 32-hex-digit pseudonyms (IMSI ICCID)", d.ID)
	}
	if len(d.KeyPin) == 0 {
		if der, err := x509.MarshalPKIXPublicKey(d.PublicKey); err == nil {
			h := sha256.Sum256(der)
			d.KeyPin = h[:]
		}
	}
	return nil
}

// goodName reports whether s can name a device or an SCS: it appears in
// paths, log lines and both stores (PostgreSQL's text refuses NUL and
// bytes that are not UTF-8; bbolt would take them), so both stores refuse
// the same names with the same message.
func goodName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " /") && goodText(s)
}

// goodText reports whether s is UTF-8 without control characters.
func goodText(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// CheckSCS checks an SCS before it is stored.
func CheckSCS(x *SCS) error {
	switch {
	case !goodName(x.Name):
		return fmt.Errorf("scs name %q: want a non-empty UTF-8 name without spaces, control characters or /", x.Name)
	case !goodText(x.PSKIdentity):
		return fmt.Errorf("scs %s: psk_identity %q: want UTF-8 without control characters", x.Name, x.PSKIdentity)
	case x.PSKIdentity == "" || len(x.PSK) == 0:
		return fmt.Errorf("scs %s: psk_identity and psk are required", x.Name)
	case len(x.PSK) < 16:
		return fmt.Errorf("scs %s: psk: want at least 32 hex digits (16 bytes)", x.Name)
	}
	return nil
}

// checkUnique refuses two devices of one id or PSK identity in one batch.
func checkUnique(ds []*Device) error {
	ids := make(map[string]bool, len(ds))
	psks := make(map[string]bool, len(ds))
	for _, d := range ds {
		if ids[d.ID] {
			return &DuplicateError{"device id", d.ID}
		}
		ids[d.ID] = true
		if d.PSKIdentity != "" {
			if psks[d.PSKIdentity] {
				return &DuplicateError{"device psk identity", d.PSKIdentity}
			}
			psks[d.PSKIdentity] = true
		}
	}
	return nil
}

// ImportConfig stores the devices, SCSs and grants of a configuration
// file, replacing entries of the same id or name (grants are added). It
// returns how many devices and SCSs it stored.
func ImportConfig(ctx context.Context, r Registry, c *Config) (devices, scss int, err error) {
	ids := make([]string, 0, len(c.Devices))
	for id := range c.Devices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	ds := make([]*Device, 0, len(ids))
	for _, id := range ids {
		d := *c.Devices[id]
		if err := CheckDevice(&d); err != nil {
			return 0, 0, err
		}
		ds = append(ds, &d)
	}
	if len(ds) > 0 {
		if err := r.AddDevices(ctx, ds, true); err != nil {
			return 0, 0, fmt.Errorf("collector: import devices: %w", err)
		}
	}
	names := make([]string, 0, len(c.SCS))
	for n := range c.SCS {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		x := *c.SCS[n]
		if err := CheckSCS(&x); err != nil {
			return 0, 0, err
		}
		if err := r.AddSCS(ctx, &x, true); err != nil {
			return 0, 0, fmt.Errorf("collector: import scs %s: %w", n, err)
		}
		if len(x.Devices) > 0 && len(x.Classes) > 0 {
			if err := r.Grant(ctx, n, x.Devices, x.Classes); err != nil {
				return 0, 0, fmt.Errorf("collector: import grants of scs %s: %w", n, err)
			}
		}
	}
	return len(ds), len(names), nil
}

// registryEmpty reports whether no device and no SCS is registered.
func registryEmpty(ctx context.Context, r Registry) (bool, error) {
	n, err := r.CountDevices(ctx)
	if err != nil || n > 0 {
		return false, err
	}
	xs, err := r.ListSCS(ctx)
	return len(xs) == 0, err
}

// deviceRecord is a Device as the embedded store keeps it.
type deviceRecord struct {
	ID               string        `json:"id"`
	PSKIdentity      string        `json:"psk_identity,omitempty"`
	PSK              []byte        `json:"psk,omitempty"`
	KeyPin           []byte        `json:"key_pin,omitempty"`
	PublicKey        []byte        `json:"public_key"`
	IMSI             []byte        `json:"binding_imsi,omitempty"`
	ICCID            []byte        `json:"binding_iccid,omitempty"`
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
}

func recordOf(d *Device) deviceRecord {
	r := deviceRecord{ID: d.ID, PSKIdentity: d.PSKIdentity, PSK: d.PSK, KeyPin: d.KeyPin, PublicKey: d.PublicKey, HeartbeatTimeout: d.HeartbeatTimeout}
	if d.Binding != nil {
		r.IMSI, r.ICCID = d.Binding.IMSI, d.Binding.ICCID
	}
	return r
}

func (r *deviceRecord) device() *Device {
	d := &Device{ID: r.ID, PSKIdentity: r.PSKIdentity, PSK: r.PSK, KeyPin: r.KeyPin, PublicKey: ed25519.PublicKey(r.PublicKey), HeartbeatTimeout: r.HeartbeatTimeout}
	if r.IMSI != nil || r.ICCID != nil {
		d.Binding = &attest.Pseudonyms{IMSI: r.IMSI, ICCID: r.ICCID}
	}
	return d
}

// scsRecord is an SCS as the embedded store keeps it (grants apart).
type scsRecord struct {
	Name        string `json:"name"`
	PSKIdentity string `json:"psk_identity"`
	PSK         []byte `json:"psk"`
}

// A device session's registry record is looked up once and kept for the
// session's next messages: a lookup for each message was 8 % of the
// collector's CPU under fleet load. A record carries the generation of
// the registry it was read at (Device.gen), a count of the changes to the
// device registry that the store keeps: on PostgreSQL a row that a
// trigger bumps at each change, by whichever process (migration 0005);
// in the embedded store a counter of this process, the file's one
// writer. The transaction that takes a message reads the count again
// (DeviceState.registryGen). When it has moved the kept record may be
// stale, and the message is judged once more with a fresh one
// (codeRegistryChanged): a change is in force from the first message
// after its commit, as when every message looked the record up.

// registryGen is the embedded store's count of registry changes.
type registryGen struct{ n atomic.Uint64 }

// changed is called after a change has committed (a lookup reads the
// count before it reads the record, so it never pairs an old record
// with a new count).
func (g *registryGen) changed() { g.n.Add(1) }

func (g *registryGen) load() uint64 { return g.n.Load() + 1 } // never 0: 0 is "not known"

// errRegistryChanged: the device's registry record changed since the
// session's copy was read; codeRegistryChanged is what the accept
// functions return then (never sent: the message is judged again).
var errRegistryChanged = errors.New("registry record changed")

const codeRegistryChanged = codes.Empty

// registryStale reports whether d, read at its generation, may differ
// from the registry ds's transaction sees.
func registryStale(d *Device, ds *DeviceState) bool {
	return d.gen != 0 && ds.registryGen != 0 && d.gen != ds.registryGen
}

// sessionDeviceOf returns the record kept for the session cc, or looks
// it up (look) and keeps it while cc is the device's live session.
func (s *Server) sessionDeviceOf(cc *udpClient.Conn, look func() *Device) *Device {
	s.mu.Lock()
	d, hit := s.sessionDevs[cc]
	s.mu.Unlock()
	if hit {
		return d
	}
	d = look()
	if d != nil && d.gen != 0 {
		s.mu.Lock()
		if s.sessions[d.ID] == cc { // not after the session closed: its hook deleted it
			k := *d
			k.kept = true
			s.sessionDevs[cc] = &k
		}
		s.mu.Unlock()
	}
	return d
}

// forgetSessionDevice drops the record kept for cc.
func (s *Server) forgetSessionDevice(cc *udpClient.Conn) {
	s.mu.Lock()
	delete(s.sessionDevs, cc)
	s.mu.Unlock()
}

// registered returns what look finds in the registry, completing a device
// with the collector's defaults; a store failure is logged and counts as
// not registered (the handshake or request is refused).
func (s *Server) registered(what string, look func(ctx context.Context, r Registry) (*Device, error)) *Device {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	d, err := look(ctx, s.st)
	if err != nil {
		s.storeError("registry", "looking up a device (%s) in the store: %v", what, err)
		return nil
	}
	if d != nil && d.HeartbeatTimeout <= 0 {
		d.HeartbeatTimeout = s.cfg.HeartbeatTimeout
	}
	return d
}

func (s *Server) deviceByPSK(identity string) *Device {
	return s.registered("psk identity", func(ctx context.Context, r Registry) (*Device, error) { return r.DeviceByPSK(ctx, identity) })
}

func (s *Server) deviceByPin(pin []byte) *Device {
	return s.registered("key pin", func(ctx context.Context, r Registry) (*Device, error) { return r.DeviceByPin(ctx, pin) })
}

func (s *Server) deviceByID(id string) *Device {
	return s.registered("id", func(ctx context.Context, r Registry) (*Device, error) { return r.DeviceByID(ctx, id) })
}

func (s *Server) scsByPSK(identity string) *SCS {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	x, err := s.st.SCSByPSK(ctx, identity)
	if err != nil {
		s.storeError("registry", "looking up an scs in the store: %v", err)
		return nil
	}
	return x
}

// granted reports whether the SCS may use class on the device now; a
// store failure is logged and denies.
func (s *Server) granted(scs, device, class string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ok, err := s.st.Granted(ctx, scs, device, class)
	if err != nil {
		s.storeError("registry", "reading a grant in the store: %v", err)
		return false
	}
	return ok
}

// importConfig applies the configuration file's [device] and [scs]
// sections when the store's registry is empty (the first start, or an
// upgrade from a collector that read them at each start); afterwards the
// store is what counts, and they are not read again (mtccollector import
// applies a file on purpose).
func (s *Server) importConfig() error {
	if len(s.cfg.Devices) == 0 && len(s.cfg.SCS) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*storeTimeout)
	defer cancel()
	empty, err := registryEmpty(ctx, s.st)
	if err != nil {
		return err
	}
	if !empty {
		s.logf("the store has a registry: the configuration file's %d [device] and %d [scs] section(s) are not read again (mtccollector import applies them)", len(s.cfg.Devices), len(s.cfg.SCS))
		return nil
	}
	nd, ns, err := ImportConfig(ctx, s.st, s.cfg)
	if err != nil {
		return err
	}
	s.logf("imported %d device(s) and %d scs from the configuration file into the empty store; manage them with mtccollector device|scs|grant|revoke from now on", nd, ns)
	return nil
}

// Registered returns how many devices and SCSs the registry holds (-1
// when the store cannot say).
func (s *Server) Registered() (devices, scss int) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	n, err := s.st.CountDevices(ctx)
	if err != nil {
		n = -1
	}
	xs, err := s.st.ListSCS(ctx)
	if err != nil {
		return n, -1
	}
	return n, len(xs)
}

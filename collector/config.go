package collector

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/config"
)

// Classes an SCS may be granted for a device.
const (
	ClassStatus  = "status"
	ClassEvents  = "events"
	ClassTrigger = "trigger"
	// ClassHistory reads a device's stored history (GET
	// /devices/ID/history): its events, binding verifications, alarms and
	// gaps. A class of its own, as it tells more than events (which is
	// the last event and its notifications).
	ClassHistory = "history"
)

// DefaultHistoryKeep is how long the collector keeps a history record,
// unless history_keep (or history_keep_KIND) says otherwise.
const DefaultHistoryKeep = 30 * 24 * time.Hour

// DefaultMDTKeep is how long the collector keeps the measurement records it
// pulled, unless mdt_keep says otherwise.
const DefaultMDTKeep = 30 * 24 * time.Hour

// DefaultHeartbeatTimeout is heartbeat_timeout unless the configuration
// says otherwise: two missed heartbeats of the agent's default 15 min,
// and 5 min of slack.
const DefaultHeartbeatTimeout = 35 * time.Minute

// Queue mode defaults (see Config).
const (
	// DefaultNATWindow is how long after a device's last datagram the
	// collector takes it to be reachable: under the UDP mapping timeout of
	// common carrier NATs (30 s and up).
	DefaultNATWindow = 30 * time.Second
	// MinSessionIdle is the least session_idle defaults to: an hour and a
	// half, so a device heartbeating every 15 minutes (the agent's
	// default), or up to about hourly, keeps its session even with the
	// default heartbeat_timeout.
	MinSessionIdle = 90 * time.Minute
	// DefaultQueuePerDevice and DefaultQueueTotal bound the requests
	// queued for devices that are not reachable now.
	DefaultQueuePerDevice = 8
	DefaultQueueTotal     = 10000
	// DefaultParkAfter is park_after when the file does not set it:
	// twice the default nat_window.
	DefaultParkAfter = 2 * DefaultNATWindow
)

// Config is the collector's configuration file, parsed.
type Config struct {
	HeartbeatTimeout time.Duration // a device is overdue after this without a heartbeat
	// SessionIdle: a device session with no inbound traffic is dropped
	// after this. Default: 3 times the longest heartbeat_timeout (of the
	// [collector] section or any device), at least MinSessionIdle, so a
	// silent device keeps its session from one heartbeat to the next.
	SessionIdle time.Duration
	// NATWindow: a device is reachable (the collector's requests go to it
	// at once) for this long after its last datagram; after that they are
	// queued until its next message (queue mode). Default DefaultNATWindow.
	NATWindow time.Duration
	// QueuePerDevice and QueueTotal bound the queued requests.
	QueuePerDevice, QueueTotal int
	// InstanceLease: with several instances on one PostgreSQL database,
	// an instance not heard from for this long is taken for dead and its
	// sessions forgotten (renewed every third of it). Default
	// DefaultInstanceLease.
	InstanceLease time.Duration
	// NoConfirmLater (confirm_later = off): the collector does not tell
	// devices it confirms non-confirmable posts later (wire.AttestLater),
	// so they send everything confirmable. It still reads such posts and
	// questions from a device that learned otherwise earlier.
	NoConfirmLater bool
	// ParkAfter (park_after): a device session with no inbound traffic
	// for this long is parked (parking.go): its DTLS state kept as a few
	// hundred bytes instead of a live connection, restored when the
	// device next sends. 0 (park_after = off): never. Default
	// DefaultParkAfter, at least the nat_window (a parked device is not
	// reachable, which it is not after nat_window anyway).
	ParkAfter time.Duration

	MaxAge  time.Duration // oldest token accepted (outbox delivery after an outage)
	MDTPull time.Duration // pull devices' measurement logs this often; 0: never
	MDTKeep time.Duration // drop pulled measurement records older than this; 0: keep them all
	// HistoryKeep is how long history records of each kind (HistoryKinds)
	// are kept, by the time received; 0 (or absent): forever.
	HistoryKeep map[string]time.Duration
	Devices     map[string]*Device
	SCS         map[string]*SCS
}

// Device is one [device "ID"] section.
type Device struct {
	ID               string
	PSKIdentity      string
	PSK              []byte
	KeyPin           []byte            // SHA-256 of the device's TLS SubjectPublicKeyInfo
	PublicKey        ed25519.PublicKey // verifies its tokens
	Binding          *attest.Pseudonyms
	HeartbeatTimeout time.Duration // 0: the collector's heartbeat_timeout

	gen  uint64 // the registry's generation when the store read this record (0: not known)
	kept bool   // a session's copy, kept since an earlier message (sessionDeviceOf)
}

// SCS is one [scs "NAME"] section: an application server and its grants.
type SCS struct {
	Name        string
	PSKIdentity string
	PSK         []byte
	Devices     []string
	Classes     []string
}

// Granted reports whether the SCS may use class on device.
func (s *SCS) Granted(device, class string) bool {
	return slices.Contains(s.Devices, device) && slices.Contains(s.Classes, class)
}

// LoadConfig reads and checks the collector's configuration file.
func LoadConfig(path string) (*Config, error) {
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(f)
}

// ParseConfig interprets a parsed file. Relative public_key paths are
// relative to the file's directory.
func ParseConfig(f *config.File) (*Config, error) {
	c := &Config{
		// Two missed heartbeats of the agent's default 15 min, and 5 min
		// of slack: the defaults of both sides agree (90 s, the old
		// default, flagged every default agent as overdue).
		HeartbeatTimeout: DefaultHeartbeatTimeout,
		NATWindow:        DefaultNATWindow,
		ParkAfter:        DefaultParkAfter,
		QueuePerDevice:   DefaultQueuePerDevice,
		QueueTotal:       DefaultQueueTotal,
		InstanceLease:    DefaultInstanceLease,
		MaxAge:           30 * 24 * time.Hour,
		MDTPull:          time.Hour,
		MDTKeep:          DefaultMDTKeep,
		HistoryKeep:      map[string]time.Duration{},
		Devices:          map[string]*Device{},
		SCS:              map[string]*SCS{},
	}
	for _, s := range f.Sections {
		switch s.Name {
		case "collector", "device", "scs":
		default:
			return nil, s.Errorf(s.Line, "unknown section [%s] (want collector, device, scs)", s.Name)
		}
	}
	if s := f.Section("collector"); s != nil {
		keys := []string{"heartbeat_timeout", "session_idle", "max_age", "mdt_pull", "mdt_keep", "nat_window", "queue_per_device", "queue_total", "instance_lease", "history_keep", "confirm_later", "park_after"}
		for _, k := range HistoryKinds {
			keys = append(keys, "history_keep_"+k)
		}
		if err := s.Unknown(keys...); err != nil {
			return nil, err
		}
		for key, dst := range map[string]*time.Duration{"heartbeat_timeout": &c.HeartbeatTimeout, "session_idle": &c.SessionIdle, "max_age": &c.MaxAge, "nat_window": &c.NATWindow, "instance_lease": &c.InstanceLease} {
			if err := duration(s, key, dst); err != nil {
				return nil, err
			}
		}
		for key, dst := range map[string]*int{"queue_per_device": &c.QueuePerDevice, "queue_total": &c.QueueTotal} {
			if e, ok := s.Get(key); ok {
				n, err := strconv.Atoi(e.Value)
				if err != nil || n < 0 {
					return nil, s.Errorf(e.Line, "%s: want a count, 0 or more (not %q)", key, e.Value)
				}
				*dst = n
			}
		}
		if e, ok := s.Get("confirm_later"); ok {
			switch e.Value {
			case "on":
			case "off":
				c.NoConfirmLater = true
			default:
				return nil, s.Errorf(e.Line, "confirm_later: want on or off (not %q)", e.Value)
			}
		}
		if e, ok := s.Get("park_after"); ok && e.Value == "off" {
			c.ParkAfter = 0
		} else if err := duration(s, "park_after", &c.ParkAfter); err != nil {
			return nil, err
		}
		if e, ok := s.Get("mdt_pull"); ok && e.Value == "off" {
			c.MDTPull = 0
		} else if err := duration(s, "mdt_pull", &c.MDTPull); err != nil {
			return nil, err
		}
		if e, ok := s.Get("mdt_keep"); ok && e.Value == "forever" {
			c.MDTKeep = 0
		} else if err := duration(s, "mdt_keep", &c.MDTKeep); err != nil {
			return nil, err
		}
	}
	if err := historyKeep(f.Section("collector"), c.HistoryKeep); err != nil {
		return nil, err
	}
	pskIDs := map[string]string{}
	for _, s := range f.All("device") {
		if err := s.Unknown("psk_identity", "psk", "key_pin", "public_key", "binding", "heartbeat_timeout"); err != nil {
			return nil, err
		}
		if s.Label == "" {
			return nil, s.Errorf(s.Line, "[device] needs an ID: [device \"ID\"]")
		}
		if _, dup := c.Devices[s.Label]; dup {
			return nil, s.Errorf(s.Line, "device %q given twice", s.Label)
		}
		// HeartbeatTimeout stays 0 unless given: the collector's
		// heartbeat_timeout, as it is when serve runs, also once imported.
		d := &Device{ID: s.Label}
		var err error
		if d.PSKIdentity, d.PSK, err = pskOf(s, pskIDs, "device "+s.Label); err != nil {
			return nil, err
		}
		e, ok := s.Get("public_key")
		if !ok {
			return nil, s.Errorf(s.Line, "device %q: public_key (the device's Ed25519 PEM from 'mtcagent key public') is required", s.Label)
		}
		p := e.Value
		if !filepath.IsAbs(p) && f.Path != "" {
			p = filepath.Join(filepath.Dir(f.Path), p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, s.Errorf(e.Line, "public_key: %v", err)
		}
		if d.PublicKey, err = attest.ParsePublicKeyPEM(b); err != nil {
			return nil, s.Errorf(e.Line, "public_key: %v", err)
		}
		if e, ok := s.Get("key_pin"); ok {
			if d.KeyPin, err = hex.DecodeString(e.Value); err != nil || len(d.KeyPin) != sha256.Size {
				return nil, s.Errorf(e.Line, "key_pin: want 64 hex digits (SHA-256 of the SubjectPublicKeyInfo)")
			}
		} else if der, err := x509.MarshalPKIXPublicKey(d.PublicKey); err == nil {
			h := sha256.Sum256(der) // certificate mode over the attestation key
			d.KeyPin = h[:]
		}
		if e, ok := s.Get("binding"); ok {
			parts := strings.Fields(e.Value)
			var p attest.Pseudonyms
			var e1, e2 error
			if len(parts) == 2 {
				p.IMSI, e1 = hex.DecodeString(parts[0])
				p.ICCID, e2 = hex.DecodeString(parts[1])
			}
			if len(parts) != 2 || e1 != nil || e2 != nil || len(p.IMSI) != attest.PseudonymSize || len(p.ICCID) != attest.PseudonymSize {
				return nil, s.Errorf(e.Line, "binding: want two 32-hex-digit pseudonyms (IMSI ICCID) as the device reports them to this collector")
			}
			d.Binding = &p
		}
		if err := duration(s, "heartbeat_timeout", &d.HeartbeatTimeout); err != nil {
			return nil, err
		}
		c.Devices[d.ID] = d
	}
	scsIDs := map[string]string{}
	for _, s := range f.All("scs") {
		if err := s.Unknown("psk_identity", "psk", "devices", "classes"); err != nil {
			return nil, err
		}
		if s.Label == "" {
			return nil, s.Errorf(s.Line, "[scs] needs a name: [scs \"NAME\"]")
		}
		if _, dup := c.SCS[s.Label]; dup {
			return nil, s.Errorf(s.Line, "scs %q given twice", s.Label)
		}
		x := &SCS{Name: s.Label}
		var err error
		if x.PSKIdentity, x.PSK, err = pskOf(s, scsIDs, "scs "+s.Label); err != nil {
			return nil, err
		}
		if x.PSKIdentity == "" {
			return nil, s.Errorf(s.Line, "scs %q: psk_identity and psk are required", s.Label)
		}
		if e, ok := s.Get("devices"); ok {
			x.Devices = strings.Fields(e.Value)
		}
		if e, ok := s.Get("classes"); ok {
			for _, cl := range strings.Fields(e.Value) {
				if err := CheckClasses([]string{cl}); err != nil {
					return nil, s.Errorf(e.Line, "classes: %v", err)
				}
				x.Classes = append(x.Classes, cl)
			}
		}
		c.SCS[x.Name] = x
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle(c)
	}
	if c.ParkAfter > 0 && c.ParkAfter < c.NATWindow {
		if e, ok := f.Section("collector").Get("park_after"); ok {
			return nil, f.Section("collector").Errorf(e.Line, "park_after: %s is under nat_window (%s): a device would be parked while the collector takes it for reachable", c.ParkAfter, c.NATWindow)
		}
		c.ParkAfter = c.NATWindow
	}
	return c, nil
}

// historyKeep fills keep (by kind) from history_keep and its per-kind
// overrides history_keep_KIND in sec (nil: defaults only): a duration, or
// forever (kept as 0).
func historyKeep(sec *config.Section, keep map[string]time.Duration) error {
	all := DefaultHistoryKeep
	get := func(key string, dst *time.Duration) error {
		if sec == nil {
			return nil
		}
		if e, ok := sec.Get(key); ok && e.Value == "forever" {
			*dst = 0
			return nil
		}
		if e, ok := sec.Get(key); ok {
			d, err := config.ParseDuration(e.Value)
			if err != nil || d <= 0 {
				return sec.Errorf(e.Line, "%s: want a positive duration like 720h or 90d, or forever (not %q)", key, e.Value)
			}
			*dst = d
		}
		return nil
	}
	if err := get("history_keep", &all); err != nil {
		return err
	}
	for _, k := range HistoryKinds {
		d := all
		if err := get("history_keep_"+k, &d); err != nil {
			return err
		}
		keep[k] = d
	}
	return nil
}

// DefaultSessionIdle is session_idle when the file does not set it: 3
// times the longest heartbeat timeout, at least MinSessionIdle. Each open
// session costs the collector memory (a DTLS connection and a CoAP
// connection), so a fleet whose devices heartbeat often may set it lower,
// down to a little over the heartbeat interval.
func DefaultSessionIdle(c *Config) time.Duration {
	longest := c.HeartbeatTimeout
	for _, d := range c.Devices {
		longest = max(longest, d.HeartbeatTimeout)
	}
	return max(3*longest, MinSessionIdle)
}

func pskOf(s *config.Section, seen map[string]string, who string) (string, []byte, error) {
	id, hasID := s.Get("psk_identity")
	k, hasK := s.Get("psk")
	if !hasID && !hasK {
		return "", nil, nil
	}
	if !hasID || !hasK {
		return "", nil, s.Errorf(s.Line, "%s: psk_identity and psk go together", who)
	}
	if prev, dup := seen[id.Value]; dup {
		return "", nil, s.Errorf(id.Line, "psk_identity %q already used by %s", id.Value, prev)
	}
	seen[id.Value] = who
	key, err := hex.DecodeString(k.Value)
	if err != nil || len(key) < 16 {
		return "", nil, s.Errorf(k.Line, "psk: want at least 32 hex digits (16 bytes)")
	}
	return id.Value, key, nil
}

func duration(s *config.Section, key string, dst *time.Duration) error {
	e, ok := s.Get(key)
	if !ok {
		return nil
	}
	d, err := config.ParseDuration(e.Value)
	if err != nil || d <= 0 {
		return s.Errorf(e.Line, "%s: want a positive duration like 90s, 15m or 7d (not %q)", key, e.Value)
	}
	*dst = d
	return nil
}

func (c *Config) deviceByPSK(identity string) *Device {
	for _, d := range c.Devices {
		if d.PSKIdentity != "" && d.PSKIdentity == identity {
			return d
		}
	}
	return nil
}

func (c *Config) deviceByPin(pin []byte) *Device {
	for _, d := range c.Devices {
		if len(d.KeyPin) > 0 && string(d.KeyPin) == string(pin) {
			return d
		}
	}
	return nil
}

func (c *Config) scsByPSK(identity string) *SCS {
	for _, s := range c.SCS {
		if s.PSKIdentity == identity {
			return s
		}
	}
	return nil
}

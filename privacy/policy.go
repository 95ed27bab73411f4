package privacy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Errors callers branch on.
var (
	// ErrUnknownRecipient: the recipient is not in the policy; it gets nothing.
	ErrUnknownRecipient = errors.New("unknown recipient")
	// ErrNoSecret: a region grant needs the device secret (SetSecret).
	ErrNoSecret = errors.New("no device secret for location masking")
	// ErrNoReport: Encode on a Report that no policy built.
	ErrNoReport = errors.New("not a report built by a policy")
	// ErrUnclassified: a field without a privacy class on the way out.
	ErrUnclassified = errors.New("field without a privacy class")
	// ErrNotGranted: a field whose class or level the recipient lacks.
	ErrNotGranted = errors.New("field not granted to the recipient")
	// ErrTooLarge: a report larger than its recipient's padded size.
	ErrTooLarge = errors.New("report larger than its padded size")
)

// DeviceClass says how a device may be tracked.
type DeviceClass uint8

const (
	// DeviceDefault follows each recipient's grants.
	DeviceDefault DeviceClass = iota
	// DeviceNoLocationTracking forces location and cell to none for every
	// recipient, whatever its grants (3GPP TR 33.868 5.7.3).
	DeviceNoLocationTracking
)

func (d DeviceClass) String() string {
	if d == DeviceNoLocationTracking {
		return "no_location_tracking"
	}
	return "default"
}

// Recipient is one party the device may report to.
type Recipient struct {
	Name string
	// Identity is what the recipient authenticates with: "psk:ID",
	// "x509-sha256:HEX" (certificate digest) or "rpk-sha256:HEX" (raw
	// public key digest).
	Identity string
	// Grants as configured; Policy.Grants applies the device class.
	Grants Grants
}

// DefaultSlot is the report time granularity when no schedule is set.
const DefaultSlot = 15 * time.Minute

// DefaultAuditMax is the audit log size cap when none is configured.
const DefaultAuditMax = 256 << 10

// Policy is the device's disclosure policy: who receives what. It is
// immutable after ParsePolicy except for SetSecret, which must happen before
// the first View; View is then safe for concurrent use.
type Policy struct {
	DeviceClass DeviceClass
	Padding     bool
	// Schedule is the fixed reporting period, or 0 for event-driven
	// reporting. Report times are rounded down to Slot().
	Schedule time.Duration
	// AuditMax caps the audit log (current file; one rotated file more).
	AuditMax   int64
	recipients []Recipient
	mask       *Masker
}

// Recipients returns the configured recipients in file order.
func (p *Policy) Recipients() []Recipient { return append([]Recipient(nil), p.recipients...) }

// Recipient returns the named recipient.
func (p *Policy) Recipient(name string) (Recipient, bool) {
	for _, r := range p.recipients {
		if r.Name == name {
			return r, true
		}
	}
	return Recipient{}, false
}

// RecipientByIdentity maps an authenticated peer identity to its recipient.
// Identities are compared exactly (case-insensitively for digests).
func (p *Policy) RecipientByIdentity(id string) (Recipient, bool) {
	id = normIdentity(id)
	for _, r := range p.recipients {
		if r.Identity == id {
			return r, true
		}
	}
	return Recipient{}, false
}

// Grants returns what name may receive after the device class is applied.
// An unknown recipient gets nothing (and false).
func (p *Policy) Grants(name string) (Grants, bool) {
	r, ok := p.Recipient(name)
	if !ok {
		return Grants{}, false
	}
	g := r.Grants
	if p.DeviceClass == DeviceNoLocationTracking {
		g.Location, g.GridMeters, g.Cell = LevelNone, 0, LevelNone
	}
	return g, true
}

// Slot is the granularity of report times: the schedule, or DefaultSlot.
func (p *Policy) Slot() time.Duration {
	if p.Schedule > 0 {
		return p.Schedule
	}
	return DefaultSlot
}

// SetSecret installs the per-device secret (32 bytes, LoadSecret) that
// drives location masking. Call it before the first View.
func (p *Policy) SetSecret(k ident.Key) error {
	m, err := NewMasker(k)
	if err != nil {
		return err
	}
	p.mask = m
	return nil
}

// Keys of the configuration sections this package reads.
var (
	recipientKeys = []string{"identity", "status", "location", "cell", "identity_disclosure", "radio"}
	privacyKeys   = []string{"device_class", "padding", "schedule", "audit_max"}
)

// ParsePolicy reads the [privacy] section and every [recipient "NAME"]
// section of f. Unknown keys and values are refused with file, line and
// reason (a *config.Error). A file without recipients is a valid policy
// under which nothing is disclosed.
func ParsePolicy(f *config.File) (*Policy, error) {
	p := &Policy{AuditMax: DefaultAuditMax}
	for _, s := range f.All("privacy") {
		if s.Label != "" {
			return nil, s.Errorf(s.Line, "[privacy] takes no label")
		}
	}
	if n := len(f.All("privacy")); n > 1 {
		s := f.All("privacy")[1]
		return nil, s.Errorf(s.Line, "[privacy] appears %d times", n)
	}
	if s := f.Section("privacy"); s != nil {
		if err := s.Unknown(privacyKeys...); err != nil {
			return nil, err
		}
		for _, e := range s.Entries {
			var err error
			switch e.Key {
			case "device_class":
				switch e.Value {
				case "default":
					p.DeviceClass = DeviceDefault
				case "no_location_tracking":
					p.DeviceClass = DeviceNoLocationTracking
				default:
					err = fmt.Errorf("device_class %q: want default or no_location_tracking", e.Value)
				}
			case "padding":
				p.Padding, err = e.OnOff()
			case "schedule":
				d, perr := config.ParseDuration(e.Value)
				switch {
				case perr != nil:
					err = fmt.Errorf("schedule %q: want a duration such as 15m", e.Value)
				case d < time.Second || d > 24*time.Hour:
					err = fmt.Errorf("schedule %q outside 1s..24h", e.Value)
				case (24*time.Hour)%d != 0:
					err = fmt.Errorf("schedule %q does not divide a day", e.Value)
				default:
					p.Schedule = d
				}
			case "audit_max":
				n, perr := parseSize(e.Value)
				if perr != nil {
					err = perr
				} else {
					p.AuditMax = n
				}
			}
			if err != nil {
				return nil, s.Errorf(e.Line, "%v", err)
			}
		}
	}
	seenID := map[string]string{}
	for _, s := range f.All("recipient") {
		if s.Label == "" {
			return nil, s.Errorf(s.Line, `[recipient] needs a name: [recipient "NAME"]`)
		}
		if _, dup := p.Recipient(s.Label); dup {
			return nil, s.Errorf(s.Line, "recipient %q defined twice", s.Label)
		}
		if err := s.Unknown(recipientKeys...); err != nil {
			return nil, err
		}
		r := Recipient{Name: s.Label}
		for _, e := range s.Entries {
			var err error
			switch e.Key {
			case "identity":
				r.Identity, err = parseIdentity(e.Value)
			case "status":
				r.Grants.Status, err = levelValue(ClassStatus, e.Key, e.Value)
			case "location":
				if g, ok := strings.CutPrefix(e.Value, "region:"); ok {
					r.Grants.Location = LocationRegion
					r.Grants.GridMeters, err = parseMeters(g)
				} else if e.Value == "region" {
					err = fmt.Errorf("location region needs a grid size, e.g. region:2km")
				} else {
					r.Grants.Location, err = levelValue(ClassLocation, e.Key, e.Value)
				}
			case "cell":
				r.Grants.Cell, err = levelValue(ClassCell, e.Key, e.Value)
			case "identity_disclosure":
				r.Grants.Identity, err = levelValue(ClassIdentity, e.Key, e.Value)
			case "radio":
				r.Grants.Radio, err = levelValue(ClassRadio, e.Key, e.Value)
			}
			if err != nil {
				return nil, s.Errorf(e.Line, "recipient %q: %v", s.Label, err)
			}
		}
		if r.Identity == "" {
			return nil, s.Errorf(s.Line, "recipient %q: identity is required (e.g. identity = psk:operator-1)", s.Label)
		}
		if other, dup := seenID[r.Identity]; dup {
			e, _ := s.Get("identity")
			return nil, s.Errorf(e.Line, "recipient %q: identity already used by recipient %q", s.Label, other)
		}
		seenID[r.Identity] = r.Name
		p.recipients = append(p.recipients, r)
	}
	return p, nil
}

func levelValue(c Class, key, v string) (Level, error) {
	if l, ok := parseLevel(c, v); ok && !(c == ClassLocation && l == LocationRegion) {
		return l, nil
	}
	want := strings.Join(levelNames[c], "|")
	if c == ClassLocation {
		want = "none|region:SIZE|precise"
	}
	return 0, fmt.Errorf("%s %q: want %s", key, v, want)
}

func normIdentity(id string) string {
	kind, rest, _ := strings.Cut(id, ":")
	if kind == "x509-sha256" || kind == "rpk-sha256" {
		return kind + ":" + strings.ToLower(rest)
	}
	return id
}

func parseIdentity(v string) (string, error) {
	kind, rest, ok := strings.Cut(v, ":")
	if !ok || rest == "" {
		return "", fmt.Errorf("identity %q: want psk:ID, x509-sha256:HEX or rpk-sha256:HEX", v)
	}
	switch kind {
	case "psk":
		if len(rest) > 128 {
			return "", fmt.Errorf("identity: psk identity longer than 128 bytes")
		}
		return v, nil
	case "x509-sha256", "rpk-sha256":
		if len(rest) != 64 || strings.Trim(strings.ToLower(rest), "0123456789abcdef") != "" {
			return "", fmt.Errorf("identity: %s needs 64 hex digits (a SHA-256 digest)", kind)
		}
		return normIdentity(v), nil
	}
	return "", fmt.Errorf("identity kind %q: want psk, x509-sha256 or rpk-sha256", kind)
}

// parseSize reads "65536", "64KiB", "1MiB".
func parseSize(v string) (int64, error) {
	mult := int64(1)
	num := v
	switch {
	case strings.HasSuffix(v, "KiB"):
		mult, num = 1<<10, strings.TrimSuffix(v, "KiB")
	case strings.HasSuffix(v, "MiB"):
		mult, num = 1<<20, strings.TrimSuffix(v, "MiB")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("audit_max %q: want a size such as 256KiB or 1MiB", v)
	}
	n *= mult
	if n < 4<<10 || n > 64<<20 {
		return 0, fmt.Errorf("audit_max %q outside 4KiB..64MiB", v)
	}
	return n, nil
}

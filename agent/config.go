package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
)

// Config is the [agent] section of the configuration file plus flags.
type Config struct {
	Modem     string
	StateDir  string
	LogLevel  slog.Level
	Poll      time.Duration // full modem re-read
	Heartbeat time.Duration // signed heartbeat interval; 0 disables
	// AccessWindows are the times of day (UTC) the device may use the
	// network; registering outside them is a misaligned access. Empty:
	// any time.
	AccessWindows []Window
	BindingAction attest.Action
	// Recipient is the name (policy recipient) of the collector the events
	// are for: their UEID and pseudonyms are derived for it.
	Recipient string
	// GNSS turns the modem's GNSS receiver on and reads a fix on each poll
	// (Quectel, SIMCom). Off by default: the position is then masked per
	// recipient like everything else (docs/privacy.md).
	GNSS bool
	// CellBurst is how many cell changes are signed per minute before
	// further ones are folded into one cell_flapping event (a change seen
	// in several registration domains counts once). 0: CellBurst (4);
	// negative: no limit.
	CellBurst int

	// Uplink is the [uplink] section, checked; nil without one.
	Uplink *UplinkSettings
	// MDT is the [mdt] section (defaults without one).
	MDT mdtlog.Config
	// Policy is the privacy policy: [privacy] and every [recipient]. It is
	// for checking and naming recipients; the running agent parses its own
	// copy, which holds the pseudonym secret.
	Policy *privacy.Policy

	File   *config.File // the whole file, for the other packages' sections
	Digest [32]byte     // of the file's bytes: a change is an event
}

// UplinkSettings is the [uplink] section as written: the one server the
// agent talks to.
//
//	[uplink]
//	addr = 127.0.0.1:5684       # UDP host:port of the collector
//	name = operator             # its recipient name in the privacy policy
//	psk_identity = device-0001
//	psk_file = /etc/mtcagent/psk   # hex, 0600
//	# or: server_pin = <hex SHA-256 of the collector's public key> (certificate mode)
//	keepalive = off             # default; or e.g. 25s, just under the carrier NAT's UDP timeout
type UplinkSettings struct {
	Addr, Name  string
	PSKIdentity string
	PSK         []byte // from psk
	PSKFile     string // read when the uplink starts
	ServerPin   []byte
	Keepalive   time.Duration // 0: the default (off, uplink.DefaultKeepalive); <0: off
	Line        int           // of the section header
}

// The sections of the agent's file: each command that reads the file
// refuses any other, and so refuses a typo.
var (
	plainSections    = []string{"agent", "uplink", "mdt", "privacy"}
	labelledSections = []string{"recipient"}
	uplinkKeys       = []string{"addr", "name", "psk_identity", "psk", "psk_file", "server_pin", "keepalive"}
)

// checkSections refuses unknown, repeated and wrongly labelled sections.
func checkSections(f *config.File) error {
	seen := map[string]bool{}
	for _, s := range f.Sections {
		switch {
		case slices.Contains(plainSections, s.Name):
			if s.Label != "" {
				return s.Errorf(s.Line, "[%s] takes no label", s.Name)
			}
			if seen[s.Name] {
				return s.Errorf(s.Line, "[%s] given twice: merge the two", s.Name)
			}
			seen[s.Name] = true
		case slices.Contains(labelledSections, s.Name):
			if s.Label == "" {
				return s.Errorf(s.Line, "[%s] needs a name: [%s \"NAME\"]", s.Name, s.Name)
			}
		default:
			return s.Errorf(s.Line, "unknown section [%s] (known: [agent], [uplink], [mdt], [privacy], [recipient \"NAME\"])", s.Name)
		}
	}
	return nil
}

// parseUplinkSection checks [uplink] and reads its values (nil without
// the section). Files are not read here.
func parseUplinkSection(f *config.File) (*UplinkSettings, error) {
	s := f.Section("uplink")
	if s == nil {
		return nil, nil
	}
	if err := s.Unknown(uplinkKeys...); err != nil {
		return nil, err
	}
	u := &UplinkSettings{Name: "collector", Line: s.Line}
	for _, e := range s.Entries {
		var err error
		switch e.Key {
		case "addr":
			u.Addr = e.Value
		case "name":
			u.Name = e.Value
		case "psk_identity":
			u.PSKIdentity = e.Value
		case "psk":
			if u.PSK, err = hex.DecodeString(e.Value); err != nil || len(u.PSK) < 16 {
				err = errors.New("want at least 32 hex digits (16 bytes)")
			}
		case "psk_file":
			u.PSKFile = e.Value
		case "server_pin":
			if u.ServerPin, err = hex.DecodeString(e.Value); err != nil || len(u.ServerPin) != sha256.Size {
				err = errors.New("want 64 hex digits (the SHA-256 that 'mtccollector pin' prints)")
			}
		case "keepalive":
			if e.Value == "off" {
				u.Keepalive = -1
			} else {
				u.Keepalive, err = e.Duration(time.Second, 0)
			}
		}
		if err != nil {
			return nil, s.Errorf(e.Line, "%s: %v", e.Key, err)
		}
	}
	pskMode := u.PSKIdentity != "" || u.PSK != nil || u.PSKFile != ""
	switch {
	case u.Addr == "":
		return nil, s.Errorf(s.Line, "[uplink] needs addr")
	case pskMode && u.ServerPin != nil:
		return nil, s.Errorf(s.Line, "[uplink]: give psk_identity with psk or psk_file, or server_pin; not both")
	case pskMode && u.PSKIdentity == "":
		return nil, s.Errorf(s.Line, "[uplink] needs psk_identity with its psk")
	case pskMode && u.PSK == nil && u.PSKFile == "":
		return nil, s.Errorf(s.Line, "[uplink] needs psk or psk_file with psk_identity")
	case !pskMode && u.ServerPin == nil:
		return nil, s.Errorf(s.Line, "[uplink] needs credentials: psk_identity with psk or psk_file, or server_pin")
	}
	return u, nil
}

// Window is a daily time window [From, To) in minutes after midnight UTC;
// To < From wraps past midnight.
type Window struct{ From, To int }

// Contains reports whether t (UTC) falls in the window.
func (w Window) Contains(t time.Time) bool {
	m := t.UTC().Hour()*60 + t.UTC().Minute()
	if w.From <= w.To {
		return m >= w.From && m < w.To
	}
	return m >= w.From || m < w.To
}

func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.From/60, w.From%60, w.To/60, w.To%60)
}

// DefaultConfig is used when no file is given.
func DefaultConfig() Config {
	return Config{Modem: "auto", StateDir: "/var/lib/mtcagent", LogLevel: slog.LevelInfo,
		Poll: 30 * time.Second, Heartbeat: 15 * time.Minute, BindingAction: attest.ActionReport, Recipient: "collector",
		MDT: mdtlog.DefaultConfig(), Policy: emptyPolicy(), File: &config.File{}}
}

// emptyPolicy is the policy of a file without one: nothing is disclosed.
func emptyPolicy() *privacy.Policy {
	p, err := privacy.ParsePolicy(&config.File{})
	if err != nil {
		panic("privacy: the empty policy does not parse: " + err.Error())
	}
	return p
}

// LoadConfig reads the file at path; errors name the file and line.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	f, err := config.Parse(path, string(b))
	if err != nil {
		return c, err
	}
	c.File, c.Digest = f, sha256.Sum256(b)
	// One check of the whole file for every command that reads it: a
	// section, key or value that one command refuses, all refuse.
	if err := checkSections(f); err != nil {
		return c, err
	}
	if c.Uplink, err = parseUplinkSection(f); err != nil {
		return c, err
	}
	if c.MDT, err = mdtlog.ParseConfig(f); err != nil {
		return c, err
	}
	if c.Policy, err = privacy.ParsePolicy(f); err != nil {
		return c, err
	}
	// Events are for the server the agent reports to: unless [agent] says
	// otherwise, their UEID and pseudonyms are derived for the uplink's
	// name, as the attestations that server asks for are.
	if e, ok := f.Section("uplink").Get("name"); ok {
		c.Recipient = e.Value
	} else if f.Section("uplink") != nil {
		c.Recipient = "collector"
	}
	s := f.Section("agent")
	if s == nil {
		return c, nil
	}
	if err := s.Unknown("modem", "state_dir", "log_level", "poll", "heartbeat", "access_windows", "binding_action", "recipient", "gnss", "cell_burst"); err != nil {
		return c, err
	}
	for _, e := range s.Entries {
		var err error
		switch e.Key {
		case "modem":
			c.Modem = e.Value
		case "state_dir":
			c.StateDir = e.Value
		case "log_level":
			err = c.LogLevel.UnmarshalText([]byte(e.Value))
		case "poll":
			c.Poll, err = e.Duration(time.Second, 0)
		case "heartbeat":
			if e.Value == "off" || e.Value == "0" {
				c.Heartbeat = 0
			} else {
				c.Heartbeat, err = e.Duration(time.Second, 0)
			}
		case "access_windows":
			c.AccessWindows, err = ParseWindows(e.Value)
		case "binding_action":
			c.BindingAction, err = attest.ParseAction(e.Value)
		case "recipient":
			c.Recipient = e.Value
		case "cell_burst":
			if e.Value == "off" {
				c.CellBurst = -1
			} else if c.CellBurst, err = strconv.Atoi(e.Value); err == nil && (c.CellBurst < 1 || c.CellBurst > 1000) {
				err = fmt.Errorf("%q: want 1 to 1000 cell changes a minute, or off", e.Value)
			} else if err != nil {
				err = fmt.Errorf("%q: want 1 to 1000 cell changes a minute, or off", e.Value)
			}
		case "gnss":
			if c.GNSS, err = e.OnOff(); err != nil {
				return c, s.Errorf(e.Line, "%v", err)
			}
		}
		if err != nil {
			return c, s.Errorf(e.Line, "%s: %v", e.Key, err)
		}
	}
	return c, nil
}

// ParseWindows parses "22:00-06:00, 12:00-12:30".
func ParseWindows(s string) ([]Window, error) {
	var out []Window
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, b, ok := strings.Cut(part, "-")
		if !ok {
			return nil, fmt.Errorf("window %q: want HH:MM-HH:MM", part)
		}
		from, err1 := parseClock(a)
		to, err2 := parseClock(b)
		if err1 != nil || err2 != nil || from == to {
			return nil, fmt.Errorf("window %q: want HH:MM-HH:MM (UTC), start and end different", part)
		}
		out = append(out, Window{from, to})
	}
	return out, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

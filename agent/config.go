package agent

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/config"
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

	File   *config.File // the whole file, for the other packages' sections
	Digest [32]byte     // of the file's bytes: a change is an event
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
		File: &config.File{}}
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
	if err := s.Unknown("modem", "state_dir", "log_level", "poll", "heartbeat", "access_windows", "binding_action", "recipient", "gnss"); err != nil {
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
			c.Poll, err = positiveDuration(e.Value, time.Second)
		case "heartbeat":
			if e.Value == "off" || e.Value == "0" {
				c.Heartbeat = 0
			} else {
				c.Heartbeat, err = positiveDuration(e.Value, time.Second)
			}
		case "access_windows":
			c.AccessWindows, err = ParseWindows(e.Value)
		case "binding_action":
			c.BindingAction, err = attest.ParseAction(e.Value)
		case "recipient":
			c.Recipient = e.Value
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

func positiveDuration(s string, min time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration like 30s or 15m")
	}
	if d < min {
		return 0, fmt.Errorf("%v is shorter than the minimum %v", d, min)
	}
	return d, nil
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

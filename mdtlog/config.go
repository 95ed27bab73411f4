package mdtlog

import (
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/internal/config"
)

// Config is the [mdt] section of the agent's configuration file:
//
//	[mdt]
//	interval = 10.24s          # logging interval, 1.28s..61.44s (TS 37.320 range)
//	duration = 120m            # logging session length, 10m..120m, or "continuous"
//	max_bytes = 4M             # size cap of the log (oldest segments go first)
//	retention = 7d             # age after which segments are deleted
//	delete_after_upload = on   # delete records once the collector confirmed them
//
// Nothing here can turn logging on: that takes the user's consent.
type Config struct {
	Interval          time.Duration
	Duration          time.Duration // 0 means continuous
	MaxBytes          int64
	Retention         time.Duration
	DeleteAfterUpload bool
}

// Limits from TS 37.320 / TS 36.331 (LoggingInterval, LoggingDuration).
const (
	MinInterval = 1280 * time.Millisecond
	MaxInterval = 61440 * time.Millisecond
	MinDuration = 10 * time.Minute
	MaxDuration = 120 * time.Minute
)

// DefaultConfig returns the defaults: 10.24 s interval, 120 min sessions,
// 4 MiB, 7 days, delete after upload.
func DefaultConfig() Config {
	return Config{
		Interval:          10240 * time.Millisecond,
		Duration:          120 * time.Minute,
		MaxBytes:          DefaultMaxBytes,
		Retention:         DefaultRetention,
		DeleteAfterUpload: true,
	}
}

// Options returns the Store options the configuration implies.
func (c Config) Options() Options {
	return Options{MaxBytes: c.MaxBytes, Retention: c.Retention}
}

// ParseConfig reads the [mdt] section of f (defaults when absent); errors
// name the file and line.
func ParseConfig(f *config.File) (Config, error) {
	c := DefaultConfig()
	if f == nil {
		return c, nil
	}
	s := f.Section("mdt")
	if s == nil {
		return c, nil
	}
	if err := s.Unknown("interval", "duration", "max_bytes", "retention", "delete_after_upload"); err != nil {
		return c, err
	}
	if e, ok := s.Get("interval"); ok {
		d, err := parseDuration(e.Value)
		if err != nil || d < MinInterval || d > MaxInterval {
			return c, s.Errorf(e.Line, "interval %q: want a duration from 1.28s to 61.44s", e.Value)
		}
		c.Interval = d
	}
	if e, ok := s.Get("duration"); ok {
		if e.Value == "continuous" {
			c.Duration = 0
		} else {
			d, err := parseDuration(e.Value)
			if err != nil || d < MinDuration || d > MaxDuration {
				return c, s.Errorf(e.Line, "duration %q: want 10m to 120m, or continuous", e.Value)
			}
			c.Duration = d
		}
	}
	if e, ok := s.Get("max_bytes"); ok {
		n, err := parseBytes(e.Value)
		if err != nil || n < 64<<10 || n > 1<<30 {
			return c, s.Errorf(e.Line, "max_bytes %q: want a size from 64K to 1G (e.g. 4M)", e.Value)
		}
		c.MaxBytes = n
	}
	if e, ok := s.Get("retention"); ok {
		d, err := parseDuration(e.Value)
		if err != nil || d < time.Hour || d > 366*24*time.Hour {
			return c, s.Errorf(e.Line, "retention %q: want a duration from 1h to 366d (e.g. 7d)", e.Value)
		}
		c.Retention = d
	}
	if e, ok := s.Get("delete_after_upload"); ok {
		switch strings.ToLower(e.Value) {
		case "on", "yes", "true", "1":
			c.DeleteAfterUpload = true
		case "off", "no", "false", "0":
			c.DeleteAfterUpload = false
		default:
			return c, s.Errorf(e.Line, "delete_after_upload %q: want on or off", e.Value)
		}
	}
	return c, nil
}

// parseDuration and parseBytes are the configuration file's one syntax
// (internal/config).
func parseDuration(v string) (time.Duration, error) { return config.ParseDuration(v) }

func parseBytes(v string) (int64, error) { return config.ParseSize(v) }

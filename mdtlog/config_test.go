package mdtlog

import (
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/config"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, text string
		want       Config
		err        string // substring of the error, "" for none
	}{
		{"absent", "[agent]\nmodem = auto\n", DefaultConfig(), ""},
		{"all", "[mdt]\ninterval = 5.12s\nduration = 60m\nmax_bytes = 1M\nretention = 2d\ndelete_after_upload = off\n",
			Config{Interval: 5120 * time.Millisecond, Duration: time.Hour, MaxBytes: 1 << 20, Retention: 48 * time.Hour}, ""},
		{"continuous", "[mdt]\nduration = continuous\nmax_bytes = 512KiB\n",
			func() Config { c := DefaultConfig(); c.Duration = 0; c.MaxBytes = 512 << 10; return c }(), ""},
		{"interval low", "[mdt]\n\ninterval = 1s\n", Config{}, "cfg:3: interval"},
		{"interval high", "[mdt]\ninterval = 62s\n", Config{}, "cfg:2: interval"},
		{"duration", "[mdt]\nduration = 3h\n", Config{}, "cfg:2: duration"},
		{"bytes", "[mdt]\nmax_bytes = lots\n", Config{}, "cfg:2: max_bytes"},
		{"bytes small", "[mdt]\nmax_bytes = 1K\n", Config{}, "cfg:2: max_bytes"},
		{"retention", "[mdt]\nretention = 5m\n", Config{}, "cfg:2: retention"},
		{"bool", "[mdt]\ndelete_after_upload = maybe\n", Config{}, "cfg:2: delete_after_upload"},
		{"unknown", "[mdt]\nconsent = yes\n", Config{}, `cfg:2: unknown key "consent"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := config.Parse("cfg", tc.text)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseConfig(f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	d := DefaultConfig()
	if d.Interval < MinInterval || d.Interval > MaxInterval || d.Duration < MinDuration || d.Duration > MaxDuration {
		t.Fatalf("defaults out of MDT ranges: %+v", d)
	}
}

package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/wire"
)

func startServer(t *testing.T, cfg *Config, dir string) (*Server, string, string, *syncBuf) {
	t.Helper()
	return startServerOn(t, cfg, dir, testStore(t, dir))
}

// startServerOn is startServer on the given store (e.g. one that fails).
func startServerOn(t *testing.T, cfg *Config, dir string, st Store) (*Server, string, string, *syncBuf) {
	t.Helper()
	log := &syncBuf{}
	s, err := New(cfg, Options{StateDir: dir, Store: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	da, err := s.ListenDevices("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sa, err := s.ListenSCS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, da.String(), sa.String(), log
}

// startWithDevice runs a collector that knows dev (and the test SCSs) with
// its state in dir, and connects dev to it.
func startWithDevice(t *testing.T, dev *testDevice, dir string) (*Server, *uplink.Client, *syncBuf) {
	t.Helper()
	s, addr, _, log := startServer(t, parseTestConfig(t, testConfigText(dev)), dir)
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c, log
}

func TestDeviceTokens(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, c, log := startWithDevice(t, dev, t.TempDir())
	ctx := context.Background()
	waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })

	post := func(path string, tok []byte) uplink.Code {
		t.Helper()
		code, _, err := c.Post(ctx, path, tok)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	hb, _ := dev.iss.SignHeartbeat()
	if code := post(wire.PathHeartbeat, hb); code != uplink.Changed {
		t.Fatalf("heartbeat: %v", code)
	}
	ev, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed"))
	if code := post(wire.PathEvent, ev); code != uplink.Changed {
		t.Fatalf("event: %v", code)
	}
	// The same event again: acknowledged, not processed twice.
	if code := post(wire.PathEvent, ev); code != uplink.Changed {
		t.Fatalf("duplicate: %v", code)
	}
	// A heartbeat on the event path: wrong kind, refused.
	hb2, _ := dev.iss.SignHeartbeat()
	if code := post(wire.PathEvent, hb2); code != uplink.Forbidden {
		t.Fatalf("wrong kind: %v", code)
	}
	// Skip two sequence numbers: a gap alarm.
	dev.iss.SignHeartbeat()
	dev.iss.SignHeartbeat()
	hb3, _ := dev.iss.SignHeartbeat()
	post(wire.PathHeartbeat, hb3)
	ds := s.device("dev1")
	if ds.Duplicates != 1 || ds.Accepted != 3 {
		t.Errorf("accepted %d duplicates %d, want 3 and 1", ds.Accepted, ds.Duplicates)
	}
	if !strings.Contains(log.String(), "ALARM device dev1 sequence-gap") {
		t.Errorf("no gap alarm in:\n%s", log)
	}
	// A signature by another key on the session: refused and alarmed.
	other := newTestDevice(t, "x")
	forged, _ := other.iss.Sign(attest.KindEvent, attest.EventClaim("sim_bound"))
	if code := post(wire.PathEvent, forged); code != uplink.Forbidden {
		t.Fatalf("forged: %v", code)
	}
}

// TestDeviceTokensBothFormats (issue 16): the collector says in its
// attestation request that it reads claims formats 1 and 2, and takes
// both from one device, interleaved: sequence numbers, duplicates, and
// the alarms that hang on an event name (sim_changed as a code in format
// 2) work the same.
func TestDeviceTokensBothFormats(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, c, log := startWithDevice(t, dev, t.TempDir())
	ctx := context.Background()
	waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })
	dev.mu.Lock()
	formats := dev.formats
	dev.mu.Unlock()
	if wire.TokenFormat(formats) != wire.FormatCompact {
		t.Fatalf("the attestation request says the collector reads formats %v", formats)
	}
	post := func(path string, tok []byte) uplink.Code {
		t.Helper()
		code, _, err := c.Post(ctx, path, tok)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	for i, f := range []attest.Format{attest.FormatLabels, attest.FormatCompact, attest.FormatLabels, attest.FormatCompact} {
		dev.iss.SetFormat(f)
		hb, _ := dev.iss.SignHeartbeat()
		if code := post(wire.PathHeartbeat, hb); code != uplink.Changed {
			t.Fatalf("heartbeat %d, format %v: %v", i, f, code)
		}
		ev, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed"), attest.Claim{Label: -65560, Value: map[any]any{1: []any{1, 2, 3}}})
		if code := post(wire.PathEvent, ev); code != uplink.Changed {
			t.Fatalf("event %d, format %v: %v", i, f, code)
		}
		if code := post(wire.PathEvent, ev); code != uplink.Changed {
			t.Fatalf("duplicate %d, format %v: %v", i, f, code)
		}
	}
	dev.iss.SetFormat(attest.FormatCompact)
	ev, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim(attest.SIMChanged.String()))
	if code := post(wire.PathEvent, ev); code != uplink.Changed {
		t.Fatalf("sim_changed: %v", code)
	}
	ds := s.device("dev1")
	if ds.Accepted != 9 || ds.Duplicates != 4 {
		t.Errorf("accepted %d duplicates %d, want 9 and 4", ds.Accepted, ds.Duplicates)
	}
	out := log.String()
	if strings.Contains(out, "sequence-gap") || strings.Contains(out, "verify-failed") {
		t.Fatalf("alarms for well-formed tokens of both formats:\n%s", out)
	}
	if !strings.Contains(out, "ALARM device dev1 binding-changed") || strings.Count(out, "event cell_changed verified") != 4 {
		t.Fatalf("events not read the same from both formats:\n%s", out)
	}
}

// TestHeartbeatOverdue: silence longer than the heartbeat timeout raises
// one alarm; the next heartbeat clears it.
func TestHeartbeatOverdue(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	cfg.Devices["dev1"].HeartbeatTimeout = 500 * time.Millisecond
	dir := t.TempDir()
	s, addr, _, log := startServer(t, cfg, dir)
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("post: %v %v", code, err)
	}
	waitFor(t, 15*time.Second, "overdue alarm", func() bool { return strings.Contains(log.String(), "ALARM device dev1 heartbeat-overdue") })
	hb, _ = dev.iss.SignHeartbeat()
	c.Post(context.Background(), wire.PathHeartbeat, hb)
	waitFor(t, 5*time.Second, "recovery", func() bool { return strings.Contains(log.String(), "device dev1: heard from again") })
	if n := strings.Count(log.String(), "heartbeat-overdue"); n != 1 {
		t.Errorf("%d overdue alarms, want 1", n)
	}
	// In the store's alarm log (alarms.log beside the embedded store).
	as, err := s.st.Alarms(context.Background(), "dev1")
	if err != nil || len(as) != 1 || as[0].Kind != "heartbeat-overdue" {
		t.Errorf("alarm log: %+v %v", as, err)
	}
	if _, isBolt := s.st.(*boltStore); isBolt {
		if b, _ := os.ReadFile(filepath.Join(dir, AlarmLog)); !strings.Contains(string(b), `"kind":"heartbeat-overdue"`) {
			t.Errorf("alarms.log: %s", b)
		}
	}
	// In the history: the alarm, then the overdue period as a gap, from
	// the first heartbeat to the second; both heartbeats in the summary.
	p, err := s.st.History(context.Background(), "dev1", HistoryQuery{Kinds: []string{HistoryAlarm, HistoryGap}})
	if err != nil || len(p.Records) != 2 || p.Records[0].Kind != HistoryAlarm || p.Records[1].Kind != HistoryGap ||
		!strings.Contains(string(p.Records[0].Detail), `"type":"heartbeat-overdue"`) || !strings.Contains(string(p.Records[1].Detail), `"type":"overdue"`) ||
		p.Heartbeats.Count != 2 {
		t.Fatalf("history: %+v %v", p, err)
	}
	var gap struct{ From, Until int64 }
	if json.Unmarshal(p.Records[1].Detail, &gap) != nil || gap.From != p.Heartbeats.FirstAt.Unix() || gap.Until != p.Heartbeats.LastAt.Unix() {
		t.Errorf("overdue gap %s, heartbeats %+v", p.Records[1].Detail, p.Heartbeats)
	}
}

func TestConfigErrors(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	for _, tc := range []struct{ text, want string }{
		{"[devise \"x\"]\n", "unknown section"},
		{"[device]\npublic_key = " + dev.pemf + "\n", "needs an ID"},
		{"[device \"a\"]\npsk_identity = a\npublic_key = " + dev.pemf + "\n", "go together"},
		{"[device \"a\"]\npsk_identity = a\npsk = zz\npublic_key = " + dev.pemf + "\n", "hex"},
		{"[device \"a\"]\npsk_identity = a\npsk = " + devPSKHex + "\n", "public_key"},
		{"[scs \"s\"]\npsk_identity = s\npsk = " + devPSKHex + "\nclasses = status location\n", "unknown class"},
		{"[collector]\nheartbeat_timeout = soon\n", "duration"},
		{"[collector]\nmdt_keep = never\n", "mdt_keep: want a positive duration"},
		{"[device \"a\"]\nbinding = 00\npublic_key = " + dev.pemf + "\n", "binding"},
		{"[collector]\nnat_window = 0s\n", "nat_window: want a positive duration"},
		{"[collector]\nqueue_per_device = many\n", "queue_per_device: want a count"},
		{"[collector]\nqueue_total = -1\n", "queue_total: want a count"},
	} {
		f, err := config.Parse("c.conf", tc.text)
		if err == nil {
			_, err = ParseConfig(f)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "c.conf:") {
			t.Errorf("%q: %v, want %q with file:line", tc.text, err, tc.want)
		}
	}
}

// session_idle defaults to 3 x the longest heartbeat timeout, at least
// MinSessionIdle; queue mode's settings have their defaults.
func TestConfigQueueMode(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	long := "[device \"a\"]\npsk_identity = a\npsk = " + devPSKHex + "\npublic_key = " + dev.pemf + "\nheartbeat_timeout = 2h\n"
	for text, want := range map[string]time.Duration{
		"":                                      3 * 35 * time.Minute, // the default heartbeat_timeout
		"[collector]\nheartbeat_timeout = 1m\n": MinSessionIdle,
		"[collector]\nheartbeat_timeout = 1h\n": 3 * time.Hour,
		long:                                    6 * time.Hour,
		"[collector]\nsession_idle = 10m\n" + long: 10 * time.Minute,
	} {
		if got := parseTestConfig(t, text).SessionIdle; got != want {
			t.Errorf("%q: session_idle %v, want %v", text, got, want)
		}
	}
	c := parseTestConfig(t, "")
	if c.NATWindow != DefaultNATWindow || c.QueuePerDevice != DefaultQueuePerDevice || c.QueueTotal != DefaultQueueTotal {
		t.Errorf("defaults: nat_window %v, queue_per_device %d, queue_total %d", c.NATWindow, c.QueuePerDevice, c.QueueTotal)
	}
	c = parseTestConfig(t, "[collector]\nnat_window = 25s\nqueue_per_device = 2\nqueue_total = 0\n")
	if c.NATWindow != 25*time.Second || c.QueuePerDevice != 2 || c.QueueTotal != 0 {
		t.Errorf("set: nat_window %v, queue_per_device %d, queue_total %d", c.NATWindow, c.QueuePerDevice, c.QueueTotal)
	}
}

func TestConfigMDTKeep(t *testing.T) {
	for text, want := range map[string]time.Duration{
		"":                                  DefaultMDTKeep,
		"[collector]\nmdt_keep = 48h\n":     48 * time.Hour,
		"[collector]\nmdt_keep = forever\n": 0,
	} {
		if got := parseTestConfig(t, text).MDTKeep; got != want {
			t.Errorf("%q: mdt_keep %v, want %v", text, got, want)
		}
	}
}

// A scheduled status report becomes the device's last status; anything
// that is not one valid CBOR item is refused and changes nothing. A
// well-formed item can still be invalid (a date-time tag around an
// integer): kept, it would empty every status answer that re-encodes it.
func TestScheduledReport(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, c, log := startWithDevice(t, dev, t.TempDir())
	ctx := context.Background()
	rep, _ := cbor.Marshal(map[string]any{"t": 1_800_000_000, "status": "reachable"})
	if code, _, err := c.Post(ctx, wire.PathReport, rep); err != nil || code != uplink.Changed {
		t.Fatalf("report: %v %v", code, err)
	}
	for _, bad := range [][]byte{
		{0xa1, 0x01},
		append(append([]byte{}, rep...), 0x00),
		{0xa1, 0x61, 0x74, 0xc0, 0x20}, // {"t": 0(-1)}
		{0xa2, 0x01, 0x00, 0x01, 0x00}, // a key twice
		{},
	} {
		if code, _, err := c.Post(ctx, wire.PathReport, bad); err != nil || code != uplink.BadRequest {
			t.Fatalf("malformed report % x: %v %v", bad, code, err)
		}
	}
	got := s.device("dev1").Status
	if !bytes.Equal(got, rep) || !strings.Contains(log.String(), "scheduled report refused") {
		t.Fatalf("status % x, want % x; log:\n%s", got, rep, log)
	}
}

// A status stored before reports were checked as valid CBOR (or written
// into the store by hand) is left out of the answer, which says so, in
// CBOR as in JSON; the rest of the answer stays.
func TestEncodeOutInvalidStatus(t *testing.T) {
	bad := cbor.RawMessage{0xa1, 0x61, 0x74, 0xc0, 0x20} // {"t": 0(-1)}
	good := cbor.RawMessage{0xa1, 0x61, 0x74, 0x01}
	for _, wantJSON := range []bool{false, true} {
		for _, st := range []cbor.RawMessage{bad, good} {
			b := encodeOut(map[string]any{"device": "dev1", "status": st}, wantJSON)
			var got map[string]any
			var err error
			if wantJSON {
				err = json.Unmarshal(b, &got)
			} else {
				err = cbor.Unmarshal(b, &got)
			}
			if err != nil || got["device"] != "dev1" {
				t.Fatalf("json=%v status % x: answer % x (%v)", wantJSON, st, b, err)
			}
			_, hasStatus := got["status"]
			_, hasErr := got["status_error"]
			if valid := bytes.Equal(st, good); hasStatus != valid || hasErr == valid {
				t.Fatalf("json=%v status % x: answer %v", wantJSON, st, got)
			}
		}
	}
}

// A signed event whose name has a control character is refused as
// malformed (4.00), not stored: a NUL would fail PostgreSQL's jsonb, and
// with it the group commit of every device's message in the batch. The
// device's next message is taken.
func TestEventWithControlCharacter(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, c, log := startWithDevice(t, dev, t.TempDir())
	ctx := context.Background()
	for _, name := range []string{"cell\x00changed", "cell_changed\n00:00 device dev2: forged line"} {
		ev, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim(name))
		if code, _, err := c.Post(ctx, wire.PathEvent, ev); err != nil || code != uplink.BadRequest {
			t.Fatalf("event %q: %v %v, want 4.00; log:\n%s", name, code, err, log)
		}
	}
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(ctx, wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat after: %v %v", code, err)
	}
	if s.device("dev1").LastEvent != nil || strings.Contains(log.String(), "ERROR") || strings.Contains(log.String(), "forged") {
		t.Fatalf("last event %+v; log:\n%s", s.device("dev1").LastEvent, log)
	}
}

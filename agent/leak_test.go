package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/atmodem/serialport"
	"github.com/mtcagent/mtcagent/internal/clock"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/privacy"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// TestSessionLeaksNoIdentifier runs a whole simulated session — SIM swap,
// cell change, reboot, unplug — with debug logging, and scans every log
// line, every signed message queued for the collector and every report
// built for non-operator recipients for the IMSI, ICCID and IMEI digits of
// both SIMs and the modem.
func TestSessionLeaksNoIdentifier(t *testing.T) {
	const (
		imsi1, iccid1 = "001010123456789", "8900100000123456789"
		imsi2, iccid2 = "001010987654321", "8900100000987654321"
		imei          = "353456789012345"
	)
	scenario := `{"dialect": "quectel",
	  "modem": {"imei": "` + imei + `"},
	  "sim": {"imsi": "` + imsi1 + `", "iccid": "` + iccid1 + `"},
	  "timeline": [
	    {"at": "200ms", "network": {"cell_id": 123456}},
	    {"at": "400ms", "sim": "remove"},
	    {"at": "700ms", "sim": {"imsi": "` + imsi2 + `", "iccid": "` + iccid2 + `"}},
	    {"at": "1s", "fault": "garbage"},
	    {"at": "1200ms", "fault": "reboot", "for": "300ms"},
	    {"at": "1800ms", "fault": "unplug", "for": "300ms"}
	  ]}`
	sc, err := modemsim.Parse([]byte(scenario))
	if err != nil {
		t.Fatal(err)
	}
	s := modemsim.New(sc)
	p, err := modemsim.ServePTY(s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Poll = 200 * time.Millisecond
	out := &MemOutbox{}
	clk := clock.NewFake(time.Now(), true)
	a, err := New(cfg, Deps{
		Open:          func(context.Context) (io.ReadWriteCloser, error) { return serialport.OpenDevice(p.Path()) },
		Outbox:        out,
		Log:           log,
		Clock:         clk,
		EngineOptions: []at.Option{at.WithTimeout(slow(300 * time.Millisecond)), at.WithLogger(log)},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse("policy", `
[recipient "operator"]
identity = psk:operator
status = full
cell = full
identity_disclosure = pseudonym
radio = full
[recipient "scs-home"]
identity = psk:scs-home
status = full
cell = full
identity_disclosure = pseudonym
radio = full
[recipient "scs-other"]
identity = psk:scs-other
status = reachable
`)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := privacy.ParsePolicy(f)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	s.Start()
	var sent [][]byte
	deadline := time.Now().Add(slow(3 * time.Second))
	for time.Now().Before(deadline) {
		clk.Advance(cfg.Heartbeat) // a heartbeat
		if st := a.Status(); st != nil {
			snap := SnapshotFromStatus(st)
			snap.Identity = Identity{D: mustDeriver(t, cfg.StateDir), IMSI: st.SIM.IMSI, ICCID: st.SIM.ICCID, StateDir: cfg.StateDir}
			for _, r := range []string{"scs-home", "scs-other"} {
				rep, err := pol.View(r, snap)
				if err != nil {
					t.Fatal(err)
				}
				b, err := rep.Encode()
				if err != nil {
					t.Fatal(err)
				}
				j, _ := rep.MarshalJSON()
				sent = append(sent, b, j)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	var all bytes.Buffer
	all.Write(logs.Bytes())
	for _, m := range out.Messages() {
		all.Write(m)
	}
	for _, b := range sent {
		all.Write(b)
	}
	if len(out.Messages()) < 5 || len(sent) == 0 || logs.b.Len() < 1000 {
		t.Fatalf("session too thin to prove anything: %d messages, %d reports, %d log bytes", len(out.Messages()), len(sent), logs.b.Len())
	}
	if hits := privacy.ScanForIdentifiers(all.Bytes(), imsi1, iccid1, imsi2, iccid2, imei); len(hits) > 0 {
		t.Fatalf("identifiers found in logs or sent bytes: %+v", hits)
	}
	// The scan itself must be able to fail: the digits are findable when
	// present.
	if hits := privacy.ScanForIdentifiers([]byte("x"+imsi2+"y"), imsi2); len(hits) == 0 {
		t.Fatal("scanner finds nothing: the test above proves nothing")
	}
}

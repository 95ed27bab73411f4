package collector

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/wire"
)

// TestGapDuringChallenge: a device answers a new session's attestation
// challenge (signing it with the next number) while its outbox drains,
// so messages signed after the attestation can arrive before it. The
// number it took is not a gap; a gap beside it still is, with the right
// count.
func TestGapDuringChallenge(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, addr, _, log := startServer(t, parseTestConfig(t, testConfigText(dev)), t.TempDir())
	var block atomic.Bool
	signed, release := make(chan struct{}), make(chan struct{})
	h := uplink.HandlerFunc(func(ctx context.Context, r *uplink.Request) (uplink.Code, []byte) {
		code, body := dev.ServeUplink(ctx, r)
		if r.Path == wire.PathAttest && block.Load() {
			close(signed)
			<-release
		}
		return code, body
	})
	cfg := dev.uplinkConfig(addr)
	cfg.Handler = h
	post := func(c *uplink.Client, tok []byte) {
		t.Helper()
		if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, tok); err != nil || code != uplink.Changed {
			t.Fatalf("post: %v %v", code, err)
		}
	}
	c, err := uplink.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "first attestation", func() bool { return strings.Contains(log.String(), "attestation verified (nonce, seq 1)") })
	hb, _ := dev.iss.SignHeartbeat() // 2
	post(c, hb)
	c.Close()

	block.Store(true)
	c, err = uplink.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-signed: // the attestation has 3
	case <-time.After(10 * time.Second):
		t.Fatal("no second challenge")
	}
	hb, _ = dev.iss.SignHeartbeat() // 4: 3 missing, for now
	post(c, hb)
	dev.iss.SignHeartbeat()         // 5, lost
	dev.iss.SignHeartbeat()         // 6, lost
	hb, _ = dev.iss.SignHeartbeat() // 7: 5 and 6 missing
	post(c, hb)
	if !strings.Contains(log.String(), "1 number(s) missing before seq 4, judged when its attestation is in") {
		t.Fatalf("gap not held:\n%s", log)
	}
	close(release)
	waitFor(t, 10*time.Second, "second attestation", func() bool { return strings.Contains(log.String(), "attestation verified (nonce, seq 3)") })
	waitFor(t, 10*time.Second, "the gap alarm", func() bool { return strings.Contains(log.String(), "ALARM device dev1 sequence-gap") })
	as, err := s.st.Alarms(context.Background(), "dev1")
	if err != nil || len(as) != 1 || as[0].Kind != "sequence-gap" || !strings.HasPrefix(as[0].Detail, "2 message(s) missing before seq 7") {
		t.Fatalf("alarms %+v %v, want one gap of 2 before seq 7\n%s", as, err, log)
	}
}

// TestGapAfterUnansweredChallenge: the collector stops while a device
// answers its challenge, so the number the answer took never arrives.
// After the restart the gap it leaves raises no alarm (the history says
// why), and the excuse is spent: a real gap afterwards still raises one.
func TestGapAfterUnansweredChallenge(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	dir := t.TempDir()
	s, addr, _, log := startServer(t, cfg, dir)
	var block atomic.Bool
	signed, release := make(chan struct{}), make(chan struct{})
	h := uplink.HandlerFunc(func(ctx context.Context, r *uplink.Request) (uplink.Code, []byte) {
		code, body := dev.ServeUplink(ctx, r)
		if r.Path == wire.PathAttest && block.Load() {
			close(signed)
			<-release
		}
		return code, body
	})
	post := func(c *uplink.Client, tok []byte) {
		t.Helper()
		if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, tok); err != nil || code != uplink.Changed {
			t.Fatalf("post: %v %v", code, err)
		}
	}
	dial := func(addr string) *uplink.Client {
		t.Helper()
		cfg := dev.uplinkConfig(addr)
		cfg.Handler = h
		c, err := uplink.Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial(addr)
	waitFor(t, 10*time.Second, "first attestation", func() bool { return strings.Contains(log.String(), "attestation verified (nonce, seq 1)") })
	hb, _ := dev.iss.SignHeartbeat() // 2
	post(c, hb)
	c.Close()

	block.Store(true)
	c = dial(addr)
	select {
	case <-signed: // the answer has 3, and the collector stops before it arrives
	case <-time.After(10 * time.Second):
		t.Fatal("no second challenge")
	}
	block.Store(false)
	s.Close()
	close(release)
	c.Close()
	if !strings.Contains(log.String(), "attestation request failed") {
		t.Fatalf("the challenge did not fail:\n%s", log)
	}

	s, addr, _, log = startServer(t, cfg, dir)
	c = dial(addr)
	waitFor(t, 10*time.Second, "attestation after the restart", func() bool { return strings.Contains(log.String(), "attestation verified (nonce, seq 4)") })
	hb, _ = dev.iss.SignHeartbeat() // 5: 3 never arrives, 4 is the attestation
	post(c, hb)
	if !strings.Contains(log.String(), "1 number(s) before seq 5 taken by unanswered attestation challenges") {
		t.Fatalf("the unanswered challenge explains nothing:\n%s", log)
	}
	as, err := s.st.Alarms(context.Background(), "dev1")
	if err != nil || len(as) != 0 {
		t.Fatalf("alarms %+v %v, want none\n%s", as, err, log)
	}
	hs, err := s.st.History(context.Background(), "dev1", HistoryQuery{Kinds: []string{HistoryGap}})
	if err != nil || len(hs.Records) != 1 || !strings.Contains(string(hs.Records[0].Detail), `"unanswered_challenges":1`) ||
		!strings.Contains(string(hs.Records[0].Detail), `"missing":0`) {
		t.Fatalf("history %+v %v, want one gap explained by an unanswered challenge", hs, err)
	}

	dev.iss.SignHeartbeat()         // 6, lost
	hb, _ = dev.iss.SignHeartbeat() // 7
	post(c, hb)
	waitFor(t, 10*time.Second, "the gap alarm", func() bool { return strings.Contains(log.String(), "ALARM device dev1 sequence-gap") })
	if as, err := s.st.Alarms(context.Background(), "dev1"); err != nil || len(as) != 1 || !strings.HasPrefix(as[0].Detail, "1 message(s) missing before seq 7") {
		t.Fatalf("alarms %+v %v, want one gap of 1 before seq 7\n%s", as, err, log)
	}
}

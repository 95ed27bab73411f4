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

package uplink_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/internal/udprelay"
	"github.com/mtcagent/mtcagent/wire"
)

// TestNATRebinding: the carrier NAT gives the device a new source port in
// the middle of a session. With DTLS Connection IDs (RFC 9146) the
// collector recognises the session by its CID and answers at the new
// address: the next post goes through in the same session, with no new
// handshake.
func TestNATRebinding(t *testing.T) {
	dev := newDevice(t)
	var log bytes.Buffer
	var logMu sync.Mutex
	addr, _ := startCollectorWith(t, dev, t.TempDir(), "", lockedWriter{&logMu, &log}, nil)
	nat := udprelay.Start(t, addr) // a carrier NAT
	cfg := pskConfig(nat.Addr())
	cfg.Keepalive = -1
	c, err := uplink.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("post before the rebinding: %v %v", code, err)
	}
	nat.Rebind()
	hb2, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb2); err != nil || code != uplink.Changed {
		t.Fatalf("post after the NAT rebinding: %v %v", code, err)
	}
	select {
	case <-c.Done():
		t.Fatal("the session ended at the rebinding")
	case <-time.After(100 * time.Millisecond):
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(log.String(), "session up"); n != 1 {
		t.Fatalf("%d sessions for one device across the rebinding; want 1:\n%s", n, log.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

package uplink_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/wire"
)

// natProxy stands for a carrier NAT between the device and the collector:
// the device talks to its address, and it forwards from one upstream
// socket, whose source port rebind changes, as a NAT does when its mapping
// times out.
type natProxy struct {
	down     *net.UDPConn // the device's side
	upstream *net.UDPAddr // the collector
	mu       sync.Mutex
	up       *net.UDPConn
	device   *net.UDPAddr
	wg       sync.WaitGroup
}

func startNATProxy(t *testing.T, collector string) *natProxy {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp", collector)
	if err != nil {
		t.Fatal(err)
	}
	down, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &natProxy{down: down, upstream: to}
	p.rebind(t)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := down.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.device = from
			up := p.up
			p.mu.Unlock()
			up.WriteToUDP(buf[:n], to)
		}
	}()
	t.Cleanup(func() {
		down.Close()
		p.mu.Lock()
		p.up.Close()
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// rebind moves the upstream side to a new source port.
func (p *natProxy) rebind(t *testing.T) {
	t.Helper()
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	old := p.up
	p.up = up
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, _, err := up.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			dev := p.device
			p.mu.Unlock()
			if dev != nil {
				p.down.WriteToUDP(buf[:n], dev)
			}
		}
	}()
}

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
	nat := startNATProxy(t, addr)
	cfg := pskConfig(nat.down.LocalAddr().String())
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
	nat.rebind(t)
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

//go:build !mtc_omit_coap

package main

import (
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// dropRelay is a UDP relay on loopback between one device and the
// collector that can lose one datagram from the device: the next one of
// more than minSize bytes once armed.
type dropRelay struct {
	pc      net.PacketConn
	to      *net.UDPAddr
	armed   atomic.Int64 // > 0: drop the next device datagram longer than this
	dropped atomic.Int64 // the size of the one dropped
	mu      sync.Mutex
	device  net.Addr
}

func startDropRelay(t *testing.T, collector string) *dropRelay {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp", collector)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	r := &dropRelay{pc: pc, to: to}
	t.Cleanup(func() { pc.Close(); up.Close() })
	go func() { // collector → device
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			dev := r.device
			r.mu.Unlock()
			if dev != nil {
				pc.WriteTo(buf[:n], dev)
			}
		}
	}()
	go func() { // device → collector
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.device = from
			r.mu.Unlock()
			if min := r.armed.Load(); min > 0 && int64(n) > min && r.armed.CompareAndSwap(min, 0) {
				r.dropped.Store(int64(n))
				continue // lost on the way
			}
			up.Write(buf[:n])
		}
	}()
	return r
}

// TestCellChangeNonConfirmableLostEndToEnd (issue 16): with the real
// collector in process over loopback DTLS, a cell_changed sent
// non-confirmable and lost on the wire (a relay drops that one datagram)
// still reaches the collector after the next heartbeat, exactly once:
// the heartbeat asks whether the collector has it, the collector says no
// and does not take the heartbeat, and the agent sends the event again,
// confirmable, then the heartbeat. No sequence gap is alarmed.
func TestCellChangeNonConfirmableLostEndToEnd(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	relay := startDropRelay(t, e.addr)
	conf, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.conf, []byte(strings.Replace(string(conf), "addr = "+e.addr, "addr = "+relay.pc.LocalAddr().String(), 1)), 0o600)
	hb := scaled(3 * time.Second)
	ip := startInProcess(t, e, func(c *agent.Config) { c.Heartbeat = hb }, nil, true, nil)
	e.waitEvent("sim_bound", scaled(20*time.Second))
	for deadline := time.Now().Add(scaled(10 * time.Second)); !ip.up.Later(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent never learned that the collector confirms later")
		}
	}
	// Right after a heartbeat, so the next datagram of the device is the
	// cell event (acknowledgements and pings are far below 100 bytes; a
	// signed event is about 160).
	hbs := e.countVerifiedHeartbeats()
	for deadline := time.Now().Add(3 * hb); e.countVerifiedHeartbeats() == hbs; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat")
		}
	}
	relay.armed.Store(100)
	cell := uint64(0x320000)
	ip.sim.SetNetwork(modemsim.Network{CellID: &cell})
	for deadline := time.Now().Add(scaled(10 * time.Second)); relay.dropped.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no datagram from the device after the cell change")
		}
	}
	hbs = e.countVerifiedHeartbeats()
	for deadline := time.Now().Add(3 * hb); e.countVerifiedHeartbeats() == hbs; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat after the lost cell event; log:\n%s", strings.Join(e.log.all(), "\n"))
		}
	}
	time.Sleep(scaled(500 * time.Millisecond))
	if n := e.countVerified("cell_changed"); n != 1 {
		t.Fatalf("%d cell_changed verified, want 1; log:\n%s", n, strings.Join(e.log.all(), "\n"))
	}
	asked := false
	for _, l := range e.log.all() {
		if strings.Contains(l, "not here: the device sends it again") {
			asked = true
		}
	}
	if !asked {
		t.Fatalf("the dropped datagram (%d bytes) was not the non-confirmable cell event: the heartbeat's question was never answered no; log:\n%s",
			relay.dropped.Load(), strings.Join(e.log.all(), "\n"))
	}
	// Only a heartbeat signed since may still wait in the outbox.
	p, _ := ip.ob.Pending(10)
	for _, m := range p {
		if _, low, _ := ip.a.DeliverySeq(m.Data); low {
			t.Fatal("the cell event is still in the outbox")
		}
	}
	e.checkOrder()
	t.Logf("dropped a datagram of %d bytes", relay.dropped.Load())
}

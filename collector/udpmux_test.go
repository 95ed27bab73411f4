package collector

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// helloDatagram is the head of a ClientHello record (what isClientHello
// looks at), padded.
func helloDatagram() []byte {
	d := make([]byte, 13+12+40)
	d[0], d[1], d[2] = 22, 0xfe, 0xfd
	d[13] = 1
	return d
}

// cidDatagram is a tls12_cid record head carrying cid.
func cidDatagram(cid []byte) []byte {
	d := append([]byte{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7}, cid...)
	return append(d, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
}

// TestMuxRouting: a datagram reaches its session by Connection ID from
// any address, else by address; one of no session opens one only if it
// is a ClientHello; a parked session wakes once, by CID or (without one)
// by address, but a ClientHello from a parked session's address is a new
// session and forgets the parked one (the peer restarted).
func TestMuxRouting(t *testing.T) {
	m, err := newUDPMux("udp", "127.0.0.1:0", DeviceCIDBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	woken := make(chan *parkedSession, 4)
	m.wake = func(p *parkedSession, c *muxConn) { woken <- p; _ = c.Close() }
	a := netip.MustParseAddrPort("127.0.0.1:40001")
	b := netip.MustParseAddrPort("127.0.0.1:40002")
	cid := []byte{1, 2, 3, 4, 5, 6}

	m.route(cidDatagram([]byte{9, 9, 9, 9, 9, 9}), a) // no session, not a hello
	if m.droppedCount() != 1 || len(m.accept) != 0 {
		t.Fatalf("a stray record: %d dropped, %d accepted", m.droppedCount(), len(m.accept))
	}
	m.route(helloDatagram(), a)
	c := <-m.accept
	m.learnCID(c, string(cid))
	m.route(cidDatagram(cid), b) // by CID, from elsewhere
	m.route([]byte{23, 0xfe, 0xfd, 0, 1}, a)
	buf := make([]byte, 2048)
	for i, wantFrom := range []netip.AddrPort{a, b, a} {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, from, err := c.ReadFrom(buf)
		if err != nil || from.(*net.UDPAddr).AddrPort() != wantFrom {
			t.Fatalf("datagram %d: from %v (%v), want %v", i, from, err, wantFrom)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := c.ReadFrom(buf); err == nil {
		t.Fatal("a datagram more than was routed")
	}

	// Parked with its CID: wakes once.
	if !m.park(c, &parkedSession{state: []byte{1}, device: "d1"}) {
		t.Fatal("not parked")
	}
	m.route(cidDatagram(cid), b)
	m.route(cidDatagram(cid), b)
	if p := <-woken; p.device != "d1" {
		t.Fatalf("woke %q", p.device)
	}
	select {
	case <-woken:
		t.Fatal("a parked state restored twice")
	case <-time.After(100 * time.Millisecond):
	}

	// Parked without a CID: by address; a hello from there forgets it.
	m.route(helloDatagram(), b)
	c2 := <-m.accept
	if !m.park(c2, &parkedSession{state: []byte{1}, device: "d2"}) {
		t.Fatal("not parked")
	}
	m.route(helloDatagram(), b)
	select {
	case <-m.accept:
	case <-time.After(time.Second):
		t.Fatal("a ClientHello from a parked address opened no session")
	}
	if m.parkedCount() != 0 {
		t.Fatalf("%d parked: the restarted peer's old session is kept", m.parkedCount())
	}
	select {
	case p := <-woken:
		t.Fatalf("a ClientHello woke %q", p.device)
	default:
	}
}

// TestServerHelloCID reads the connection_id extension of a ServerHello
// record, and refuses one that is cut short.
func TestServerHelloCID(t *testing.T) {
	body := append([]byte{0xfe, 0xfd}, make([]byte, 32)...) // version, random
	body = append(body, 0)                                  // session id
	body = append(body, 0xc0, 0xa8, 0)                      // suite, compression
	exts := []byte{0x00, 0x17, 0, 0}                        // extended_master_secret
	exts = append(exts, 0, 54, 0, 7, 6, 1, 2, 3, 4, 5, 6)   // connection_id
	body = append(body, byte(len(exts)>>8), byte(len(exts)))
	body = append(body, exts...)
	hs := []byte{2, 0, 0, byte(len(body)), 0, 1, 0, 0, 0, 0, 0, byte(len(body))}
	hs = append(hs, body...)
	rec := []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, byte(len(hs))}
	rec = append(rec, hs...)
	hvr := []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3} // another record first
	cid, ok := serverHelloCID(append(hvr, rec...))
	if !ok || cid != string([]byte{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("cid %x, %v", cid, ok)
	}
	for n := 0; n < len(rec); n++ {
		if _, ok := serverHelloCID(rec[:n]); ok {
			t.Fatalf("cut to %d bytes: read", n)
		}
	}
}

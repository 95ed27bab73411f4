package collector

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/internal/udprelay"
	"github.com/mtcagent/mtcagent/wire"
)

// wireTap is the relay between the device and the collector (a carrier
// NAT), read for what it forwarded.
type wireTap struct{ *udprelay.Relay }

// counts: datagrams so far each way, and ClientHellos from the device.
func (w wireTap) counts() (ups, downs, hellos int) {
	u, d := w.Datagrams()
	for _, b := range u {
		if isClientHello(b) {
			hellos++
		}
	}
	return len(u), len(d), hellos
}

// lastCID is the Connection ID of the device's latest record with one.
func (w wireTap) lastCID() []byte {
	ups, _ := w.Datagrams()
	for i := len(ups) - 1; i >= 0; i-- {
		if cid, ok := recordCID(ups[i], DeviceCIDBytes); ok {
			return append([]byte(nil), cid...)
		}
	}
	return nil
}

func metricValue(s *Server, name string) string {
	var b strings.Builder
	s.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// startParking runs a collector that parks sessions idle for 300 ms, and
// connects dev through a wireTap.
func startParking(t *testing.T, dev *testDevice) (*Server, *uplink.Client, wireTap, *syncBuf) {
	cfg := parseTestConfig(t, testConfigText(dev))
	cfg.NATWindow, cfg.ParkAfter = 200*time.Millisecond, 300*time.Millisecond
	s, addr, _, log := startServer(t, cfg, t.TempDir())
	tap := wireTap{udprelay.Start(t, addr)}
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(tap.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c, tap, log
}

func heartbeat(t *testing.T, dev *testDevice, c *uplink.Client) {
	t.Helper()
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat: %v %v", code, err)
	}
}

// TestParkedSessionResumes: an idle device session is parked, and the
// device's next post, in the same DTLS session, is answered by the
// session restored from its state: no handshake, no new attestation
// challenge, and nothing sent to the device while it was parked (not a
// close_notify). It parks and resumes again, also after the NAT moved
// the device to another port (routed by its Connection ID).
func TestParkedSessionResumes(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, c, tap, log := startParking(t, dev)
	heartbeat(t, dev, c)
	waitFor(t, 10*time.Second, "the binding attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified") })
	_, _, hellos0 := tap.counts() // two: without and with the cookie
	for round := 1; round <= 3; round++ {
		waitFor(t, 30*time.Second, "the session parked", func() bool { return metricValue(s, "mtccollector_parked_sessions") == "1" })
		// Its live connections closed just after (the state is parked first).
		waitFor(t, 5*time.Second, "the parked session's connections closed", func() bool { return s.session(dev.id) == nil })
		_, downs, _ := tap.counts()
		time.Sleep(300 * time.Millisecond)
		if _, d, _ := tap.counts(); d != downs {
			t.Fatalf("round %d: %d datagram(s) sent to the device after its session was parked", round, d-downs)
		}
		if round == 3 {
			tap.Rebind()
		}
		heartbeat(t, dev, c)
		if got := metricValue(s, "mtccollector_session_resumes_total"); got != string(rune('0'+round)) {
			t.Fatalf("round %d: %s resumes", round, got)
		}
	}
	if _, _, hellos := tap.counts(); hellos != hellos0 {
		t.Fatalf("%d ClientHellos after %d: the device shook hands again", hellos, hellos0)
	}
	l := log.String()
	if n := strings.Count(l, "binding attestation verified"); n != 1 {
		t.Fatalf("%d binding attestations: a resumed session was challenged again\n%s", n, l)
	}
	if n := strings.Count(l, "session resumed"); n != 3 {
		t.Fatalf("%d resumes logged\n%s", n, l)
	}
	if ds := s.device(dev.id); ds.Accepted < 4 || ds.LastSeq == 0 {
		t.Fatalf("device state after the resumes: accepted %d", ds.Accepted)
	}
}

// TestParkedSessionForgedRecord: a datagram that carries a parked
// session's Connection ID but does not authenticate, from another
// address, restores the session (the mux cannot tell before DTLS reads
// it) but neither redirects it nor breaks it: the device's next post
// works, and the session parks again. The session is parked before its
// first post (it only answered the attestation challenge).
func TestParkedSessionForgedRecord(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	// The first parked session's connection closes only once the
	// session it woke is up: the order that left the restored session
	// out of go-coap's inactivity checks (it was keyed by address).
	var s *Server
	first := true
	testHookParked = func(id string) {
		if !first {
			return
		}
		first = false
		old := s.session(id)
		deadline := time.Now().Add(10 * time.Second)
		for s.session(id) == old && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { testHookParked = nil })
	s, c, tap, log := startParking(t, dev)
	// No post before it parks: its only exchange was the attestation.
	waitFor(t, 10*time.Second, "the binding attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified") })
	_, _, hellos0 := tap.counts()
	waitFor(t, 30*time.Second, "the session parked", func() bool { return metricValue(s, "mtccollector_parked_sessions") == "1" })
	cid := tap.lastCID()
	if cid == nil {
		t.Fatal("no record with a Connection ID seen")
	}
	forger, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	rec := append([]byte{25, 0xfe, 0xfd, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0}, cid...)
	rec = append(rec, 0, 24)
	rec = append(rec, make([]byte, 24)...)
	_, downs, _ := tap.counts()
	if _, err := forger.WriteToUDP(rec, tap.Server()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the forged record to wake the session", func() bool { return metricValue(s, "mtccollector_session_resumes_total") == "1" })
	forger.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, _, err := forger.ReadFromUDP(make([]byte, 2048)); err == nil {
		t.Fatalf("the forger got %d bytes back", n)
	}
	if _, d, _ := tap.counts(); d != downs {
		t.Fatalf("%d datagram(s) to the device after the forged record", d-downs)
	}
	heartbeat(t, dev, c)
	waitFor(t, 30*time.Second, "the session parked again", func() bool { return metricValue(s, "mtccollector_session_parks_total") == "2" })
	heartbeat(t, dev, c)
	if _, _, hellos := tap.counts(); hellos != hellos0 {
		t.Fatalf("%d ClientHellos after %d: the device shook hands again", hellos, hellos0)
	}
}

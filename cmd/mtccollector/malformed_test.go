package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/testexec"
	"github.com/mtcagent/mtcagent/wire"
)

// captureClientHello returns the first datagram a real device sends when
// it dials: its DTLS ClientHello, the base of the malformed handshakes.
func captureClientHello(t *testing.T) []byte {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	psk, _ := hex.DecodeString(tDevPSK)
	go uplink.Dial(context.Background(), uplink.Config{Addr: pc.LocalAddr().String(), PSKIdentity: "d1", PSK: psk, Timeout: 2 * time.Second})
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal("no ClientHello from the device:", err)
	}
	if n < 25 || buf[0] != 22 || buf[13] != 1 {
		t.Fatalf("first datagram is not a ClientHello: % x", buf[:n])
	}
	return append([]byte(nil), buf[:n]...)
}

// malformedHandshakes builds a bounded set of datagrams a broken or hostile
// device might send in place of a handshake: records cut short or lying
// about their length, handshake fragments pointing outside their message,
// every length field of a real ClientHello set to its extremes, records of
// other types and epochs before any handshake, and seeded random bytes and
// byte flips.
func malformedHandshakes(hello []byte, random int) [][]byte {
	var out [][]byte
	add := func(b []byte) { out = append(out, b) }
	clone := func() []byte { return append([]byte(nil), hello...) }

	add(nil)
	add([]byte{22})
	add(hello[:12]) // record header cut short
	add(hello[:13]) // header only
	add(hello[:30]) // handshake cut short
	add(hello[:len(hello)-1])
	// Record length larger and smaller than the datagram.
	for _, l := range []uint16{0, 1, 0xffff, uint16(len(hello) - 13 + 1)} {
		b := clone()
		binary.BigEndian.PutUint16(b[11:], l)
		add(b)
	}
	// Handshake header: length, fragment offset and fragment length at
	// their extremes (a server that reserved length bytes per fragment
	// would allocate 16 MiB for each).
	for _, off := range []int{13 + 1, 13 + 6, 13 + 9} {
		for _, v := range []int{0, 1, 0xffffff} {
			b := clone()
			b[off], b[off+1], b[off+2] = byte(v>>16), byte(v>>8), byte(v)
			add(b)
		}
	}
	// ClientHello body: session id, cookie, suites, compression and
	// extension lengths set past the end.
	body := 13 + 12 + 2 + 32
	for _, off := range []int{body, body + 1} {
		b := clone()
		b[off] = 0xff
		add(b)
	}
	// Record types other than handshake, epoch 1 before any key, a version
	// no one speaks.
	for _, typ := range []byte{20, 21, 23, 24, 0, 255} {
		b := clone()
		b[0] = typ
		add(b)
	}
	b := clone()
	b[4] = 1 // epoch 1
	add(b)
	b = clone()
	b[1], b[2] = 0x03, 0x03 // TLS 1.2, not DTLS
	add(b)
	// Two records in one datagram, the second cut.
	add(append(clone(), hello[:20]...))

	r := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i < random; i++ {
		b := clone()
		for n := 1 + r.IntN(4); n > 0; n-- {
			b[r.IntN(len(b))] = byte(r.Uint32())
		}
		add(b)
		g := make([]byte, r.IntN(1500))
		for j := range g {
			g[j] = byte(r.Uint32())
		}
		add(g)
	}
	return out
}

// TestMalformedHandshakes: malformed handshakes from devices (on the device
// and the SCS listener, from many source ports) never take the collector
// process down; a real device connects afterwards and is served.
func TestMalformedHandshakes(t *testing.T) {
	o := startOneDevice(t)
	p, devAddr, scsAddr := o.p, o.devAddr, o.scsAddr

	random := 300
	if testing.Short() || testexec.Emulated() {
		random = 60
	}
	msgs := malformedHandshakes(captureClientHello(t), random)
	for _, target := range []string{devAddr, scsAddr} {
		to, err := net.ResolveUDPAddr("udp", target)
		if err != nil {
			t.Fatal(err)
		}
		// A handful of source ports, each sending many malformed
		// handshakes: pion keeps per-peer state, so both a fresh peer and
		// one that already sent garbage are tried.
		var socks []*net.UDPConn
		for i := 0; i < 16; i++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			socks = append(socks, c)
		}
		for i, m := range msgs {
			socks[i%len(socks)].WriteToUDP(m, to)
			if i%50 == 49 {
				time.Sleep(10 * time.Millisecond) // stay within the socket buffers
			}
		}
	}
	t.Logf("sent %d malformed handshakes to each listener", len(msgs))
	time.Sleep(500 * time.Millisecond)
	select {
	case <-p.done:
		t.Fatalf("the collector exited after malformed handshakes:\n%s", p.out)
	default:
	}

	// A real device is still served.
	c, err := uplink.Dial(context.Background(), o.uplink)
	if err != nil {
		t.Fatalf("a real device after the malformed handshakes: %v\n%s", err, p.out)
	}
	defer c.Close()
	o.heartbeat(t, c, "after the malformed handshakes")
	c.Close()
	p.stop(t)
}

// oneDevice is a collector process with one device, d1, and what that
// device needs to talk to it.
type oneDevice struct {
	p                *proc
	devAddr, scsAddr string
	iss              *attest.Issuer
	uplink           uplink.Config
}

// startOneDevice runs "mtccollector serve" with extra flags for one
// device whose key it makes.
func startOneDevice(t *testing.T, extra ...string) *oneDevice {
	t.Helper()
	bin := buildCollector(t)
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pemb, _ := attest.MarshalPublicKeyPEM(pub)
	if err := os.WriteFile(filepath.Join(dir, "d1.pem"), pemb, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "collector.conf")
	text := fmt.Sprintf("[collector]\nheartbeat_timeout = 60s\n\n[device \"d1\"]\npsk_identity = d1\npsk = %s\npublic_key = d1.pem\n", tDevPSK)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p, devAddr, scsAddr := startServe(t, bin, conf, filepath.Join(dir, "state"), "127.0.0.1:0", extra...)
	iss, _ := attest.NewIssuer(priv, &attest.MemSequence{}, attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false }), 1)
	psk, _ := hex.DecodeString(tDevPSK)
	return &oneDevice{p: p, devAddr: devAddr, scsAddr: scsAddr, iss: iss,
		uplink: uplink.Config{Addr: devAddr, Name: "collector", PSKIdentity: "d1", PSK: psk, Timeout: 10 * time.Second}}
}

// heartbeat posts one signed heartbeat on c and fails the test unless the
// collector took it.
func (o *oneDevice) heartbeat(t *testing.T, c *uplink.Client, when string) {
	t.Helper()
	hb, _ := o.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat %s: %v %v\n%s", when, code, err, o.p.out)
	}
}

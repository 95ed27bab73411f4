//go:build !mtc_omit_coap

package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// DTLS 1.2 wire constants used by the hostile peer (RFC 6347 §4.1, §4.2.2;
// RFC 5246 §7.4; RFC 5489 for the ECDHE_PSK suite; RFC 7627 for EMS).
const (
	recordHandshake      = 22
	hsClientHello        = 1
	hsServerHello        = 2
	hsServerKeyExchange  = 12
	hsServerHelloDone    = 14
	suiteECDHEPSKCBC     = 0xC037 // TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256
	extExtendedMasterSec = 0x0017
)

// clientHelloSuites returns the cipher suites of a DTLS 1.2 ClientHello
// record, or nil when the datagram is not one.
func clientHelloSuites(p []byte) []uint16 {
	// record header 13 bytes, handshake header 12 bytes.
	if len(p) < 13+12 || p[0] != recordHandshake || p[13] != hsClientHello {
		return nil
	}
	b := p[13+12:]
	if len(b) < 2+32+1 {
		return nil
	}
	b = b[2+32:]
	b = b[1+int(b[0]):] // session id
	if len(b) < 1 {
		return nil
	}
	b = b[1+int(b[0]):] // cookie
	if len(b) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > len(b) || n%2 != 0 {
		return nil
	}
	var s []uint16
	for i := 0; i < n; i += 2 {
		s = append(s, binary.BigEndian.Uint16(b[i:]))
	}
	return s
}

// dtlsRecord frames one unfragmented handshake message as an epoch-0
// record with sequence number seq.
func dtlsRecord(seq uint16, msgType byte, body []byte) []byte {
	hs := make([]byte, 12, 12+len(body))
	hs[0] = msgType
	putUint24(hs[1:], len(body))
	binary.BigEndian.PutUint16(hs[4:], seq) // message_seq
	putUint24(hs[6:], 0)                    // fragment_offset
	putUint24(hs[9:], len(body))            // fragment_length
	hs = append(hs, body...)
	rec := []byte{recordHandshake, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, byte(seq), 0, 0}
	binary.BigEndian.PutUint16(rec[11:], uint16(len(hs)))
	return append(rec, hs...)
}

func putUint24(b []byte, v int) { b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v) }

// craftedServerFlight is a server's answer to a ClientHello that picks
// suite and sends a ServerKeyExchange whose PSK identity hint consumes the
// whole message, leaving nothing for the ECDHE parameters that must follow
// it (the input of GO-2026-6165 / CVE-2026-54908: pion/dtls before v3.1.4
// indexed past the end and panicked).
func craftedServerFlight(suite uint16) []byte {
	hello := []byte{0xfe, 0xfd}
	random := make([]byte, 32)
	rand.Read(random)
	hello = append(hello, random...)
	hello = append(hello, 0)                           // no session id
	hello = append(hello, byte(suite>>8), byte(suite)) // cipher suite
	hello = append(hello, 0)                           // no compression
	hello = append(hello, 0, 4, byte(extExtendedMasterSec>>8), byte(extExtendedMasterSec), 0, 0)
	hint := []byte("hint")
	ske := append([]byte{0, byte(len(hint))}, hint...)
	var out []byte
	out = append(out, dtlsRecord(0, hsServerHello, hello)...)
	out = append(out, dtlsRecord(1, hsServerKeyExchange, ske)...)
	out = append(out, dtlsRecord(2, hsServerHelloDone, nil)...)
	return out
}

// hostileServer answers every ClientHello on addr with craftedServerFlight
// until closed. It picks the ECDHE_PSK suite when the client offers it and
// the client's first suite otherwise. answered counts the flights sent.
type hostileServer struct {
	pc       net.PacketConn
	answered atomic.Int32
	ecdhe    atomic.Int32 // flights that chose the ECDHE_PSK suite
	done     chan struct{}
}

func startHostileServer(t *testing.T, addr string) *hostileServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileServer{pc: pc, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			suites := clientHelloSuites(buf[:n])
			if len(suites) == 0 {
				continue
			}
			pick := suites[0]
			for _, s := range suites {
				if s == suiteECDHEPSKCBC {
					pick = s
					h.ecdhe.Add(1)
				}
			}
			pc.WriteTo(craftedServerFlight(pick), from)
			h.answered.Add(1)
		}
	}()
	return h
}

func (h *hostileServer) close() {
	h.pc.Close()
	<-h.done
}

// TestCraftedServerKeyExchange is the regression test of GO-2026-6165: a
// UDP peer in the collector's place answers the agent's ClientHello with a
// ServerKeyExchange whose identity hint consumes the whole message. The
// agent logs the refused handshake and keeps running (with pion/dtls
// v3.1.2 the process panicked), and once the real collector is back on
// the same address, it connects and delivers.
func TestCraftedServerKeyExchange(t *testing.T) {
	// Not parallel: the collector's port is let go and taken again, and
	// another test's UDP socket could take it in between.
	e := newE2E(t)
	addr := e.addr
	e.stopCollector()
	h := startHostileServer(t, addr)
	sc := writeScenario(t, `{"dialect": "generic"}`)
	d := startDaemon(t, e.state, sc, e.conf)
	// The handshake times out (pion drops the message it cannot parse);
	// the agent says so and is still there.
	waitFor(t, scaled(40*time.Second), "a refused handshake in the agent's log", func() bool {
		return strings.Contains(d.stderr.String(), "handshake not completed")
	}, d.stderr)
	h.close()
	if h.ecdhe.Load() == 0 {
		t.Fatal("the agent offered no ECDHE_PSK suite: the test did not reach the parser of the vulnerable message")
	}
	if !d.alive() {
		t.Fatalf("the agent is gone after the crafted handshake:\n%s", d.stderr)
	}
	e.startCollector(addr)
	e.waitEvent("agent_started", scaled(60*time.Second))
	if !d.alive() {
		t.Fatalf("the agent is gone:\n%s", d.stderr)
	}
	for _, l := range strings.Split(d.stderr.String(), "\n") {
		if strings.Contains(l, "handshake not completed") {
			t.Logf("agent: %s", l)
			break
		}
	}
	if strings.Contains(d.stderr.String(), "panic") {
		t.Fatalf("panic in the agent's output:\n%s", d.stderr)
	}
	d.stop(t)
	e.checkOrder()
}

// waitFor polls cond until within has passed; then it fails the test,
// printing logs.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool, logs ...fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			for _, l := range logs {
				t.Log(l)
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

package uplink_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/wire"
)

// meter wraps the device's UDP socket and records the DTLS records it
// writes and reads (record header: type, version, epoch, sequence, length).
type meter struct {
	net.Conn
	mu      sync.Mutex
	on      bool
	written []int // sizes of application-data records sent
	read    []int
}

// records returns the sizes of the application-data records in a
// datagram: type 23, or type 25 (tls12_cid, RFC 9146), whose header holds
// the cid bytes of Connection ID before the length.
func records(b []byte, cid int) (sizes []int) {
	for len(b) >= 13 {
		h := 11
		if b[0] == 25 {
			h += cid
		}
		if len(b) < h+2 {
			break
		}
		n := h + 2 + int(b[h])<<8 + int(b[h+1])
		if n > len(b) {
			break
		}
		if b[0] == 23 || b[0] == 25 { // application_data, or its CID form
			sizes = append(sizes, n)
		}
		b = b[n:]
	}
	return sizes
}

func (m *meter) Write(b []byte) (int, error) {
	m.mu.Lock()
	if m.on {
		m.written = append(m.written, records(b, collector.DeviceCIDBytes)...)
	}
	m.mu.Unlock()
	return m.Conn.Write(b)
}

func (m *meter) Read(b []byte) (int, error) {
	n, err := m.Conn.Read(b)
	m.mu.Lock()
	if m.on && n > 0 {
		m.read = append(m.read, records(b[:n], 0)...)
	}
	m.mu.Unlock()
	return n, err
}

func (m *meter) start() {
	m.mu.Lock()
	m.on, m.written, m.read = true, nil, nil
	m.mu.Unlock()
}

func (m *meter) take() (w, r []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = false
	return m.written, m.read
}

func sum(x []int) (s int) {
	for _, v := range x {
		s += v
	}
	return s
}

// benchWire posts b.N tokens made by mk and reports the size of the DTLS
// record carrying each request (the goal figure) and the bytes both ways
// per exchange (request and response records, UDP payload).
func benchWire(b *testing.B, path string, mk func(*attest.Issuer) []byte) {
	dev := newDevice(b)
	addr, _ := startCollector(b, dev, b.TempDir(), nil)
	var m *meter
	cfg := pskConfig(addr)
	cfg.Keepalive = -1 // no pings in the figures
	cfg.WrapConn = func(c net.Conn) net.Conn { m = &meter{Conn: c}; return m }
	c, err := uplink.Dial(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// Let the collector's attestation challenge finish first.
	tok := mk(dev.iss)
	c.Post(context.Background(), path, tok)
	var reqMax, exch int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok := mk(dev.iss)
		m.start()
		code, _, err := c.Post(context.Background(), path, tok)
		w, r := m.take()
		if err != nil || code != uplink.Changed {
			b.Fatalf("post: %v %v", code, err)
		}
		for _, n := range w {
			reqMax = max(reqMax, n)
		}
		exch += sum(w) + sum(r)
	}
	b.ReportMetric(float64(reqMax), "B/record")
	b.ReportMetric(float64(exch)/float64(b.N), "B/exchange")
}

func BenchmarkWireHeartbeat(b *testing.B) {
	benchWire(b, wire.PathHeartbeat, func(is *attest.Issuer) []byte {
		t, _ := is.SignHeartbeat()
		return t
	})
}

func BenchmarkWireEvent(b *testing.B) {
	benchWire(b, wire.PathEvent, func(is *attest.Issuer) []byte {
		t, _ := is.Sign(attest.KindEvent, attest.EventClaim("connectivity-restored"))
		return t
	})
}

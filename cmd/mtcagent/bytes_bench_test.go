//go:build !mtc_omit_coap

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/config"
)

// ipUDPHeader is what each datagram costs on the wire beyond its UDP
// payload over IPv4: 20 bytes of IP header and 8 of UDP header. (A data
// plan counts IP bytes; radio framing below IP is not counted.)
const ipUDPHeader = 28

// wireMeter counts what crosses the device's UDP socket, both ways.
type wireMeter struct {
	net.Conn
	bytes, pkts atomic.Int64
}

func (m *wireMeter) Write(b []byte) (int, error) {
	n, err := m.Conn.Write(b)
	if n > 0 {
		m.bytes.Add(int64(n))
		m.pkts.Add(1)
	}
	return n, err
}

func (m *wireMeter) Read(b []byte) (int, error) {
	n, err := m.Conn.Read(b)
	if n > 0 {
		m.bytes.Add(int64(n))
		m.pkts.Add(1)
	}
	return n, err
}

// wire is the IP bytes so far, both ways.
func (m *wireMeter) wire() int64 { return m.bytes.Load() + ipUDPHeader*m.pkts.Load() }

// BenchmarkBytes measures what the real agent and collector put on the
// wire over loopback DTLS (PSK, AES-128-CCM-8, with Connection IDs), by
// the uplink's own byte counters plus the IP and UDP headers of each
// datagram: a session start, a heartbeat, a cell change, an outage, an
// SCS status read and a keepalive ping. From them it reports bytes per
// hour idle at heartbeat intervals of 5, 15 and 60 minutes with the
// default 15 s keepalive, and a month of the reference day: 96
// heartbeats, 10 cell changes, 1 outage, 1 SCS read, 1 session start and
// the keepalives of the rest of the day (docs/uplink.md, "Bytes").
func BenchmarkBytes(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchBytesOnce(b)
	}
}

func benchBytesOnce(b *testing.B) {
	e := newE2E(b)
	addr := e.addr
	e.stopCollector()
	// The collector again, with an application server granted status.
	_, pub, _ := run(b, "key", "public", "--state-dir", e.state)
	pubPath := filepath.Join(b.TempDir(), "dev.pub")
	if err := os.WriteFile(pubPath, []byte(pub), 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := config.Parse("collector.conf", fmt.Sprintf(`
[collector]
heartbeat_timeout = 10m
[device "meter-1"]
psk_identity = meter-1
psk = 000102030405060708090a0b0c0d0e0f
public_key = %s
[scs "app"]
psk_identity = app
psk = 0f0e0d0c0b0a09080706050403020100
devices = meter-1
classes = status
`, pubPath))
	if err != nil {
		b.Fatal(err)
	}
	if e.cfg, err = collector.ParseConfig(f); err != nil {
		b.Fatal(err)
	}
	e.startCollector(addr)
	scsAddr, err := e.srv.ListenSCS("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}

	sc, _ := modemsim.Parse([]byte(`{"dialect": "quectel"}`))
	sim := modemsim.New(sc)
	p, err := modemsim.ServePTY(sim, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	cfg, err := agent.LoadConfig(e.conf)
	if err != nil {
		b.Fatal(err)
	}
	cfg.StateDir, cfg.Heartbeat = e.state, 4*time.Second
	cfg.CellBurst = -1
	ob, err := outbox.Open(filepath.Join(e.state, "outbox"), outbox.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	q := agent.DurableQueue{O: ob}
	a, err := agent.New(cfg, agent.Deps{Open: func(context.Context) (io.ReadWriteCloser, error) { return atmodem.OpenSerial(p.Path()) }, Outbox: q})
	if err != nil {
		b.Fatal(err)
	}
	up, err := agent.ParseUplink(cfg)
	if err != nil {
		b.Fatal(err)
	}
	m := &wireMeter{}
	up.WrapConn = func(c net.Conn) net.Conn { m.Conn = c; return m }
	h, err := agent.NewLinkHandler(cfg, a)
	if err != nil {
		b.Fatal(err)
	}
	up.Handler = h
	link := &agent.LinkSender{Config: *up, Log: slog.New(slog.DiscardHandler)}
	defer link.Close()
	d := &agent.Deliverer{Q: q, S: link, Online: a.Online}
	a.SetWake(d.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	go a.Run(ctx)

	heartbeats := func() int { return e.countVerifiedHeartbeats() }
	type phase struct {
		bytes int64
		hbs   int
	}
	measure := func(run func()) phase {
		b0, h0 := m.wire(), heartbeats()
		run()
		time.Sleep(time.Second) // late answers, acks
		return phase{m.wire() - b0, heartbeats() - h0}
	}
	start := measure(func() { e.waitEvent("sim_bound", 20*time.Second) })
	idle := measure(func() { time.Sleep(12 * time.Second) })
	if idle.hbs == 0 {
		b.Fatal("no heartbeat in 12 s")
	}
	perHB := float64(idle.bytes) / float64(idle.hbs)
	less := func(p phase, n int) float64 { return (float64(p.bytes) - float64(p.hbs)*perHB) / float64(n) }

	cells := measure(func() {
		for i := uint64(0); i < 3; i++ {
			before := e.countVerified("cell_changed")
			cell := 0x300000 + i
			sim.SetNetwork(modemsim.Network{CellID: &cell})
			for t0 := time.Now(); e.countVerified("cell_changed") <= before; time.Sleep(10 * time.Millisecond) {
				if time.Since(t0) > 20*time.Second {
					b.Fatal("cell change never verified")
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	outage := measure(func() {
		off, on := 0, 1
		sim.SetNetwork(modemsim.Network{Stat: &off})
		time.Sleep(2 * time.Second)
		sim.SetNetwork(modemsim.Network{Stat: &on})
		e.waitEvent("connectivity_restored", 20*time.Second)
	})
	scs := measure(func() {
		dc := &piondtls.Config{PSK: func([]byte) ([]byte, error) { return []byte{15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, nil },
			PSKIdentityHint: []byte("app"), CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}}
		cc, err := coapdtls.Dial(scsAddr.String(), dc)
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		resp, err := cc.Get(rctx, "/devices/meter-1/status")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := resp.ReadBody()
		if !bytes.Contains(body, []byte("meter-1")) && len(body) == 0 {
			b.Fatalf("SCS status read: %v %q", resp.Code(), body)
		}
	})

	// A keepalive ping, and how often one goes at a keepalive of K: the
	// agent stopped (the collector keeps one session per device), a
	// session of its own, idle, with K = 2 s.
	cancel()
	link.Close()
	time.Sleep(200 * time.Millisecond)
	const k = 2 * time.Second
	pm := &wireMeter{}
	pcfg := *up
	pcfg.Handler, pcfg.Keepalive = nil, k
	pcfg.WrapConn = func(c net.Conn) net.Conn { pm.Conn = c; return pm }
	pc, err := uplink.Dial(context.Background(), pcfg)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(k)
	pb0, pp0 := pm.wire(), pm.pkts.Load()
	window := 12 * time.Second
	time.Sleep(window)
	pings := float64(pm.pkts.Load()-pp0) / 2 // a ping and its answer
	pc.Close()
	if pings == 0 {
		b.Fatal("no keepalive ping in 12 s at a 2 s keepalive")
	}
	perPing := float64(pm.wire()-pb0) / pings
	// The interval, scaled to the default keepalive (the checks run on a
	// ticker of half the keepalive, so the interval is 1 to 1.5 times it).
	pingEvery := window.Seconds() / pings / k.Seconds() * uplink.DefaultKeepalive.Seconds()

	b.Logf("device link to %s: agent session %d IP bytes in %d datagrams, ping session %d in %d", addr, m.wire(), m.pkts.Load(), pm.wire(), pm.pkts.Load())
	perCell, perOutage, perSCS := less(cells, 3), less(outage, 1), less(scs, 1)
	perStart := less(start, 1)
	idleHour := func(hb time.Duration) float64 { return 3600/hb.Seconds()*perHB + 3600/pingEvery*perPing }
	day := 96*perHB + 10*perCell + perOutage + perSCS + perStart + 86400/pingEvery*perPing
	b.ReportMetric(perStart, "B/session-start")
	b.ReportMetric(perHB, "B/heartbeat")
	b.ReportMetric(perCell, "B/cell-change")
	b.ReportMetric(perOutage, "B/outage")
	b.ReportMetric(perSCS, "B/scs-read")
	b.ReportMetric(perPing, "B/keepalive")
	b.ReportMetric(pingEvery, "s/keepalive")
	b.ReportMetric(idleHour(5*time.Minute), "B/h-idle-hb5m")
	b.ReportMetric(idleHour(15*time.Minute), "B/h-idle-hb15m")
	b.ReportMetric(idleHour(time.Hour), "B/h-idle-hb60m")
	b.ReportMetric(30*day/1e6, "MB/reference-month")
}

// countVerifiedHeartbeats counts the heartbeats the collector verified.
func (e *e2e) countVerifiedHeartbeats() int {
	n := 0
	for _, l := range e.log.all() {
		if bytes.Contains([]byte(l), []byte("heartbeat verified")) {
			n++
		}
	}
	return n
}

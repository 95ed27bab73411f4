//go:build !mtc_omit_coap

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/agent/uplink"
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
// SCS status read, the privacy schedule's report with padding off and on
// (what padding costs, per report and per month at a 15-minute slot) and
// a keepalive ping. From them it reports bytes per
// hour idle at heartbeat intervals of 5, 15 and 60 minutes with the
// default keepalive (off), and a month of the reference day: 96
// heartbeats, 10 cell changes, 1 outage, 1 SCS read and 1 session start;
// and both again with the 25 s keepalive an operator may set for
// immediate reachability (docs/uplink.md, "Bytes").
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
	// MTC_BENCH_CONFIRM_LATER=off: the collector does not offer to
	// confirm later, so cell events go confirmable (the figures before
	// issue 16's non-confirmable cell events, same procedure).
	confirmLater := "on"
	if os.Getenv("MTC_BENCH_CONFIRM_LATER") == "off" {
		confirmLater = "off"
	}
	f, err := config.Parse("collector.conf", fmt.Sprintf(`
[collector]
heartbeat_timeout = 10m
confirm_later = %s
[device "meter-1"]
psk_identity = meter-1
psk = 000102030405060708090a0b0c0d0e0f
public_key = %s
[scs "app"]
psk_identity = app
psk = 0f0e0d0c0b0a09080706050403020100
devices = meter-1
classes = status
`, confirmLater, pubPath))
	if err != nil {
		b.Fatal(err)
	}
	if e.cfg, err = collector.ParseConfig(f); err != nil {
		b.Fatal(err)
	}
	// A new store, so the file's [scs] is imported (a store that has a
	// registry does not read the file's devices and SCSs again).
	e.colState = b.TempDir()
	e.startCollector(addr)
	scsAddr, err := e.srv.ListenSCS("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}

	m := &wireMeter{}
	ip := startInProcess(b, e, func(c *agent.Config) { c.Heartbeat, c.CellBurst = 4*time.Second, -1 },
		func(c net.Conn) net.Conn { m.Conn = c; return m }, true, nil)
	defer ip.stop()
	sim, link := ip.sim, ip.up
	up := &link.Config

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
			// And the next heartbeat: a cell change sent non-confirmable
			// is confirmed in its answer, which is the cell change's
			// share of that exchange (the heartbeat's own bytes are
			// taken off below).
			hb := heartbeats()
			for t0 := time.Now(); heartbeats() <= hb; time.Sleep(10 * time.Millisecond) {
				if time.Since(t0) > 20*time.Second {
					b.Fatal("no heartbeat after the cell change")
				}
			}
			time.Sleep(300 * time.Millisecond)
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

	// The privacy schedule's report (docs/privacy.md): at each slot the
	// agent posts the status report masked for the uplink's recipient,
	// with padding = on brought to the recipient's fixed size. Its cost
	// with and without padding, for a recipient granted status and cell
	// (location none), so what padding costs is a figure of its own.
	pconf := filepath.Join(b.TempDir(), "agent-privacy.conf")
	if err := os.WriteFile(pconf, []byte(`[privacy]
padding = on
schedule = 15m
[recipient "operator"]
identity = psk:meter-1
status = full
cell = full
`), 0o600); err != nil {
		b.Fatal(err)
	}
	pcfgFile, err := agent.LoadConfig(pconf)
	if err != nil {
		b.Fatal(err)
	}
	pcfgFile.StateDir = e.state
	lh, err := agent.NewLinkHandler(pcfgFile, ip.a)
	if err != nil {
		b.Fatal(err)
	}
	report := func(padding bool) phase {
		lh.Policy.Padding = padding
		msg := lh.ScheduledReport("operator")
		if msg == nil {
			b.Fatal("no scheduled report for the recipient")
		}
		return measure(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			if err := link.Send(sctx, msg); err != nil {
				b.Fatal(err)
			}
		})
	}
	unpadded, padded := report(false), report(true)

	// A keepalive ping, and how often one goes at a keepalive of K: the
	// agent stopped (the collector keeps one session per device), a
	// session of its own, idle, with K = 2 s.
	ip.stop()
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
	// The interval between pings over the keepalive (the timer is set at
	// the idle deadline, so a little over 1: the ping's round trip).
	pingRatio := window.Seconds() / pings / k.Seconds()

	b.Logf("device link to %s: agent session %d IP bytes in %d datagrams, ping session %d in %d", addr, m.wire(), m.pkts.Load(), pm.wire(), pm.pkts.Load())
	perCell, perOutage, perSCS := less(cells, 3), less(outage, 1), less(scs, 1)
	perStart := less(start, 1)
	// pingsPer is the keepalive pings in a span of idle time at keepalive
	// ka (none when it is off, the default).
	pingsPer := func(span, ka time.Duration) float64 {
		if ka <= 0 {
			return 0
		}
		return span.Seconds() / (pingRatio * ka.Seconds())
	}
	idleHour := func(hb, ka time.Duration) float64 {
		return 3600/hb.Seconds()*perHB + pingsPer(time.Hour, ka)*perPing
	}
	// The reference day. With no keepalive the session is kept from one
	// heartbeat to the next (the collector's session_idle, Connection IDs
	// across NAT rebinding), so the day has one session start.
	day := func(ka time.Duration) float64 {
		return 96*perHB + 10*perCell + perOutage + perSCS + perStart + pingsPer(24*time.Hour, ka)*perPing
	}
	const operatorKeepalive = 25 * time.Second // the documented setting for immediate reachability
	perReport, perPadded := less(unpadded, 1), less(padded, 1)
	const slotsPerMonth = 30 * 96 // schedule = 15m
	b.ReportMetric(perReport, "B/report")
	b.ReportMetric(perPadded, "B/report-padded")
	b.ReportMetric(perPadded-perReport, "B/padding-per-report")
	b.ReportMetric(slotsPerMonth*perReport/1e6, "MB/month-reports-schedule15m")
	b.ReportMetric(slotsPerMonth*perPadded/1e6, "MB/month-reports-schedule15m-padded")
	b.ReportMetric(slotsPerMonth*(perPadded-perReport)/1e6, "MB/month-padding-schedule15m")
	b.ReportMetric(perStart, "B/session-start")
	b.ReportMetric(perHB, "B/heartbeat")
	b.ReportMetric(perCell, "B/cell-change")
	b.ReportMetric(perOutage, "B/outage")
	b.ReportMetric(perSCS, "B/scs-read")
	b.ReportMetric(perPing, "B/keepalive")
	b.ReportMetric(pingRatio, "keepalive-interval/setting")
	b.ReportMetric(idleHour(5*time.Minute, uplink.DefaultKeepalive), "B/h-idle-hb5m")
	b.ReportMetric(idleHour(15*time.Minute, uplink.DefaultKeepalive), "B/h-idle-hb15m")
	b.ReportMetric(idleHour(time.Hour, uplink.DefaultKeepalive), "B/h-idle-hb60m")
	b.ReportMetric(30*day(uplink.DefaultKeepalive)/1e6, "MB/reference-month")
	b.ReportMetric(idleHour(15*time.Minute, operatorKeepalive), "B/h-idle-hb15m-keepalive25s")
	b.ReportMetric(30*day(operatorKeepalive)/1e6, "MB/reference-month-keepalive25s")
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

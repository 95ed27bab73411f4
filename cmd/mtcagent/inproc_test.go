//go:build !mtc_omit_coap

package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/atmodem/serialport"
)

// inproc is the agent assembled in the test process as the daemon does
// (modem on a simulator pty, durable outbox, uplink and deliverer) and
// delivering to e's collector, for the benchmarks that drive the
// simulator and look inside the agent.
type inproc struct {
	sc     *modemsim.Scenario
	sim    *modemsim.Sim
	ob     *outbox.Outbox
	a      *agent.Agent
	up     *agent.LinkSender
	cancel context.CancelFunc
}

// startInProcess starts it; tune adjusts the configuration, wrap (nil:
// none) the uplink's socket, and deliverer the Deliverer before it runs.
// Everything stops at the test's end, or at stop.
func startInProcess(tb testing.TB, e *e2e, tune func(*agent.Config), wrap func(net.Conn) net.Conn, withHandler bool, deliverer func(*agent.Deliverer)) *inproc {
	tb.Helper()
	sc, _ := modemsim.Parse([]byte(`{"dialect": "quectel"}`))
	sim := modemsim.New(sc)
	p, err := modemsim.ServePTY(sim, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	cfg, err := agent.LoadConfig(e.conf)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.StateDir = e.state
	if tune != nil {
		tune(&cfg)
	}
	ob, err := outbox.Open(filepath.Join(e.state, "outbox"), outbox.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	q := agent.DurableQueue{O: ob}
	a, err := agent.New(cfg, agent.Deps{Open: func(context.Context) (io.ReadWriteCloser, error) { return serialport.OpenDevice(p.Path()) }, Outbox: q})
	if err != nil {
		tb.Fatal(err)
	}
	up, err := agent.ParseUplink(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	up.WrapConn = wrap
	var h *agent.LinkHandler
	if withHandler {
		h, err = agent.NewLinkHandler(cfg, a)
		if err != nil {
			tb.Fatal(err)
		}
		up.Handler = h
	}
	link := &agent.LinkSender{Config: *up, Log: slog.New(slog.DiscardHandler)}
	d := &agent.Deliverer{Q: q, S: link, Online: a.Online}
	if h != nil {
		agent.ConfirmLater(a, h, link, d, cfg.Heartbeat) // as the daemon does
	}
	if deliverer != nil {
		deliverer(d)
	}
	a.SetWake(d.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { d.Run(ctx); done <- struct{}{} }()
	go func() { a.Run(ctx); done <- struct{}{} }()
	ip := &inproc{sc: sc, sim: sim, ob: ob, a: a, up: link, cancel: func() {
		cancel()
		for i := 0; i < 2; i++ {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				tb.Error("the agent or its deliverer did not stop")
			}
		}
		link.Close()
		ob.Close()
	}}
	tb.Cleanup(ip.stop)
	return ip
}

// stop ends the agent and its deliverer; a second call does nothing.
func (ip *inproc) stop() {
	if ip.cancel != nil {
		ip.cancel()
		ip.cancel = nil
	}
}

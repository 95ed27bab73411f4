//go:build !mtc_omit_coap

package main

import (
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// BenchmarkCellStorm (issue 12, storms): the simulated modem ping-pongs
// between two cells 10,000 times (a +CEREG URC per hop, and +CREG/+CGREG),
// then the SIM is pulled; the agent runs in process with the durable
// outbox, delivering to the collector over CoAP/DTLS on loopback. Reported:
// signed-cell-events (cell_changed and cell_flapping the collector
// verified once the outbox drained; goal <= 100; the cell_flapping summary
// and the final cell_changed follow CellQuiet = 30 s later and are not
// waited for: at most 2 more), sim-queued-ms (from the
// SIM removal to sim_removed being durable in the outbox), sim-delivered
// (1 when the collector verified sim_removed within 30 s) and sim-ms (from
// the removal to that verification; the SIM is put back once the removal
// is queued, since without it there is no network to deliver over). How
// many of the URCs reach the agent depends on the AT engine's bounded URC
// queue (it drops the oldest under a flood, never the SIM URC that ends
// it); the agent folds whatever reaches it.
func BenchmarkCellStorm(b *testing.B) {
	var cells, delivered, qms, ms float64
	for i := 0; i < b.N; i++ {
		c, d, q, t := cellStormOnce(b)
		cells, delivered, qms, ms = cells+c, delivered+d, qms+q, ms+t
	}
	n := float64(b.N)
	b.ReportMetric(cells/n, "signed-cell-events")
	b.ReportMetric(delivered/n, "sim-delivered")
	b.ReportMetric(qms/n, "sim-queued-ms")
	b.ReportMetric(ms/n, "sim-ms")
}

func cellStormOnce(b *testing.B) (cells, delivered, qms, ms float64) {
	b.StopTimer()
	e := newE2E(b)
	ip := startInProcess(b, e, func(c *agent.Config) { c.Heartbeat = 0 }, nil, false, func(d *agent.Deliverer) { d.RejoinSpread = -1 })
	defer ip.stop()
	sim, a, sc, ob := ip.sim, ip.a, ip.sc, ip.ob
	e.waitEvent("sim_bound", 20*time.Second)
	b.StartTimer()
	sim.Flap(modemsim.Flap{Cells: []uint64{0x1A2D102, 0x1A2D103}, Times: 10000})
	t0 := time.Now()
	sim.RemoveSIM()
	// Without a SIM there is no network: the event waits in the outbox.
	// The SIM goes back in as soon as the removal is queued, and the
	// event leaves when the modem has registered again.
	queued := false
	for !queued && time.Since(t0) < 30*time.Second {
		for _, ev := range a.Recent() {
			queued = queued || ev.Type == "sim_removed"
		}
		time.Sleep(time.Millisecond)
	}
	if queued {
		qms = float64(time.Since(t0).Microseconds()) / 1000
		sim.InsertSIM(sc.SIM)
	}
	for queued && e.countVerified("sim_removed") == 0 && time.Since(t0) < 30*time.Second {
		time.Sleep(time.Millisecond)
	}
	if e.countVerified("sim_removed") > 0 {
		delivered, ms = 1, float64(time.Since(t0).Microseconds())/1000
	}
	b.StopTimer()
	// Let the rest of the storm through and the outbox drain.
	for t1 := time.Now(); time.Since(t1) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		if n, _ := ob.Len(); n == 0 && time.Since(t1) > time.Second {
			break
		}
	}
	cells = float64(e.countVerified("cell_changed") + e.countVerified("cell_flapping"))
	return cells, delivered, qms, ms
}

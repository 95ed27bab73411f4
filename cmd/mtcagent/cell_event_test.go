//go:build !mtc_omit_coap

package main

import (
	"slices"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/attest"
)

// TestCellChangeOneEventEndToEnd (issue 16): with the real collector on
// loopback and the simulated modem reporting each cell change in cs, ps
// and eps, every change is one cell_changed the collector verifies, and
// the agent signs in the compact claims format once the collector's
// attestation request said it reads it. The domains are those whose URCs
// arrived together with the first (usually all three: logged, not
// required, since it depends on scheduling).
func TestCellChangeOneEventEndToEnd(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ip := startInProcess(t, e, nil, nil, true, nil)
	e.waitEvent("sim_bound", scaled(20*time.Second))
	for deadline := time.Now().Add(scaled(10 * time.Second)); ip.a.TokenFormat() != attest.FormatCompact; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent never learned that the collector reads format 2")
		}
	}
	for i := uint64(0); i < 3; i++ {
		before := e.countVerified("cell_changed")
		cell := 0x310000 + i
		ip.sim.SetNetwork(modemsim.Network{CellID: &cell})
		for deadline := time.Now().Add(scaled(10 * time.Second)); e.countVerified("cell_changed") == before; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("cell change %d never verified", i)
			}
		}
		// The other domains' URCs and the poll after them (poll = 1s)
		// add nothing.
		time.Sleep(scaled(1500 * time.Millisecond))
		if n := e.countVerified("cell_changed"); n != before+1 {
			t.Fatalf("cell change %d: %d cell_changed verified, want 1", i, n-before)
		}
	}
	var doms [][]string
	for _, r := range ip.a.Recent() {
		if r.Type == "cell_changed" {
			d, _ := r.Details["domains"].([]string)
			doms = append(doms, d)
			if len(d) == 0 || r.Details["domain"] != d[0] {
				t.Fatalf("cell_changed details %v", r.Details)
			}
		}
	}
	if len(doms) != 3 || !slices.ContainsFunc(doms, func(d []string) bool { return len(d) > 0 }) {
		t.Fatalf("cell_changed domains %v", doms)
	}
	t.Logf("domains of the three changes: %v", doms)
	e.checkOrder()
}

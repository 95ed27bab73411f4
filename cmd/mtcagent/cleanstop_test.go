//go:build !mtc_omit_coap

package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCleanRestartLeavesNoSequenceGap: a clean stop (SIGTERM, exit 0)
// gives back the unused rest of the reserved block of sequence numbers, so
// the next start continues at the next number. Only a crash may skip
// numbers; the collector must not read a clean restart as one.
func TestCleanRestartLeavesNoSequenceGap(t *testing.T) {
	e := newE2E(t)
	sc := writeScenario(t, `{"dialect": "generic"}`)
	for run := 0; run < 2; run++ {
		d := startDaemon(t, e.state, sc, e.conf)
		deadline := time.Now().Add(scaled(30 * time.Second))
		for !d.startedAndDrained(t) {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: the outbox never drained; log:\n%s", run, strings.Join(e.log.all(), "\n"))
			}
			time.Sleep(50 * time.Millisecond)
		}
		d.stop(t)
	}
	e.checkOrder()
	// Every number issued: events, heartbeats and binding attestations
	// (these are answered at once, so they interleave).
	var seqs []uint64
	for _, l := range e.log.all() {
		if m := verifiedRE.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[2], 10, 64)
			seqs = append(seqs, n)
		}
	}
	slices.Sort(seqs)
	if len(seqs) < 4 {
		t.Fatalf("only %d messages verified over two runs", len(seqs))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("seq %d follows %d across a clean restart; collector log:\n%s", seqs[i], seqs[i-1], strings.Join(e.log.all(), "\n"))
		}
	}
	for _, l := range e.log.all() {
		if strings.Contains(l, "skipped by the restart") {
			t.Fatalf("the collector saw a clean restart as a crash: %s", l)
		}
	}
}

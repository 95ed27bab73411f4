package attest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/mtcagent/mtcagent/privacy/ident"
)

func TestBindingPolicyReportAndLock(t *testing.T) {
	d := testDeriver(t, 3)
	simA, iccA := testSIM(t, "001010123456789", "8900100000000000001")
	simB, iccB := testSIM(t, "001010987654321", "8900100000000000027")
	recips := []string{"operator", "utility"}
	for _, action := range []Action{ActionReport, ActionLock} {
		t.Run(action.String(), func(t *testing.T) {
			dir := t.TempDir()
			p, err := OpenBindingPolicy(dir, d, action, recips)
			if err != nil {
				t.Fatal(err)
			}
			// No SIM at first, then SIM A: that is the binding.
			if ev, err := p.Observe(ident.IMSI{}, ident.ICCID{}); err != nil || ev != nil {
				t.Fatalf("no sim, no binding: %v %v", ev, err)
			}
			ev, err := p.Observe(simA, iccA)
			if err != nil || ev == nil || ev.Kind != SIMBound {
				t.Fatalf("first sim: %+v %v", ev, err)
			}
			pA := d.Pseudonyms("operator", simA, iccA)
			if !ev.New["operator"].Equal(pA) {
				t.Fatal("bound event lacks the new pseudonyms")
			}
			if ev, _ := p.Observe(simA, iccA); ev != nil {
				t.Fatal("same reading twice gives an event")
			}
			// Removed.
			ev, err = p.Observe(ident.IMSI{}, ident.ICCID{})
			if err != nil || ev == nil || ev.Kind != SIMRemoved {
				t.Fatalf("removed: %+v %v", ev, err)
			}
			if !ev.Old["operator"].Equal(pA) || len(ev.New["operator"].IMSI) != 0 {
				t.Fatal("removed event: old/new pseudonyms wrong")
			}
			if p.Locked() != (action == ActionLock) || ev.Locked != (action == ActionLock) {
				t.Fatalf("locked=%v after removal with action %v", p.Locked(), action)
			}
			// A different SIM: old and new per recipient, all different.
			ev, err = p.Observe(simB, iccB)
			if err != nil || ev == nil || ev.Kind != SIMChanged {
				t.Fatalf("changed: %+v %v", ev, err)
			}
			pB := d.Pseudonyms("operator", simB, iccB)
			if !ev.Old["operator"].Equal(pA) || !ev.New["operator"].Equal(pB) {
				t.Fatal("changed event: pseudonyms wrong")
			}
			if ev.Old["operator"].Equal(ev.Old["utility"]) || ev.New["operator"].Equal(ev.New["utility"]) {
				t.Fatal("two recipients see the same pseudonyms")
			}
			// The event signs and verifies, with old and new pseudonyms.
			is, pub := testIssuer(t, false)
			tok, err := ev.Sign(is, "operator")
			if err != nil {
				t.Fatal(err)
			}
			res, err := (&Verifier{Key: pub, Kind: KindEvent, SkipFreshness: true}).Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if res.Token.Event != "sim_changed" || !res.Token.Old.Equal(pA) || !res.Token.Pseudonyms.Equal(pB) {
				t.Fatal("event token claims wrong")
			}
			// State survives a restart: the lock, and the old pseudonyms.
			p2, err := OpenBindingPolicy(dir, d, action, recips)
			if err != nil {
				t.Fatal(err)
			}
			if p2.Locked() != (action == ActionLock) {
				t.Fatal("lock lost across restart")
			}
			if ev, _ := p2.Observe(simB, iccB); ev != nil {
				t.Fatal("restart with the same SIM repeats the event")
			}
			ev, _ = p2.Observe(simA, iccA)
			if ev == nil || ev.Kind != SIMRestored || !ev.Old["utility"].Equal(d.Pseudonyms("utility", simA, iccA)) {
				t.Fatalf("restored: %+v", ev)
			}
			if p2.Locked() != (action == ActionLock) {
				t.Fatal("restoring the SIM must not lift the lock")
			}
			// Re-provisioning clears the lock; the next SIM is bound.
			if err := p2.Reprovision(); err != nil {
				t.Fatal(err)
			}
			if p2.Locked() || p2.Bound() {
				t.Fatal("reprovision left the lock or binding")
			}
			if ev, _ := p2.Observe(simB, iccB); ev == nil || ev.Kind != SIMBound {
				t.Fatal("after reprovision the next SIM should be bound")
			}
			// No identifier in the state file.
			raw, err := os.ReadFile(filepath.Join(dir, BindingFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{simA.Reveal(), iccA.Reveal(), simB.Reveal(), iccB.Reveal()} {
				if bytes.Contains(raw, []byte(s)) {
					t.Fatal("identifier in the binding state file")
				}
			}
			if st, _ := os.Stat(filepath.Join(dir, BindingFile)); st.Mode().Perm() != 0o600 {
				t.Fatal("binding file mode")
			}
		})
	}
}

func TestBindingProvisioned(t *testing.T) {
	d := testDeriver(t, 3)
	simA, iccA := testSIM(t, "001010123456789", "8900100000000000001")
	simB, iccB := testSIM(t, "001010987654321", "8900100000000000027")
	p, err := OpenBindingPolicy(t.TempDir(), d, ActionLock, []string{"operator"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Provision(simA, iccA); err != nil {
		t.Fatal(err)
	}
	if ev, _ := p.Observe(simA, iccA); ev != nil {
		t.Fatalf("provisioned SIM seen: unexpected event %v", ev.Kind)
	}
	if ev, _ := p.Observe(simB, iccB); ev == nil || ev.Kind != SIMChanged || !p.Locked() {
		t.Fatal("a SIM other than the provisioned one must change and lock")
	}
	if err := p.Provision(simB, iccB); err != nil || p.Locked() {
		t.Fatal("provisioning the new SIM clears the lock")
	}
	if err := p.Provision(ident.IMSI{}, ident.ICCID{}); err == nil {
		t.Fatal("provisioning nothing accepted")
	}
}

func TestBindingCorruptState(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, BindingFile), []byte("junk"), 0o600)
	if _, err := OpenBindingPolicy(dir, testDeriver(t, 1), ActionReport, nil); err == nil {
		t.Fatal("corrupt binding state accepted")
	}
}

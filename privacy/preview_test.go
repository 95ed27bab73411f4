package privacy

import (
	"encoding/hex"
	"testing"
	"time"
)

// TestPreviewsAreTheWireReports: a preview is View then Encode, one per slot.
func TestPreviewsAreTheWireReports(t *testing.T) {
	p := policyWith(t, "", "status = full")
	s := fullSnapshot(t)
	ps, err := p.Previews("r", s, 3)
	if err != nil || len(ps) != 3 {
		t.Fatalf("%d previews, %v", len(ps), err)
	}
	for i, pv := range ps {
		si := s
		si.Time = s.Time.Add(time.Duration(i) * p.Slot())
		r, _ := p.View("r", si)
		wire, _ := r.Encode()
		if pv.CBOR != hex.EncodeToString(wire) || pv.Size != len(wire) || !pv.Slot.Equal(r.Time()) || pv.Carries != r.CarriesString() {
			t.Errorf("preview %d differs from the report sent", i)
		}
	}
	if !ps[1].Slot.After(ps[0].Slot) {
		t.Error("previews are not one slot apart")
	}
	if _, err := p.Previews("stranger", s, 1); err == nil {
		t.Error("a recipient not in the policy gets a preview")
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{15 * time.Minute: "15m", time.Hour: "1h", 90 * time.Second: "1m30s", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

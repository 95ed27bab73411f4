package privacy

import (
	"encoding/hex"
	"encoding/json"
	"time"
)

// Preview is one report exactly as a recipient would receive it, for the
// device's owner to inspect (mtcagent report preview).
type Preview struct {
	Slot    time.Time       `json:"slot"`
	Size    int             `json:"size"` // bytes of CBOR on the wire
	CBOR    string          `json:"cbor"` // the wire bytes in hex
	Report  json.RawMessage `json:"report"`
	Carries string          `json:"-"` // Report.CarriesString
}

// Previews are count successive reports to recipient, one per schedule
// slot from s.Time on: what View and Encode make of s.
func (p *Policy) Previews(recipient string, s Snapshot, count int) ([]Preview, error) {
	var out []Preview
	for i := 0; i < count; i++ {
		si := s
		si.Time = s.Time.Add(time.Duration(i) * p.Slot())
		r, err := p.View(recipient, si)
		if err != nil {
			return nil, err
		}
		wire, err := r.Encode()
		if err != nil {
			return nil, err
		}
		js, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, Preview{Slot: r.Time(), Size: len(wire), CBOR: hex.EncodeToString(wire), Report: js, Carries: r.CarriesString()})
	}
	return out, nil
}

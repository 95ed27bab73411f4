package privacy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
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

// RecipientPreview is what `mtcagent report preview` shows for the
// recipient Name: its grants and the reports it would receive or, for a
// name the policy does not know (Known false), that it receives nothing.
type RecipientPreview struct {
	Name      string
	Known     bool
	Recipient Recipient
	Grants    Grants
	Reports   []Preview // set by the caller (Previews)
	// Names are the policy's recipients in file order, for an unknown Name.
	Names []string
	pol   *Policy
}

// PreviewFor starts the preview of name: whether it is known, and its
// grants after the device class.
func (p *Policy) PreviewFor(name string) RecipientPreview {
	r, known := p.Recipient(name)
	g, _ := p.Grants(name)
	v := RecipientPreview{Name: name, Known: known, Recipient: r, Grants: g, pol: p}
	if !known {
		v.Names = []string{}
		for _, r := range p.recipients {
			v.Names = append(v.Names, r.Name)
		}
	}
	return v
}

// JSON is the value `report preview --json` prints.
func (v RecipientPreview) JSON() map[string]any {
	if !v.Known {
		return map[string]any{"recipient": v.Name, "known": false, "reports": []any{}, "known_recipients": v.Names}
	}
	grants := map[string]string{}
	for _, c := range Classes() {
		grants[c.String()] = v.Grants.Precision(c)
	}
	out := map[string]any{
		"recipient":    v.Recipient.Name,
		"identity":     v.Recipient.Identity,
		"known":        true,
		"grants":       grants,
		"device_class": v.pol.DeviceClass.String(),
		"padding":      v.pol.Padding,
		"slot":         shortDuration(v.pol.Slot()),
		"reports":      v.Reports,
	}
	if v.pol.Schedule > 0 {
		out["schedule"] = shortDuration(v.pol.Schedule)
	}
	return out
}

// WriteText writes the preview for people: the grants, then each report
// field by field in the order of Fields.
func (v RecipientPreview) WriteText(w io.Writer) {
	if !v.Known {
		fmt.Fprintf(w, "Recipient %q is not in the policy: it receives nothing (default deny).\n", v.Name)
		if len(v.Names) > 0 {
			fmt.Fprintf(w, "Known recipients: %s\n", strings.Join(v.Names, ", "))
		} else {
			fmt.Fprintln(w, "The policy names no recipients: nothing leaves the device.")
		}
		return
	}
	pol, g, reps := v.pol, v.Grants, v.Reports
	fmt.Fprintf(w, "Recipient %q (authenticates as %s)\n", v.Recipient.Name, v.Recipient.Identity)
	fmt.Fprintf(w, "  granted:      %s\n", g.String())
	if pol.DeviceClass == DeviceNoLocationTracking {
		fmt.Fprintf(w, "  device class: no_location_tracking (location and cell withheld from everyone)\n")
	}
	sched := "event-driven; report times rounded to " + shortDuration(pol.Slot())
	if pol.Schedule > 0 {
		sched = "every " + shortDuration(pol.Schedule)
	}
	fmt.Fprintf(w, "  schedule:     %s\n", sched)
	pad := "off"
	if pol.Padding && len(reps) > 0 {
		pad = fmt.Sprintf("on (every report is %d bytes)", reps[0].Size)
	}
	fmt.Fprintf(w, "  padding:      %s\n", pad)
	for i, r := range reps {
		fmt.Fprintf(w, "\nReport %d of %d, slot %s, %d bytes of CBOR:\n", i+1, len(reps), r.Slot.Format(time.RFC3339), r.Size)
		var m map[string]json.RawMessage
		if json.Unmarshal(r.Report, &m) != nil {
			continue
		}
		fmt.Fprintf(w, "  %-10s %s\n", "carries", r.Carries)
		n := 0
		for _, f := range Fields() { // in the format's order
			raw, ok := m[f.Key]
			if !ok || f.Class == ClassMeta {
				continue
			}
			val := string(bytes.Trim(raw, `"`))
			if (f.Key == "lat" || f.Key == "lon") && g.Location == LocationRegion {
				val += fmt.Sprintf("  (centre of a %s grid cell, masked)", strings.TrimPrefix(g.Precision(ClassLocation), "region:"))
			}
			fmt.Fprintf(w, "  %-10s %s\n", f.Key, val)
			n++
		}
		if n == 0 {
			fmt.Fprintf(w, "  (nothing but the slot time)\n")
		}
	}
}

// shortDuration prints 15m rather than 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

package privacy

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mtcagent/mtcagent/internal/config"
)

// FuzzParsePolicy: any text either is refused with a line-numbered error or
// yields a policy whose every recipient gets a report that encodes.
func FuzzParsePolicy(f *testing.F) {
	f.Add(testConfig)
	f.Add("[privacy]\ndevice_class = no_location_tracking\n[recipient \"a\"]\nidentity = psk:a\nlocation = region:1.5km\n")
	f.Add("[recipient \"a\"]\nidentity = psk:a\nstatus = reachable\nschedule = 1h\n")
	f.Fuzz(func(t *testing.T, text string) {
		cf, err := config.Parse("f.conf", text)
		if err != nil {
			return
		}
		p, err := ParsePolicy(cf)
		if err != nil {
			if _, ok := err.(*config.Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if err := p.SetSecret(testSecret()); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Recipients() {
			rep, err := p.View(r.Name, fullSnapshot(t))
			if err != nil {
				t.Fatalf("view %q: %v", r.Name, err)
			}
			if _, err := rep.Encode(); err != nil {
				t.Fatalf("encode %q: %v", r.Name, err)
			}
		}
	})
}

// FuzzView: any position, grid and time gives a report inside the world
// that encodes, decodes, and is padded to the fixed size.
func FuzzView(f *testing.F) {
	f.Add(48.137154, 11.576124, 12.0, int64(1795449600), uint16(2000), uint8(3))
	f.Add(-90.0, 180.0, 0.0, int64(0), uint16(100), uint8(1))
	f.Add(89.99999, -179.99999, 1e9, int64(-1), uint16(65535), uint8(4))
	f.Add(10.0, 10.0, math.Inf(1), int64(5), uint16(1), uint8(2))
	f.Fuzz(func(t *testing.T, lat, lon, acc float64, unix int64, grid uint16, st uint8) {
		if unix < -1<<40 || unix > 1<<40 {
			return
		}
		g := int(grid)*8 + minGridMeters
		p := &Policy{Padding: true, recipients: []Recipient{{Name: "r", Identity: "psk:r",
			Grants: Grants{Status: StatusFull, Location: LocationRegion, GridMeters: g, Cell: CellFull, Radio: RadioFull}}}}
		if err := p.SetSecret(testSecret()); err != nil {
			t.Fatal(err)
		}
		s := fullSnapshot(t)
		s.Time = time.Unix(unix, 0)
		s.Status = Status(st % 6)
		s.Location = &Location{Lat: lat, Lon: lon, AccuracyM: acc}
		r, err := p.View("r", s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := cbor.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if r.b.Lat != nil {
			la, lo := *r.b.Lat, *r.b.Lon
			if math.IsNaN(la) || math.IsNaN(lo) || la < -90 || la > 90 || lo < -180 || lo > 180 {
				t.Fatalf("masked position %v %v", la, lo)
			}
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("json: %v", err)
		}
		pp := *p
		pp.recipients = []Recipient{{Name: "r", Identity: "psk:r", Grants: Grants{Location: LocationPrecise}}}
		rp, err := pp.View("r", s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(rp); err != nil {
			t.Fatalf("json precise: %v", err)
		}
		if _, err := rp.Encode(); err != nil {
			t.Fatalf("encode precise: %v", err)
		}
		r2, _ := p.View("r", s)
		b2, _ := r2.Encode()
		if !bytes.Equal(b, b2) || len(b) != paddedSize(p.recipients[0].Grants) {
			t.Fatal("not deterministic or not padded")
		}
	})
}

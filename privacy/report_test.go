package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Fictional identifiers (the IMSI of TS 33.501 Annex C.4, made-up serials).
const (
	testIMSI  = "274012001002086"
	testICCID = "8949010000123456789"
	testIMEI  = "490154203237518"
)

type fakeIdentity struct{ err error }

func (f fakeIdentity) Pseudonym(r string) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	return "ps-" + r + "-q7Kx", f.err
}

func (f fakeIdentity) SUCI() (string, error) {
	return "suci-0-274-012-0-1-1-b2e92f836055a255837debf850b528997ce0201cb82adfe4be1f587d07d8457dcb02352410cddd5e730ef3716", f.err
}

func u32(v uint32) *uint32   { return &v }
func u64(v uint64) *uint64   { return &v }
func f64(v float64) *float64 { return &v }

var testTime = time.Date(2026, 11, 23, 16, 7, 30, 0, time.UTC)

func fullSnapshot(t testing.TB) Snapshot {
	imsi, err1 := ident.ParseIMSI(testIMSI)
	iccid, err2 := ident.ParseICCID(testICCID)
	imei, err3 := ident.ParseIMEI(testIMEI)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	return Snapshot{
		Time:     testTime,
		Status:   StatusConnected,
		Location: &Location{Lat: 48.137154, Lon: 11.576124, AccuracyM: 12.4},
		Cell:     &Cell{MCC: "262", MNC: "01", TAC: u32(4660), LAC: u32(17), CellID: u64(27447553)},
		Radio:    &Radio{RSRPdBm: f64(-95.25), RSRQdB: f64(-10.5), SINRdB: f64(12), RSSIdBm: f64(-71)},
		IMSI:     imsi, ICCID: iccid, IMEI: imei,
		Identity: fakeIdentity{},
	}
}

func testSecret() ident.Key { return ident.NewKey(bytes.Repeat([]byte{7}, SecretSize)) }

func policyWith(t testing.TB, privacy, grants string) *Policy {
	t.Helper()
	p := mustPolicy(t, privacy+"\n[recipient \"r\"]\nidentity = psk:r\n"+grants+"\n")
	if err := p.SetSecret(testSecret()); err != nil {
		t.Fatal(err)
	}
	return p
}

func keysOf(t testing.TB, r Report) (jsonKeys, cborKeys []string, carries map[string]string) {
	t.Helper()
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	for k := range m {
		jsonKeys = append(jsonKeys, k)
	}
	sort.Strings(jsonKeys)
	c, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var cm map[string]any
	if err := cbor.Unmarshal(c, &cm); err != nil {
		t.Fatal(err)
	}
	for k := range cm {
		if k != "pad" && k != "pad_" {
			cborKeys = append(cborKeys, k)
		}
	}
	sort.Strings(cborKeys)
	carries = map[string]string{}
	for k, v := range m["carries"].(map[string]any) {
		carries[k] = v.(string)
	}
	return
}

func TestGrantLevels(t *testing.T) {
	meta := []string{"carries", "t", "v"}
	for _, tc := range []struct {
		grants  string
		keys    []string
		carries string
	}{
		{"", nil, ""},
		{"status = none\nlocation = none\ncell = none\nidentity_disclosure = none\nradio = none", nil, ""},
		{"status = reachable", []string{"reachable"}, "status=reachable"},
		{"status = full", []string{"reachable", "state"}, "status=full"},
		{"location = region:2km", []string{"grid_m", "lat", "lon"}, "location=region:2km"},
		{"location = region:500m", []string{"grid_m", "lat", "lon"}, "location=region:500m"},
		{"location = precise", []string{"acc_m", "lat", "lon"}, "location=precise"},
		{"cell = tracking_area", []string{"lac", "plmn", "tac"}, "cell=tracking_area"},
		{"cell = full", []string{"cell_id", "lac", "plmn", "tac"}, "cell=full"},
		{"identity_disclosure = pseudonym", []string{"pseudonym"}, "identity=pseudonym"},
		{"identity_disclosure = suci", []string{"pseudonym", "suci"}, "identity=suci"},
		{"radio = full", []string{"rrsi"}, "radio=full"},
		{"status = reachable\nlocation = region:2km\ncell = tracking_area", []string{"grid_m", "lac", "lat", "lon", "plmn", "reachable", "tac"}, "status=reachable location=region:2km cell=tracking_area"},
	} {
		if tc.grants == "radio = full" {
			tc.keys = []string{"rsrp_dbm", "rsrq_db", "rssi_dbm", "sinr_db"}
		}
		for _, padding := range []string{"off", "on"} {
			p := policyWith(t, "[privacy]\npadding = "+padding, tc.grants)
			r, err := p.View("r", fullSnapshot(t))
			if err != nil {
				t.Fatalf("%q: %v", tc.grants, err)
			}
			want := append(append([]string(nil), meta...), tc.keys...)
			sort.Strings(want)
			jk, ck, carries := keysOf(t, r)
			if !reflect.DeepEqual(jk, want) {
				t.Errorf("%q: JSON keys %v, want %v", tc.grants, jk, want)
			}
			wantCBOR := []string{"c", "t", "v"}
			wantCBOR = append(wantCBOR, tc.keys...)
			sort.Strings(wantCBOR)
			if !reflect.DeepEqual(ck, wantCBOR) {
				t.Errorf("%q: CBOR keys %v, want %v", tc.grants, ck, wantCBOR)
			}
			cs := r.CarriesString()
			if tc.carries == "" && cs != "nothing" || tc.carries != "" && cs != tc.carries {
				t.Errorf("%q: carries %q, want %q", tc.grants, cs, tc.carries)
			}
			if len(carries) != len(r.Carries()) {
				t.Errorf("%q: wire carries %v, report carries %v", tc.grants, carries, r.Carries())
			}
			if got := r.Time(); !got.Equal(time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)) {
				t.Errorf("report time %v, want the 16:00 slot", got)
			}
		}
	}
}

func TestGrantValues(t *testing.T) {
	p := policyWith(t, "", "status = full\nlocation = precise\ncell = tracking_area\nidentity_disclosure = suci\nradio = full")
	r, err := p.View("r", fullSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	b := r.b
	if *b.Reachable != true || b.State != "connected" || *b.Lat != 48.137154 || *b.Lon != 11.576124 || *b.AccuracyM != 12 ||
		b.PLMN != "26201" || *b.TAC != 4660 || b.CellID != nil || b.Pseudonym != "ps-r-q7Kx" || !strings.HasPrefix(b.SUCI, "suci-0-274") ||
		*b.RSRP != -95.3 && *b.RSRP != -95.2 {
		t.Fatalf("values wrong")
	}
	// Region: a grid cell centre, not the fix, and stable.
	p = policyWith(t, "", "location = region:2km")
	r, _ = p.View("r", fullSnapshot(t))
	if *r.b.Lat == 48.137154 || r.b.GridM != 2000 {
		t.Fatal("region location is the fix")
	}
	d := distM(*r.b.Lat, *r.b.Lon, 48.137154, 11.576124)
	if d > 2*2000*1.25+2000 {
		t.Fatalf("region centre %.0f m from the fix: masking offset out of bounds", d)
	}
}

func TestUnknownRecipientGetsNothing(t *testing.T) {
	p := policyWith(t, "", "status = full\nlocation = precise")
	r, err := p.View("stranger", fullSnapshot(t))
	if !errors.Is(err, ErrUnknownRecipient) {
		t.Fatalf("err %v, want ErrUnknownRecipient", err)
	}
	if len(r.Carries()) != 0 || r.Recipient() != "" {
		t.Fatal("unknown recipient's report is not empty")
	}
	if b, err := r.Encode(); !errors.Is(err, ErrNoReport) || b != nil {
		t.Fatalf("Encode of the empty report: %d bytes, %v", len(b), err)
	}
	if _, err := json.Marshal(r); !errors.Is(err, ErrNoReport) {
		t.Fatalf("JSON of the empty report: %v", err)
	}
	var zero Report
	if _, err := zero.Encode(); !errors.Is(err, ErrNoReport) {
		t.Fatal("zero Report encodes")
	}
}

func TestNoLocationTrackingWins(t *testing.T) {
	for _, grants := range []string{
		"location = precise\ncell = full",
		"location = region:100m\ncell = tracking_area\nstatus = full",
		"location = region:500km",
	} {
		p := policyWith(t, "[privacy]\ndevice_class = no_location_tracking", grants)
		r, err := p.View("r", fullSnapshot(t))
		if err != nil {
			t.Fatal(err)
		}
		jk, _, _ := keysOf(t, r)
		for _, k := range jk {
			switch k {
			case "lat", "lon", "grid_m", "acc_m", "plmn", "tac", "lac", "cell_id":
				t.Errorf("%q: report carries %s under no_location_tracking", grants, k)
			}
		}
		if _, ok := r.Carries()[ClassLocation]; ok {
			t.Errorf("%q: carries location", grants)
		}
		if _, ok := r.Carries()[ClassCell]; ok {
			t.Errorf("%q: carries cell", grants)
		}
		g, _ := p.Grants("r")
		if g.Location != LevelNone || g.Cell != LevelNone {
			t.Errorf("%q: grants %v", grants, g)
		}
	}
}

// TestEveryFieldClassified fails when a field is added to the report or
// the snapshot without a privacy class.
func TestEveryFieldClassified(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeOf(body{}), reflect.TypeOf(Snapshot{})} {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag, ok := f.Tag.Lookup("privacy")
			if !ok {
				t.Errorf("%s.%s has no privacy class", typ.Name(), f.Name)
				continue
			}
			if _, _, err := parseClassTag(tag); err != nil {
				t.Errorf("%s.%s: %v", typ.Name(), f.Name, err)
			}
		}
		if _, err := classifyType(typ); err != nil {
			t.Errorf("%s: %v", typ.Name(), err)
		}
	}
	// Each class that can be granted has at least one field.
	have := map[Class]bool{}
	for _, f := range Fields() {
		have[f.Class] = true
		if f.Key == "" {
			t.Errorf("field without a wire key")
		}
	}
	for _, c := range Classes() {
		if !have[c] {
			t.Errorf("class %s has no field", c)
		}
	}
}

// TestUnclassifiedFieldCannotLeave adds, in a copy of the report type, a
// field without a class: the check on the way out refuses it, set or not.
func TestUnclassifiedFieldCannotLeave(t *testing.T) {
	type leaky struct {
		V      int    `cbor:"v" privacy:"meta"`
		Status string `cbor:"status" privacy:"status:full"`
		IMSI   string `cbor:"imsi"` // no class
	}
	all := Grants{Status: StatusFull, Location: LocationPrecise, Cell: CellFull, Identity: IdentitySUCI, Radio: RadioFull}
	for _, v := range []*leaky{{V: 1, IMSI: testIMSI}, {V: 1}} {
		for name, enc := range map[string]func(any) ([]byte, error){"cbor": cborMode.Marshal, "json": json.Marshal} {
			out, err := encodeChecked(v, all, enc)
			if !errors.Is(err, ErrUnclassified) || out != nil {
				t.Errorf("%s: unclassified field left: %d bytes, err %v", name, len(out), err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "IMSI" {
				t.Errorf("%s: error %v does not name the field", name, err)
			}
		}
	}
	type badTag struct {
		V int `privacy:"whereabouts"`
	}
	if _, err := encodeChecked(&badTag{1}, all, json.Marshal); !errors.Is(err, ErrUnclassified) {
		t.Errorf("unknown class accepted: %v", err)
	}
	// A classified field the recipient lacks is refused too.
	type granted struct {
		V     int     `privacy:"meta"`
		Lat   float64 `privacy:"location:precise"`
		State string  `privacy:"status:full"`
	}
	_, err := encodeChecked(&granted{V: 1, Lat: 48.1}, Grants{Location: LocationRegion}, json.Marshal)
	if !errors.Is(err, ErrNotGranted) {
		t.Errorf("precise location left under region grant: %v", err)
	}
	if _, err := encodeChecked(&granted{V: 1, State: "idle"}, Grants{Status: StatusReachable}, json.Marshal); !errors.Is(err, ErrNotGranted) {
		t.Errorf("full status left under reachable grant: %v", err)
	}
	if _, err := encodeChecked(&granted{V: 1, State: "idle"}, Grants{Status: StatusFull}, json.Marshal); err != nil {
		t.Errorf("granted field refused: %v", err)
	}
	// The real report: tamper with a built one and Encode refuses.
	p := policyWith(t, "", "status = reachable")
	r, err := p.View("r", fullSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	r.b.State = "connected"
	if _, err := r.Encode(); !errors.Is(err, ErrNotGranted) {
		t.Errorf("tampered report encoded: %v", err)
	}
}

func TestReachableHidesIdleConnected(t *testing.T) {
	for _, padding := range []string{"off", "on"} {
		p := policyWith(t, "[privacy]\npadding = "+padding, "status = reachable\nlocation = region:2km")
		var first []byte
		for i, st := range []Status{StatusIdle, StatusConnected, StatusOnline, StatusIdle} {
			s := fullSnapshot(t)
			s.Status = st
			// The state changed within the slot; the report time does not say when.
			s.Time = testTime.Add(time.Duration(i) * 97 * time.Second)
			r, err := p.View("r", s)
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = b
				continue
			}
			if !bytes.Equal(b, first) {
				t.Errorf("padding %s: %v report differs from idle report (%d vs %d bytes)", padding, st, len(b), len(first))
			}
		}
		// Offline differs only in the value, not in size.
		s := fullSnapshot(t)
		s.Status = StatusOffline
		r, _ := p.View("r", s)
		b, _ := r.Encode()
		if len(b) != len(first) || bytes.Equal(b, first) {
			t.Errorf("padding %s: offline report %d bytes vs %d", padding, len(b), len(first))
		}
	}
}

func TestPaddingFixedSize(t *testing.T) {
	grants := "status = full\nlocation = region:2km\ncell = full\nidentity_disclosure = suci\nradio = full"
	p := policyWith(t, "[privacy]\npadding = on", grants)
	variants := []func(*Snapshot){
		func(*Snapshot) {},
		func(s *Snapshot) { s.Location = nil },
		func(s *Snapshot) { s.Cell = nil; s.Radio = nil },
		func(s *Snapshot) { s.Status = StatusOffline; s.Identity = nil },
		func(s *Snapshot) { s.Cell.TAC = u32(1); s.Cell.CellID = u64(1<<36 - 1); s.Radio.RSRPdBm = nil },
		func(s *Snapshot) { s.Location = &Location{Lat: -89.9, Lon: 179.99} },
		func(s *Snapshot) { s.Time = time.Unix(0, 0) },
	}
	size := -1
	for i, v := range variants {
		s := fullSnapshot(t)
		v(&s)
		r, err := p.View("r", s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatalf("variant %d: %v", i, err)
		}
		if size < 0 {
			size = len(b)
		}
		if len(b) != size {
			t.Errorf("variant %d: %d bytes, want %d", i, len(b), size)
		}
		var m map[string]any
		if err := cbor.Unmarshal(b, &m); err != nil {
			t.Fatalf("variant %d: padded report does not decode: %v", i, err)
		}
	}
	// Every unpadded size from the smallest up is padded exactly.
	b := &body{V: 1, Carries: map[string]string{}}
	for target := 40; target < 700; target++ {
		b.Pad, b.PadAlt = nil, nil
		unp, _ := cborMode.Marshal(b)
		out, err := padTo(b, unp, target, Grants{})
		if target-len(unp) < 8 {
			continue
		}
		if err != nil || len(out) != target {
			t.Fatalf("pad %d-byte report to %d: got %d, %v", len(unp), target, len(out), err)
		}
	}
}

func TestEncodeDeterministic(t *testing.T) {
	p := policyWith(t, "", "status = full\nlocation = region:2km\ncell = full\nradio = full")
	var first []byte
	for i := 0; i < 20; i++ {
		r, err := p.View("r", fullSnapshot(t))
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatal("encoding not deterministic")
		}
	}
	dm, _ := cbor.DecOptions{}.DecMode()
	if err := dm.Wellformed(first); err != nil {
		t.Fatal(err)
	}
}

func TestViewErrors(t *testing.T) {
	p := policyWith(t, "", "identity_disclosure = pseudonym\ncell = tracking_area")
	s := fullSnapshot(t)
	s.Identity = fakeIdentity{err: errors.New("no key")}
	if _, err := p.View("r", s); err == nil || !strings.Contains(err.Error(), "pseudonym") {
		t.Errorf("identity source error: %v", err)
	}
	s = fullSnapshot(t)
	s.Cell.MCC = "26x"
	if _, err := p.View("r", s); err == nil {
		t.Error("invalid MCC accepted")
	}
	s = fullSnapshot(t)
	s.Time = time.Time{}
	if _, err := p.View("r", s); err == nil {
		t.Error("snapshot without time accepted")
	}
	// A region grant without the device secret fails closed.
	np := mustPolicy(t, "[recipient \"r\"]\nidentity = psk:r\nlocation = region:2km\n")
	if _, err := np.View("r", fullSnapshot(t)); !errors.Is(err, ErrNoSecret) {
		t.Errorf("no secret: %v", err)
	}
	if err := np.SetSecret(ident.NewKey([]byte("short"))); !errors.Is(err, ErrNoSecret) {
		t.Errorf("short secret: %v", err)
	}
}

// TestPrintedLeaksNothing: a Report or Snapshot printed, logged or
// JSON-encoded by accident shows no identifier digits (and a Snapshot no
// position).
func TestPrintedLeaksNothing(t *testing.T) {
	p := policyWith(t, "", "status = full\nlocation = precise\ncell = full\nidentity_disclosure = suci\nradio = full")
	s := fullSnapshot(t)
	r, err := p.View("r", s)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, v := range []any{s, &s, r, &r, struct {
		S Snapshot
		R Report
	}{s, r}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	rj, err := json.Marshal(r) // the intended rendering: no raw identifiers either
	if err != nil {
		t.Fatal(err)
	}
	out.Write(rj)
	enc, _ := r.Encode()
	out.Write(enc)
	for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
		slog.New(h).Info("sent", "report", r, "snapshot", s, "imsi", s.IMSI)
	}
	if hits := ScanForIdentifiers(out.Bytes(), testIMSI, testICCID, testIMEI); len(hits) != 0 {
		t.Errorf("%d identifier hits in printed output (first: id %d, form %s)", len(hits), hits[0].ID, hits[0].Form)
	}
	withoutJSON := bytes.Replace(bytes.Replace(out.Bytes(), rj, nil, 1), enc, nil, 1)
	if bytes.Contains(withoutJSON, []byte("48.13")) || bytes.Contains(withoutJSON, []byte("4660")) {
		t.Error("position or cell printed by accident")
	}
	if !strings.Contains(out.String(), "carries=status=full") {
		t.Error("report summary missing")
	}
}

package privacy

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// ReportVersion is the format version carried in every report ("v").
const ReportVersion = 1

// Caps on identity strings, so that the padded size of a report is fixed
// per recipient. Longer values are refused, never cut.
const (
	MaxPseudonymLen = 128
	MaxSUCILen      = 256
)

// body is what leaves the device. Every field has a privacy class and the
// minimum level of that class a recipient needs to receive it:
// `privacy:"CLASS[:LEVEL]"`. The one way out, encodeChecked, refuses a
// field without a tag and a non-empty field the recipient is not granted.
type body struct {
	V         int               `cbor:"v" json:"v" privacy:"meta"`
	T         int64             `cbor:"t" json:"t" privacy:"meta"`
	Carries   map[string]string `cbor:"c" json:"carries" privacy:"meta"`
	Reachable *bool             `cbor:"reachable,omitempty" json:"reachable,omitempty" privacy:"status:reachable"`
	State     string            `cbor:"state,omitempty" json:"state,omitempty" privacy:"status:full"`
	Lat       *float64          `cbor:"lat,omitempty" json:"lat,omitempty" privacy:"location:region"`
	Lon       *float64          `cbor:"lon,omitempty" json:"lon,omitempty" privacy:"location:region"`
	GridM     int               `cbor:"grid_m,omitempty" json:"grid_m,omitempty" privacy:"location:region"`
	AccuracyM *float64          `cbor:"acc_m,omitempty" json:"acc_m,omitempty" privacy:"location:precise"`
	PLMN      string            `cbor:"plmn,omitempty" json:"plmn,omitempty" privacy:"cell:tracking_area"`
	TAC       *uint32           `cbor:"tac,omitempty" json:"tac,omitempty" privacy:"cell:tracking_area"`
	LAC       *uint32           `cbor:"lac,omitempty" json:"lac,omitempty" privacy:"cell:tracking_area"`
	CellID    *uint64           `cbor:"cell_id,omitempty" json:"cell_id,omitempty" privacy:"cell:full"`
	Pseudonym string            `cbor:"pseudonym,omitempty" json:"pseudonym,omitempty" privacy:"identity:pseudonym"`
	SUCI      string            `cbor:"suci,omitempty" json:"suci,omitempty" privacy:"identity:suci"`
	RSRP      *float64          `cbor:"rsrp_dbm,omitempty" json:"rsrp_dbm,omitempty" privacy:"radio:full"`
	RSRQ      *float64          `cbor:"rsrq_db,omitempty" json:"rsrq_db,omitempty" privacy:"radio:full"`
	SINR      *float64          `cbor:"sinr_db,omitempty" json:"sinr_db,omitempty" privacy:"radio:full"`
	RSSI      *float64          `cbor:"rssi_dbm,omitempty" json:"rssi_dbm,omitempty" privacy:"radio:full"`
	// Padding to the recipient's fixed size. Two keys of different length
	// so that every total size can be reached (a CBOR length header grows
	// in steps).
	Pad    []byte `cbor:"pad,omitempty" json:"-" privacy:"meta"`
	PadAlt []byte `cbor:"pad_,omitempty" json:"-" privacy:"meta"`
}

// FieldError is a field refused on the way out.
type FieldError struct {
	Type, Field string
	Err         error // ErrUnclassified or ErrNotGranted
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("privacy: encode report: field %s.%s: %v", e.Type, e.Field, e.Err)
}
func (e *FieldError) Unwrap() error { return e.Err }

// RecipientError names the recipient a view was refused for.
type RecipientError struct {
	Recipient string
	Err       error
}

func (e *RecipientError) Error() string {
	return fmt.Sprintf("privacy: view for recipient %q: %v", e.Recipient, e.Err)
}
func (e *RecipientError) Unwrap() error { return e.Err }

// FieldInfo describes one reportable field: its key on the wire, its class
// and the level a recipient needs to receive it.
type FieldInfo struct {
	Key      string
	Class    Class
	MinLevel Level
}

type fieldInfo struct {
	FieldInfo
	index int
	name  string
}

type fieldPlan struct {
	fields []fieldInfo
	err    error
}

var plans sync.Map // reflect.Type -> *fieldPlan

// planFor classifies the fields of struct type t once.
func planFor(t reflect.Type) *fieldPlan {
	if p, ok := plans.Load(t); ok {
		return p.(*fieldPlan)
	}
	p := &fieldPlan{}
	p.fields, p.err = classifyType(t)
	v, _ := plans.LoadOrStore(t, p)
	return v.(*fieldPlan)
}

func classifyType(t reflect.Type) ([]fieldInfo, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("privacy: classify %s: not a struct", t)
	}
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("privacy")
		if tag == "" {
			return nil, &FieldError{Type: t.Name(), Field: f.Name, Err: ErrUnclassified}
		}
		c, l, err := parseClassTag(tag)
		if err != nil {
			return nil, &FieldError{Type: t.Name(), Field: f.Name, Err: fmt.Errorf("%w: %v", ErrUnclassified, err)}
		}
		key, _, _ := strings.Cut(f.Tag.Get("cbor"), ",")
		if key == "" {
			key = f.Name
		}
		out = append(out, fieldInfo{FieldInfo{key, c, l}, i, f.Name})
	}
	return out, nil
}

func parseClassTag(tag string) (Class, Level, error) {
	cn, ln, hasLevel := strings.Cut(tag, ":")
	for c := ClassMeta; c < numClasses; c++ {
		if c.String() != cn {
			continue
		}
		if !hasLevel {
			return c, 1, nil
		}
		l, ok := parseLevel(c, ln)
		if !ok || l == LevelNone {
			return 0, 0, fmt.Errorf("unknown level %q of class %s", ln, cn)
		}
		return c, l, nil
	}
	return 0, 0, fmt.Errorf("unknown class %q", cn)
}

// Fields lists the fields a report can carry, in wire order of the format.
func Fields() []FieldInfo {
	p := planFor(reflect.TypeOf(body{}))
	out := make([]FieldInfo, len(p.fields))
	for i, f := range p.fields {
		out[i] = f.FieldInfo
	}
	return out
}

// checkFields is the single check on the way out: every field of the
// struct v points to must have a class, and every non-empty field must be
// granted at its level.
func checkFields(v reflect.Value, g Grants) error {
	p := planFor(v.Type())
	if p.err != nil {
		return p.err
	}
	for _, f := range p.fields {
		if v.Field(f.index).IsZero() {
			continue
		}
		if g.Level(f.Class) < f.MinLevel {
			return &FieldError{Type: v.Type().Name(), Field: f.name, Err: ErrNotGranted}
		}
	}
	return nil
}

var cborMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// encodeChecked encodes the struct *v after checkFields.
func encodeChecked(v any, g Grants, enc func(any) ([]byte, error)) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("privacy: encode report: %T is not a pointer to a struct", v)
	}
	if err := checkFields(rv.Elem(), g); err != nil {
		return nil, err
	}
	return enc(v)
}

// Report is what one recipient receives at one time: built only by
// Policy.View, sent only through Encode (CBOR) or MarshalJSON, both of which
// run the field check. Printing or logging a Report shows its recipient and
// classes, never its values.
type Report struct {
	recipient string
	grants    Grants
	padTo     int
	b         *body
}

// Recipient is the name of the recipient the report was built for.
func (r Report) Recipient() string { return r.recipient }

// Time is the report's time: the start of its schedule slot.
func (r Report) Time() time.Time {
	if r.b == nil {
		return time.Time{}
	}
	return time.Unix(r.b.T, 0).UTC()
}

// Carries maps each class the report carries to its precision, e.g.
// {location: "region:2km"}. Empty for an unknown recipient.
func (r Report) Carries() map[Class]string {
	out := map[Class]string{}
	if r.b == nil {
		return out
	}
	for _, c := range Classes() {
		if p, ok := r.b.Carries[c.String()]; ok {
			out[c] = p
		}
	}
	return out
}

// CarriesString lists the carried classes, e.g. "location=region:2km
// status=reachable", or "nothing".
func (r Report) CarriesString() string {
	c := r.Carries()
	if len(c) == 0 {
		return "nothing"
	}
	var parts []string
	for _, cl := range Classes() {
		if p, ok := c[cl]; ok {
			parts = append(parts, cl.String()+"="+p)
		}
	}
	return strings.Join(parts, " ")
}

// Padded reports whether Encode pads the report to a fixed size.
func (r Report) Padded() bool { return r.padTo > 0 }

// Encode returns the report as deterministic CBOR (RFC 8949 core
// deterministic encoding), padded to the recipient's fixed size when the
// policy asks for padding.
func (r Report) Encode() ([]byte, error) {
	if r.b == nil {
		return nil, ErrNoReport
	}
	b := *r.b
	b.Pad, b.PadAlt = nil, nil
	out, err := encodeChecked(&b, r.grants, cborMode.Marshal)
	if err != nil || r.padTo == 0 {
		return out, err
	}
	return padTo(&b, out, r.padTo, r.grants)
}

// padTo grows b with a zero byte string so that it encodes to exactly size
// bytes.
func padTo(b *body, unpadded []byte, size int, g Grants) ([]byte, error) {
	n := len(unpadded)
	// The map gains one entry; with fewer than 24 entries its header stays
	// one byte. Key "pad" costs 4 bytes, "pad_" 5.
	for _, alt := range []bool{false, true} {
		keyLen := 4
		if alt {
			keyLen = 5
		}
		need := size - n - keyLen // byte-string header + content
		l := -1
		switch {
		case need >= 1 && need <= 24:
			l = need - 1
		case need >= 26 && need <= 257:
			l = need - 2
		case need >= 259 && need <= 65538:
			l = need - 3
		}
		if l < 0 {
			continue
		}
		pad := make([]byte, l)
		if l == 0 {
			pad = []byte{} // present but empty: omitempty would drop it
		}
		if alt {
			b.PadAlt = pad
		} else {
			b.Pad = pad
		}
		out, err := encodeChecked(b, g, cborMode.Marshal)
		if err != nil {
			return nil, err
		}
		if len(out) == size {
			return out, nil
		}
		b.Pad, b.PadAlt = nil, nil
	}
	return nil, fmt.Errorf("privacy: encode report: %w (%d bytes, padded size %d)", ErrTooLarge, n, size)
}

// MarshalJSON renders the report for people and scripts (report preview):
// the same checked fields as Encode, without the padding bytes.
func (r Report) MarshalJSON() ([]byte, error) {
	if r.b == nil {
		return nil, ErrNoReport
	}
	b := *r.b
	b.Pad, b.PadAlt = nil, nil
	return encodeChecked(&b, r.grants, json.Marshal)
}

func (r Report) summary() string {
	if r.b == nil {
		return "privacy.Report{none}"
	}
	return fmt.Sprintf("privacy.Report{to=%q carries=%s}", r.recipient, r.CarriesString())
}

func (r Report) String() string   { return r.summary() }
func (r Report) GoString() string { return r.summary() }

// Format prints the summary for every verb: values never reach a log.
func (r Report) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.summary()) }

// LogValue logs recipient and classes only.
func (r Report) LogValue() slog.Value {
	return slog.GroupValue(slog.String("recipient", r.recipient), slog.String("carries", r.CarriesString()))
}

// View builds what recipient may receive of s: the only constructor of a
// non-empty Report. An unknown recipient gets an empty Report and an error
// wrapping ErrUnknownRecipient; nothing is to be sent to it.
func (p *Policy) View(recipient string, s Snapshot) (Report, error) {
	g, ok := p.Grants(recipient)
	if !ok {
		return Report{}, &RecipientError{recipient, ErrUnknownRecipient}
	}
	if s.Time.IsZero() {
		return Report{}, &RecipientError{recipient, errors.New("snapshot has no time")}
	}
	slot := int64(p.Slot() / time.Second)
	b := &body{V: ReportVersion, T: floorDiv(s.Time.Unix(), slot) * slot}

	if g.Status >= StatusReachable {
		r := s.Status.Reachable()
		b.Reachable = &r
	}
	if g.Status >= StatusFull {
		b.State = s.Status.String()
	}

	if loc := s.Location; loc != nil {
		m, err := p.maskLocation(recipient, g, *loc, s.Time)
		if err != nil {
			return Report{}, err
		}
		if m != nil {
			b.Lat, b.Lon = &m.Lat, &m.Lon
			if g.Location >= LocationPrecise {
				if m.AccuracyM > 0 {
					b.AccuracyM = &m.AccuracyM
				}
			} else {
				b.GridM = g.GridMeters
			}
		}
	}

	if c := s.Cell; c != nil && g.Cell >= CellTrackingArea {
		if !allDigits(c.MCC, 3, 3) || !allDigits(c.MNC, 2, 3) {
			return Report{}, &RecipientError{recipient, errors.New("cell has an invalid MCC or MNC")}
		}
		b.PLMN = c.MCC + c.MNC
		b.TAC, b.LAC = copyPtr(c.TAC), copyPtr(c.LAC)
		if g.Cell >= CellFull {
			b.CellID = copyPtr(c.CellID)
		}
	}

	if src := s.Identity; src != nil && g.Identity >= IdentityPseudonym {
		ps, err := src.Pseudonym(recipient)
		if err != nil {
			return Report{}, &RecipientError{recipient, fmt.Errorf("pseudonym: %w", err)}
		}
		if len(ps) > MaxPseudonymLen {
			return Report{}, &RecipientError{recipient, fmt.Errorf("pseudonym longer than %d bytes", MaxPseudonymLen)}
		}
		b.Pseudonym = ps
		if g.Identity >= IdentitySUCI {
			suci, err := src.SUCI()
			if err != nil {
				return Report{}, &RecipientError{recipient, fmt.Errorf("suci: %w", err)}
			}
			if len(suci) > MaxSUCILen {
				return Report{}, &RecipientError{recipient, fmt.Errorf("suci longer than %d bytes", MaxSUCILen)}
			}
			b.SUCI = suci
		}
	}

	if rd := s.Radio; rd != nil && g.Radio >= RadioFull {
		b.RSRP, b.RSRQ, b.SINR, b.RSSI = round1(rd.RSRPdBm), round1(rd.RSRQdB), round1(rd.SINRdB), round1(rd.RSSIdBm)
	}

	b.Carries = carries(b, g)
	r := Report{recipient: recipient, grants: g, b: b}
	if p.Padding {
		r.padTo = paddedSize(g)
	}
	return r, nil
}

// carries derives the class list from the fields actually present.
func carries(b *body, g Grants) map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(b).Elem()
	for _, f := range planFor(v.Type()).fields {
		if f.Class != ClassMeta && !v.Field(f.index).IsZero() {
			out[f.Class.String()] = g.Precision(f.Class)
		}
	}
	return out
}

var paddedSizes sync.Map // Grants -> int

// paddedSize is the fixed size of every padded report to a recipient with
// grants g: the largest report those grants allow, plus room for the pad
// header, rounded up to 32 bytes.
func paddedSize(g Grants) int {
	if v, ok := paddedSizes.Load(g); ok {
		return v.(int)
	}
	f := 1.0 / 3 // needs a full float64
	u32, u64 := uint32(math.MaxUint32), uint64(1)<<36-1
	tr := true
	b := &body{V: ReportVersion, T: math.MaxInt64, Carries: map[string]string{}}
	for _, c := range Classes() {
		if g.Level(c) > LevelNone {
			b.Carries[c.String()] = g.Precision(c)
		}
	}
	if g.Status >= StatusReachable {
		b.Reachable = &tr
	}
	if g.Status >= StatusFull {
		b.State = longestStatus()
	}
	if g.Location > LevelNone {
		b.Lat, b.Lon, b.GridM, b.AccuracyM = &f, &f, g.GridMeters, &f
	}
	if g.Cell > LevelNone {
		b.PLMN, b.TAC, b.LAC, b.CellID = "999999", &u32, &u32, &u64
	}
	if g.Identity > LevelNone {
		b.Pseudonym, b.SUCI = strings.Repeat("x", MaxPseudonymLen), strings.Repeat("x", MaxSUCILen)
	}
	if g.Radio > LevelNone {
		b.RSRP, b.RSRQ, b.SINR, b.RSSI = &f, &f, &f, &f
	}
	out, err := cborMode.Marshal(b)
	if err != nil {
		panic("privacy: worst-case report does not encode: " + err.Error())
	}
	n := (len(out) + 8 + 31) / 32 * 32
	paddedSizes.Store(g, n)
	return n
}

func longestStatus() string {
	s := append([]string(nil), statusNames...)
	sort.Slice(s, func(i, j int) bool { return len(s[i]) > len(s[j]) })
	return s[0]
}

func validLocation(l Location) bool {
	return l.Lat >= -90 && l.Lat <= 90 && l.Lon >= -180 && l.Lon <= 180 // false for NaN
}

func allDigits(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func round1(p *float64) *float64 {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return nil
	}
	v := math.Round(*p*10) / 10
	return &v
}

// MaskLocation returns loc as recipient may see it at time t: nil when its
// grants (or the device class) allow no location, snapped to its grid with
// the device's secret offset for "region" (AccuracyM is then the grid
// size), rounded to 6 decimals for "precise". Reports and the MDT log use
// the same masking, so a position never leaves more precise one way than
// the other.
func (p *Policy) MaskLocation(recipient string, loc Location, t time.Time) (*Location, error) {
	g, ok := p.Grants(recipient)
	if !ok {
		return nil, nil
	}
	return p.maskLocation(recipient, g, loc, t)
}

func (p *Policy) maskLocation(recipient string, g Grants, loc Location, t time.Time) (*Location, error) {
	if g.Location == LevelNone || !validLocation(loc) {
		return nil, nil
	}
	if g.Location >= LocationPrecise {
		acc := math.Round(loc.AccuracyM)
		if acc <= 0 || math.IsInf(acc, 0) {
			acc = 0
		}
		return &Location{Lat: round6(loc.Lat), Lon: round6(loc.Lon), AccuracyM: acc}, nil
	}
	if p.mask == nil {
		return nil, &RecipientError{recipient, ErrNoSecret}
	}
	lat, lon := p.mask.Region(loc, g.GridMeters, t)
	return &Location{Lat: lat, Lon: lon, AccuracyM: float64(g.GridMeters)}, nil
}

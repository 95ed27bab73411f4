package atmodem

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mtcagent/mtcagent/atmodem/transcript"
)

// The fuzz targets are seeded from the table tests (every string literal of
// parse_test.go) and from the transcript corpus (every line the modem sends
// in testdata/*.txt; the line splitter's own target is package at's). Run
// one with: go test ./atmodem -run '^$' -fuzz FuzzParseRegistration

var (
	seedOnce  sync.Once
	seedLines []string
)

func loadSeeds(tb testing.TB) {
	seedOnce.Do(func() {
		set := map[string]bool{}
		fs := token.NewFileSet()
		file, err := parser.ParseFile(fs, "parse_test.go", nil, 0)
		if err != nil {
			tb.Fatalf("seeds from parse_test.go: %v", err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && s != "" && len(s) < 512 {
					set[s] = true
				}
			}
			return true
		})
		paths, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
		for _, p := range paths {
			tr, err := transcript.Load(p)
			if err != nil {
				tb.Fatalf("seeds: %v", err)
			}
			wire := tr.ModemBytes()
			for _, l := range strings.FieldsFunc(string(wire), func(r rune) bool { return r == '\r' || r == '\n' }) {
				set[l] = true
			}
		}
		// And every reply line of the parser corpus (testdata/cases).
		cases, _ := filepath.Glob(filepath.Join("testdata", "cases", "*.txt"))
		for _, p := range cases {
			b, err := os.ReadFile(p)
			if err != nil {
				tb.Fatalf("seeds: %v", err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "in: "); ok && v != "" {
					set[v] = true
				}
			}
		}
		for s := range set {
			seedLines = append(seedLines, s)
		}
		sort.Strings(seedLines)
	})
	if len(seedLines) == 0 {
		tb.Fatal("no fuzz seeds")
	}
}

func addLines(f *testing.F) {
	loadSeeds(f)
	for _, l := range seedLines {
		f.Add(l)
	}
}

// renderReg writes r back as 27.007 prints it: the query reply with <n>=2,
// or the URC.
func renderReg(d Domain, r *Registration, query bool) string {
	var b strings.Builder
	b.WriteString(d.Command() + ": ")
	if query {
		b.WriteString("2,")
	}
	fmt.Fprintf(&b, "%d", r.Stat)
	area := r.LAC
	if d == DomainEPS || d == Domain5GS {
		area = r.TAC
	}
	if area == nil && r.CellID == nil && r.AcT == nil {
		return b.String()
	}
	b.WriteString(",")
	if area != nil {
		fmt.Fprintf(&b, `"%04X"`, *area)
	}
	b.WriteString(",")
	if r.CellID != nil {
		fmt.Fprintf(&b, `"%08X"`, *r.CellID)
	}
	if r.AcT != nil {
		fmt.Fprintf(&b, ",%d", *r.AcT)
	}
	return b.String()
}

func FuzzParseRegistration(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, line string) {
		IsRegQueryReply(line)
		for _, query := range []bool{false, true} {
			d, r, err := ParseRegistration(line, query)
			if err != nil {
				continue
			}
			if r == nil || r.Stat < 0 || r.Stat > 11 || r.State != StatWord(r.Stat) {
				t.Fatalf("ParseRegistration(%q, %v) = %s", line, query, regString(r))
			}
			if (d == DomainEPS || d == Domain5GS) && r.LAC != nil || (d == DomainCS || d == DomainPS) && r.TAC != nil {
				t.Fatalf("area code in the wrong field for %s: %s", d, regString(r))
			}
			for _, q := range []bool{false, true} {
				again := renderReg(d, r, q)
				d2, r2, err := ParseRegistration(again, q)
				if err != nil || d2 != d || regString(r2) != regString(r) {
					t.Fatalf("round trip of %q via %q: %s, %v; want %s", line, again, regString(r2), err, regString(r))
				}
				if IsRegQueryReply(again) != q {
					t.Fatalf("IsRegQueryReply(%q) = %v", again, !q)
				}
			}
		}
	})
}

func FuzzParseCOPS(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, line string) {
		op, err := ParseCOPS(line)
		if err != nil {
			return
		}
		if (op.MCC == nil) != (op.MNC == nil) || op.MCC != nil && op.Name != nil {
			t.Fatalf("ParseCOPS(%q): half an operator", line)
		}
		var again string
		switch {
		case op.MCC != nil:
			again = fmt.Sprintf(`+COPS: 0,2,"%s%s",7`, *op.MCC, *op.MNC)
		case op.Name != nil && !strings.Contains(*op.Name, `"`):
			again = fmt.Sprintf(`+COPS: 0,0,"%s",7`, *op.Name)
		default:
			return
		}
		op2, err := ParseCOPS(again)
		if err != nil || opt(op2.MCC) != opt(op.MCC) || opt(op2.MNC) != opt(op.MNC) || opt(op2.Name) != opt(op.Name) {
			t.Fatalf("round trip of %q via %q failed: %v", line, again, err)
		}
	})
}

func FuzzSplitPLMN(f *testing.F) {
	for _, s := range []string{"00101", "001010", "001-01", "001 01", "", "0010", "abcde", "٠٠١٠١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mcc, mnc, err := SplitPLMN(s)
		if err != nil {
			return
		}
		if len(mcc) != 3 || len(mnc) < 2 || len(mnc) > 3 || strings.Trim(mcc+mnc, "0123456789") != "" {
			t.Fatalf("SplitPLMN(%q) = %q, %q", s, mcc, mnc)
		}
		m2, n2, err := SplitPLMN(mcc + "-" + mnc)
		if err != nil || m2 != mcc || n2 != mnc {
			t.Fatalf("round trip of %q: %q %q %v", s, m2, n2, err)
		}
	})
}

func FuzzParseCSQ(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParseCSQ(line)
		if err != nil {
			return
		}
		rssi, ber := 99, 99
		if s.RSSIdBm != nil {
			v := *s.RSSIdBm
			switch {
			case v >= -113 && v <= -51 && (v+113)%2 == 0:
				rssi = (v + 113) / 2
			case v >= -116 && v <= -25:
				rssi = v + 216
			default:
				t.Fatalf("ParseCSQ(%q): RSSI %d dBm out of range", line, v)
			}
		}
		if s.BER != nil {
			ber = *s.BER
		}
		again := fmt.Sprintf("+CSQ: %d,%d", rssi, ber)
		s2, err := ParseCSQ(again)
		if err != nil || sigString(s2) != sigString(s) {
			t.Fatalf("round trip of %q via %q: %s, want %s", line, again, sigString(s2), sigString(s))
		}
	})
}

func FuzzParseCESQ(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParseCESQ(line)
		if err != nil {
			return
		}
		rxlev, ber, rsrq, rsrp := 99, 99, 255, 255
		if s.RSSIdBm != nil {
			rxlev = *s.RSSIdBm + 111
		}
		if s.BER != nil {
			ber = *s.BER
		}
		if s.RSRQdB != nil {
			rsrq = int((*s.RSRQdB + 20) * 2)
		}
		if s.RSRPdBm != nil {
			rsrp = *s.RSRPdBm + 141
		}
		again := fmt.Sprintf("+CESQ: %d,%d,255,255,%d,%d", rxlev, ber, rsrq, rsrp)
		s2, err := ParseCESQ(again)
		if err != nil || sigString(s2) != sigString(s) {
			t.Fatalf("round trip of %q via %q: %s, want %s", line, again, sigString(s2), sigString(s))
		}
	})
}

func FuzzParseCPIN(f *testing.F) {
	addLines(f)
	known := map[string]bool{SIMReady: true, SIMPIN: true, SIMPUK: true, SIMAbsent: true, SIMNotReady: true}
	for _, w := range SIMStates() {
		known[w] = true
	}
	f.Fuzz(func(t *testing.T, line string) {
		st, err := ParseCPIN(line)
		if err == nil && !known[st] {
			t.Fatalf("ParseCPIN(%q) = %q", line, st)
		}
	})
}

// Identifier targets take several lines joined by "\n". Failures never
// print the identifier, only its length.

func FuzzParseSerial(f *testing.F) {
	addLines(f)
	f.Add("+CGSN: \"350000000000001\"\nOK")
	f.Fuzz(func(t *testing.T, text string) {
		id, err := ParseSerial(strings.Split(text, "\n"))
		if err != nil {
			return
		}
		id2, err := ParseSerial([]string{"+CGSN: " + id.Reveal()})
		if err != nil || !id2.Equal(id) {
			t.Fatalf("IMEI of %d characters does not round-trip", len(id.Reveal()))
		}
	})
}

func FuzzParseCIMI(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, text string) {
		id, err := ParseCIMI(strings.Split(text, "\n"))
		if err != nil {
			return
		}
		id2, err := ParseCIMI([]string{id.Reveal()})
		if err != nil || !id2.Equal(id) {
			t.Fatalf("IMSI of %d characters does not round-trip", len(id.Reveal()))
		}
	})
}

func FuzzParseICCIDLines(f *testing.F) {
	addLines(f)
	f.Add("+QCCID: 8900100000000000001F")
	f.Add("+ICCID: " + swapBCD("8900100000000000001"))
	f.Fuzz(func(t *testing.T, text string) {
		id, err := ParseICCIDLines(strings.Split(text, "\n"))
		if err != nil {
			return
		}
		for _, l := range []string{"+CCID: " + id.Reveal(), `+QCCID: "` + id.Reveal() + `"`} {
			id2, err := ParseICCIDLines([]string{l})
			if err != nil || !id2.Equal(id) {
				t.Fatalf("ICCID of %d characters does not round-trip", len(id.Reveal()))
			}
		}
	})
}

func FuzzParseCRSMICCID(f *testing.F) {
	addLines(f)
	f.Add(`+CRSM: 144,0,"` + swapBCD("8900100000000000001") + `"`)
	f.Add(`+CRSM: 144,0,"` + swapBCD("89001000000000000018") + `"`)
	f.Fuzz(func(t *testing.T, line string) {
		id, err := ParseCRSMICCID(line)
		if err != nil {
			return
		}
		s := id.Reveal()
		if len(s) > 20 {
			t.Fatalf("ICCID of %d characters from 10 bytes", len(s))
		}
		id2, err := ParseCRSMICCID(`+CRSM: 144,0,"` + swapBCD(s) + `"`)
		if err != nil || !id2.Equal(id) {
			t.Fatalf("ICCID of %d characters does not round-trip through EF_ICCID", len(s))
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseInfo(strings.Split(text, "\n"), "+CGMI:")
		if err != nil {
			return
		}
		if s == "" {
			t.Fatal("ParseInfo gave an empty reading without an error")
		}
		// A plain word (printable, no space, quote or colon) comes back as
		// it is.
		plain := func(w string) bool {
			for i := 0; i < len(w); i++ {
				if c := w[i]; c <= ' ' || c >= 0x7f || c == '"' || c == ':' {
					return false
				}
			}
			return w != ""
		}
		if w := strings.TrimLeft(s, "+"); plain(w) && !isURCLine(w) {
			if s2, err := ParseInfo([]string{w}, "+CGMI:"); err != nil || s2 != w {
				t.Fatalf("ParseInfo(%q) = %q, %v", w, s2, err)
			}
		}
	})
}

var cellStates = map[string]bool{"idle": true, "connected": true, "limited": true, "searching": true, "unknown": true}

func FuzzParseQENG(f *testing.F) {
	addLines(f)
	f.Add("+QENG: \"servingcell\",\"NOCONN\"\n+QENG: \"LTE\",\"FDD\",001,01,1A2D101,123,1300,3,5,5,1A2B,-95,-9,-71,15,0,-,62\n+QENG: \"NR5G-NSA\",001,01,501,-85,20,-11,627264,78,12,1")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseQENG(strings.Split(text, "\n"))
		if err != nil {
			return
		}
		if c == nil || !cellStates[c.State] {
			t.Fatalf("ParseQENG: %s", cellString(c))
		}
	})
}

func FuzzParseCPSI(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCPSI(line)
		if err != nil {
			return
		}
		if c == nil || !cellStates[c.State] {
			t.Fatalf("ParseCPSI(%q): %s", line, cellString(c))
		}
		if c.RAT != "lte" || c.MCC == nil || c.TAC == nil || c.CellID == nil {
			return
		}
		again := fmt.Sprintf("+CPSI: LTE,Online,%s-%s,0x%04X,%d", *c.MCC, *c.MNC, *c.TAC, *c.CellID)
		c2, err := ParseCPSI(again)
		if err != nil || opt(c2.MCC) != opt(c.MCC) || opt(c2.MNC) != opt(c.MNC) || optHex(c2.TAC) != optHex(c.TAC) || optHex(c2.CellID) != optHex(c.CellID) {
			t.Fatalf("round trip of %q via %q: %s", line, again, cellString(c2))
		}
	})
}

func FuzzDialectFor(f *testing.F) {
	f.Add("Quectel", "EC25")
	f.Add("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H")
	f.Add("", "SIM7080G")
	f.Add("Telit", "LE910C4")
	f.Fuzz(func(t *testing.T, manufacturer, model string) {
		d := DialectFor(manufacturer, model)
		if d == nil || Dialects[d.Name] != d || DialectFor(manufacturer, model) != d {
			t.Fatalf("DialectFor(%q, %q) = %v", manufacturer, model, d)
		}
	})
}

// FuzzVendorCells runs every dialect's serving-cell parser (issue 13's
// u-blox, Telit, Sierra, Nordic, Fibocom and Huawei among them) on
// arbitrary lines: no panic, a known state, sane numbers.
func FuzzVendorCells(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, text string) {
		lines := strings.Split(text, "\n")
		for name, d := range Dialects {
			if d.ParseCell == nil {
				continue
			}
			c, err := d.ParseCell(lines)
			if err != nil {
				continue
			}
			if c == nil || !cellStates[c.State] {
				t.Fatalf("%s cell of %q: %s", name, text, cellString(c))
			}
			if c.TAC != nil && *c.TAC > 0xffffffff || c.LAC != nil && *c.LAC > 0xffffffff {
				t.Fatalf("%s area code out of range", name)
			}
		}
		for name, d := range Dialects {
			if d.ParseSignal == nil {
				continue
			}
			s, err := d.ParseSignal(lines)
			if err != nil {
				continue
			}
			if s.RSRPdBm != nil && (*s.RSRPdBm < -141 || *s.RSRPdBm > -44) || s.RSSIdBm != nil && (*s.RSSIdBm < -121 || *s.RSSIdBm > -25) {
				t.Fatalf("%s signal of %q: %s", name, text, sigString(s))
			}
		}
	})
}

// FuzzParseRegistrationAs reads lines with and without their prefix.
func FuzzParseRegistrationAs(f *testing.F) {
	addLines(f)
	f.Fuzz(func(t *testing.T, line string) {
		for _, d := range Domains {
			for _, q := range []bool{false, true} {
				r, err := ParseRegistrationAs(d, line, q)
				if err != nil {
					continue
				}
				if r == nil || r.Stat < 0 || r.Stat > 11 || r.State != StatWord(r.Stat) {
					t.Fatalf("ParseRegistrationAs(%s, %q, %v) = %s", d, line, q, regString(r))
				}
				// The same line with its prefix reads the same.
				if _, ok := DomainOf(line); !ok {
					r2, err := ParseRegistrationAs(d, d.Command()+": "+line, q)
					if err != nil || regString(r2) != regString(r) {
						t.Fatalf("%q with prefix: %s, %v; without: %s", line, regString(r2), err, regString(r))
					}
				}
			}
		}
	})
}

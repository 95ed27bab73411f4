package atmodem_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/atmodem"
)

// corpusCase is one case of testdata/cases (README.md there).
type corpusCase struct {
	file, name, source, kind, parse, dialect, domain, want string
	in                                                     []string
	line                                                   int
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in testdata/cases: %v", err)
	}
	sort.Strings(files)
	var out []corpusCase
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		var cur *corpusCase
		n := 0
		flush := func() {
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
		}
		for sc.Scan() {
			n++
			l := sc.Text()
			if strings.HasPrefix(l, "#") {
				continue
			}
			if strings.TrimSpace(l) == "" {
				flush()
				continue
			}
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				t.Fatalf("%s:%d: want key: value", path, n)
			}
			v = strings.TrimPrefix(v, " ")
			if cur == nil {
				if k != "case" {
					t.Fatalf("%s:%d: a case starts with case:", path, n)
				}
				cur = &corpusCase{file: filepath.Base(path), line: n}
			}
			switch k {
			case "case":
				cur.name = v
			case "source":
				cur.source = v
			case "kind":
				cur.kind = v
			case "parse":
				cur.parse = v
			case "dialect":
				cur.dialect = v
			case "domain":
				cur.domain = v
			case "in":
				cur.in = append(cur.in, v)
			case "want":
				cur.want = v
			default:
				t.Fatalf("%s:%d: unknown key %q", path, n, k)
			}
		}
		flush()
		f.Close()
	}
	return out
}

func optNum[T int | float64](p *T) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}

func sigReading(s atmodem.Signal) string {
	return fmt.Sprintf("rssi=%s ber=%s rsrp=%s rsrq=%s", optNum(s.RSSIdBm), optNum(s.BER), optNum(s.RSRPdBm), optNum(s.RSRQdB))
}

// corpusCell is cellReading, with "?" for a radio the reply does not name.
func corpusCell(c *atmodem.ServingCell) string {
	if c != nil && c.RAT == "" && c.State != "searching" {
		cc := *c
		cc.RAT = "?"
		return cellReading(&cc)
	}
	return cellReading(c)
}

// urcKind names what a dialect makes of an unsolicited line.
func urcKind(d *atmodem.Dialect, line string) string {
	best, kind := -1, atmodem.URCNone
	for p, k := range d.URCs {
		if strings.HasPrefix(line, p) && len(p) > best {
			best, kind = len(p), k
		}
	}
	if best < 0 {
		return "not_urc"
	}
	return map[atmodem.URCKind]string{atmodem.URCNone: "none", atmodem.URCReset: "reset",
		atmodem.URCSIMChanged: "sim_changed", atmodem.URCSIMRemoved: "sim_removed"}[kind]
}

// run reads a case through the parser it names and renders the reading.
func (c corpusCase) run() (string, error) {
	errOr := func(s string, err error) (string, error) {
		if err != nil {
			return "error", nil
		}
		return s, nil
	}
	first := ""
	if len(c.in) > 0 {
		first = c.in[0]
	}
	dialect := atmodem.Dialects[c.dialect]
	switch c.parse {
	case "reg-query", "reg-urc":
		query := c.parse == "reg-query" || atmodem.IsRegQueryReply(first)
		var r *atmodem.Registration
		var err error
		if c.domain != "" {
			r, err = atmodem.ParseRegistrationAs(atmodem.Domain(c.domain), first, query)
		} else {
			_, r, err = atmodem.ParseRegistration(first, query)
		}
		return errOr(regReading(r), err)
	case "cpin":
		return errOr(atmodem.ParseCPIN(first))
	case "iccid":
		id, err := atmodem.ParseICCIDLines(c.in)
		return errOr(id.Reveal(), err)
	case "crsm":
		id, err := atmodem.ParseCRSMICCID(first)
		return errOr(id.Reveal(), err)
	case "imei":
		id, err := atmodem.ParseSerial(c.in)
		return errOr(id.Reveal(), err)
	case "imsi":
		id, err := atmodem.ParseCIMI(c.in)
		return errOr(id.Reveal(), err)
	case "csq":
		s, err := atmodem.ParseCSQ(first)
		return errOr(sigReading(s), err)
	case "cesq":
		s, err := atmodem.ParseCESQ(first)
		return errOr(sigReading(s), err)
	case "cops":
		op, err := atmodem.ParseCOPS(first)
		plmn := "none"
		if op.MCC != nil {
			plmn = *op.MCC + *op.MNC
		}
		return errOr(fmt.Sprintf("plmn=%s name=%s", plmn, optStr(op.Name)), err)
	case "cell":
		if dialect == nil || dialect.ParseCell == nil {
			return "", fmt.Errorf("dialect %q has no cell parser", c.dialect)
		}
		cell, err := dialect.ParseCell(c.in)
		return errOr(corpusCell(cell), err)
	case "signal":
		if dialect == nil || dialect.ParseSignal == nil {
			return "", fmt.Errorf("dialect %q has no signal parser", c.dialect)
		}
		s, err := dialect.ParseSignal(c.in)
		return errOr(sigReading(s), err)
	case "urc":
		if dialect == nil {
			return "", fmt.Errorf("no dialect %q", c.dialect)
		}
		return urcKind(dialect, first), nil
	case "dialect":
		man, model, ok := strings.Cut(first, "|")
		if !ok {
			return "", fmt.Errorf("dialect case wants 'manufacturer | model'")
		}
		return atmodem.DialectFor(strings.TrimSpace(man), strings.TrimSpace(model)).Name, nil
	}
	return "", fmt.Errorf("unknown parse %q", c.parse)
}

func optStr(p *string) string {
	if p == nil {
		return "none"
	}
	return *p
}

// corpusFictional: the identifiers a corpus case may hold (test PLMN
// 001-01 IMSIs, IMEIs with the test TAC 00000000, ICCIDs 89001... and
// their swapped form).
var corpusFictional = []string{"00101", "00000000", "890010", "980001"}

var corpusDigits = regexp.MustCompile(`[0-9]{14,}`)

// TestCorpusCases replays every case of testdata/cases through its parser.
func TestCorpusCases(t *testing.T) {
	cases := loadCorpus(t)
	families := map[string]int{}
	seen := map[string]bool{}
	for _, c := range cases {
		id := strings.TrimSuffix(c.file, ".txt") + "/" + c.name
		families[strings.TrimSuffix(c.file, ".txt")]++
		t.Run(id, func(t *testing.T) {
			where := fmt.Sprintf("%s:%d", c.file, c.line)
			if c.name == "" || seen[id] {
				t.Fatalf("%s: missing or repeated case name", where)
			}
			seen[id] = true
			if c.source == "" {
				t.Errorf("%s: no source", where)
			}
			if c.kind != "synthetic" && !strings.HasPrefix(c.kind, "real") {
				t.Errorf("%s: kind %q, want real or synthetic", where, c.kind)
			}
			if len(c.in) == 0 || c.want == "" {
				t.Fatalf("%s: want in: and want:", where)
			}
			for _, l := range append(append([]string{}, c.in...), c.want) {
				for _, d := range corpusDigits.FindAllString(l, -1) {
					ok := false
					for _, p := range corpusFictional {
						ok = ok || strings.HasPrefix(d, p)
					}
					if !ok {
						t.Fatalf("%s: a %d-digit number that is not a fictional test identifier", where, len(d))
					}
				}
			}
			got, err := c.run()
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if got != c.want {
				secret := c.parse == "iccid" || c.parse == "crsm" || c.parse == "imei" || c.parse == "imsi"
				if secret {
					t.Errorf("%s: %s reading differs from want (%d vs %d characters)", where, c.parse, len(got), len(c.want))
				} else {
					t.Errorf("%s:\n got %s\nwant %s", where, got, c.want)
				}
			}
		})
	}
	if len(cases) < 150 || len(families) < 8 {
		t.Errorf("corpus has %d cases in %d families, want at least 150 in 8", len(cases), len(families))
	}
}

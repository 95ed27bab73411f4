package privacy

import (
	"bytes"
	"encoding/hex"
	"strings"
)

// Hit is one occurrence of an identifier in scanned data. It names the
// identifier by its position in the ids argument, never by its digits.
type Hit struct {
	ID     int    // index into ids
	Offset int    // byte offset in data
	Form   string // "ascii", "ascii-tail", "tbcd", "tbcd-hex", "ascii-hex"
}

// tailDigits is how many trailing digits of an identifier are searched on
// their own: the MSIN of an IMSI, a serial without its issuer prefix.
const tailDigits = 10

// ScanForIdentifiers looks for each identifier (a digit string such as an
// IMSI, ICCID or IMEI) in data, in the forms it can take on the wire or in
// a log: the digits as text, their last tailDigits digits as text, packed
// TBCD (nibble-swapped, as in SIM files and NAS), TBCD or ASCII written as
// hex. It is meant for tests that prove a session leaks no identifier.
func ScanForIdentifiers(data []byte, ids ...string) []Hit {
	var hits []Hit
	lower := bytes.ToLower(data)
	for i, id := range ids {
		if len(id) < 6 {
			continue // too short to tell from noise
		}
		forms := []scanForm{
			{"ascii", []byte(id), data},
			{"ascii-hex", []byte(hex.EncodeToString([]byte(id))), lower},
		}
		if len(id) > tailDigits {
			forms = append(forms, scanForm{"ascii-tail", []byte(id[len(id)-tailDigits:]), data})
		}
		if t, ok := tbcd(id); ok {
			forms = append(forms,
				scanForm{"tbcd", t, data},
				scanForm{"tbcd-hex", []byte(hex.EncodeToString(t)), lower})
		}
		seen := map[int]bool{} // a tail hit inside a full hit is one hit
		for _, f := range forms {
			for off := 0; ; {
				j := bytes.Index(f.hay[off:], f.pat)
				if j < 0 {
					break
				}
				at := off + j
				if f.name != "ascii-tail" || !seen[at-(len(id)-tailDigits)] {
					hits = append(hits, Hit{ID: i, Offset: at, Form: f.name})
				}
				if f.name == "ascii" {
					seen[at] = true
				}
				off = at + 1
			}
		}
	}
	return hits
}

type scanForm struct {
	name     string
	pat, hay []byte
}

// tbcd packs the digits two per byte, low nibble first, padding an odd
// count with 0xF. Only the complete bytes are returned, so the pattern
// does not depend on the padding.
func tbcd(id string) ([]byte, bool) {
	if strings.Trim(id, "0123456789") != "" {
		return nil, false
	}
	out := make([]byte, 0, len(id)/2)
	for i := 0; i+1 < len(id); i += 2 {
		out = append(out, (id[i]-'0')|(id[i+1]-'0')<<4)
	}
	return out, len(out) >= 3
}

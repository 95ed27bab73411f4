package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// JSON is the verified token as `mtcagent verify --json` prints it: valid,
// freshness, and every claim under its name (null when absent). Part of the
// command's output contract (docs/attestation.md).
func (r *Result) JSON() map[string]any {
	t := r.Token
	var iat any
	if !t.IssuedAt.IsZero() {
		iat = t.IssuedAt.Format(time.RFC3339)
	}
	unknown := make([]int64, len(t.Unknown))
	copy(unknown, t.Unknown)
	return map[string]any{
		"valid":     true,
		"freshness": r.Freshness,
		"claims": map[string]any{
			"kind":                 t.Kind.String(),
			"seq":                  t.Seq,
			"clock_synced":         t.ClockSynced,
			"iat":                  iat,
			"bootcount":            t.BootCount,
			"nonce":                hexOrNil(t.Nonce),
			"ueid":                 hexOrNil(t.UEID),
			"hwmodel":              strOrNil(t.HWModel),
			"swversion":            strOrNil(t.SWVersion),
			"imsi_pseudonym":       hexOrNil(t.Pseudonyms.IMSI),
			"iccid_pseudonym":      hexOrNil(t.Pseudonyms.ICCID),
			"old_imsi_pseudonym":   hexOrNil(t.Old.IMSI),
			"old_iccid_pseudonym":  hexOrNil(t.Old.ICCID),
			"suci":                 strOrNil(t.SUCI),
			"event":                strOrNil(t.Event),
			"unknown_claim_labels": unknown,
		},
		"format": uint8(t.Format),
	}
}

func hexOrNil(b []byte) any {
	if b == nil {
		return nil
	}
	return hex.EncodeToString(b)
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// DecodeTokenText accepts a token as raw CBOR, hex or base64 (standard or
// URL, padded or not), since tokens travel through text channels too;
// anything else is returned as it is, for Verify to refuse.
func DecodeTokenText(raw []byte) []byte {
	if len(raw) > 0 && raw[0] == 0xd2 {
		return raw
	}
	s := strings.Join(strings.Fields(string(raw)), "")
	if b, err := hex.DecodeString(s); err == nil {
		return b
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return raw
}

// WriteText prints the verified token for a person, as `mtcagent verify`
// does: kind, sequence, freshness, then each claim present. Text from the
// token goes through printable, so a signed but hostile token cannot move
// the terminal's cursor.
func (res *Result) WriteText(w io.Writer) {
	t := res.Token
	fmt.Fprintf(w, "verified: %s token, sequence %d\n", t.Kind, t.Seq)
	fmt.Fprintf(w, "freshness: %s\n", res.Freshness)
	line := func(name, val string) {
		if val != "" {
			fmt.Fprintf(w, "  %-20s %s\n", name, val)
		}
	}
	if !t.IssuedAt.IsZero() {
		note := "clock synchronised"
		if !t.ClockSynced {
			note = "clock NOT synchronised: not trusted"
		}
		line("iat", t.IssuedAt.Format(time.RFC3339)+" ("+note+")")
	} else if !t.ClockSynced {
		line("iat", "- (clock NOT synchronised)")
	}
	if t.BootCount > 0 {
		line("bootcount", strconv.FormatUint(t.BootCount, 10))
	}
	line("nonce", hex.EncodeToString(t.Nonce))
	if len(t.UEID) > 0 {
		kind := "other"
		switch t.UEID[0] {
		case UEIDTypeRAND:
			kind = "RAND, per recipient"
		case UEIDTypeIMEI:
			kind = "IMEI"
		}
		line("ueid", hex.EncodeToString(t.UEID)+" ("+kind+")")
	}
	line("hwmodel", printable(t.HWModel))
	line("swversion", printable(t.SWVersion))
	line("event", printable(t.Event))
	line("imsi pseudonym", hex.EncodeToString(t.Pseudonyms.IMSI))
	line("iccid pseudonym", hex.EncodeToString(t.Pseudonyms.ICCID))
	line("old imsi pseudonym", hex.EncodeToString(t.Old.IMSI))
	line("old iccid pseudonym", hex.EncodeToString(t.Old.ICCID))
	line("suci", printable(t.SUCI))
	if t.Kind == KindBinding && len(t.Pseudonyms.IMSI) == 0 {
		line("sim", "none (no SIM pseudonyms in the token)")
	}
	if len(t.Unknown) > 0 {
		line("unknown claims", fmt.Sprint(t.Unknown))
	}
}

// printable keeps control characters from a signed but hostile token off
// the operator's terminal.
func printable(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

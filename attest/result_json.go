package attest

import (
	"encoding/base64"
	"encoding/hex"
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

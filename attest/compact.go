package attest

import (
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// Format is how a token's claims are laid out. The COSE envelope is the
// same in both (tag 18, protected header {1: -8}, nothing unprotected, a
// 64-byte Ed25519 signature); a verifier reads both, and a token says
// which it is by its claims (issue 16).
type Format uint8

// Claims formats.
const (
	// FormatLabels (1): every private claim under its own label below
	// -65536 (five bytes of label each), the event name as text.
	FormatLabels Format = 1
	// FormatCompact (2): the private claims in one map under
	// LabelPrivate, each under the one-byte key k = -65536 - label
	// (kind 1, seq 2, clock synchronised 3, ... the agent's details 24),
	// and a known event name as its code in EventCodes. Public claims
	// (iat, nonce, ueid, hwmodel, bootcount, swversion) are unchanged.
	FormatCompact Format = 2
)

// LabelPrivate holds the private claims of a FormatCompact token: a map
// whose keys are unsigned integers k standing for label -65536 - k. It is
// the only label below -65536 in such a token.
const LabelPrivate int64 = -65546

// EventCodes are the event names a FormatCompact token carries as a
// number (one byte of CBOR instead of the name). The table is fixed for
// format 2: a name not in it is sent as text, and a code not in it is
// refused (a verifier cannot tell what it means).
var EventCodes = map[string]uint64{
	"agent_started":         1,
	"sim_bound":             2,
	"sim_removed":           3,
	"sim_changed":           4,
	"sim_restored":          5,
	"cell_changed":          6,
	"cell_flapping":         7,
	"connectivity_lost":     8,
	"connectivity_restored": 9,
	"misaligned_access":     10,
	"config_changed":        11,
	"firmware_changed":      12,
	"modem_reset":           13,
	"port_lost":             14,
	"port_regained":         15,
	"storage_gap":           16,
	"trigger_accepted":      17,
	"trigger_refused":       18,
}

var eventNames = func() map[uint64]string {
	m := make(map[uint64]string, len(EventCodes))
	for n, c := range EventCodes {
		m[c] = n
	}
	return m
}()

// privateKey is the FormatCompact key of a private label, 0 for a label
// that is not private.
func privateKey(label int64) uint64 {
	if label >= -65536 || label == LabelPrivate {
		return 0
	}
	return uint64(-65536 - label)
}

// String returns "1 (labels)" or "2 (compact)".
func (f Format) String() string {
	switch f {
	case FormatLabels:
		return "1 (labels)"
	case FormatCompact:
		return "2 (compact)"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// encodeClaims lays the claims map m out in format f.
func encodeClaims(f Format, m map[int64]any) ([]byte, error) {
	if f != FormatCompact {
		return claimEnc.Marshal(m)
	}
	out := make(map[int64]any, len(m))
	priv := map[uint64]any{}
	for l, v := range m {
		k := privateKey(l)
		if k == 0 {
			out[l] = v
			continue
		}
		if l == LabelEvent {
			if c, ok := EventCodes[v.(string)]; ok {
				v = c
			}
		}
		priv[k] = v
	}
	out[LabelPrivate] = priv
	return claimEnc.Marshal(out)
}

// expandClaims turns a FormatCompact claims map into the labels of format
// 1 (the private map's keys back to their labels) and says which format
// the map was in. A compact token has no other private label, and no key
// 0 nor the key of LabelPrivate itself.
func expandClaims(m map[int64]cbor.RawMessage) (Format, error) {
	raw, ok := m[LabelPrivate]
	if !ok {
		return FormatLabels, nil
	}
	for l := range m {
		if l < -65536 && l != LabelPrivate {
			return 0, fmt.Errorf("claim %d beside the compact private claims %d", l, LabelPrivate)
		}
	}
	if len(raw) == 0 || raw[0]>>5 != 5 {
		return 0, fmt.Errorf("claim %d: not a map", LabelPrivate)
	}
	var priv map[uint64]cbor.RawMessage
	if err := claimDec.Unmarshal(raw, &priv); err != nil {
		return 0, fmt.Errorf("claim %d: %v", LabelPrivate, err)
	}
	delete(m, LabelPrivate)
	keys := make([]uint64, 0, len(priv))
	for k := range priv {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		if k == 0 || k == uint64(-65536-LabelPrivate) || k > 1<<32 {
			return 0, fmt.Errorf("claim %d: key %d not allowed", LabelPrivate, k)
		}
		m[-65536-int64(k)] = priv[k]
	}
	return FormatCompact, nil
}

// decEvent reads the event claim: text in either format, or a code of
// EventCodes in a compact token.
func decEvent(f Format, raw cbor.RawMessage) (string, error) {
	if f == FormatCompact && len(raw) > 0 && raw[0]>>5 == 0 {
		c, err := decUint(raw)
		if err != nil {
			return "", err
		}
		if n, ok := eventNames[c]; ok {
			return n, nil
		}
		return "", errors.New("unknown event code")
	}
	return decText(raw)
}

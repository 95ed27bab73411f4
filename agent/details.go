package agent

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/mtcagent/mtcagent/attest"
)

// Event details in the compact token format (attest.FormatCompact, issue
// 16). A format-1 token carries details as a map of names (private claim
// -65560); a compact one as a map whose keys are the numbers below, with
// a name not in the table under its name, the registration domains as
// the numbers of DomainCodes, and "domain" left out when it is the first
// of "domains" (DecodeDetails puts it back). Both tables are fixed for
// format 2: additions go under their name. docs/agent.md lists them.
var DetailKeys = map[string]uint64{
	"domains":        1,
	"plmn_changed":   2,
	"area_changed":   3,
	"after_flapping": 4,
	"count":          5,
	"window_s":       6,
	"cells":          7,
	"settled":        8,
	"from":           9,
	"to":             10,
	"clock_synced":   11,
	"outage_ms":      12,
	"lost_at":        13,
	"windows":        14,
	"heartbeat_s":    15,
	"lost":           16,
	"lost_total":     17,
	"cause":          18,
	"reason":         19,
	"action":         20,
	"domain":         21,
}

// DomainCodes are the registration domains in compact details.
var DomainCodes = map[string]uint64{"cs": 1, "ps": 2, "eps": 3, "5gs": 4}

var detailNames, domainNames = invert(DetailKeys), invert(DomainCodes)

func invert(m map[string]uint64) map[uint64]string {
	out := make(map[uint64]string, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// detailsValue is what an event token carries as its details in format f.
func detailsValue(f attest.Format, d map[string]any) any {
	if f != attest.FormatCompact {
		return d
	}
	out := make(map[any]any, len(d))
	doms, _ := d["domains"].([]string)
	for k, v := range d {
		if k == "domain" && len(doms) > 0 && v == doms[0] {
			continue
		}
		if k == "domains" && doms != nil {
			codes := make([]any, len(doms))
			for i, dom := range doms {
				if c, ok := DomainCodes[dom]; ok {
					codes[i] = c
				} else {
					codes[i] = dom
				}
			}
			v = codes
		}
		if c, ok := DetailKeys[k]; ok {
			out[c] = v
		} else {
			out[k] = v
		}
	}
	return out
}

// DecodeDetails reads an event token's details (the CBOR of claim
// LabelDetails, attest.Token.Extra) in either format into a map of names,
// "domains" as a list of names and "domain" its first. A number not in
// the tables is an error.
func DecodeDetails(raw []byte) (map[string]any, error) {
	var m map[any]any
	if err := cbor.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("event details: %w", err)
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		var name string
		switch k := k.(type) {
		case string:
			name = k
		case uint64:
			n, ok := detailNames[k]
			if !ok {
				return nil, fmt.Errorf("event details: unknown key %d", k)
			}
			name = n
		default:
			return nil, errors.New("event details: a key is neither a name nor a number")
		}
		if name == "domains" {
			list, ok := v.([]any)
			if !ok {
				return nil, errors.New("event details: domains is not a list")
			}
			doms := make([]string, len(list))
			for i, d := range list {
				switch d := d.(type) {
				case string:
					doms[i] = d
				case uint64:
					n, ok := domainNames[d]
					if !ok {
						return nil, fmt.Errorf("event details: unknown domain %d", d)
					}
					doms[i] = n
				default:
					return nil, errors.New("event details: a domain is neither a name nor a number")
				}
			}
			v = doms
			if _, ok := m["domain"]; !ok && len(doms) > 0 {
				if _, ok := m[DetailKeys["domain"]]; !ok {
					out["domain"] = doms[0]
				}
			}
		}
		out[name] = v
	}
	return out, nil
}

package ident

import (
	"fmt"
	"log/slog"
	"math/big"
	"strings"
)

// EID is an eUICC's identifier (GSMA SGP.29): 32 digits starting with 89,
// the last two check digits per ISO/IEC 7064 MOD 97-10. Unlike ICCID and
// IMSI it stays when a profile switch changes both, so it identifies the
// card, and is as sensitive.
type EID struct{ v string }

// ParseEID validates s as an EID, check digits included.
func ParseEID(s string) (EID, error) {
	s = strings.TrimSpace(s)
	if !digits(s, 32, 32) || !strings.HasPrefix(s, "89") {
		return EID{}, parseError("eid", s)
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || new(big.Int).Mod(n, big.NewInt(97)).Int64() != 1 {
		return EID{}, parseError("eid", s)
	}
	return EID{s}, nil
}

// Reveal returns the digits. Call it only where disclosure is intended.
func (x EID) Reveal() string { return x.v }

// IsZero reports whether no EID was read.
func (x EID) IsZero() bool { return x.v == "" }

// Equal compares in constant time.
func (x EID) Equal(y EID) bool { return ctEqual(x.v, y.v) }

func (x EID) String() string               { return redacted("eid", x.v) }
func (x EID) GoString() string             { return x.String() }
func (x EID) Format(f fmt.State, _ rune)   { fmt.Fprint(f, x.String()) }
func (x EID) LogValue() slog.Value         { return slog.StringValue(x.String()) }
func (x EID) MarshalText() ([]byte, error) { return []byte(x.String()), nil }

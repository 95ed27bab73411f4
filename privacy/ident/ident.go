// Package ident holds the subscriber and device identifiers (IMSI, ICCID,
// IMEI, MSISDN) as types that redact themselves.
//
// Every way an identifier can be printed by accident — fmt verbs, log/slog,
// encoding/json, CBOR — yields a redacted placeholder. The digits come out
// only through Reveal, which callers use on the few paths where the owner
// asked to see them (local status) or where policy allows disclosure.
// Comparisons are constant-time.
package ident

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// ErrInvalid is wrapped by every parse error of this package.
var ErrInvalid = errors.New("invalid identifier")

// IMSI is the International Mobile Subscriber Identity (6–15 digits).
type IMSI struct{ v string }

// ICCID is the SIM card's serial number (ITU-T E.118, 18–22 digits; some
// cards end in a hex check character).
type ICCID struct{ v string }

// IMEI is the International Mobile Equipment Identity (14–16 digits: IMEI
// without check digit, IMEI, or IMEISV).
type IMEI struct{ v string }

// MSISDN is the subscriber's phone number.
type MSISDN struct{ v string }

// ParseIMSI validates s as an IMSI.
func ParseIMSI(s string) (IMSI, error) {
	s = strings.TrimSpace(s)
	if !digits(s, 6, 15) {
		return IMSI{}, parseError("imsi", s)
	}
	return IMSI{s}, nil
}

// ParseICCID validates s as an ICCID: 18 to 22 characters after the
// trailing padding 'F's are removed; the first six (major industry
// identifier, country and issuer) are digits, the rest hex digits, as
// operators that store letters in the BCD nibbles of the account part
// (China Mobile among them) issue them; ModemManager accepts the same.
func ParseICCID(s string) (ICCID, error) {
	s = strings.TrimRight(strings.ToUpper(strings.TrimSpace(s)), "F")
	if len(s) < 18 || len(s) > 22 || !digits(s[:6], 6, 6) {
		return ICCID{}, parseError("iccid", s)
	}
	for i := 6; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return ICCID{}, parseError("iccid", s)
		}
	}
	return ICCID{s}, nil
}

// ParseIMEI validates s as an IMEI (14, 15 or 16 digits).
func ParseIMEI(s string) (IMEI, error) {
	s = strings.TrimSpace(s)
	if !digits(s, 14, 16) {
		return IMEI{}, parseError("imei", s)
	}
	return IMEI{s}, nil
}

// ParseMSISDN validates s as an E.164 number, with or without a leading '+'.
func ParseMSISDN(s string) (MSISDN, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "+")
	if !digits(s, 3, 15) {
		return MSISDN{}, parseError("msisdn", s)
	}
	return MSISDN{s}, nil
}

// parseError never includes the rejected value: it may be a real identifier
// with one digit wrong.
func parseError(kind, s string) error {
	return fmt.Errorf("%w: %s of %d characters", ErrInvalid, kind, len(s))
}

func digits(s string, min, max int) bool {
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

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'F'
}

// Reveal returns the digits. Call it only where disclosure is intended.
func (x IMSI) Reveal() string { return x.v }

// Reveal returns the digits. Call it only where disclosure is intended.
func (x ICCID) Reveal() string { return x.v }

// Reveal returns the digits. Call it only where disclosure is intended.
func (x IMEI) Reveal() string { return x.v }

// Reveal returns the digits. Call it only where disclosure is intended.
func (x MSISDN) Reveal() string { return x.v }

// IsZero reports whether the identifier is unknown.
func (x IMSI) IsZero() bool { return x.v == "" }

// IsZero reports whether the identifier is unknown.
func (x ICCID) IsZero() bool { return x.v == "" }

// IsZero reports whether the identifier is unknown.
func (x IMEI) IsZero() bool { return x.v == "" }

// IsZero reports whether the identifier is unknown.
func (x MSISDN) IsZero() bool { return x.v == "" }

// Equal compares in constant time.
func (x IMSI) Equal(y IMSI) bool { return ctEqual(x.v, y.v) }

// Equal compares in constant time.
func (x ICCID) Equal(y ICCID) bool { return ctEqual(x.v, y.v) }

// Equal compares in constant time.
func (x IMEI) Equal(y IMEI) bool { return ctEqual(x.v, y.v) }

// Equal compares in constant time.
func (x MSISDN) Equal(y MSISDN) bool { return ctEqual(x.v, y.v) }

// MCC returns the mobile country code, the first three digits. It is not
// secret on its own.
func (x IMSI) MCC() string {
	if len(x.v) < 3 {
		return ""
	}
	return x.v[:3]
}

func ctEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func redacted(kind, v string) string {
	if v == "" {
		return kind + "(unknown)"
	}
	return kind + "(redacted)"
}

func (x IMSI) String() string   { return redacted("imsi", x.v) }
func (x ICCID) String() string  { return redacted("iccid", x.v) }
func (x IMEI) String() string   { return redacted("imei", x.v) }
func (x MSISDN) String() string { return redacted("msisdn", x.v) }

// GoString keeps %#v from printing the digits.
func (x IMSI) GoString() string   { return x.String() }
func (x ICCID) GoString() string  { return x.String() }
func (x IMEI) GoString() string   { return x.String() }
func (x MSISDN) GoString() string { return x.String() }

// Format makes every fmt verb print the redacted form.
func (x IMSI) Format(f fmt.State, _ rune)   { fmt.Fprint(f, x.String()) }
func (x ICCID) Format(f fmt.State, _ rune)  { fmt.Fprint(f, x.String()) }
func (x IMEI) Format(f fmt.State, _ rune)   { fmt.Fprint(f, x.String()) }
func (x MSISDN) Format(f fmt.State, _ rune) { fmt.Fprint(f, x.String()) }

// LogValue redacts in log/slog.
func (x IMSI) LogValue() slog.Value   { return slog.StringValue(x.String()) }
func (x ICCID) LogValue() slog.Value  { return slog.StringValue(x.String()) }
func (x IMEI) LogValue() slog.Value   { return slog.StringValue(x.String()) }
func (x MSISDN) LogValue() slog.Value { return slog.StringValue(x.String()) }

// MarshalText redacts in encoding/json, CBOR and any other text encoder:
// disclosure goes through Reveal, never through a generic encoder.
func (x IMSI) MarshalText() ([]byte, error)   { return []byte(x.String()), nil }
func (x ICCID) MarshalText() ([]byte, error)  { return []byte(x.String()), nil }
func (x IMEI) MarshalText() ([]byte, error)   { return []byte(x.String()), nil }
func (x MSISDN) MarshalText() ([]byte, error) { return []byte(x.String()), nil }

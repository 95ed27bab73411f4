package ident

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Key is secret key material (a device secret, a pre-shared key). Like the
// identifiers it redacts itself in fmt, log/slog and text encoders; the
// bytes come out only through Reveal.
type Key struct{ b []byte }

// NewKey copies b into a Key.
func NewKey(b []byte) Key {
	if len(b) == 0 {
		return Key{}
	}
	return Key{b: append([]byte(nil), b...)}
}

// Reveal returns a copy of the key bytes. Call it only where the key is used.
func (k Key) Reveal() []byte { return append([]byte(nil), k.b...) }

// Len is the key length in bytes (not secret).
func (k Key) Len() int { return len(k.b) }

// IsZero reports whether the key is empty.
func (k Key) IsZero() bool { return len(k.b) == 0 }

// Equal compares in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k.b, o.b) == 1 }

func (k Key) String() string {
	if len(k.b) == 0 {
		return "key(unknown)"
	}
	return "key(redacted)"
}

// GoString keeps %#v from printing the bytes.
func (k Key) GoString() string { return k.String() }

// Format makes every fmt verb print the redacted form.
func (k Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue redacts in log/slog.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalText redacts in encoding/json, CBOR and other text encoders.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

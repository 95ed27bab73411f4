package attest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mtcagent/mtcagent/internal/config"
)

// The home-network key file is a config-format file (internal/config) with
// one [suci_hn_key] section:
//
//	[suci_hn_key]
//	profile = B                 # null, A (X25519) or B (P-256)
//	key_id = 1                  # home network public key identifier, 0..255
//	public_key = 0272da71...    # hex; B: compressed or uncompressed SEC1 point
//	routing_indicator = 0       # optional, 1-4 digits, default 0
//	mnc_digits = 3              # optional, 2 or 3, default 2
//	private_key = f1ab1074...   # only in the collector's copy (hex scalar)
//
// The device reads the public file; the collector reads the private one
// (public_key may then be omitted: it is derived and, if present, checked).
const hnSection = "suci_hn_key"

// ParseHNPublicKey parses a home-network key file for a device. A file that
// also holds private_key is refused: devices never need it.
func ParseHNPublicKey(path string, text []byte) (*HNPublicKey, error) {
	pub, sec, err := parseHN(path, text)
	if err != nil {
		return nil, err
	}
	if e, ok := sec.Get("private_key"); ok {
		return nil, sec.Errorf(e.Line, "file holds the home network private key; give devices the public file only")
	}
	if _, ok := sec.Get("public_key"); !ok && pub.Scheme != SchemeNull {
		return nil, sec.Errorf(sec.Line, "public_key missing")
	}
	if pub.Scheme != SchemeNull {
		if _, err := pub.publicKey(); err != nil {
			e, _ := sec.Get("public_key")
			return nil, sec.Errorf(e.Line, "public_key is not a valid key for profile %s", pub.Scheme)
		}
	}
	return pub, nil
}

// ParseHNPrivateKey parses the collector's home-network key file.
func ParseHNPrivateKey(path string, text []byte) (*HNPrivateKey, error) {
	pub, sec, err := parseHN(path, text)
	if err != nil {
		return nil, err
	}
	if pub.Scheme == SchemeNull {
		return &HNPrivateKey{HNPublicKey: *pub}, nil
	}
	e, ok := sec.Get("private_key")
	if !ok {
		return nil, sec.Errorf(sec.Line, "private_key missing (is this the public file?)")
	}
	raw, err := hex.DecodeString(strings.TrimSpace(e.Value))
	if err != nil {
		return nil, sec.Errorf(e.Line, "private_key must be hex")
	}
	priv, err := NewHNPrivateKey(pub.Scheme, pub.KeyID, raw)
	if err != nil {
		return nil, sec.Errorf(e.Line, "private_key is not a valid key for profile %s", pub.Scheme)
	}
	if len(pub.Key) > 0 {
		given, err := pub.publicKey()
		if err != nil {
			p, _ := sec.Get("public_key")
			return nil, sec.Errorf(p.Line, "public_key is not a valid key for profile %s", pub.Scheme)
		}
		if !bytes.Equal(given.Bytes(), priv.priv.PublicKey().Bytes()) {
			p, _ := sec.Get("public_key")
			return nil, sec.Errorf(p.Line, "public_key does not belong to private_key")
		}
	}
	priv.RoutingIndicator, priv.MNCDigits = pub.RoutingIndicator, pub.MNCDigits
	return priv, nil
}

func parseHN(path string, text []byte) (*HNPublicKey, *config.Section, error) {
	f, err := config.Parse(path, string(text))
	if err != nil {
		return nil, nil, err
	}
	sec := f.Section(hnSection)
	if sec == nil {
		return nil, nil, &config.Error{Path: path, Msg: "no [" + hnSection + "] section: not a home network key file"}
	}
	if err := sec.Unknown("profile", "key_id", "public_key", "private_key", "routing_indicator", "mnc_digits"); err != nil {
		return nil, nil, err
	}
	k := &HNPublicKey{RoutingIndicator: "0", MNCDigits: 2}
	e, ok := sec.Get("profile")
	if !ok {
		return nil, nil, sec.Errorf(sec.Line, "profile missing (null, A or B)")
	}
	if k.Scheme, err = ParseScheme(e.Value); err != nil {
		return nil, nil, sec.Errorf(e.Line, "profile must be null, A or B")
	}
	if e, ok := sec.Get("key_id"); ok {
		n, err := strconv.Atoi(e.Value)
		if err != nil || n < 0 || n > 255 {
			return nil, nil, sec.Errorf(e.Line, "key_id must be a number 0..255")
		}
		k.KeyID = n
	} else if k.Scheme != SchemeNull {
		return nil, nil, sec.Errorf(sec.Line, "key_id missing")
	}
	if e, ok := sec.Get("public_key"); ok {
		if k.Key, err = hex.DecodeString(strings.TrimSpace(e.Value)); err != nil {
			return nil, nil, sec.Errorf(e.Line, "public_key must be hex")
		}
	}
	if e, ok := sec.Get("routing_indicator"); ok {
		k.RoutingIndicator = e.Value
	}
	if e, ok := sec.Get("mnc_digits"); ok {
		n, err := strconv.Atoi(e.Value)
		if err != nil {
			return nil, nil, sec.Errorf(e.Line, "mnc_digits must be 2 or 3")
		}
		k.MNCDigits = n
	}
	if err := k.check(); err != nil {
		return nil, nil, sec.Errorf(sec.Line, "%v", err)
	}
	return k, sec, nil
}

// LoadHNPublicKey reads a device's home-network key file.
func LoadHNPublicKey(path string) (*HNPublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseHNPublicKey(path, b)
}

// LoadHNPrivateKey reads the collector's home-network key file. Like the
// device key, it must not be accessible by group or others
// (ErrKeyPermissions).
func LoadHNPrivateKey(path string) (*HNPrivateKey, error) {
	b, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	return ParseHNPrivateKey(path, b)
}

// MarshalHNKeyFile writes the key file text; with withPrivate the private
// scalar is included (the collector's copy).
func MarshalHNKeyFile(k *HNPrivateKey, withPrivate bool) []byte {
	var b bytes.Buffer
	if withPrivate {
		b.WriteString("# SUCI home network PRIVATE key: collector only, mode 0600\n")
	} else {
		b.WriteString("# SUCI home network public key: for devices\n")
	}
	fmt.Fprintf(&b, "[%s]\nprofile = %s\nkey_id = %d\n", hnSection, k.Scheme, k.KeyID)
	if k.Scheme != SchemeNull {
		fmt.Fprintf(&b, "public_key = %s\n", hex.EncodeToString(k.Key))
	}
	fmt.Fprintf(&b, "routing_indicator = %s\nmnc_digits = %d\n", k.RoutingIndicator, k.MNCDigits)
	if withPrivate && k.priv != nil {
		fmt.Fprintf(&b, "private_key = %s\n", hex.EncodeToString(k.priv.Bytes()))
	}
	return b.Bytes()
}

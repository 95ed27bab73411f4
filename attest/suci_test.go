package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/privacy/ident"
)

type suciVector struct {
	Profile          string `json:"profile"`
	Clause           string `json:"clause"`
	HNPriv           string `json:"hn_private_key_hex"`
	HNPub            string `json:"hn_public_key_hex"`
	EphPriv          string `json:"eph_private_key_hex"`
	EphPub           string `json:"eph_public_key_hex"`
	Shared           string `json:"eph_shared_key_hex"`
	EncKey           string `json:"eph_enc_key_hex"`
	ICB              string `json:"icb_hex"`
	MacKey           string `json:"eph_mac_key_hex"`
	Plain            string `json:"msin_or_scheme_input_hex"`
	Ciphertext       string `json:"ciphertext_hex"`
	MAC              string `json:"mac_hex"`
	SchemeOutput     string `json:"scheme_output_hex"`
	HNPubUncompessed string `json:"hn_public_key_uncompressed_hex"`
}

func loadSUCIVectors(t testing.TB) []suciVector {
	t.Helper()
	b, err := os.ReadFile("testdata/suci_ts33501_annex_c4.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []suciVector }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 3 {
		t.Fatalf("want 3 vectors, got %d", len(f.Vectors))
	}
	return f.Vectors
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The vectors' SUPI: MCC 274, MNC 012, MSIN 001002086 (fictional test data).
const vecIMSI = "274012001002086"

func TestSUCIVectors(t *testing.T) {
	imsi, err := ident.ParseIMSI(vecIMSI)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range loadSUCIVectors(t) {
		t.Run(v.Profile, func(t *testing.T) {
			scheme, err := ParseScheme(v.Profile)
			if err != nil {
				t.Fatal(err)
			}
			if got := packBCD("001002086"); !bytes.Equal(got, unhex(t, v.Plain)) {
				t.Fatalf("bcd: got %x want %s", got, v.Plain)
			}
			if scheme == SchemeNull {
				hn := &HNPublicKey{Scheme: SchemeNull, MNCDigits: 3}
				s, err := Conceal(hn, imsi, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(s.Output, unhex(t, v.SchemeOutput)) {
					t.Fatalf("null output %x want %s", s.Output, v.SchemeOutput)
				}
				back, err := Decode(nil, s)
				if err != nil || back.Reveal() != vecIMSI {
					t.Fatalf("null decode: err %v, match %v", err, back.Reveal() == vecIMSI)
				}
				return
			}
			priv, err := NewHNPrivateKey(scheme, 1, unhex(t, v.HNPriv))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(priv.Key, unhex(t, v.HNPub)) {
				t.Fatalf("hn public key %x want %s", priv.Key, v.HNPub)
			}
			// Intermediate values, step by step.
			c, _ := schemeCurve(scheme)
			eph, err := c.NewPrivateKey(unhex(t, v.EphPriv))
			if err != nil {
				t.Fatal(err)
			}
			ephPub := eph.PublicKey().Bytes()
			if scheme == SchemeProfileB {
				ephPub = compressP256(ephPub)
			}
			if !bytes.Equal(ephPub, unhex(t, v.EphPub)) {
				t.Fatalf("eph public %x want %s", ephPub, v.EphPub)
			}
			hnPub, err := priv.HNPublicKey.publicKey()
			if err != nil {
				t.Fatal(err)
			}
			shared, err := eph.ECDH(hnPub)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(shared, unhex(t, v.Shared)) {
				t.Fatalf("shared %x want %s", shared, v.Shared)
			}
			enc, icb, mk := suciKeys(shared, ephPub)
			for _, c := range []struct {
				name string
				got  []byte
				want string
			}{{"enc key", enc, v.EncKey}, {"icb", icb, v.ICB}, {"mac key", mk, v.MacKey}} {
				if !bytes.Equal(c.got, unhex(t, c.want)) {
					t.Fatalf("%s %x want %s", c.name, c.got, c.want)
				}
			}
			// Whole conceal with the ephemeral key injected as randomness.
			pub := priv.HNPublicKey
			pub.MNCDigits = 3
			s, err := Conceal(&pub, imsi, bytes.NewReader(unhex(t, v.EphPriv)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.Output, unhex(t, v.SchemeOutput)) {
				t.Fatalf("scheme output\n got %x\nwant %s", s.Output, strings.ToLower(v.SchemeOutput))
			}
			if s.MCC != "274" || s.MNC != "012" {
				t.Fatalf("plmn %s-%s", s.MCC, s.MNC)
			}
			// Round trip through the string form and decode.
			parsed, err := ParseSUCI(s.String())
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(priv, parsed)
			if err != nil {
				t.Fatal(err)
			}
			if back.Reveal() != vecIMSI {
				t.Fatal("decoded supi differs")
			}
			// Decoding the vector's own scheme output.
			vs := SUCI{MCC: "274", MNC: "012", RoutingIndicator: "0", Scheme: scheme, KeyID: 1, Output: unhex(t, v.SchemeOutput)}
			if back, err := Decode(priv, vs); err != nil || back.Reveal() != vecIMSI {
				t.Fatalf("decode vector: %v", err)
			}
			// Any single flipped bit of the scheme output fails closed.
			for i := range vs.Output {
				bad := vs
				bad.Output = bytes.Clone(vs.Output)
				bad.Output[i] ^= 0x01
				if _, err := Decode(priv, bad); err == nil {
					t.Fatalf("flip of byte %d accepted", i)
				}
			}
			mac := bytes.Clone(vs.Output)
			mac[len(mac)-1] ^= 0x80
			if _, err := Decode(priv, SUCI{MCC: "274", MNC: "012", RoutingIndicator: "0", Scheme: scheme, KeyID: 1, Output: mac}); !errors.Is(err, ErrSUCIMAC) {
				t.Fatalf("bad mac: got %v, want ErrSUCIMAC", err)
			}
			// Wrong key id is refused before any crypto.
			wrong := vs
			wrong.KeyID = 2
			if _, err := Decode(priv, wrong); err == nil {
				t.Fatal("wrong key id accepted")
			}
		})
	}
}

func TestSUCIUncompressedHNKey(t *testing.T) {
	for _, v := range loadSUCIVectors(t) {
		if v.Profile != "B" {
			continue
		}
		imsi, _ := ident.ParseIMSI(vecIMSI)
		hn := &HNPublicKey{Scheme: SchemeProfileB, KeyID: 1, Key: unhex(t, v.HNPubUncompessed), MNCDigits: 3}
		s, err := Conceal(hn, imsi, bytes.NewReader(unhex(t, v.EphPriv)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s.Output, unhex(t, v.SchemeOutput)) {
			t.Fatal("uncompressed hn key gives a different output")
		}
	}
}

func TestSUCIStringVectorsAndKeyFile(t *testing.T) {
	imsi, _ := ident.ParseIMSI("20893001002086") // the DESIGN.md example
	for _, scheme := range []Scheme{SchemeProfileA, SchemeProfileB} {
		priv, err := GenerateHNKey(scheme, 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		priv.MNCDigits = 2
		priv.RoutingIndicator = "12"
		pubFile := MarshalHNKeyFile(priv, false)
		privFile := MarshalHNKeyFile(priv, true)
		if bytes.Contains(pubFile, []byte("private_key")) {
			t.Fatal("public file contains the private key")
		}
		pub, err := ParseHNPublicKey("pub", pubFile)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseHNPublicKey("priv", privFile); err == nil {
			t.Fatal("device accepted a private key file")
		}
		s, err := Conceal(pub, imsi, nil)
		if err != nil {
			t.Fatal(err)
		}
		str := s.String()
		want := "suci-0-208-93-12-" + map[Scheme]string{SchemeProfileA: "1", SchemeProfileB: "2"}[scheme] + "-7-"
		if !strings.HasPrefix(str, want) {
			t.Fatalf("suci %q lacks prefix %q", str[:len(want)], want)
		}
		priv2, err := ParseHNPrivateKey("priv", privFile)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseSUCI(str)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(priv2, p)
		if err != nil || !got.Equal(imsi) {
			t.Fatalf("decode: %v", err)
		}
		// Two concealments of the same IMSI differ (fresh ephemeral key).
		s2, _ := Conceal(pub, imsi, nil)
		if bytes.Equal(s.Output, s2.Output) {
			t.Fatal("two concealments are identical")
		}
	}
}

func TestParseSUCIBad(t *testing.T) {
	for _, s := range []string{
		"", "suci", "suci-0-208-93-0-1-1", "suci-1-208-93-0-1-1-00", "suci-0-20-93-0-1-1-00",
		"suci-0-208-9-0-1-1-00", "suci-0-208-93-12345-1-1-00", "suci-0-208-93-0-x-1-00",
		"suci-0-208-93-0-1-256-00", "suci-0-208-93-0-1-1-zz", "suci-0-208-93-0-1-1-",
		"imsi-0-208-93-0-1-1-00",
	} {
		if _, err := ParseSUCI(s); !errors.Is(err, ErrSUCI) {
			t.Errorf("ParseSUCI(%q) = %v, want ErrSUCI", s, err)
		}
	}
}

func TestHNKeyFileErrors(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"no section", "x = 1\n", "outside"},
		{"wrong section", "[other]\n", "not a home network key"},
		{"no profile", "[suci_hn_key]\nkey_id = 1\n", "profile missing"},
		{"bad profile", "[suci_hn_key]\nprofile = C\nkey_id = 1\n", ":2: profile"},
		{"unknown key", "[suci_hn_key]\nprofile = A\nkey_id = 1\ncolour = red\n", ":4: unknown key"},
		{"bad hex", "[suci_hn_key]\nprofile = A\nkey_id = 1\npublic_key = xyz\n", ":4: public_key must be hex"},
		{"short key", "[suci_hn_key]\nprofile = A\nkey_id = 1\npublic_key = 0102\n", "not a valid key"},
		{"mnc digits", "[suci_hn_key]\nprofile = null\nmnc_digits = 4\n", "mnc digits"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHNPublicKey("f", []byte(c.text))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

// FuzzSUCIDecode: parsing and decoding arbitrary SUCI strings never panics,
// with or without a key.
func FuzzSUCIDecode(f *testing.F) {
	var privA *HNPrivateKey
	for _, v := range loadSUCIVectors(f) {
		if v.Profile == "A" {
			privA, _ = NewHNPrivateKey(SchemeProfileA, 1, unhex(f, v.HNPriv))
			f.Add("suci-0-274-012-0-1-1-" + v.SchemeOutput)
		}
		f.Add("suci-0-274-012-0-0-0-" + v.Plain)
	}
	f.Add("suci-0-208-93-0-2-1-02")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSUCI(s)
		if err != nil {
			return
		}
		_, _ = Decode(privA, p)
		_, _ = Decode(nil, p)
	})
}

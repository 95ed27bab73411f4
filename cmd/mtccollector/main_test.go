package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	code := runMain(env, args)
	return code, out.String(), errb.String()
}

type vector struct {
	Profile      string `json:"profile"`
	HNPriv       string `json:"hn_private_key_hex"`
	SchemeOutput string `json:"scheme_output_hex"`
}

func vectors(t *testing.T) []vector {
	b, err := os.ReadFile("../../attest/testdata/suci_ts33501_annex_c4.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []vector }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Vectors
}

func writeKey(t *testing.T, scheme attest.Scheme, privHex string, mode os.FileMode) string {
	t.Helper()
	raw, _ := hex.DecodeString(privHex)
	k, err := attest.NewHNPrivateKey(scheme, 1, raw)
	if err != nil {
		t.Fatal(err)
	}
	k.MNCDigits = 3
	p := filepath.Join(t.TempDir(), "hn.key")
	if err := os.WriteFile(p, attest.MarshalHNKeyFile(k, true), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

// TestSUCIDecodeVectors decodes the TS 33.501 Annex C.4 scheme outputs.
func TestSUCIDecodeVectors(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.Profile, func(t *testing.T) {
			scheme, _ := attest.ParseScheme(v.Profile)
			suci := "suci-0-274-012-0-" + map[attest.Scheme]string{attest.SchemeNull: "0-0-", attest.SchemeProfileA: "1-1-", attest.SchemeProfileB: "2-1-"}[scheme] + strings.ToLower(v.SchemeOutput)
			args := []string{"suci", "decode"}
			if scheme != attest.SchemeNull {
				args = append(args, "--hn-key", writeKey(t, scheme, v.HNPriv, 0o600))
			}
			code, out, errs := run(t, append(args, suci)...)
			if code != 0 || out != "imsi-274012001002086\n" {
				t.Fatalf("exit %d, expected SUPI printed: %v, err %q", code, out == "imsi-274012001002086\n", errs)
			}
			if scheme == attest.SchemeNull {
				return
			}
			// Flags after the SUCI work too.
			if code, _, _ := run(t, "suci", "decode", suci, "--hn-key", args[3]); code != 0 {
				t.Fatalf("flag after argument: exit %d", code)
			}
			// A flipped MAC bit: refused, exit 2.
			bad := suci[:len(suci)-1] + map[bool]string{true: "0", false: "1"}[suci[len(suci)-1] != '0']
			code, out, errs = run(t, "suci", "decode", "--hn-key", args[3], bad)
			if code != 2 || out != "" || !strings.Contains(errs, "mtccollector: error: suci: mac mismatch") {
				t.Fatalf("bad mac: exit %d, stdout %d bytes, err %q", code, len(out), errs)
			}
		})
	}
}

func TestSUCIDecodeErrors(t *testing.T) {
	var a vector
	for _, v := range vectors(t) {
		if v.Profile == "A" {
			a = v
		}
	}
	lax := writeKey(t, attest.SchemeProfileA, a.HNPriv, 0o644)
	good := writeKey(t, attest.SchemeProfileA, a.HNPriv, 0o600)
	suciA := "suci-0-274-012-0-1-1-" + a.SchemeOutput
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, 2, "no command given"},
		{"unknown command", []string{"frob"}, 2, "unknown command"},
		{"no subcommand", []string{"suci"}, 2, "want a subcommand"},
		{"unknown subcommand", []string{"suci", "encode"}, 2, "unknown subcommand"},
		{"no suci", []string{"suci", "decode", "--hn-key", good}, 2, "want one SUCI"},
		{"malformed suci", []string{"suci", "decode", "--hn-key", good, "suci-0-274"}, 2, "malformed suci"},
		{"no key for A", []string{"suci", "decode", suciA}, 2, "--hn-key is required"},
		{"missing key file", []string{"suci", "decode", "--hn-key", good + ".nope", suciA}, 2, "no such file"},
		{"lax key file", []string{"suci", "decode", "--hn-key", lax, suciA}, 1, "UNPROTECTED PRIVATE KEY FILE"},
		{"wrong key id", []string{"suci", "decode", "--hn-key", good, "suci-0-274-012-0-1-9-" + a.SchemeOutput}, 2, "key id 9"},
		{"wrong profile", []string{"suci", "decode", "--hn-key", good, "suci-0-274-012-0-2-1-" + a.SchemeOutput}, 2, "profile"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(t, c.args...)
			if code != c.code || !strings.Contains(errs, c.want) || !strings.Contains(errs, "mtccollector: error: ") {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, c.code, errs, c.want)
			}
			if strings.Contains(out+errs, "274012001002086") {
				t.Fatal("SUPI printed on a failure")
			}
		})
	}
	if code, _, errs := run(t, "suci", "decode", "--hn-key", lax, suciA); code != 1 || !strings.Contains(errs, "hint: chmod 600") {
		t.Fatalf("lax key hint missing: %q", errs)
	}
	if code, out, _ := run(t, "help"); code != 0 || !strings.Contains(out, "suci decode") {
		t.Fatal("help does not list suci decode")
	}
}

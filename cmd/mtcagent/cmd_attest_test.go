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

// attRun invokes mtcagent in process and returns exit code, stdout, stderr.
func attRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	code := runMain(env, args)
	return code, out.String(), errb.String()
}

// Fictional identifiers (test PLMN 001-01).
const (
	attIMSI  = "001010123456789"
	attICCID = "8900100000000000001"
	attIMEI  = "490154203237518"
)

func attScenario(t *testing.T, sim string) string {
	t.Helper()
	body := `{"dialect": "quectel",
	  "modem": {"manufacturer": "Quectel", "model": "EG25", "revision": "EG25GGBR07A08M2G", "imei": "` + attIMEI + `"},
	  "sim": ` + sim + `}`
	p := filepath.Join(t.TempDir(), "scenario.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeyPublicAndPermissions(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	code, out, errs := attRun(t, "key", "public", "--state-dir", state)
	if code != 0 || !strings.HasPrefix(out, "-----BEGIN PUBLIC KEY-----") || !strings.Contains(errs, "created a new device key") {
		t.Fatalf("exit %d out %q err %q", code, out, errs)
	}
	if _, err := attest.ParsePublicKeyPEM([]byte(out)); err != nil {
		t.Fatal(err)
	}
	code, out2, errs := attRun(t, "key", "public", "--state-dir", state)
	if code != 0 || out2 != out || errs != "" {
		t.Fatal("second run differs")
	}
	os.Chmod(filepath.Join(state, attest.DeviceKeyFile), 0o644)
	code, out, errs = attRun(t, "key", "public", "--state-dir", state)
	if code != 1 || out != "" || !strings.Contains(errs, "UNPROTECTED PRIVATE KEY FILE") || !strings.Contains(errs, "mtcagent: hint: chmod 600 ") {
		t.Fatalf("lax key: exit %d err %q", code, errs)
	}
	if code, _, _ := attRun(t, "key"); code != 2 {
		t.Fatal("key without subcommand must be a usage error")
	}
	if code, _, _ := attRun(t, "key", "public", "extra"); code != 2 {
		t.Fatal("extra argument must be a usage error")
	}
}

// TestAttestVerifyCLI makes a binding token from the simulated modem and
// verifies it with the public key, as a receiver would.
func TestAttestVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	sc := attScenario(t, `{"state": "ready", "imsi": "`+attIMSI+`", "iccid": "`+attICCID+`"}`)
	nonce := strings.Repeat("5a", 16)
	tokFile := filepath.Join(dir, "token.cbor")
	code, out, errs := attRun(t, "attest", "--nonce", nonce, "--out", tokFile, "--modem", "sim:"+sc, "--state-dir", state)
	if code != 0 || out != "" {
		t.Fatalf("attest: exit %d out %q err %q", code, out, errs)
	}
	tok, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{attIMSI, attICCID, attIMEI} {
		if bytes.Contains(tok, []byte(s)) {
			t.Fatal("identifier in clear in the token")
		}
	}
	_, pemOut, _ := attRun(t, "key", "public", "--state-dir", state)
	keyFile := filepath.Join(dir, "device.pem")
	os.WriteFile(keyFile, []byte(pemOut), 0o644)

	code, out, errs = attRun(t, "verify", "--key", keyFile, "--nonce", nonce, tokFile)
	if code != 0 || !strings.Contains(out, "verified: binding token, sequence 1") || !strings.Contains(out, "hwmodel") {
		t.Fatalf("verify: exit %d out %q err %q", code, out, errs)
	}
	code, out, _ = attRun(t, "verify", "--key", keyFile, "--nonce", nonce, "--json", tokFile)
	var j struct {
		Valid     bool
		Freshness string
		Claims    map[string]any
	}
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || !j.Valid || j.Claims["kind"] != "binding" || j.Claims["swversion"] != "EG25GGBR07A08M2G" {
		t.Fatalf("verify --json: exit %d %q", code, out)
	}
	if j.Claims["imsi_pseudonym"] == nil || j.Claims["iccid_pseudonym"] == nil {
		t.Fatal("pseudonyms missing")
	}
	// Another recipient: different UEID and pseudonyms. Hex on stdout.
	code, hexTok, errs := attRun(t, "attest", "--nonce", nonce, "--recipient", "utility", "--modem", "sim:"+sc, "--state-dir", state)
	if code != 0 {
		t.Fatalf("attest 2: %d %q", code, errs)
	}
	tok2File := filepath.Join(dir, "token2.hex")
	os.WriteFile(tok2File, []byte(hexTok), 0o644)
	code, out, _ = attRun(t, "verify", "--key", keyFile, "--nonce", nonce, "--last-seq", "1", "--json", tok2File)
	var j2 struct{ Claims map[string]any }
	if code != 0 || json.Unmarshal([]byte(out), &j2) != nil {
		t.Fatalf("verify 2: exit %d %q", code, out)
	}
	if j2.Claims["ueid"] == j.Claims["ueid"] || j2.Claims["imsi_pseudonym"] == j.Claims["imsi_pseudonym"] {
		t.Fatal("two recipients got the same UEID or pseudonym")
	}
	if j2.Claims["seq"].(float64) <= j.Claims["seq"].(float64) {
		t.Fatal("sequence did not grow")
	}

	// Refusals: stale nonce, old sequence (exit 1); garbage (exit 2).
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"stale nonce", []string{"--nonce", strings.Repeat("00", 16), tokFile}, 1, "nonce mismatch"},
		{"old sequence", []string{"--nonce", nonce, "--last-seq", "1", tokFile}, 1, "sequence number not new"},
		{"no key", []string{tokFile}, 2, "--key is required"},
		{"bad nonce hex", []string{"--nonce", "zz", tokFile}, 2, "--nonce"},
		{"no token", []string{"--nonce", nonce}, 2, "want one token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"verify"}, c.args...)
			if c.name != "no key" {
				args = append([]string{"verify", "--key", keyFile}, c.args...)
			}
			code, _, errs := attRun(t, args...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d (want %d) err %q", code, c.code, errs)
			}
		})
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a token"), 0o644)
	if code, _, errs := attRun(t, "verify", "--key", keyFile, garbage); code != 2 || !strings.Contains(errs, "malformed") {
		t.Fatalf("garbage: exit %d %q", code, errs)
	}
	// Every single-byte change is refused (exit 1 or 2, never 0).
	for i := 0; i < len(tok); i += 7 {
		bad := bytes.Clone(tok)
		bad[i] ^= 0x04
		f := filepath.Join(dir, "bad")
		os.WriteFile(f, bad, 0o644)
		if code, _, _ := attRun(t, "verify", "--key", keyFile, "--nonce", nonce, f); code == 0 {
			t.Fatalf("byte %d changed and still verified", i)
		}
	}
}

func TestAttestNoSIMAndErrors(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	sc := attScenario(t, `{"state": "absent"}`)
	code, out, errs := attRun(t, "attest", "--modem", "sim:"+sc, "--state-dir", state)
	if code != 0 || !strings.Contains(errs, "no SIM identity") {
		t.Fatalf("no sim: exit %d err %q", code, errs)
	}
	tok, _ := hex.DecodeString(strings.TrimSpace(out))
	_, pemOut, _ := attRun(t, "key", "public", "--state-dir", state)
	pub, _ := attest.ParsePublicKeyPEM([]byte(pemOut))
	res, err := (&attest.Verifier{Key: pub, SkipFreshness: true}).Verify(tok)
	if err != nil || len(res.Token.Pseudonyms.IMSI) != 0 {
		t.Fatalf("no-SIM token: %v", err)
	}
	for _, args := range [][]string{
		{"attest", "--nonce", "abc"},
		{"attest", "--nonce", "00"},
		{"attest", "--recipient", ""},
		{"attest", "stray"},
	} {
		if code, _, _ := attRun(t, append(args, "--state-dir", state)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestSUCICommand(t *testing.T) {
	dir := t.TempDir()
	sc := attScenario(t, `{"state": "ready", "imsi": "`+attIMSI+`", "iccid": "`+attICCID+`"}`)
	for _, scheme := range []attest.Scheme{attest.SchemeProfileA, attest.SchemeProfileB} {
		t.Run(scheme.String(), func(t *testing.T) {
			priv, err := attest.GenerateHNKey(scheme, 5, nil)
			if err != nil {
				t.Fatal(err)
			}
			pubFile := filepath.Join(dir, "hn-"+scheme.String()+".pub")
			os.WriteFile(pubFile, attest.MarshalHNKeyFile(priv, false), 0o644)
			code, out, errs := attRun(t, "suci", "--hn-key", pubFile, "--modem", "sim:"+sc)
			if code != 0 {
				t.Fatalf("exit %d err %q", code, errs)
			}
			out = strings.TrimSpace(out)
			if !strings.HasPrefix(out, "suci-0-001-01-0-"+map[attest.Scheme]string{attest.SchemeProfileA: "1", attest.SchemeProfileB: "2"}[scheme]+"-5-") {
				t.Fatalf("suci %q", out)
			}
			if strings.Contains(out, "0123456789") {
				t.Fatal("MSIN in clear")
			}
			s, err := attest.ParseSUCI(out)
			if err != nil {
				t.Fatal(err)
			}
			imsi, err := attest.Decode(priv, s)
			if err != nil || imsi.Reveal() != attIMSI {
				t.Fatalf("decode: %v", err)
			}
			code, out, _ = attRun(t, "suci", "--hn-key", pubFile, "--json", "--modem", "sim:"+sc)
			var j map[string]any
			if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j["profile"] != scheme.String() || j["hn_key_id"] != 5.0 {
				t.Fatalf("json: %q", out)
			}
			// --profile must agree with the key file.
			other := map[attest.Scheme]string{attest.SchemeProfileA: "B", attest.SchemeProfileB: "A"}[scheme]
			if code, _, _ := attRun(t, "suci", "--hn-key", pubFile, "--profile", other, "--modem", "sim:"+sc); code != 2 {
				t.Fatal("profile mismatch accepted")
			}
		})
	}
	code, out, errs := attRun(t, "suci", "--profile", "null", "--modem", "sim:"+sc)
	if code != 0 || strings.TrimSpace(out) != "suci-0-001-01-0-0-0-1032547698" {
		t.Fatalf("null scheme: exit %d, expected SUCI: %v, err %q", code, strings.TrimSpace(out) == "suci-0-001-01-0-0-0-1032547698", errs)
	}
	if code, _, _ := attRun(t, "suci", "--modem", "sim:"+sc); code != 2 {
		t.Fatal("suci without key must be a usage error")
	}
	bad := filepath.Join(dir, "bad.pub")
	os.WriteFile(bad, []byte("[suci_hn_key]\nprofile = A\nkey_id = 1\npublic_key = 00\n"), 0o644)
	if code, _, errs := attRun(t, "suci", "--hn-key", bad, "--modem", "sim:"+sc); code != 2 || !strings.Contains(errs, ":4:") {
		t.Fatalf("bad key file: exit %d %q", code, errs)
	}
}

// TestAttestRefusedState: attest names a refused key file and a damaged
// counter with their hints before it costs a modem session.
func TestAttestRefusedState(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if code, _, errs := attRun(t, "key", "public", "--state-dir", state); code != 0 {
		t.Fatal(errs)
	}
	os.Chmod(filepath.Join(state, attest.DeviceKeyFile), 0o644)
	code, out, errs := attRun(t, "attest", "--state-dir", state, "--modem", "/nonexistent/tty")
	if code != 1 || out != "" || !strings.Contains(errs, "UNPROTECTED PRIVATE KEY FILE") || !strings.Contains(errs, "mtcagent: hint: chmod 600 ") {
		t.Fatalf("lax key: exit %d err %q", code, errs)
	}
	os.Chmod(filepath.Join(state, attest.DeviceKeyFile), 0o600)
	for _, f := range []string{attest.SeqFile, attest.BootCountFile} {
		os.WriteFile(filepath.Join(state, f), []byte("garbage\n"), 0o600)
		code, out, errs = attRun(t, "attest", "--state-dir", state, "--modem", "/nonexistent/tty")
		if code != 1 || out != "" || !strings.Contains(errs, "counter file corrupt") ||
			!strings.Contains(errs, "mtcagent: hint: the counter file is damaged; the agent refuses to restart counters on its own\n") {
			t.Fatalf("damaged %s: exit %d err %q", f, code, errs)
		}
		os.Remove(filepath.Join(state, f))
	}
}

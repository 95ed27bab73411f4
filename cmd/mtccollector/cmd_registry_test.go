package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/pgtest"
	"github.com/mtcagent/mtcagent/wire"
)

var embeddedRE = regexp.MustCompile(`store: embedded (\S+)`)

// TestProvisionCommands: against a running serve (the embedded store,
// reached through its admin socket; and PostgreSQL, reached directly),
// the commands add a device that then connects, list and show it without
// its PSK, refuse a duplicate and bad hex with hints, grant and revoke an
// SCS's read (effective on its next request), and remove the device (its
// next handshake refused); a bulk file and an import work too.
func TestProvisionCommands(t *testing.T) {
	for _, store := range []string{"embedded", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var extra []string
			if store == "postgres" {
				extra = []string{"--store", pgtest.URL(t)}
			}
			o := startOneDevice(t, extra...)
			sf := extra
			if store == "embedded" {
				var m []string
				waitUntil(t, 10*time.Second, "the store line", func() bool {
					m = embeddedRE.FindStringSubmatch(o.p.out.String())
					return m != nil
				})
				sf = []string{"--state", filepath.Dir(m[1])}
			}
			cmd := func(want int, args ...string) (string, string) {
				t.Helper()
				code, out, errs := run(t, append(args, sf...)...)
				if code != want {
					t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, errs)
				}
				return out, errs
			}
			dir := t.TempDir()
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			pemb, _ := attest.MarshalPublicKeyPEM(pub)
			pemf := filepath.Join(dir, "d2.pem")
			os.WriteFile(pemf, pemb, 0o644)
			const pskHex = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
			psk, _ := hex.DecodeString(pskHex)
			ucfg := uplink.Config{Addr: o.devAddr, Name: "collector", PSKIdentity: "d2-id", PSK: psk, Timeout: 5 * time.Second}
			ctx := context.Background()
			if c, err := uplink.Dial(ctx, ucfg); err == nil {
				c.Close()
				t.Fatal("d2 connected before it was added")
			}

			cmd(0, "device", "add", "d2", "--public-key", pemf, "--psk-identity", "d2-id", "--psk", pskHex, "--heartbeat-timeout", "5m")
			c, err := uplink.Dial(ctx, ucfg)
			if err != nil {
				t.Fatalf("d2 after device add: %v\n%s", err, o.p.out)
			}
			iss, _ := attest.NewIssuer(priv, &attest.MemSequence{}, attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false }), 1)
			hb, _ := iss.SignHeartbeat()
			if code, _, err := c.Post(ctx, wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
				t.Fatalf("d2 heartbeat: %v %v", code, err)
			}
			c.Close()

			out, _ := cmd(0, "device", "list")
			if !strings.Contains(out, "d1") || !strings.Contains(out, "d2-id") || !strings.Contains(out, "sha256:") || strings.Contains(out, pskHex) {
				t.Fatalf("device list:\n%s", out)
			}
			out, _ = cmd(0, "device", "show", "d2", "--json")
			var v struct{ ID, PSKFingerprint, HeartbeatTimeout string }
			if err := json.Unmarshal([]byte(strings.ReplaceAll(out, "psk_fingerprint", "PSKFingerprint")), &v); err != nil || v.ID != "d2" || !strings.HasPrefix(v.PSKFingerprint, "sha256:") || strings.Contains(out, pskHex) {
				t.Fatalf("device show --json: %v\n%s", err, out)
			}
			if _, errs := cmd(2, "device", "add", "d2", "--public-key", pemf); !strings.Contains(errs, `device id "d2" already registered`) || !strings.Contains(errs, "mtccollector: hint:") {
				t.Fatalf("duplicate id:\n%s", errs)
			}
			if _, errs := cmd(2, "device", "add", "d3", "--public-key", pemf, "--psk-identity", "d2-id", "--psk", pskHex); !strings.Contains(errs, "psk identity") || !strings.Contains(errs, "hint:") || strings.Contains(errs, pskHex) {
				t.Fatalf("duplicate psk identity:\n%s", errs)
			}
			if _, errs := cmd(2, "device", "add", "d3", "--public-key", pemf, "--psk-identity", "d3", "--psk", "xyz"); !strings.Contains(errs, "psk: not hex") || !strings.Contains(errs, "openssl rand -hex 16") {
				t.Fatalf("bad hex:\n%s", errs)
			}

			scsPSK := "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
			cmd(0, "scs", "add", "app", "--psk-identity", "app", "--psk", scsPSK)
			if _, errs := cmd(2, "grant", "--scs", "app", "--device", "nosuch", "--classes", "status"); !strings.Contains(errs, `device "nosuch" not registered`) {
				t.Fatalf("grant on an unknown device:\n%s", errs)
			}
			if _, errs := cmd(2, "grant", "--scs", "app", "--device", "d2", "--classes", "location"); !strings.Contains(errs, `unknown class "location"`) {
				t.Fatalf("unknown class:\n%s", errs)
			}
			key, _ := hex.DecodeString(scsPSK)
			if code := scsRead(t, o.scsAddr, "app", key, "/devices/d2/status"); code != codes.NotFound {
				t.Fatalf("before grant: %v", code)
			}
			cmd(0, "grant", "--scs", "app", "--device", "d2", "--classes", "status,events")
			if code := scsRead(t, o.scsAddr, "app", key, "/devices/d2/status"); code != codes.Content {
				t.Fatalf("granted: %v\n%s", code, o.p.out)
			}
			out, _ = cmd(0, "scs", "list")
			if !strings.Contains(out, "d2:events,status") || strings.Contains(out, scsPSK) {
				t.Fatalf("scs list:\n%s", out)
			}
			cmd(0, "revoke", "--scs", "app", "--device", "d2", "--classes", "status")
			if code := scsRead(t, o.scsAddr, "app", key, "/devices/d2/status"); code != codes.NotFound {
				t.Fatalf("revoked: %v", code)
			}

			cmd(0, "device", "remove", "d2")
			if c, err := uplink.Dial(ctx, ucfg); err == nil {
				c.Close()
				t.Fatal("d2 connected after device remove")
			}
			if _, errs := cmd(2, "device", "remove", "d2"); !strings.Contains(errs, "not registered") {
				t.Fatalf("remove twice:\n%s", errs)
			}

			csv := filepath.Join(dir, "fleet.csv")
			text := "id,psk_identity,psk,public_key\n"
			for i := 0; i < 3; i++ {
				k := make([]byte, 32)
				rand.Read(k)
				text += fmt.Sprintf("f%d,f%d-id,%s,%x\n", i, i, pskHex, k)
			}
			os.WriteFile(csv, []byte(text), 0o600)
			if out, _ := cmd(0, "device", "add", "--from", csv); !strings.Contains(out, "3 devices added") {
				t.Fatalf("bulk add: %s", out)
			}
			var list []map[string]any
			out, _ = cmd(0, "device", "list", "--json")
			if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 4 {
				t.Fatalf("device list --json: %v\n%s", err, out)
			}
			if strings.Contains(o.p.out.String(), pskHex) || strings.Contains(o.p.out.String(), scsPSK) {
				t.Fatal("a PSK in serve's log")
			}
		})
	}
}

// TestImport: mtccollector import stores a configuration file's devices,
// SCSs and grants; importing it again replaces them (no duplicates).
func TestImport(t *testing.T) {
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pemb, _ := attest.MarshalPublicKeyPEM(pub)
	os.WriteFile(filepath.Join(dir, "d1.pem"), pemb, 0o644)
	conf := filepath.Join(dir, "c.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[device \"d1\"]\npsk_identity = d1\npsk = %s\npublic_key = d1.pem\n\n[scs \"app\"]\npsk_identity = app\npsk = %s\ndevices = d1\nclasses = status\n", tDevPSK, tDevPSK)), 0o600)
	db := filepath.Join(dir, "reg.db")
	for i := 0; i < 2; i++ {
		code, out, errs := run(t, "import", "--config", conf, "--store", db)
		if code != 0 || !strings.Contains(out, "imported 1 device(s) and 1 scs") {
			t.Fatalf("import: %d %s%s", code, out, errs)
		}
	}
	code, out, errs := run(t, "scs", "list", "--json", "--store", db)
	if code != 0 || !strings.Contains(out, `"d1": [`) || strings.Contains(out, tDevPSK) {
		t.Fatalf("scs list: %d %s%s", code, out, errs)
	}
}

func scsRead(t *testing.T, addr, id string, psk []byte, path string) codes.Code {
	t.Helper()
	dc := &piondtls.Config{PSK: func([]byte) ([]byte, error) { return psk, nil }, PSKIdentityHint: []byte(id),
		CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}}
	cc, err := coapdtls.Dial(addr, dc)
	if err != nil {
		t.Fatalf("scs dial: %v", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, path)
	if err != nil {
		t.Fatalf("scs GET %s: %v", path, err)
	}
	return resp.Code()
}

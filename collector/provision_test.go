package collector

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

// raceEnabled is set under -race (race_test.go): timings are not goals.
var raceEnabled bool

// scsGet reads path as the SCS with identity id and psk, in a session of
// its own (go-coap's DTLS client, as an application server would).
func scsGet(t *testing.T, addr, id string, psk []byte, path string) codes.Code {
	t.Helper()
	dc := &piondtls.Config{PSK: func([]byte) ([]byte, error) { return psk, nil }, PSKIdentityHint: []byte(id),
		CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}}
	cc, err := coapdtls.Dial(addr, dc)
	if err != nil {
		t.Fatalf("scs %s: dial: %v", id, err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, path)
	if err != nil {
		t.Fatalf("scs %s: GET %s: %v", id, path, err)
	}
	return resp.Code()
}

// TestProvisionWithoutRestart: on both backends, a running collector that
// started with no devices sees a device added to the store (it connects
// and is verified), an SCS added and granted (its read is allowed), the
// grant revoked (refused on the next request) and the device removed (its
// session's next message and its next handshake are refused). The
// embedded store is changed through the admin socket, as the commands do
// while serve runs; PostgreSQL through a second connection pool, as from
// another process.
func TestProvisionWithoutRestart(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		dir := t.TempDir()
		testBackends.Store(t, b)
		t.Cleanup(func() { testBackends.Delete(t) })
		s, devAddr, scsAddr, log := startServer(t, parseTestConfig(t, "[collector]\nheartbeat_timeout = 2s\n"), dir)
		var reg Registry
		if b.name == "bolt" {
			if err := s.ServeAdmin(filepath.Join(dir, AdminSocket)); err != nil {
				t.Fatal(err)
			}
			a, err := DialAdmin(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			reg = a
		} else {
			st := b.open(t, dir)
			defer st.Close()
			reg = st
		}
		ctx := context.Background()
		dev := newTestDevice(t, "dev1")
		if _, err := uplink.Dial(ctx, dev.uplinkConfig(devAddr)); err == nil {
			t.Fatal("an unregistered device connected")
		}
		psk, _ := hex.DecodeString(devPSKHex)
		d := &Device{ID: "dev1", PSKIdentity: "dev1-id", PSK: psk, PublicKey: dev.key.Public().(ed25519.PublicKey)}
		if err := CheckDevice(d); err != nil {
			t.Fatal(err)
		}
		if err := reg.AddDevices(ctx, []*Device{d}, false); err != nil {
			t.Fatal(err)
		}
		c, err := uplink.Dial(ctx, dev.uplinkConfig(devAddr))
		if err != nil {
			t.Fatalf("a device added to the running collector: %v\n%s", err, log)
		}
		defer c.Close()
		waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "device dev1: binding attestation verified (nonce") })
		hb, _ := dev.iss.SignHeartbeat()
		if code, _, err := c.Post(ctx, wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
			t.Fatalf("heartbeat: %v %v", code, err)
		}

		scsPSK := []byte(scsAPSK)
		if err := reg.AddSCS(ctx, &SCS{Name: "alpha", PSKIdentity: "alpha", PSK: scsPSK}, false); err != nil {
			t.Fatal(err)
		}
		if code := scsGet(t, scsAddr, "alpha", scsPSK, "/devices/dev1/status"); code != codes.NotFound {
			t.Fatalf("before the grant: %v, want 4.04", code)
		}
		if err := reg.Grant(ctx, "alpha", []string{"dev1"}, []string{ClassStatus}); err != nil {
			t.Fatal(err)
		}
		if code := scsGet(t, scsAddr, "alpha", scsPSK, "/devices/dev1/status"); code != codes.Content {
			t.Fatalf("granted: %v, want 2.05\n%s", code, log)
		}
		// An observation of events ends when its grant is revoked.
		if err := reg.Grant(ctx, "alpha", []string{"dev1"}, []string{ClassEvents}); err != nil {
			t.Fatal(err)
		}
		dc := &piondtls.Config{PSK: func([]byte) ([]byte, error) { return scsPSK, nil }, PSKIdentityHint: []byte("alpha"),
			CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}}
		oc, err := coapdtls.Dial(scsAddr, dc)
		if err != nil {
			t.Fatal(err)
		}
		defer oc.Close()
		got := make(chan codes.Code, 16)
		octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
		obs, err := oc.Observe(octx, "/devices/dev1/events", func(m *pool.Message) { got <- m.Code() })
		ocancel()
		if err != nil {
			t.Fatal(err)
		}
		_ = obs // ended by closing the SCS connection: go-coap v3.6.0's Observation.Cancel races its own receive loop (a -race report in CI)
		next := func(what string) codes.Code {
			t.Helper()
			select {
			case c := <-got:
				return c
			case <-time.After(10 * time.Second):
				t.Fatalf("no notification: %s\n%s", what, log)
			}
			return 0
		}
		next("the observation's first answer")
		event := func() {
			t.Helper()
			tok, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed"))
			if code, _, err := c.Post(ctx, wire.PathEvent, tok); err != nil || code != uplink.Changed {
				t.Fatalf("event: %v %v", code, err)
			}
		}
		event()
		if code := next("an event, granted"); code != codes.Content {
			t.Fatalf("granted notification: %v", code)
		}
		if err := reg.Revoke(ctx, "alpha", []string{"dev1"}, []string{ClassEvents}); err != nil {
			t.Fatal(err)
		}
		event()
		if code := next("an event, revoked"); code != codes.NotFound {
			t.Fatalf("notification after the revoke: %v, want 4.04", code)
		}

		if err := reg.Revoke(ctx, "alpha", []string{"dev1"}, nil); err != nil {
			t.Fatal(err)
		}
		if code := scsGet(t, scsAddr, "alpha", scsPSK, "/devices/dev1/status"); code != codes.NotFound {
			t.Fatalf("revoked: %v, want 4.04", code)
		}

		if err := reg.RemoveDevice(ctx, "dev1"); err != nil {
			t.Fatal(err)
		}
		hb, _ = dev.iss.SignHeartbeat()
		if code, _, err := c.Post(ctx, wire.PathHeartbeat, hb); err == nil && code != uplink.Unauthorized {
			t.Fatalf("a removed device's message: %v, want 4.01", code)
		}
		c.Close()
		if _, err := uplink.Dial(ctx, dev.uplinkConfig(devAddr)); err == nil {
			t.Fatal("a removed device connected again")
		}
		if out := log.String(); strings.Contains(out, devPSKHex) || strings.Contains(out, hex.EncodeToString(scsPSK)) || strings.Contains(out, scsAPSK) {
			t.Fatal("a PSK in the log")
		}
	})
}

// fleetCSV is n devices as a bulk-add file: ids dev-000001..., PSK
// identities, random PSKs and random 32-byte keys (the registry checks a
// key's length, not its curve point).
func fleetCSV(n int, prefix string) []byte {
	var b bytes.Buffer
	b.WriteString("id,psk_identity,psk,public_key\n")
	k := make([]byte, 48)
	for i := 0; i < n; i++ {
		rand.Read(k)
		fmt.Fprintf(&b, "%s%06d,%s%06d-id,%x,%x\n", prefix, i, prefix, i, k[:16], k[16:])
	}
	return b.Bytes()
}

// TestBulkAdd: a fleet file of 100,000 devices (10,000 with -short) goes
// into each backend in one transaction, well under a minute (the time is
// logged); a second file with one id already taken changes nothing.
func TestBulkAdd(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	file := fleetCSV(n, "dev-")
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st := b.open(t, t.TempDir())
		defer st.Close()
		start := time.Now()
		ds, err := ParseDeviceFile("fleet.csv", bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		parsed := time.Since(start)
		if err := st.AddDevices(ctx, ds, false); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("%s: %d devices in %s (parse and check %s, store %s; race detector %v)", b.name, n, took.Round(time.Millisecond),
			parsed.Round(time.Millisecond), (took - parsed).Round(time.Millisecond), raceEnabled)
		if took > time.Minute && !raceEnabled {
			t.Errorf("%d devices took %s, goal under a minute", n, took)
		}
		if got, err := st.CountDevices(ctx); err != nil || got != n {
			t.Fatalf("count %d %v, want %d", got, err, n)
		}
		want := ds[n/2]
		if d, err := st.DeviceByPSK(ctx, want.PSKIdentity); err != nil || d == nil || d.ID != want.ID || !bytes.Equal(d.PSK, want.PSK) {
			t.Fatalf("by psk identity: %+v %v", d, err)
		}
		more, err := ParseDeviceFile("more.csv", bytes.NewReader(append(fleetCSV(10, "new-"), fleetCSV(1, "dev-")[len("id,psk_identity,psk,public_key\n"):]...)))
		if err != nil {
			t.Fatal(err)
		}
		var dup *DuplicateError
		if err := st.AddDevices(ctx, more, false); !errors.As(err, &dup) {
			t.Fatalf("batch with a taken id: %v", err)
		}
		if got, _ := st.CountDevices(ctx); got != n {
			t.Fatalf("a failed batch left %d devices", got-n)
		}
	})
}

// TestParseDeviceFile: errors name the file and line, never the PSK.
func TestParseDeviceFile(t *testing.T) {
	key := strings.Repeat("ab", 32)
	psk := strings.Repeat("5e", 16)
	for _, tc := range []struct{ name, text, want string }{
		{"a.csv", "id,psk_identity,psk,public_key\nd1,i1," + psk + "," + key + "\nd2,i2,zz" + psk + "," + key + "\n", "a.csv:3: device d2: psk: not hex"},
		{"a.csv", "id,psk_identity,psk,public_key\nd1,i1," + psk + "," + key + "\nd1,i2," + psk + "," + key + "\n", `a.csv:3: device id "d1" given twice (first at 2)`},
		{"a.csv", "id,psk_identity,psk,public_key\nd1,i1," + psk + "," + key + "\nd2,i1," + psk + "," + key + "\n", `psk_identity "i1" given twice`},
		{"a.csv", "id,psk_identity,psk,public_key\nd1,i1,00," + key + "\n", "a.csv:2: device d1: psk: want at least 32 hex digits"},
		{"a.csv", "id,secret\n", `unknown column "secret"`},
		{"a.csv", "id,psk_identity,psk,public_key\nd1,i1," + psk + "," + key + "\nd\x002,i2," + psk + "," + key + "\n", `a.csv:3: device id "d\x002": want a non-empty UTF-8 id without spaces, control characters or /`},
		{"a.csv", "id,psk_identity,psk,public_key\nd\xff,i1," + psk + "," + key + "\n", `a.csv:2: device id "d\xff"`},
		{"a.json", `[{"id":"d1","psk_identity":"i\u001b[2J","psk":"` + psk + `","public_key":"` + key + `"}]`, `a.json:entry 1: device d1: psk_identity "i\x1b[2J": want UTF-8 without control characters`},
		{"a.json", `[{"id":"d1","psk_identity":"i1","psk":"` + psk + `","public_key":"` + key + `"},{"id":"d2","public_key":"00"}]`, "a.json:entry 2: device d2: public key"},
		{"a.json", `[{"id":"d1","psk_identity":"i1","psk":"` + psk + `","public_key":"` + key + `","heartbeat_timeout":"1ns"}]`, "a.json:entry 1: device d1: heartbeat_timeout: want a duration of 1ms or more"},
		{"a.json", `{"id":"d1"}`, "want a JSON array"},
		{"a.txt", "", "want a .csv or .json file"},
	} {
		_, err := ParseDeviceFile(tc.name, strings.NewReader(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), psk) {
			t.Errorf("a PSK in %q", err)
		}
	}
	ds, err := ParseDeviceFile("ok.json", strings.NewReader(`[{"id":"d1","psk_identity":"i1","psk":"`+psk+`","public_key":"`+key+`","heartbeat_timeout":"5m"}]`))
	if err != nil || len(ds) != 1 || ds[0].HeartbeatTimeout != 5*time.Minute || len(ds[0].KeyPin) != 32 {
		t.Fatalf("%+v %v", ds, err)
	}
	// Whole milliseconds, as PostgreSQL keeps them: both stores the same.
	ds, err = ParseDeviceFile("ms.json", strings.NewReader(`[{"id":"d1","psk_identity":"i1","psk":"`+psk+`","public_key":"`+key+`","heartbeat_timeout":"1500us"}]`))
	if err != nil || len(ds) != 1 || ds[0].HeartbeatTimeout != time.Millisecond {
		t.Fatalf("1500us: %+v %v", ds, err)
	}
}

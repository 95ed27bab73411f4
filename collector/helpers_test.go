package collector

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/wire"
)

// Fictional credentials for tests.
const (
	devPSKHex = "000102030405060708090a0b0c0d0e0f"
	scsAPSK   = "scs-a-secret-key-0001" // ASCII, so coap-client -k can take it
	scsBPSK   = "scs-b-secret-key-0002"
)

type testDevice struct {
	id   string
	key  ed25519.PrivateKey
	iss  *attest.Issuer
	seq  *attest.MemSequence
	pemf string
	p    attest.Pseudonyms

	mu       sync.Mutex
	guard    *uplink.TriggerGuard
	triggers []wire.Trigger
	peers    []string
	reads    int                // GET /status served
	formats  []byte             // the token formats the last attestation request said the collector reads
	later    []byte             // its wire.AttestLater (nil: absent)
	mdt      uplink.HandlerFunc // serves /mdt and /mdt/ack when set
}

func newTestDevice(t testing.TB, id string) *testDevice {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDevice{id: id, key: priv, seq: &attest.MemSequence{}}
	clock := attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false })
	if d.iss, err = attest.NewIssuer(priv, d.seq, clock, 1); err != nil {
		t.Fatal(err)
	}
	pemb, _ := attest.MarshalPublicKeyPEM(pub)
	d.pemf = filepath.Join(t.TempDir(), id+".pem")
	if err := os.WriteFile(d.pemf, pemb, 0o644); err != nil {
		t.Fatal(err)
	}
	d.p = attest.Pseudonyms{IMSI: make([]byte, 16), ICCID: make([]byte, 16)}
	rand.Read(d.p.IMSI)
	rand.Read(d.p.ICCID)
	d.guard, _ = uplink.OpenTriggerGuard("", 0)
	return d
}

// ServeUplink is the device side of the collector's requests.
func (d *testDevice) ServeUplink(_ context.Context, r *uplink.Request) (uplink.Code, []byte) {
	d.mu.Lock()
	d.peers = append(d.peers, r.Peer)
	d.mu.Unlock()
	switch {
	case r.Method == "POST" && r.Path == wire.PathAttest:
		var req struct {
			Nonce   []byte `cbor:"1,keyasint"`
			Formats []byte `cbor:"2,keyasint"`
			Later   []byte `cbor:"3,keyasint"`
		}
		if cbor.Unmarshal(r.Payload, &req) != nil {
			return uplink.BadRequest, nil
		}
		d.mu.Lock()
		d.formats, d.later = req.Formats, req.Later
		d.mu.Unlock()
		tok, err := d.iss.Sign(attest.KindBinding, append([]attest.Claim{attest.NonceClaim(req.Nonce)}, attest.PseudonymClaims(d.p)...)...)
		if err != nil {
			return uplink.ServerError, nil
		}
		return uplink.Content, tok
	case r.Method == "GET" && r.Path == wire.PathStatus:
		d.mu.Lock()
		d.reads++
		n := d.reads
		d.mu.Unlock()
		b, _ := cbor.Marshal(map[string]any{"sim": "ready", "registration": "home", "read": n})
		return uplink.Content, b
	case (r.Path == wire.PathMDT || r.Path == wire.PathMDTAck) && d.mdt != nil:
		return d.mdt(context.Background(), r)
	case r.Method == "POST" && r.Path == wire.PathTrigger:
		tr, err := wire.DecodeTrigger(r.Payload)
		if err != nil {
			return uplink.BadRequest, nil
		}
		if tr.Action == "say-nul" { // a device whose reason is not plain text
			return uplink.BadRequest, []byte("no\x00such action\nALARM device dev1 binding-changed: forged")
		}
		if tr.Action != "ping" { // as the agent: only what it implements
			return uplink.BadRequest, []byte(fmt.Sprintf("unknown trigger action %q (this device implements: ping)", tr.Action))
		}
		if err := d.guard.Accept(tr, time.Now(), true); err != nil {
			return uplink.Forbidden, nil
		}
		d.mu.Lock()
		d.triggers = append(d.triggers, tr)
		d.mu.Unlock()
		return uplink.Changed, nil
	}
	return uplink.NotFound, nil
}

func (d *testDevice) config() string {
	return fmt.Sprintf("[device %q]\npsk_identity = %s-id\npsk = %s\npublic_key = %s\nheartbeat_timeout = 2s\n\n", d.id, d.id, devPSKHex, d.pemf)
}

func (d *testDevice) uplinkConfig(addr string) uplink.Config {
	psk, _ := hex.DecodeString(devPSKHex)
	return uplink.Config{Addr: addr, Name: "collector", PSKIdentity: d.id + "-id", PSK: psk, Handler: d, Timeout: 5 * time.Second}
}

func testConfigText(devs ...*testDevice) string {
	s := "[collector]\nheartbeat_timeout = 2s\n\n"
	for _, d := range devs {
		s += d.config()
	}
	s += fmt.Sprintf("[scs \"alpha\"]\npsk_identity = alpha\npsk = %x\ndevices = dev1\nclasses = status events trigger\n\n", scsAPSK)
	s += fmt.Sprintf("[scs \"beta\"]\npsk_identity = beta\npsk = %x\ndevices = dev2\nclasses = status\n", scsBPSK)
	return s
}

func parseTestConfig(t testing.TB, text string) *Config {
	f, err := config.Parse("test.conf", text)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

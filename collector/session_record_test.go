package collector

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

// countingStore counts the registry lookups by PSK identity.
type countingStore struct {
	Store
	lookups atomic.Int64
}

func (c *countingStore) DeviceByPSK(ctx context.Context, identity string) (*Device, error) {
	c.lookups.Add(1)
	return c.Store.DeviceByPSK(ctx, identity)
}

// TestSessionKeepsRecord: on both backends, a device session's registry
// record is read for its first message and kept for the next ones (they
// read nothing), and a change of the record by another writer is in
// force for the session's very next message: with its key replaced, a
// token of the old key is refused and one of the new key taken; removed,
// the device is refused. PostgreSQL is changed through a second
// connection pool, as from another process; the embedded store through
// the store itself (its one writer).
func TestSessionKeepsRecord(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		dir := t.TempDir()
		st := &countingStore{Store: b.open(t, dir)}
		var other Registry = st.Store
		if b.name == "postgres" {
			o := b.open(t, dir)
			defer o.Close()
			other = o
		}
		dev := newTestDevice(t, "dev1")
		psk, _ := hex.DecodeString(devPSKHex)
		rec := Device{ID: "dev1", PSKIdentity: "dev1-id", PSK: psk, PublicKey: dev.key.Public().(ed25519.PublicKey)}
		if err := st.AddDevices(ctx, []*Device{&rec}, false); err != nil {
			t.Fatal(err)
		}
		log := &syncBuf{}
		s, err := New(parseTestConfig(t, "[collector]\n"), Options{StateDir: dir, Store: st, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		addr, err := s.ListenDevices("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.Run(rctx); close(done) }()
		defer func() { cancel(); <-done }()
		c, err := uplink.Dial(ctx, dev.uplinkConfig(addr.String()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })
		post := func(iss *attest.Issuer) codes.Code {
			t.Helper()
			tok, err := iss.SignHeartbeat()
			if err != nil {
				t.Fatal(err)
			}
			code, _, err := c.Post(ctx, wire.PathHeartbeat, tok)
			if err != nil {
				t.Fatalf("heartbeat: %v\n%s", err, log)
			}
			return code
		}
		if code := post(dev.iss); code != codes.Changed {
			t.Fatalf("first heartbeat: %v\n%s", code, log)
		}
		n := st.lookups.Load()
		for i := 0; i < 5; i++ {
			if code := post(dev.iss); code != codes.Changed {
				t.Fatalf("heartbeat %d: %v", i, code)
			}
		}
		if got := st.lookups.Load() - n; got != 0 {
			t.Fatalf("5 heartbeats of one session looked the device up %d times, want 0 (the session keeps its record)", got)
		}

		// The key replaced: the new key's next token is taken (its
		// signature fails against the kept record, which is then read
		// again), and the old key's refused.
		pub2, key2, _ := ed25519.GenerateKey(rand.Reader)
		rec2 := rec
		rec2.PublicKey = pub2
		if err := other.AddDevices(ctx, []*Device{&rec2}, true); err != nil {
			t.Fatal(err)
		}
		clock := attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false })
		iss2, err := attest.NewIssuer(key2, dev.seq, clock, 1)
		if err != nil {
			t.Fatal(err)
		}
		if code := post(iss2); code != codes.Changed {
			t.Fatalf("a token of the new key: %v, want 2.04\n%s", code, log)
		}
		if code := post(dev.iss); code != codes.Forbidden {
			t.Fatalf("a token of the replaced key: %v, want 4.03\n%s", code, log)
		}
		// With the old key's record kept and the key replaced again, its
		// token passes the kept signature check and is refused under the
		// lock, where the registry's change shows.
		if err := other.AddDevices(ctx, []*Device{&rec}, true); err != nil {
			t.Fatal(err)
		}
		if code := post(dev.iss); code != codes.Changed {
			t.Fatalf("back to the old key: %v", code)
		}
		rec3 := rec
		rec3.PublicKey = pub2
		if err := other.AddDevices(ctx, []*Device{&rec3}, true); err != nil {
			t.Fatal(err)
		}
		if code := post(dev.iss); code != codes.Forbidden {
			t.Fatalf("a token of the key replaced again: %v, want 4.03\n%s", code, log)
		}

		// Removed: refused at once.
		if err := other.RemoveDevice(ctx, "dev1"); err != nil {
			t.Fatal(err)
		}
		if code := post(iss2); code != codes.Unauthorized {
			t.Fatalf("a removed device's heartbeat: %v, want 4.01", code)
		}
	})
}

package collector

import (
	"bytes"
	"context"
	"testing"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/wire"
)

// TestCIDPrefix: with a prefix, every Connection ID this instance gives a
// device session begins with it (what a UDP load balancer routes by),
// followed by DeviceCIDBytes random ones; a longer prefix is refused.
func TestCIDPrefix(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	dir := t.TempDir()
	if _, err := New(cfg, Options{StateDir: dir, Store: testStore(t, t.TempDir()), CIDPrefix: make([]byte, MaxCIDPrefix+1)}); err == nil {
		t.Fatal("a 5-byte prefix was taken")
	}
	prefix := []byte{0xc0, 0x01}
	s, err := New(cfg, Options{StateDir: dir, Store: testStore(t, dir), CIDPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr, err := s.ListenDevices("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(addr.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat: %v %v", code, err)
	}
	// The IDs themselves (pion keeps a session's own to itself).
	gen := cidGenerator(prefix)
	a, b := gen(), gen()
	for _, cid := range [][]byte{a, b} {
		if len(cid) != len(prefix)+DeviceCIDBytes || !bytes.HasPrefix(cid, prefix) {
			t.Fatalf("connection ID %x, want %x and %d random bytes", cid, prefix, DeviceCIDBytes)
		}
	}
	if bytes.Equal(a, b) {
		t.Fatalf("two equal connection IDs %x", a)
	}
}

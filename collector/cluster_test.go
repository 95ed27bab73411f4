package collector

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

// TestRelayInProcess: two servers on one PostgreSQL database (as two
// instances, in one process so -race sees the relay): the device's
// session is on s2; a status read and a trigger asked of s1 are
// performed by s2 over it. When s2 stops, its sessions go with it and
// s1 answers from what it knows.
func TestRelayInProcess(t *testing.T) {
	b := backendNamed("postgres")
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	log := &syncBuf{}
	dir1, dir2 := t.TempDir(), t.TempDir()
	s1, err := New(cfg, Options{StateDir: dir1, Store: b.open(t, dir1), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := New(cfg, Options{StateDir: dir2, Store: b.open(t, dir2), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s2.ListenDevices("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(addr.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 10*time.Second, "the attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })
	x := &SCS{Name: "alpha"}
	code, body, queued, _ := s1.scsStatus(context.Background(), x, "dev1", false)
	var out struct {
		Online bool           `cbor:"online"`
		Status map[string]any `cbor:"status"`
	}
	if err := cbor.Unmarshal(body, &out); err != nil || code != codes.Content || queued || !out.Online || out.Status["sim"] != "ready" {
		t.Fatalf("status through s1: %v %+v queued %v (%v)\n%s", code, out, queued, err, log)
	}
	trig, _ := cbor.Marshal(map[int]any{1: 1, 2: "ping"})
	if code, body, _ := s1.scsTrigger(context.Background(), x, "dev1", trig, false, false); code != codes.Changed {
		t.Fatalf("trigger through s1: %v %s\n%s", code, body, log)
	}
	dev.mu.Lock()
	n := len(dev.triggers)
	dev.mu.Unlock()
	if n != 1 {
		t.Fatalf("device got %d triggers", n)
	}
	// s2 stops cleanly: it leaves the database with its sessions, and a
	// read at s1 is no longer relayed (it is queued there).
	s2.Close()
	if holder, err := s1.cluster.Holder(context.Background(), "dev1"); err != nil || holder != "" {
		t.Fatalf("holder after s2 stopped: %q %v", holder, err)
	}
	if code, _, queued, _ := s1.scsStatus(context.Background(), x, "dev1", false); code != codes.Content || !queued {
		t.Fatalf("status after s2 stopped: %v queued %v", code, queued)
	}
}

// TestLeaseRegained: an instance removed from the database while alive
// (its lease ran out while it could not reach the database, and another
// instance deleted it, sessions and all) registers again at its next
// renewal, with the sessions it holds.
func TestLeaseRegained(t *testing.T) {
	b := backendNamed("postgres")
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	cfg.InstanceLease = time.Second
	log := &syncBuf{}
	dir := t.TempDir()
	s, err := New(cfg, Options{StateDir: dir, Store: b.open(t, dir), Log: log})
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
	waitFor(t, 10*time.Second, "the attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })
	pool := s.st.(*pgStore).pool
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `DELETE FROM instances`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "registering again", func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM sessions s JOIN instances i ON i.id = s.instance WHERE s.device = 'dev1'`).Scan(&n)
		return err == nil && n == 1
	})
	if !strings.Contains(log.String(), "lease had run out; registering again") {
		t.Fatalf("log:\n%s", log)
	}
}

// TestRelayHolderGone: the instance holding the session stops answering
// relayed requests (killed: its row stays until its lease runs out). A
// status read asked elsewhere is answered after the bounded wait from
// what that instance knows, queued; a trigger gets 5.04 and is not sent
// again from there.
func TestRelayHolderGone(t *testing.T) {
	b := backendNamed("postgres")
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	log := &syncBuf{}
	dir1, dir2 := t.TempDir(), t.TempDir()
	s1, err := New(cfg, Options{StateDir: dir1, Store: b.open(t, dir1), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := New(cfg, Options{StateDir: dir2, Store: b.open(t, dir2), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	addr, err := s2.ListenDevices("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(addr.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 10*time.Second, "the attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })
	// s2 goes deaf as a killed instance would: no listener, no renewal;
	// its rows stay.
	s2.cluster.cancel()
	s2.cluster.done.Wait()
	x := &SCS{Name: "alpha"}
	start := time.Now()
	code, _, queued, _ := s1.scsStatus(context.Background(), x, "dev1", false)
	if took := time.Since(start); code != codes.Content || !queued || took < relayWait || took > relayWait+3*time.Second {
		t.Fatalf("status with the holder gone: %v queued %v after %v, want 2.05 queued after about %v", code, queued, took, relayWait)
	}
	trig, _ := cbor.Marshal(map[int]any{1: 1, 2: "ping"})
	if code, _, _ := s1.scsTrigger(context.Background(), x, "dev1", trig, false, false); code != codes.GatewayTimeout {
		t.Fatalf("trigger with the holder gone: %v, want 5.04", code)
	}
	if s1.Queued("dev1") != 1 { // the status read only
		t.Fatalf("%d queued at s1, want the status read", s1.Queued("dev1"))
	}
}

// TestQueueHandOver: requests queued on one instance for a device with no
// session anywhere go, when the device's session comes up on another
// instance, to that one: the status read is answered by the device (and
// reaches the asking instance's store), the trigger is delivered once
// and audited where it was asked.
func TestQueueHandOver(t *testing.T) {
	b := backendNamed("postgres")
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	log := &syncBuf{}
	dir1, dir2 := t.TempDir(), t.TempDir()
	s1, err := New(cfg, Options{StateDir: dir1, Store: b.open(t, dir1), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := New(cfg, Options{StateDir: dir2, Store: b.open(t, dir2), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	x := &SCS{Name: "alpha"}
	if code, _, queued, _ := s1.scsStatus(context.Background(), x, "dev1", false); code != codes.Content || !queued {
		t.Fatalf("status read with no session: %v queued %v", code, queued)
	}
	trig, _ := cbor.Marshal(map[int]any{1: 1, 2: "ping"})
	if code, body, _ := s1.scsTrigger(context.Background(), x, "dev1", trig, false, false); code != codes.Created {
		t.Fatalf("trigger with no session: %v %s", code, body)
	}
	if n := s1.Queued("dev1"); n != 2 {
		t.Fatalf("%d queued at s1, want 2", n)
	}
	addr, err := s2.ListenDevices("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(addr.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 15*time.Second, "the hand-over", func() bool {
		return strings.Contains(log.String(), "queued trigger (ping) from alpha handed over to instance")
	})
	dev.mu.Lock()
	reads, trigs := dev.reads, len(dev.triggers)
	dev.mu.Unlock()
	if reads != 1 || trigs != 1 || s1.Queued("dev1") != 0 {
		t.Fatalf("device served %d reads and %d triggers, %d left queued at s1; want 1, 1, 0\n%s", reads, trigs, s1.Queued("dev1"), log)
	}
	if ds := s1.device("dev1"); len(ds.Status) == 0 {
		t.Fatalf("no status stored after the hand-over")
	}
	au, err := s1.st.Audit(context.Background(), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	var delivered bool
	for _, r := range au {
		delivered = delivered || (r.Method == "DELIVER" && r.Code == "2.04")
	}
	if !delivered {
		t.Fatalf("no DELIVER 2.04 in the audit: %+v", au)
	}
}

// TestRemoteObserve: an SCS observing a device's events on one instance
// gets the event the device posts to another.
func TestRemoteObserve(t *testing.T) {
	b := backendNamed("postgres")
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	log := &syncBuf{}
	dir1, dir2 := t.TempDir(), t.TempDir()
	s1, err := New(cfg, Options{StateDir: dir1, Store: b.open(t, dir1), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := New(cfg, Options{StateDir: dir2, Store: b.open(t, dir2), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	scsAddr, err := s1.ListenSCS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	devAddr, err := s2.ListenDevices("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scs := dialSCS(t, scsAddr.String())
	notes := make(chan map[string]any, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := scs.Observe(ctx, "/devices/dev1/events", func(m *pool.Message) {
		body, _ := m.ReadBody()
		var v map[string]any
		json.Unmarshal(body, &v)
		notes <- v
	}, message.Option{ID: message.Accept, Value: []byte{byte(message.AppJSON)}})
	if err != nil {
		t.Fatal(err)
	}
	_ = obs // ended by closing the connection (see TestQueuedStatusRead)
	<-notes // the registration's answer
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(devAddr.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ev, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed"))
	if code, _, err := c.Post(context.Background(), wire.PathEvent, ev); err != nil || code != uplink.Changed {
		t.Fatalf("event: %v %v", code, err)
	}
	select {
	case v := <-notes:
		if v["event"] != "cell_changed" || v["device"] != "dev1" {
			t.Fatalf("notification %v, want the event", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification on s1 of the event posted to s2\n%s", log)
	}
	// Audited where the SCS is.
	waitFor(t, 5*time.Second, "the NOTIFY audit", func() bool {
		au, _ := s1.st.Audit(context.Background(), "alpha")
		for _, r := range au {
			if r.Method == "NOTIFY" && r.Code == "2.05" {
				return true
			}
		}
		return false
	})
}

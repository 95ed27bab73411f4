package collector

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/wire"
)

// failingStore fails its writes while fail is set, as a store whose disk
// is full or whose database is down.
type failingStore struct {
	Store
	fail atomic.Bool
}

var errStoreDown = errors.New("disk full (test)")

func (f *failingStore) RecordDevice(ctx context.Context, id string, fn func(*DeviceState, *HistoryBatch) error) error {
	if f.fail.Load() {
		return errStoreDown
	}
	return f.Store.RecordDevice(ctx, id, fn)
}

func (f *failingStore) AppendAlarm(ctx context.Context, a Alarm) error {
	if f.fail.Load() {
		return errStoreDown
	}
	return f.Store.AppendAlarm(ctx, a)
}

// TestStoreErrorsRateLimited: while the store fails, each message is
// refused (5.00) and counted in mtccollector_store_errors_total, but the
// log has one line for the cause, not one per message; once the store
// works again, messages are taken.
func TestStoreErrorsRateLimited(t *testing.T) {
	dir := t.TempDir()
	dev := newTestDevice(t, "dev1")
	st := &failingStore{Store: testStore(t, dir)}
	s, addr, _, log := startServerOn(t, parseTestConfig(t, testConfigText(dev)), dir, st)
	ctx := context.Background()
	c, err := uplink.Dial(ctx, dev.uplinkConfig(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })

	st.fail.Store(true)
	const n = 20
	for i := range n {
		hb, _ := dev.iss.SignHeartbeat()
		if code, _, err := c.Post(ctx, wire.PathHeartbeat, hb); err != nil || code != uplink.ServerError {
			t.Fatalf("heartbeat %d with the store down: %v %v", i, code, err)
		}
	}
	if lines := strings.Count(log.String(), "ERROR storing the state of device dev1"); lines != 1 {
		t.Fatalf("%d log lines for %d failed writes, want 1:\n%s", lines, n, log)
	}
	var m strings.Builder
	s.WriteMetrics(&m)
	if !strings.Contains(m.String(), `mtccollector_store_errors_total{op="write"} 20`) {
		t.Fatalf("metrics:\n%s", m.String())
	}
	st.fail.Store(false)
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(ctx, wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat with the store back: %v %v\n%s", code, err, log)
	}
}

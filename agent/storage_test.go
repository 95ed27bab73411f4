package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/clock"
)

// faultyOutbox is a MemOutbox whose appends fail with err while it is set,
// as agent/outbox does on a full disk (a *outbox.FileError wrapping the
// errno; nothing stored).
type faultyOutbox struct {
	MemOutbox
	mu  sync.Mutex
	err error
	n   int // failed appends
	// appended, when set, is signalled after each append that worked.
	appended chan struct{}
}

func (f *faultyOutbox) Append(msg []byte) (uint64, error) {
	f.mu.Lock()
	err := f.err
	if err != nil {
		f.n++
	}
	f.mu.Unlock()
	if err != nil {
		return 0, &outbox.FileError{Op: "write", Name: "seg-0000000000000001.log", Err: err}
	}
	id, err := f.MemOutbox.Append(msg)
	if f.appended != nil {
		select {
		case f.appended <- struct{}{}:
		default:
		}
	}
	return id, err
}

func (f *faultyOutbox) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// countingHandler counts log records by message.
type countingHandler struct {
	mu    sync.Mutex
	msgs  map[string]int
	attrs map[string]string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[r.Message]++
	r.Attrs(func(a slog.Attr) bool { h.attrs[a.Key] = a.Value.String(); return true })
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[msg]
}

func newStorageAgent(t testing.TB) (*Agent, *faultyOutbox, *countingHandler, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	ob := &faultyOutbox{}
	lh := &countingHandler{msgs: map[string]int{}, attrs: map[string]string{}}
	cfg := DefaultConfig()
	cfg.StateDir = dir
	a, err := New(cfg, Deps{
		Open:   func(context.Context) (io.ReadWriteCloser, error) { return nil, errors.New("no modem") },
		Outbox: ob,
		Log:    slog.New(lh),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, ob, lh, dir
}

// signedEvents verifies every queued message and returns the event names
// (heartbeats as "heartbeat"), checking sequence numbers increase.
func signedEvents(t *testing.T, dir string, msgs [][]byte) []string {
	t.Helper()
	key, _, err := attest.LoadOrCreateDeviceKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := &attest.Verifier{Key: key.Public().(ed25519.PublicKey), SkipFreshness: true}
	var out []string
	for _, m := range msgs {
		res, err := v.Verify(m[1:])
		if err != nil {
			t.Fatalf("queued message does not verify (or is out of order): %v", err)
		}
		v.LastSeq = res.Token.Seq
		name := res.Token.Event
		if m[0] == KindHeartbeatMsg {
			name = "heartbeat"
		}
		out = append(out, name)
	}
	return out
}

// TestStorageFaultHeldAndResumed: while the outbox fails with ENOSPC the
// agent keeps signing, holds the messages in memory and logs the fault
// once (with the disk-full hint), not per message; when space returns the
// held messages are queued by the retry, in sequence order, without a
// restart, and nothing is reported lost. (Before, each message was logged
// "not queued" and dropped for good.)
func TestStorageFaultHeldAndResumed(t *testing.T) {
	a, ob, lh, dir := newStorageAgent(t)
	a.emit("before", nil)
	ob.set(syscall.ENOSPC)
	for range 50 {
		a.emit("cell_changed", map[string]any{"n": 1})
	}
	a.signAndQueue("heartbeat", KindHeartbeatMsg, nil, func() ([]byte, error) { return a.issuer.SignHeartbeat() })
	if n := lh.count("storage failing: holding new messages in memory and retrying"); n != 1 {
		t.Fatalf("storage fault logged %d times for 51 messages, want once", n)
	}
	if h := lh.attrs["hint"]; !strings.HasPrefix(h, "disk full: free space in "+dir) {
		t.Fatalf("hint = %q", h)
	}
	if lh.count("not queued") != 0 {
		t.Fatal("messages were dropped (\"not queued\") instead of held")
	}
	if held, _ := a.Held(); held != 51 {
		t.Fatalf("held = %d, want 51", held)
	}
	a.RetryStorage() // still full: nothing changes, no new log line
	if n := lh.count("storage failing: holding new messages in memory and retrying"); n != 1 {
		t.Fatalf("retry on a full disk logged again (%d)", n)
	}
	ob.set(nil)
	a.RetryStorage()
	if held, _ := a.Held(); held != 0 {
		t.Fatalf("held after space returned = %d", held)
	}
	a.emit("after", nil)
	ev := signedEvents(t, dir, ob.Messages())
	if len(ev) != 53 || ev[0] != "before" || ev[1] != "cell_changed" || ev[51] != "heartbeat" || ev[52] != "after" {
		t.Fatalf("queued %d: %v", len(ev), ev)
	}
	for _, e := range ev {
		if e == EventStorageGap {
			t.Fatal("storage_gap event although nothing was lost")
		}
	}
	if lh.count("storage works again: held messages written") != 1 {
		t.Fatal("recovery not logged")
	}
}

// TestStorageFaultOverflowGap: more is produced during the fault than the
// hold keeps; the first HoldMessages are queued in order when storage
// returns, then one signed storage_gap event counts the rest by type.
func TestStorageFaultOverflowGap(t *testing.T) {
	a, ob, _, dir := newStorageAgent(t)
	ob.set(syscall.EIO)
	const events, beats = HoldMessages + 40, 10
	for range events {
		a.emit("cell_changed", nil)
	}
	for range beats {
		a.signAndQueue("heartbeat", KindHeartbeatMsg, nil, func() ([]byte, error) { return a.issuer.SignHeartbeat() })
	}
	if held, _ := a.Held(); held != HoldMessages {
		t.Fatalf("held = %d, want the bound %d", held, HoldMessages)
	}
	ob.set(nil)
	a.RetryStorage()
	ev := signedEvents(t, dir, ob.Messages())
	if len(ev) != HoldMessages+1 || ev[len(ev)-1] != EventStorageGap {
		t.Fatalf("queued %d, last %q; want %d held then storage_gap", len(ev), ev[len(ev)-1], HoldMessages)
	}
	var gap EventRecord
	for _, r := range a.Recent() {
		if r.Type == EventStorageGap {
			gap = r
		}
	}
	lost, _ := gap.Details["lost"].(map[string]any)
	if lost["cell_changed"] != 40 || lost["heartbeat"] != beats || gap.Details["lost_total"] != 40+beats {
		t.Fatalf("storage_gap details = %v", gap.Details)
	}
	if gap.Details["from"] == "" || gap.Details["to"] == "" {
		t.Fatalf("storage_gap has no window: %v", gap.Details)
	}
	// Counted once: the next fault and recovery report only new losses.
	a.emit("after", nil)
	if ev := signedEvents(t, dir, ob.Messages()); ev[len(ev)-1] != "after" {
		t.Fatalf("after recovery: last %q", ev[len(ev)-1])
	}
}

// TestStorageRetryRunsByItself: the daemon's own retry loop writes the held
// messages once the outbox works, without any new message to push them,
// at the retry interval (on the fake clock: not before it).
func TestStorageRetryRunsByItself(t *testing.T) {
	a, ob, _, _ := newStorageAgent(t)
	clk := clock.NewFake(time.Unix(1e9, 0), true)
	a.deps.Clock = clk
	a.deps.StorageRetry = time.Minute
	ob.set(syscall.EROFS)
	a.emit("held", nil)
	ob.appended = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.retryStorage(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ob.set(nil)
	if !clk.WaitArmed(1, slow(30*time.Second)) {
		t.Fatal("the retry loop never armed its ticker")
	}
	clk.Advance(time.Minute - time.Millisecond)
	if n := len(ob.Messages()); n != 0 {
		t.Fatalf("%d messages written before the retry interval", n)
	}
	clk.Advance(time.Millisecond)
	select {
	case <-ob.appended:
	case <-time.After(slow(30 * time.Second)):
		t.Fatal("held message never written by the retry loop")
	}
	if n := len(ob.Messages()); n != 1 {
		t.Fatalf("%d messages written, want the one held", n)
	}
}

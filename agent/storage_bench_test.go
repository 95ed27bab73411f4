package agent

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
)

// durableFaulty fails appends with err while set, else appends to a real
// (fsynced) outbox.
type durableFaulty struct {
	faultyOutbox
	o *outbox.Outbox
}

func (d *durableFaulty) Append(msg []byte) (uint64, error) {
	d.mu.Lock()
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return 0, &outbox.FileError{Op: "write", Name: "seg", Err: err}
	}
	return d.o.Append(msg)
}

// BenchmarkStorageRecovery measures the time from space returning (the
// outbox's appends stop failing with ENOSPC) to the first held message
// being durable in the outbox, with the daemon's own retry loop at its
// default interval (DefaultRetry): s-to-first-persisted is the mean, and
// max-s-to-first-persisted the worst of the run.
func BenchmarkStorageRecovery(b *testing.B) {
	a, _, _, dir := newStorageAgent(b)
	o, err := outbox.Open(filepath.Join(dir, "outbox"), outbox.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	ob := &durableFaulty{o: o}
	a.deps.Outbox = ob
	a.deps.StorageRetry = 0 // the default
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.retryStorage(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var total, worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ob.set(syscall.ENOSPC)
		before, _ := o.Len()
		a.emit("cell_changed", nil)
		// Let the fault be seen at a random point of the retry cycle.
		time.Sleep(time.Duration(i%7) * DefaultRetry / 7)
		start := time.Now()
		ob.set(nil)
		for {
			if n, _ := o.Len(); n > before {
				break
			}
			time.Sleep(time.Millisecond)
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-first-persisted")
	b.ReportMetric(worst.Seconds(), "max-s-to-first-persisted")
}

package outbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

var benchOptions = Options{MaxMessages: 1 << 30, MaxBytes: 1 << 40}

// benchMsg is the size of a typical signed event token.
var benchMsg = msgFor("a 200-byte signed event")[:200]

// BenchmarkOutboxAppend measures durable appends (each fsynced before
// Append returns) of 200-byte messages.
func BenchmarkOutboxAppend(b *testing.B) {
	o := openT(b, b.TempDir(), benchOptions)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := o.Append(benchMsg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkOutboxAck measures durable acknowledgements, one message each
// (the ack file is replaced atomically: write, fsync, rename, directory
// fsync), the worst case of a collector acknowledging every message.
func BenchmarkOutboxAck(b *testing.B) {
	o := openT(b, b.TempDir(), benchOptions)
	for i := 0; i < b.N; i++ {
		if _, err := o.Append(benchMsg); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := 1; i <= b.N; i++ {
		if err := o.Ack(uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "acks/s")
}

// BenchmarkOutboxDiskPerMessage reports the bytes on disk per message
// beyond the message itself (frame header and amortised segment headers),
// for 500 messages of 200 bytes with the default segment size.
func BenchmarkOutboxDiskPerMessage(b *testing.B) {
	const n = 500
	var over float64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		o, err := Open(dir, benchOptions)
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			if _, err := o.Append(benchMsg); err != nil {
				b.Fatal(err)
			}
		}
		o.Close()
		segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
		var total int64
		for _, s := range segs {
			fi, err := os.Stat(s)
			if err != nil {
				b.Fatal(err)
			}
			total += fi.Size()
		}
		over = float64(total-n*int64(len(benchMsg))) / n
	}
	b.ReportMetric(over, "B/msg-overhead")
}

package collector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/pgtest"
)

// BenchmarkHistoryAppend: what a message costs the store with its history
// and without, on both backends, over 1,000 devices (a device's record
// and its history are its own keys, so the fleet's size does not enter).
func BenchmarkHistoryAppend(b *testing.B) {
	for _, be := range backends {
		for _, what := range []string{"state-only", "heartbeat", "event"} {
			b.Run(be.name+"/"+what, func(b *testing.B) {
				var st Store
				switch be.name {
				case "bolt":
					var err error
					if st, err = OpenBolt(b.TempDir() + "/" + BoltFile); err != nil {
						b.Fatal(err)
					}
				default:
					var err error
					if st, err = OpenPostgres(context.Background(), pgtest.URL(b)); err != nil {
						b.Fatal(err)
					}
				}
				defer st.Close()
				ctx := context.Background()
				b.ResetTimer()
				for i := range b.N {
					id := fmt.Sprintf("dev%04d", i%1000)
					now := time.Now()
					if err := st.RecordDevice(ctx, id, func(ds *DeviceState, h *HistoryBatch) error {
						ds.LastSeq++
						ds.LastSeen = now
						switch what {
						case "heartbeat":
							h.Heartbeat(ds.LastSeq, now)
						case "event":
							h.Add(HistoryEvent, ds.LastSeq, now, now, map[string]any{"event": "cell_changed", "boot_count": 3, "clock_synced": true})
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

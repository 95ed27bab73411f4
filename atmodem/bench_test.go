package atmodem_test

import (
	"context"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/atmodem/serialport"
)

// BenchmarkCommandsPTY: round trips of AT+CSQ to the simulator over a
// real pty, as the agent talks to a USB modem.
func BenchmarkCommandsPTY(b *testing.B) {
	sc, _ := modemsim.Parse([]byte(`{}`))
	s := modemsim.New(sc)
	p, err := modemsim.ServePTY(s, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	port, err := serialport.OpenDevice(p.Path())
	if err != nil {
		b.Fatal(err)
	}
	e := at.New(port)
	defer func() { e.Close(); port.Close(); e.Wait() }()
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := e.Run(ctx, at.Cmd{Line: "AT+CSQ", Prefix: "+CSQ:"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cmds/s")
}

// BenchmarkURCToEvent: from the simulator writing a +CEREG URC to the
// Monitor delivering the cell_changed event.
func BenchmarkURCToEvent(b *testing.B) {
	sc, _ := modemsim.Parse([]byte(`{"dialect": "quectel"}`))
	s := modemsim.New(sc)
	p, err := modemsim.ServePTY(s, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	events := make(chan time.Time, 16)
	mon := atmodem.NewMonitor(atmodem.MonitorConfig{
		Open: func(ctx context.Context) (io.ReadWriteCloser, error) { return serialport.OpenDevice(p.Path()) },
		Poll: time.Hour,
		Log:  testLog(),
		OnEvent: func(ev atmodem.Event) {
			if ev.Kind == atmodem.EventCellChanged && ev.Domain == atmodem.DomainCS {
				events <- time.Now()
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { mon.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-mon.Ready()
	// +CREG is the first URC the simulator writes for a cell change.
	lat := make([]time.Duration, 0, b.N)
	cell := uint64(0x100000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cell++
		t0 := time.Now()
		s.SetNetwork(modemsim.Network{CellID: &cell})
		select {
		case t1 := <-events:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(5 * time.Second):
			b.Fatal("no event")
		}
		time.Sleep(time.Millisecond) // let the re-read the URC triggers settle
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

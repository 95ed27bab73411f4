package atmodem_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/atmodem/serialport"
)

// Over a real pty: the receiver is started at Init only when asked for, a
// missing fix is no position (not an error), and a fix is read for both
// vendor dialects; after a reboot Init starts it again.
func TestGNSSOverPTY(t *testing.T) {
	for _, dialect := range []string{"quectel", "simcom"} {
		t.Run(dialect, func(t *testing.T) {
			s, path := startSim(t, `{"dialect": "`+dialect+`"}`)
			e := openEngine(t, path, nil)
			m := atmodem.NewModem(e, nil)
			m.GNSS = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			st, err := m.Status(ctx)
			if err != nil || st.Location != nil {
				t.Fatalf("without a fix: %+v %v", st.Location, err)
			}
			s.Apply(modemsim.Step{GNSS: &modemsim.GNSSFix{Lat: -33.86785, Lon: 151.20732, HDOP: 1.2}})
			st, err = m.Status(ctx)
			if err != nil || st.Location == nil || math.Abs(st.Location.Lat+33.86785) > 1e-5 || math.Abs(st.Location.Lon-151.20732) > 1e-5 {
				t.Fatalf("with a fix: %+v %v", st.Location, err)
			}
			// A second Init (after a reset) meets a receiver already on.
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			if st, err = m.Status(ctx); err != nil || st.Location == nil {
				t.Fatalf("after a second Init: %+v %v", st, err)
			}
		})
	}
	// Off unless asked: no GNSS command is sent.
	_, path := startSim(t, `{"dialect": "quectel", "gnss": {"lat": 1, "lon": 2}}`)
	e := openEngine(t, path, nil)
	m := atmodem.NewModem(e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx); err != nil || st.Location != nil {
		t.Fatalf("GNSS off: %+v %v", st, err)
	}
}

// At shutdown the monitor turns off a receiver it turned on, and leaves on
// one that was on before it started (someone else's).
func TestMonitorStopsGNSS(t *testing.T) {
	for _, dialect := range []string{"quectel", "simcom"} {
		t.Run(dialect, func(t *testing.T) {
			s, path := startSim(t, `{"dialect": "`+dialect+`"}`)
			h := runMonitorWith(t, path, func(c *atmodem.MonitorConfig) { c.GNSS = true })
			if !s.GNSSOn() {
				t.Fatal("the monitor did not turn the receiver on")
			}
			h.stop()
			if s.GNSSOn() {
				t.Fatal("the receiver is still on after the monitor stopped")
			}
		})
	}
	t.Run("someone else's", func(t *testing.T) {
		s, path := startSim(t, `{"dialect": "quectel"}`)
		port, err := serialport.OpenDevice(path)
		if err != nil {
			t.Fatal(err)
		}
		e := at.New(port)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = e.Command(ctx, "AT+QGPS=1")
		e.Close()
		port.Close()
		e.Wait()
		if err != nil {
			t.Fatal(err)
		}
		h := runMonitorWith(t, path, func(c *atmodem.MonitorConfig) { c.GNSS = true })
		h.stop()
		if !s.GNSSOn() {
			t.Fatal("the monitor turned off a receiver it had not turned on")
		}
	})
}

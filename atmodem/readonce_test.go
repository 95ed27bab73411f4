package atmodem_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// TestReadOnce reads the simulator over an in-memory pipe, and calls a
// silent port ErrNoAnswer.
func TestReadOnce(t *testing.T) {
	sc, err := modemsim.Parse([]byte(`{"dialect": "quectel"}`))
	if err != nil {
		t.Fatal(err)
	}
	s := modemsim.New(sc)
	host, dev := net.Pipe()
	served := make(chan struct{})
	go func() { s.Serve(dev); close(served) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := atmodem.ReadOnce(ctx, host)
	if err != nil || !st.SIM.Known() || st.Modem.Manufacturer == "" {
		t.Fatalf("ReadOnce: %+v, %v", st, err)
	}
	dev.Close()
	<-served

	host, dev = net.Pipe()
	go io.Copy(io.Discard, dev)
	defer dev.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := atmodem.ReadOnce(ctx, host); !errors.Is(err, atmodem.ErrNoAnswer) {
		t.Fatalf("silent port: %v, want ErrNoAnswer", err)
	}
}

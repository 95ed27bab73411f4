package control

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// serve runs h on a fresh state directory until the test ends.
func serve(t *testing.T, h Handler) string {
	t.Helper()
	dir := t.TempDir()
	l, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return dir
}

func TestClientServer(t *testing.T) {
	model := "EG25"
	dir := serve(t, func(_ context.Context, req Request) (any, error) {
		switch req.Cmd {
		case CmdStatus:
			j := atmodem.StatusJSON{Dialect: "quectel"}
			j.Modem.Model = &model
			return j, nil
		case CmdOutbox:
			return OutboxState{Pending: 3, Bytes: 300}, nil
		case CmdMDTExport:
			return MDTExport{Data: []byte("line\n"), Scan: ToScan(mdtlog.ScanReport{Records: 1, Errors: []error{errors.New("seg 2: bad tag")}})}, nil
		case CmdMDTRecords:
			return MDTRecords{Entries: []mdtlog.Entry{{}, {}}, Scan: Scan{}}, nil
		}
		return nil, errors.New("unknown control command " + req.Cmd)
	})
	c := &Client{StateDir: dir}
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.Dialect != "quectel" || st.Modem.Model == nil || *st.Modem.Model != "EG25" {
		t.Fatalf("Status: %+v, %v", st, err)
	}
	if ob, err := c.Outbox(ctx); err != nil || ob != (OutboxState{3, 300}) {
		t.Fatalf("Outbox: %+v, %v", ob, err)
	}
	var buf bytes.Buffer
	rep, err := c.MDT().Export(&buf, mdtlog.FormatJSONL)
	if err != nil || buf.String() != "line\n" || rep.Records != 1 || len(rep.Errors) != 1 || rep.Errors[0].Error() != "seg 2: bad tag" {
		t.Fatalf("Export: %q %+v %v", buf.String(), rep, err)
	}
	n := 0
	if _, err := c.MDT().Records(func(mdtlog.Entry) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("Records: %d, %v", n, err)
	}
	if _, err := c.MDT().Clear(); err == nil || !strings.Contains(err.Error(), "unknown control command mdt.clear") {
		t.Fatalf("a refusal is the daemon's text: %v", err)
	}
	// A second daemon on the same state directory is refused.
	if _, err := Listen(dir); err == nil || !strings.Contains(err.Error(), "another agent is running") {
		t.Fatalf("second Listen: %v", err)
	}
}

func TestNotRunning(t *testing.T) {
	_, err := (&Client{StateDir: t.TempDir()}).Status(context.Background())
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("%v, want ErrNotRunning", err)
	}
}

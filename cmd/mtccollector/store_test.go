package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestServeOnPostgres: `serve --store postgres://...` keeps a device's
// state in the database (the schema made on first start), and a restart
// on it keeps de-duplication and the sequence.
func TestServeOnPostgres(t *testing.T) {
	url := pgtest.URL(t)
	o := startOneDevice(t, "--store", url)
	// The line may still be on its way through the stdout pipe.
	waitUntil(t, 10*time.Second, "the store line", func() bool {
		return strings.Contains(o.p.out.String(), "store: postgresql postgres:///")
	})
	c, err := uplink.Dial(context.Background(), o.uplink)
	if err != nil {
		t.Fatal(err)
	}
	o.heartbeat(t, c, "first")
	o.heartbeat(t, c, "second")
	c.Close()
	o.p.stop(t)

	st, err := collector.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ds, err := st.Device(context.Background(), "d1")
	if err != nil || ds.Accepted < 2 || ds.LastSeq < 2 || ds.LastHeartbeat.IsZero() {
		t.Fatalf("d1 in the database: %+v %v", ds, err)
	}
}

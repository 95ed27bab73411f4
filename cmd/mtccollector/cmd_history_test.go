package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/pgtest"
	"github.com/mtcagent/mtcagent/wire"
)

// TestHistoryCommand: against a running serve (the embedded store through
// its admin socket, and PostgreSQL directly), "mtccollector history"
// pages through a device's events with --after, filters by --kind, prints
// JSON for scripts, and refuses bad usage with exit 2.
func TestHistoryCommand(t *testing.T) {
	for _, store := range []string{"embedded", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var extra []string
			if store == "postgres" {
				extra = []string{"--store", pgtest.URL(t)}
			}
			o := startOneDevice(t, extra...)
			sf := extra
			if store == "embedded" {
				var m []string
				waitUntil(t, 10*time.Second, "the store line", func() bool {
					m = embeddedRE.FindStringSubmatch(o.p.out.String())
					return m != nil
				})
				sf = []string{"--state", filepath.Dir(m[1])}
			}
			cmd := func(want int, args ...string) (string, string) {
				t.Helper()
				code, out, errs := run(t, append(args, sf...)...)
				if code != want {
					t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, errs)
				}
				return out, errs
			}
			ctx := context.Background()
			ucfg := o.uplink
			ucfg.Handler = uplink.HandlerFunc(func(context.Context, *uplink.Request) (uplink.Code, []byte) { return uplink.NotFound, nil })
			c, err := uplink.Dial(ctx, ucfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, e := range []string{"cell_changed", "plmn_changed", "connectivity_lost", "connectivity_restored", "cell_changed"} {
				tok, _ := o.iss.Sign(attest.KindEvent, attest.EventClaim(e))
				if code, _, err := c.Post(ctx, wire.PathEvent, tok); err != nil || code != uplink.Changed {
					t.Fatalf("event %s: %v %v", e, code, err)
				}
			}
			o.heartbeat(t, c, "after the events")

			var seqs []uint64
			after := ""
			for pages := 0; ; pages++ {
				args := []string{"history", "d1", "--kind", "event", "--limit", "2", "--json"}
				if after != "" {
					args = append(args, "--after", after)
				}
				out, _ := cmd(0, args...)
				var p struct {
					Device  string
					Records []struct {
						N    uint64
						Kind string
						Seq  uint64
					}
					Next       string
					Heartbeats struct{ Count uint64 }
				}
				if err := json.Unmarshal([]byte(out), &p); err != nil || p.Device != "d1" || p.Heartbeats.Count != 1 {
					t.Fatalf("history --json: %v\n%s", err, out)
				}
				for _, r := range p.Records {
					seqs = append(seqs, r.Seq)
				}
				if p.Next == "" {
					break
				}
				after = p.Next
				if pages > 10 {
					t.Fatal("paging does not end")
				}
			}
			if len(seqs) != 5 || seqs[0] != 1 || seqs[4] != 5 {
				t.Fatalf("event seqs %v, want 1..5", seqs)
			}
			out, _ := cmd(0, "history", "d1", "--limit", "3")
			if !strings.Contains(out, "heartbeats: 1, first seq 6") || !strings.Contains(out, `{"boot_count":1,"clock_synced":false,"event":"cell_changed"}`) || !strings.Contains(out, "more: --after h3") {
				t.Fatalf("history:\n%s", out)
			}
			if out, _ := cmd(0, "history", "nobody"); !strings.Contains(out, "heartbeats: none") {
				t.Fatalf("history of nobody:\n%s", out)
			}
			for _, bad := range [][]string{
				{"history"},
				{"history", "d1", "--limit", "0"},
				{"history", "d1", "--limit", "501"},
				{"history", "d1", "--kind", "heartbeat"},
				{"history", "d1", "--since", "yesterday"},
				{"history", "d1", "--after", "42"},
			} {
				if _, errs := cmd(2, bad...); !strings.HasPrefix(errs, "mtccollector: error: history") {
					t.Errorf("%v: %s", bad, errs)
				}
			}
		})
	}
}

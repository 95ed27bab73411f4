package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	app.Register(&cli.Command{
		Name: "history",
		Args: "DEVICE [--kind K[,K...]] [--since T] [--until T] [--after CURSOR] [--limit N] [--json] " + storeArgs,
		Summary: "print a page of a device's history, oldest first: events, binding verifications, alarms, gaps, " +
			"and its heartbeat summary (T: unix seconds or RFC 3339)",
		Run: runHistory,
	})
}

func runHistory(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "history")
	sf := addStoreFlags(fs)
	kind := fs.String("kind", "", "only these kinds, comma-separated: "+strings.Join(collector.HistoryKinds, ", "))
	since := fs.String("since", "", "only records received at or after T (unix seconds or RFC 3339)")
	until := fs.String("until", "", "only records received before T")
	after := fs.String("after", "", "the next page: the cursor the last one printed")
	limit := fs.Int("limit", collector.HistoryDefaultLimit, fmt.Sprintf("records per page, at most %d", collector.HistoryMaxLimit))
	asJSON := fs.Bool("json", false, "JSON for scripts: {device, records, next, heartbeats}")
	pos, err := cli.ParseInterleaved(fs, args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("history: want a device ID")
	}
	q := collector.HistoryQuery{After: *after, Limit: *limit}
	if *kind != "" {
		q.Kinds = strings.Split(*kind, ",")
	}
	for _, t := range []struct {
		name, v string
		dst     *time.Time
	}{{"since", *since, &q.Since}, {"until", *until, &q.Until}} {
		if t.v == "" {
			continue
		}
		if *t.dst, err = collector.ParseHistoryTime(t.v); err != nil {
			return cli.Usagef("history: --%s: %v", t.name, err)
		}
	}
	if *limit <= 0 || *limit > collector.HistoryMaxLimit {
		return &cli.UsageError{Msg: fmt.Sprintf("history: --limit %d: want 1 to %d", *limit, collector.HistoryMaxLimit), Hint: "page on with --after CURSOR"}
	}
	if err := q.Check(); err != nil {
		return cli.Usagef("history: %v", err)
	}
	st, done, err := sf.openStore()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	page, err := st.History(ctx, pos[0], q)
	if err != nil {
		return err
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, struct {
			Device string `json:"device"`
			collector.HistoryPage
		}{pos[0], page})
	}
	hb := page.Heartbeats
	if hb.Count == 0 {
		fmt.Fprintf(env.Stdout, "heartbeats: none\n")
	} else {
		fmt.Fprintf(env.Stdout, "heartbeats: %d, first seq %d at %s, last seq %d at %s\n", hb.Count,
			hb.FirstSeq, hb.FirstAt.Format(time.RFC3339), hb.LastSeq, hb.LastAt.Format(time.RFC3339))
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "N\tRECEIVED\tKIND\tSEQ\tSIGNED\tDETAIL\n")
	for _, r := range page.Records {
		seq, signed := "-", "-"
		if r.Seq > 0 {
			seq = fmt.Sprint(r.Seq)
		}
		if !r.SignedAt.IsZero() {
			signed = r.SignedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.N, r.At.Format(time.RFC3339), r.Kind, seq, signed, r.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(env.Stdout, "more: --after %s\n", page.Next)
	}
	return nil
}

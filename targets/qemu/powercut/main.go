//go:build linux

// Command powercut runs in the guest of the whole-system power-cut test
// (targets/qemu, TestPowerCut), on a state directory that lives on an ext4
// SD card the host made. It uses the agent's own stores, agent/outbox and
// mdtlog, as the daemon opens them:
//
//  1. It opens both, prints their open reports, and prints every message
//     and record they hold, then acknowledges the outbox messages it
//     printed (the console is the uplink: the host has received them).
//  2. Unless -check, it appends outbox message and MDT record (boot, 0),
//     (boot, 1), ... (targets/qemu/internal/pcmsg) until the host cuts the
//     power, printing one line per append only after Append returned, i.e.
//     once the store reported it durable.
//
// Console protocol (one line each; sha is pcmsg.Sum of the stored bytes):
//
//	MTC-PC open ob torn=N corrupt=N segments=N acked=ID next=ID
//	MTC-PC open mdt records=N failed=N torn=N segments=N
//	MTC-HAVE ob id=ID boot=B seq=S sha=HEX      (or bad=REASON)
//	MTC-HAVE mdt seg=N idx=N boot=B seq=S sha=HEX
//	MTC-ACKED ob id=ID
//	MTC-CHECKED
//	MTC-DURABLE ob id=ID boot=B seq=S sha=HEX
//	MTC-DURABLE mdt boot=B seq=S sha=HEX
//	MTC-PC error: what
//
// Test equipment, never part of a package.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/targets/qemu/internal/pcmsg"
)

func main() {
	state := flag.String("state", "/state", "state directory (on the disk)")
	boot := flag.Uint64("boot", 0, "this boot's number, from the host")
	check := flag.Bool("check", false, "only print what is stored")
	limit := flag.Duration("limit", 90*time.Second, "stop appending after this long")
	flag.Parse()
	if err := run(*state, *boot, *check, *limit); err != nil {
		fmt.Printf("MTC-PC error: %v\n", err)
		os.Exit(1)
	}
}

func run(state string, boot uint64, check bool, limit time.Duration) error {
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(state, 0o700); err != nil {
		return err
	}
	ob, err := outbox.Open(filepath.Join(state, "outbox"), outbox.Options{MaxMessages: 1 << 20, MaxBytes: 256 << 20, SegmentBytes: 16 << 10})
	if err != nil {
		return fmt.Errorf("outbox open: %w", err)
	}
	defer ob.Close()
	r := ob.Report()
	fmt.Printf("MTC-PC open ob torn=%d corrupt=%d segments=%d acked=%d next=%d\n", r.TornBytes, len(r.Corrupt), r.Segments, r.Acked, r.NextID)
	for _, c := range r.Corrupt {
		fmt.Printf("MTC-PC error: outbox corrupt: %v\n", c)
	}
	msgs, err := ob.Pending(0)
	if err != nil {
		return fmt.Errorf("outbox pending: %w", err)
	}
	for _, m := range msgs {
		b, s, err := pcmsg.Parse(m.Data)
		if err != nil {
			fmt.Printf("MTC-HAVE ob id=%d bad=unparsable sha=%s\n", m.ID, pcmsg.Sum(m.Data))
			continue
		}
		fmt.Printf("MTC-HAVE ob id=%d boot=%d seq=%d sha=%s\n", m.ID, b, s, pcmsg.Sum(m.Data))
	}
	if len(msgs) > 0 {
		last := msgs[len(msgs)-1].ID
		if err := ob.Ack(last); err != nil {
			return fmt.Errorf("outbox ack: %w", err)
		}
		fmt.Printf("MTC-ACKED ob id=%d\n", last)
	}

	// Small segments and a small cap: the oldest segments are pruned, so
	// what is printed each boot stays bounded over hundreds of cycles.
	md, err := mdtlog.Open(state, mdtlog.Options{MaxBytes: 32 << 10, SegmentBytes: 4 << 10, Retention: -1})
	if err != nil {
		return fmt.Errorf("mdtlog open: %w", err)
	}
	defer md.Close()
	if md.ConsentState().State == mdtlog.Unset {
		if _, err := md.Consent(mdtlog.ConsentRequest{}); err != nil {
			return fmt.Errorf("mdtlog consent: %w", err)
		}
	}
	rep, err := md.Records(func(e mdtlog.Entry) error {
		b, s, ok := pcmsg.RecordNumbers(e.Record)
		if !ok {
			fmt.Printf("MTC-HAVE mdt seg=%d idx=%d bad=unnumbered sha=%s\n", e.Pos.Segment, e.Pos.Index, pcmsg.RecordSum(e.Record))
			return nil
		}
		fmt.Printf("MTC-HAVE mdt seg=%d idx=%d boot=%d seq=%d sha=%s\n", e.Pos.Segment, e.Pos.Index, b, s, pcmsg.RecordSum(e.Record))
		return nil
	})
	if err != nil {
		return fmt.Errorf("mdtlog records: %w", err)
	}
	fmt.Printf("MTC-PC open mdt records=%d failed=%d torn=%d segments=%d\n", rep.Records, rep.Failed, rep.Torn, rep.Segments)
	for _, e := range rep.Errors {
		fmt.Printf("MTC-PC error: mdtlog: %v\n", e)
	}
	fmt.Printf("MTC-CHECKED\n")
	if check {
		return nil
	}

	deadline := time.Now().Add(limit)
	for seq := uint64(0); time.Now().Before(deadline); seq++ {
		msg := pcmsg.Message(boot, seq)
		id, err := ob.Append(msg)
		if err != nil {
			return fmt.Errorf("outbox append %d: %w", seq, err)
		}
		fmt.Printf("MTC-DURABLE ob id=%d boot=%d seq=%d sha=%s\n", id, boot, seq, pcmsg.Sum(msg))
		rec := pcmsg.Record(boot, seq)
		if err := md.Append(rec); err != nil {
			return fmt.Errorf("mdtlog append %d: %w", seq, err)
		}
		fmt.Printf("MTC-DURABLE mdt boot=%d seq=%d sha=%s\n", boot, seq, pcmsg.RecordSum(rec))
	}
	return fmt.Errorf("not cut within %v", limit)
}

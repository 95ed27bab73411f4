//go:build !mtc_omit_coap

package agent

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
	"github.com/mtcagent/mtcagent/wire"
)

func mdtTestRecord(i int) mdtlog.Record {
	tac, cid, pci := uint32(0x1a2b), uint64(27447553+i), uint16(i%504)
	rsrp := -95.5
	return mdtlog.Record{
		Time:       time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Serving:    mdtlog.Cell{RAT: "lte", MCC: "001", MNC: "01", TAC: &tac, CellID: &cid, RSRP: &rsrp},
		Neighbours: []mdtlog.Cell{{RAT: "lte", PCI: &pci, RSRP: &rsrp}},
	}
}

// mdtLink is a link handler over a real measurement log holding n records
// in 4 KiB segments, with the policy given.
func mdtLink(t *testing.T, n int, policy string) (*LinkHandler, *mdtlog.Store) {
	t.Helper()
	dir := t.TempDir()
	store, err := mdtlog.Open(dir, mdtlog.Options{SegmentBytes: 4 << 10, MaxBytes: 1 << 20, Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.Consent(mdtlog.ConsentRequest{}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := store.Append(mdtTestRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	a, err := New(cfg, Deps{
		Open:   func(context.Context) (io.ReadWriteCloser, error) { return nil, errors.New("no modem in this test") },
		Outbox: &MemOutbox{},
		MDT:    &MDT{Store: store, Config: mdtlog.Config{DeleteAfterUpload: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse("a.conf", policy)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := privacy.ParsePolicy(f)
	if err != nil {
		t.Fatal(err)
	}
	return &LinkHandler{A: a, Policy: pol, Audit: privacy.OpenAudit(cfg.StateDir, 0)}, store
}

const mdtPolicy = `
[recipient "operator"]
identity = psk:operator-1
radio = full
cell = tracking_area
[recipient "scs"]
identity = psk:scs-1
status = full
cell = full
`

// The collector pages through the log, each page one datagram's worth, in
// order, masked to its grants; its ack deletes the whole segments it
// covers and nothing after them.
func TestMDTUploadPagesAndAck(t *testing.T) {
	const n = 150
	h, store := mdtLink(t, n, mdtPolicy)
	ctx := context.Background()
	var got []mdtlog.Record
	var last *wire.MDTPos
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging does not end")
		}
		req := &uplink.Request{Peer: "operator", Method: "GET", Path: wire.PathMDT}
		if last != nil {
			req.Query = []string{"after=" + last.String()}
		}
		code, body := h.ServeUplink(ctx, req)
		if code != uplink.Content {
			t.Fatalf("page %d: %v", pages, code)
		}
		if len(body) > 1024 {
			t.Fatalf("page %d is %d bytes: more than one datagram", pages, len(body))
		}
		page, err := wire.DecodeMDTPage(body)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.Records {
			var r mdtlog.Record
			if err := r.UnmarshalCBOR(raw); err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		last = page.Last
		if !page.More {
			break
		}
	}
	if len(got) != n {
		t.Fatalf("uploaded %d records, want %d", len(got), n)
	}
	for i, r := range got {
		if want := mdtTestRecord(i).Time; !r.Time.Equal(want) {
			t.Fatalf("record %d has time %v, want %v (out of order?)", i, r.Time, want)
		}
		if r.Serving.CellID != nil || r.Neighbours[0].PCI != nil || r.Serving.TAC == nil || r.Serving.MCC != "001" {
			t.Fatalf("record %d not masked to the tracking area: %+v", i, r.Serving)
		}
	}
	// Nothing after the last position.
	code, body := h.ServeUplink(ctx, &uplink.Request{Peer: "operator", Method: "GET", Path: wire.PathMDT, Query: []string{"after=" + last.String()}})
	if page, err := wire.DecodeMDTPage(body); code != uplink.Content || err != nil || len(page.Records) != 0 || page.More {
		t.Fatalf("after the last record: %v %+v %v", code, page, err)
	}

	before, err := store.Status()
	if err != nil {
		t.Fatal(err)
	}
	ack, _ := cbor.Marshal(wire.MDTAck{Upto: *last})
	code, body = h.ServeUplink(ctx, &uplink.Request{Peer: "operator", Method: "POST", Path: wire.PathMDTAck, Payload: ack})
	var res wire.MDTAckResult
	if err := cbor.Unmarshal(body, &res); code != uplink.Changed || err != nil {
		t.Fatalf("ack: %v %v", code, err)
	}
	after, err := store.Status()
	if err != nil {
		t.Fatal(err)
	}
	// 150 records fill more than two 4 KiB segments (~53 each); the one being written
	// stays.
	if res.Segments < 2 || after.Records != before.Records-res.Records || after.Records == 0 {
		t.Fatalf("ack deleted %+v: records %d -> %d", res, before.Records, after.Records)
	}
	// What is left is still there, in order, and is the tail of the log.
	var rest []mdtlog.Record
	store.Records(func(e mdtlog.Entry) error { rest = append(rest, e.Record); return nil })
	if len(rest) != after.Records || !rest[len(rest)-1].Time.Equal(mdtTestRecord(n-1).Time) {
		t.Fatalf("after the ack %d records remain, last %v", len(rest), rest[len(rest)-1].Time)
	}

	// Every page was audited as a disclosure of radio and cell.
	entries, _, err := privacy.ReadAudit(filepath.Dir(h.Audit.Path()))
	if err != nil || len(entries) == 0 || entries[0].Recipient != "operator" || entries[0].Carries["radio"] != "full" || entries[0].Carries["cell"] != "tracking_area" {
		t.Fatalf("audit: %+v %v", entries, err)
	}
}

// Only a recipient granted radio measurements gets the log, and only
// while consent stands; a bad position is a bad request.
func TestMDTUploadRefused(t *testing.T) {
	h, store := mdtLink(t, 3, mdtPolicy)
	ctx := context.Background()
	for _, tc := range []struct {
		peer, path, method string
		query              []string
		want               uplink.Code
	}{
		{"scs", wire.PathMDT, "GET", nil, uplink.NotFound},
		{"stranger", wire.PathMDT, "GET", nil, uplink.NotFound},
		{"scs", wire.PathMDTAck, "POST", nil, uplink.NotFound},
		{"operator", wire.PathMDT, "GET", []string{"after=1"}, uplink.BadRequest},
		{"operator", wire.PathMDTAck, "POST", nil, uplink.BadRequest},
		{"operator", wire.PathMDT, "DELETE", nil, uplink.NotFound},
	} {
		code, _ := h.ServeUplink(ctx, &uplink.Request{Peer: tc.peer, Method: tc.method, Path: tc.path, Query: tc.query})
		if code != tc.want {
			t.Errorf("%s %s %s %v: %v, want %v", tc.peer, tc.method, tc.path, tc.query, code, tc.want)
		}
	}
	if _, err := store.OptOut(false); err != nil {
		t.Fatal(err)
	}
	if code, _ := h.ServeUplink(ctx, &uplink.Request{Peer: "operator", Method: "GET", Path: wire.PathMDT}); code != uplink.NotFound {
		t.Errorf("after opt-out: %v, want NotFound", code)
	}
	if es, _, _ := privacy.ReadAudit(filepath.Dir(h.Audit.Path())); len(es) != 0 {
		t.Errorf("refused requests were audited as disclosures: %+v", es)
	}
}

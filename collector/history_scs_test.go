package collector

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

// scsDial opens an SCS session (go-coap's DTLS client, as an application
// server would).
func scsDial(t *testing.T, addr, id string, psk []byte) *udpClient.Conn {
	t.Helper()
	dc := &piondtls.Config{PSK: func([]byte) ([]byte, error) { return psk, nil }, PSKIdentityHint: []byte(id),
		CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}}
	cc, err := coapdtls.Dial(addr, dc)
	if err != nil {
		t.Fatalf("scs %s: dial: %v", id, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// scsGetQuery reads path with the given queries (Accept 50 when asJSON).
func scsGetQuery(t *testing.T, cc *udpClient.Conn, path string, asJSON bool, queries ...string) (codes.Code, []byte) {
	t.Helper()
	var opts []message.Option
	for _, q := range queries {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	if asJSON {
		opts = append(opts, message.Option{ID: message.Accept, Value: []byte{byte(message.AppJSON)}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, path, opts...)
	if err != nil {
		t.Fatalf("GET %s %v: %v", path, queries, err)
	}
	body, _ := resp.ReadBody()
	return resp.Code(), body
}

type scsHistoryAnswer struct {
	Device  string `cbor:"device" json:"device"`
	Records []struct {
		N        uint64         `cbor:"n" json:"n"`
		Kind     string         `cbor:"kind" json:"kind"`
		Seq      uint64         `cbor:"seq" json:"seq"`
		SignedAt int64          `cbor:"signed_at" json:"signed_at"`
		At       int64          `cbor:"at" json:"at"`
		Detail   map[string]any `cbor:"detail" json:"detail"`
	} `cbor:"records" json:"records"`
	Next       string `cbor:"next" json:"next"`
	Heartbeats struct {
		Count   uint64 `cbor:"count" json:"count"`
		LastSeq uint64 `cbor:"last_seq" json:"last_seq"`
	} `cbor:"heartbeats" json:"heartbeats"`
}

// TestSCSHistory, on both backends: a device's events, binding
// verifications, gaps and alarms reach an SCS granted history, page by
// page (each one block) without loss or duplication; an SCS not granted
// gets the answer of a device that does not exist, and is audited;
// retention drops the old events.
func TestSCSHistory(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		testBackends.Store(t, b)
		t.Cleanup(func() { testBackends.Delete(t) })
		dev := newTestDevice(t, "dev1")
		cfg := parseTestConfig(t, testConfigText(dev))
		cfg.HistoryKeep[HistoryEvent] = time.Hour
		cfg.HistoryKeep[HistoryAlarm] = 0 // forever
		s, addr, scsAddr, log := startServer(t, cfg, t.TempDir())
		ctx := context.Background()
		if err := s.st.Grant(ctx, "alpha", []string{"dev1"}, []string{ClassHistory}); err != nil {
			t.Fatal(err)
		}
		c, err := uplink.Dial(ctx, dev.uplinkConfig(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })
		post := func(path string, tok []byte) {
			t.Helper()
			if code, _, err := c.Post(ctx, path, tok); err != nil || code != uplink.Changed {
				t.Fatalf("post %s: %v %v", path, code, err)
			}
		}
		var events []uint64
		seq := uint64(1) // the nonce attestation's
		for i := range 15 {
			tok, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed"))
			post(wire.PathEvent, tok)
			seq++
			events = append(events, seq)
			if i%5 == 4 {
				hb, _ := dev.iss.SignHeartbeat()
				post(wire.PathHeartbeat, hb)
				seq++
			}
		}
		// Two numbers never sent: a gap record and an alarm.
		dev.iss.SignHeartbeat()
		dev.iss.SignHeartbeat()
		last, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("sim_removed"))
		post(wire.PathEvent, last)

		alpha := scsDial(t, scsAddr, "alpha", []byte(scsAPSK))
		const path = "/devices/dev1/history"
		read := func(asJSON bool, queries ...string) scsHistoryAnswer {
			t.Helper()
			code, body := scsGetQuery(t, alpha, path, asJSON, queries...)
			if code != codes.Content {
				t.Fatalf("GET %s %v: %v %s", path, queries, code, body)
			}
			if len(body) > scsHistoryBody {
				t.Fatalf("answer of %d bytes, more than one block", len(body))
			}
			var a scsHistoryAnswer
			var err error
			if asJSON {
				err = json.Unmarshal(body, &a)
			} else {
				err = cbor.Unmarshal(body, &a)
			}
			if err != nil {
				t.Fatalf("decode %x: %v", body, err)
			}
			return a
		}
		// Events, four a page.
		var got []uint64
		pages := 0
		q := []string{"kind=event", "limit=4"}
		for after := ""; ; {
			qs := q
			if after != "" {
				qs = append(slices.Clone(q), "after="+after)
			}
			pages++
			a := read(pages%2 == 0, qs...) // CBOR and JSON in turn
			for _, r := range a.Records {
				if r.Kind != HistoryEvent || r.Detail["event"] == nil || r.At == 0 || r.SignedAt == 0 {
					t.Fatalf("record %+v", r)
				}
				got = append(got, r.Seq)
			}
			if a.Heartbeats.Count != 3 || a.Heartbeats.LastSeq != 19 {
				t.Fatalf("heartbeats %+v, want 3, the last seq 19", a.Heartbeats)
			}
			if a.Next == "" {
				break
			}
			after = a.Next
		}
		events = append(events, 22) // after 20 and 21, never sent
		if !slices.Equal(got, events) || pages != 4 {
			t.Fatalf("events %v in %d pages, want %v in 4", got, pages, events)
		}
		// Everything, as much as fits a block a page: the nonce
		// verification first, the gap and the alarm after the last event.
		var kinds []string
		pages = 0
		for after := ""; ; {
			pages++
			var qs []string
			if after != "" {
				qs = []string{"after=" + after}
			}
			a := read(false, qs...)
			if len(a.Records) == 0 {
				t.Fatal("empty page")
			}
			for _, r := range a.Records {
				kinds = append(kinds, r.Kind)
				switch r.Kind {
				case HistoryBinding:
					if r.Detail["result"] != "ok" || r.Detail["by"] != "nonce" {
						t.Fatalf("binding %+v", r)
					}
				case HistoryGap:
					if r.Detail["type"] != "seq" || r.Detail["missing"] != uint64(2) {
						t.Fatalf("gap %+v", r)
					}
				}
			}
			if a.Next == "" {
				break
			}
			after = a.Next
		}
		t.Logf("%d records in %d pages of at most %d bytes", len(kinds), pages, scsHistoryBody)
		want := []string{HistoryBinding}
		for range 15 {
			want = append(want, HistoryEvent)
		}
		want = append(want, HistoryGap, HistoryEvent, HistoryAlarm, HistoryAlarm) // sequence-gap, sim-removed
		if !slices.Equal(kinds, want) {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
		// A bad query is refused, to the SCS granted only.
		if code, body := scsGetQuery(t, alpha, path, false, "kind=heartbeat"); code != codes.BadRequest || !strings.Contains(string(body), "unknown history kind") {
			t.Fatalf("bad kind: %v %s", code, body)
		}
		if code, body := scsGetQuery(t, alpha, path, false, "since=9999999999999"); code != codes.BadRequest || !strings.Contains(string(body), "outside years 1 to 9999") {
			t.Fatalf("a time out of range: %v %s", code, body)
		}
		// Not granted: the answer of a device that does not exist.
		beta := scsDial(t, scsAddr, "beta", []byte(scsBPSK))
		code, body := scsGetQuery(t, beta, path, false)
		code2, body2 := scsGetQuery(t, beta, "/devices/ghost/history", false, "kind=heartbeat")
		if code != codes.NotFound || string(body) != string(notFoundBody) || code2 != code || string(body2) != string(body) {
			t.Fatalf("not granted: %v %q; unknown device: %v %q", code, body, code2, body2)
		}
		au, err := s.st.Audit(ctx, "beta")
		if err != nil || len(au) != 2 || au[0].Class != ClassHistory || au[0].Decision != "denied (not granted)" || au[0].Code != "4.04" {
			t.Fatalf("beta's audit: %+v %v", au, err)
		}
		// Retention, an hour and a minute later: the events go, the
		// alarms (forever) and the rest stay.
		removed := s.pruneHistory(time.Now().Add(time.Hour + time.Minute))
		if removed[HistoryEvent] != 16 || removed[HistoryAlarm] != 0 || removed[HistoryBinding] != 0 {
			t.Fatalf("pruned %v", removed)
		}
		a := read(false)
		var after []string
		for _, r := range a.Records {
			after = append(after, r.Kind)
		}
		if !slices.Equal(after, []string{HistoryBinding, HistoryGap, HistoryAlarm, HistoryAlarm}) || a.Next != "" {
			t.Fatalf("after retention: %v (next %q)", after, a.Next)
		}
		if !strings.Contains(log.String(), "history: removed 16 event record(s)") {
			t.Fatalf("no retention line in the log:\n%s", log)
		}
	})
}

// TestParseHistoryQuery: what an SCS may ask, and the errors of what it
// may not; a time outside years 1 to 9999 is refused before any store
// sees it (time.Unix wraps around far out: -2^63 came back as year
// 292277026596).
func TestParseHistoryQuery(t *testing.T) {
	q, err := ParseHistoryQuery([]string{"kind=event,alarm", "kind=gap", "since=1796400000", "until=2026-12-31T00:00:00Z", "after=h1k", "limit=5"})
	if err != nil || !slices.Equal(q.Kinds, []string{HistoryEvent, HistoryAlarm, HistoryGap}) || q.Since.Unix() != 1796400000 ||
		!q.Until.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) || q.After != "h1k" || q.Limit != 5 {
		t.Fatalf("%+v %v", q, err)
	}
	for _, tc := range []struct{ query, want string }{
		{"since=9999999999999", "since: 9999999999999 is outside years 1 to 9999"},
		{"until=-9223372036854775808", "until: -9223372036854775808 is outside years 1 to 9999"},
		{"until=253402300800", "outside years 1 to 9999"},
		{"since=-62135596801", "outside years 1 to 9999"},
		{"since=tomorrow", `since: want unix seconds or an RFC 3339 time (not "tomorrow")`},
		{"limit=0", "limit: want 1 or more"},
		{"limit=x", "limit:"},
		{"kind=heartbeat", "unknown history kind"},
		{"after=zz", ErrBadCursor.Error()},
		{"since=200&until=100", "until must be after since"},
		{"colour=red", `unknown query "colour"`},
	} {
		if _, err := ParseHistoryQuery(strings.Split(tc.query, "&")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.query, err, tc.want)
		}
	}
	for _, v := range []string{"253402300799", "-62135596800", "9999-12-31T23:59:59Z"} {
		if _, err := ParseHistoryTime(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}

package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
)

// scsHistoryBody bounds the body of a history answer to an SCS: one CoAP
// block (RFC 7252 4.6: 1024 bytes of payload fit the default 1152-byte
// message), since the SCS listener sends no block-wise answers. A page
// holds the records that fit, at least one; next goes on after them.
const scsHistoryBody = 1024

// scsHistoryFetch is the records read for one answer: more than fit.
const scsHistoryFetch = 64

// ParseHistoryQuery reads the query of GET /devices/ID/history: kind
// (repeated or comma-separated), since and until (unix seconds or RFC
// 3339), after (a cursor) and limit.
func ParseHistoryQuery(queries []string) (HistoryQuery, error) {
	var q HistoryQuery
	for _, kv := range queries {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "kind":
			for _, kind := range strings.Split(v, ",") {
				if kind != "" {
					q.Kinds = append(q.Kinds, kind)
				}
			}
		case "since":
			q.Since, err = ParseHistoryTime(v)
		case "until":
			q.Until, err = ParseHistoryTime(v)
		case "after":
			q.After = v
		case "limit":
			q.Limit, err = strconv.Atoi(v)
			if err == nil && q.Limit <= 0 {
				err = errors.New("want 1 or more")
			}
		default:
			return q, fmt.Errorf("unknown query %q (want kind, since, until, after, limit)", k)
		}
		if err != nil {
			return q, fmt.Errorf("%s: %v", k, err)
		}
	}
	return q, q.Check()
}

// ParseHistoryTime takes unix seconds or an RFC 3339 time, in years 1
// to 9999.
func ParseHistoryTime(v string) (time.Time, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		// time.Unix wraps around far outside the years a history holds.
		if n < historyTimeMin.Unix() || n >= historyTimeMax.Unix() {
			return time.Time{}, fmt.Errorf("%d is outside years 1 to 9999", n)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want unix seconds or an RFC 3339 time (not %q)", v)
	}
	return t.UTC(), nil
}

// scsHistory answers GET /devices/ID/history for an SCS granted history.
func (s *Server) scsHistory(ctx context.Context, id string, r *pool.Message, wantJSON bool) (codes.Code, []byte) {
	qs, _ := r.Options().Queries()
	q, err := ParseHistoryQuery(qs)
	if err != nil {
		return codes.BadRequest, []byte(err.Error())
	}
	q.Limit = min(q.limit(), scsHistoryFetch)
	page, err := s.st.History(ctx, id, q)
	switch {
	case errors.Is(err, ErrBadCursor):
		return codes.BadRequest, []byte(err.Error())
	case err != nil:
		s.storeError("read", "reading the history of %s: %v", id, err)
		return codes.InternalServerError, []byte("store unavailable")
	}
	return codes.Content, encodeHistoryPage(id, page, wantJSON, scsHistoryBody)
}

// encodeHistoryPage encodes as many of the page's records as fit in
// budget bytes (at least one), with the next cursor after the last one
// given.
func encodeHistoryPage(id string, page HistoryPage, wantJSON bool, budget int) []byte {
	hb := map[string]any{"count": page.Heartbeats.Count}
	if page.Heartbeats.Count > 0 {
		hb["first_seq"], hb["first_at"] = page.Heartbeats.FirstSeq, page.Heartbeats.FirstAt.Unix()
		hb["last_seq"], hb["last_at"] = page.Heartbeats.LastSeq, page.Heartbeats.LastAt.Unix()
	}
	recs := make([]any, 0, len(page.Records))
	for _, r := range page.Records {
		m := map[string]any{"n": r.N, "kind": r.Kind, "at": r.At.Unix(), "detail": detailValue(r.Detail)}
		if r.Seq > 0 {
			m["seq"] = r.Seq
		}
		if !r.SignedAt.IsZero() {
			m["signed_at"] = r.SignedAt.Unix()
		}
		recs = append(recs, m)
	}
	enc := func(k int) []byte {
		out := map[string]any{"device": id, "records": recs[:k], "heartbeats": hb}
		switch {
		case k < len(recs):
			out["next"] = historyCursor(page.Records[k-1].N)
		case page.Next != "":
			out["next"] = page.Next
		}
		return encodeOut(out, wantJSON)
	}
	best := enc(min(1, len(recs)))
	for k := 2; k <= len(recs); k++ {
		b := enc(k)
		if len(b) > budget {
			break
		}
		best = b
	}
	return best
}

// detailValue decodes a record's JSON detail for an answer, numbers as
// integers where they are.
func detailValue(raw json.RawMessage) any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return map[string]any{}
	}
	var conv func(any) any
	conv = func(v any) any {
		switch x := v.(type) {
		case json.Number:
			if n, err := x.Int64(); err == nil {
				return n
			}
			if n, err := strconv.ParseUint(x.String(), 10, 64); err == nil {
				return n
			}
			f, _ := x.Float64()
			return f
		case map[string]any:
			for k, e := range x {
				x[k] = conv(e)
			}
		case []any:
			for i := range x {
				x[i] = conv(x[i])
			}
		}
		return v
	}
	return conv(v)
}

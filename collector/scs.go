package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/internal/coapx"
	"github.com/mtcagent/mtcagent/wire"
)

// notFoundBody is the one answer to a request for a device that does not
// exist, one the SCS is not granted, and a path that means nothing: the
// same code and bytes, so an SCS learns nothing about devices it is not
// granted (R9).
var notFoundBody = []byte("not found")

// observer is an SCS observing a device's events.
type observer struct {
	cc    *udpClient.Conn
	token message.Token
	scs   string
	json  bool
	seq   atomic.Uint32
}

func (s *Server) audit(rec AuditRecord) {
	rec.Time = s.now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.st.AppendAudit(ctx, rec); err != nil {
		s.logf("ERROR writing audit log: %v", err)
	}
}

// serveSCS handles an application server's request.
func (s *Server) serveSCS(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
	method, path := coapx.RequestLine(r)
	if method == "" {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st, ok := peer(ctx, w.Conn())
	var x *SCS
	if ok {
		x = s.scsByPSK(string(st.IdentityHint))
	}
	rec := AuditRecord{Method: method, Path: path}
	if x == nil {
		rec.SCS, rec.Decision, rec.Code = "?", "denied (unauthenticated)", codeText(codes.Unauthorized)
		s.audit(rec)
		_ = w.SetResponse(codes.Unauthorized, message.TextPlain, nil)
		return
	}
	rec.SCS = x.Name
	wantJSON := false
	if a, err := r.Options().Accept(); err == nil && a == message.AppJSON {
		wantJSON = true
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var id, class string
	if len(parts) == 3 && parts[0] == "devices" {
		id, class = parts[1], parts[2]
	}
	rec.Device, rec.Class = id, class
	wantMethod := map[string]string{ClassStatus: "GET", ClassEvents: "GET", ClassTrigger: "POST"}[class]
	switch {
	case id == "" || wantMethod == "":
		rec.Decision = "denied (no such resource)"
	case s.deviceByID(id) == nil:
		rec.Decision = "denied (unknown device)"
	case !s.granted(x.Name, id, class):
		rec.Decision = "denied (not granted)"
	case method != wantMethod:
		rec.Decision = "denied (method)"
	}
	if rec.Decision != "" {
		// The same answer for all of these (R9). A wrong method on a
		// granted resource gets it too, so probing methods tells nothing.
		rec.Code = codeText(codes.NotFound)
		s.audit(rec)
		s.logf("scs %s: %s %s -> 4.04 (%s)", x.Name, method, path, rec.Decision)
		_ = w.SetResponse(codes.NotFound, message.TextPlain, bytes.NewReader(notFoundBody))
		return
	}
	rec.Decision = "granted"
	var code codes.Code
	var body []byte
	switch class {
	case ClassStatus:
		code, body = s.scsStatus(ctx, id, wantJSON)
	case ClassEvents:
		code, body = s.scsEvents(w, r, x, id, wantJSON)
	case ClassTrigger:
		payload, _ := r.ReadBody()
		cf, _ := r.Options().ContentFormat()
		code, body = s.scsTrigger(ctx, x, id, payload, cf == message.AppJSON)
		if code != codes.Changed {
			rec.Decision = "granted (refused: " + string(body) + ")"
		}
	}
	rec.Code = codeText(code)
	s.audit(rec)
	s.logf("scs %s: %s %s -> %s", x.Name, method, path, codeText(code))
	cf := message.AppCBOR
	if wantJSON {
		cf = message.AppJSON
	}
	if code >= codes.BadRequest {
		cf = message.TextPlain
	}
	_ = w.SetResponse(code, cf, bytes.NewReader(body))
	if class == ClassEvents && w.Message() != nil {
		if obs, err := r.Options().Observe(); err == nil && obs == 0 && code == codes.Content {
			w.Message().SetObserve(1)
		}
	}
}

// scsStatus returns the device's status: fresh from the device when it is
// connected, else the last one it gave.
func (s *Server) scsStatus(ctx context.Context, id string, wantJSON bool) (codes.Code, []byte) {
	if cc := s.session(id); cc != nil {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := cc.Get(sctx, wire.PathStatus)
		cancel()
		if err == nil && resp.Code() == codes.Content {
			if b, err := resp.ReadBody(); err == nil {
				_ = s.update(id, func(ds *DeviceState) error {
					ds.Status, ds.StatusAt = b, s.now()
					return nil
				})
			}
		}
	}
	ds := s.device(id)
	online := s.session(id) != nil
	out := map[string]any{
		"device":  id,
		"online":  online && !ds.Overdue,
		"overdue": ds.Overdue,
	}
	if !ds.LastSeen.IsZero() {
		out["last_seen"] = ds.LastSeen.Unix()
	}
	status := ds.Status
	if len(status) > 0 {
		out["status_at"] = ds.StatusAt.Unix()
	}
	if len(status) > 0 {
		out["status"] = cbor.RawMessage(status)
	}
	return codes.Content, encodeOut(out, wantJSON)
}

func (s *Server) scsEvents(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message, x *SCS, id string, wantJSON bool) (codes.Code, []byte) {
	obs, err := r.Options().Observe()
	switch {
	case err == nil && obs == 0:
		o := &observer{cc: w.Conn(), token: append(message.Token(nil), r.Token()...), scs: x.Name, json: wantJSON}
		o.seq.Store(1)
		s.mu.Lock()
		if s.observers[id] == nil {
			s.observers[id] = map[*observer]struct{}{}
		}
		s.observers[id][o] = struct{}{}
		s.mu.Unlock()
		w.Conn().AddOnClose(func() { s.dropObserver(id, o) })
	case err == nil && obs == 1:
		s.mu.Lock()
		for o := range s.observers[id] {
			if o.cc == w.Conn() && bytes.Equal(o.token, r.Token()) {
				delete(s.observers[id], o)
			}
		}
		s.mu.Unlock()
	}
	last := s.device(id).LastEvent
	if last == nil {
		return codes.Content, encodeOut(map[string]any{"device": id}, wantJSON)
	}
	return codes.Content, encodeSummary(last, wantJSON)
}

func (s *Server) dropObserver(id string, o *observer) {
	s.mu.Lock()
	delete(s.observers[id], o)
	s.mu.Unlock()
}

// notify sends an event to the device's observers, one block each.
func (s *Server) notify(id string, sum *EventSummary) {
	s.mu.Lock()
	var obs []*observer
	for o := range s.observers[id] {
		obs = append(obs, o)
	}
	s.mu.Unlock()
	for _, o := range obs {
		if !s.granted(o.scs, id, ClassEvents) {
			// Revoked (or the SCS or the device removed) since the
			// observation began: end it with the answer any request now
			// gets (a non-2.xx notification ends an observation, RFC 7641).
			m := o.cc.AcquireMessage(o.cc.Context())
			m.SetCode(codes.NotFound)
			m.SetToken(o.token)
			m.SetContentFormat(message.TextPlain)
			m.SetBody(bytes.NewReader(notFoundBody))
			_ = o.cc.WriteMessage(m)
			o.cc.ReleaseMessage(m)
			s.dropObserver(id, o)
			s.audit(AuditRecord{SCS: o.scs, Method: "NOTIFY", Path: "/devices/" + id + "/events", Device: id, Class: ClassEvents, Decision: "denied (grant revoked)", Code: codeText(codes.NotFound)})
			s.logf("scs %s: observation of %s ended: not granted any more", o.scs, id)
			continue
		}
		body := encodeSummary(sum, o.json)
		cf := message.AppCBOR
		if o.json {
			cf = message.AppJSON
		}
		m := o.cc.AcquireMessage(o.cc.Context())
		m.SetCode(codes.Content)
		m.SetToken(o.token)
		m.SetObserve(o.seq.Add(1))
		m.SetContentFormat(cf)
		m.SetBody(bytes.NewReader(body))
		err := o.cc.WriteMessage(m)
		o.cc.ReleaseMessage(m)
		code := codeText(codes.Content)
		if err != nil {
			s.dropObserver(id, o)
			code = "send failed"
		}
		s.audit(AuditRecord{SCS: o.scs, Method: "NOTIFY", Path: "/devices/" + id + "/events", Device: id, Class: ClassEvents, Decision: "granted", Code: code})
	}
}

// scsTrigger forwards a trigger to the device. The SCS's payload is CBOR
// {1: seq, 2: action} (or JSON {"seq":..,"action":..}); seq must grow per
// SCS and device, so a replayed request is refused with 4.09.
func (s *Server) scsTrigger(ctx context.Context, x *SCS, id string, payload []byte, isJSON bool) (codes.Code, []byte) {
	var req struct {
		Seq    uint64 `cbor:"1,keyasint" json:"seq"`
		Action string `cbor:"2,keyasint" json:"action"`
	}
	var err error
	if isJSON {
		err = json.Unmarshal(payload, &req)
	} else {
		err = cbor.Unmarshal(payload, &req)
	}
	if err != nil || req.Seq == 0 || req.Action == "" || len(req.Action) > 64 {
		return codes.BadRequest, []byte("want {1: seq, 2: action}")
	}
	var t wire.Trigger
	errReplayed := errors.New("replayed trigger")
	// The counter is durable before the trigger leaves.
	switch err := s.update(id, func(ds *DeviceState) error {
		if ds.SCSSeq == nil {
			ds.SCSSeq = map[string]uint64{}
		}
		if req.Seq <= ds.SCSSeq[x.Name] {
			return errReplayed
		}
		ds.SCSSeq[x.Name] = req.Seq
		ds.TriggerSeq++
		t = wire.Trigger{Counter: ds.TriggerSeq, Time: s.now(), Action: req.Action, From: x.Name}
		return nil
	}); {
	case errors.Is(err, errReplayed):
		return codes.Code(0x89), []byte("replayed trigger (seq not new)") // 4.09 Conflict
	case err != nil:
		return codes.InternalServerError, []byte("store unavailable")
	}
	cc := s.session(id)
	if cc == nil {
		return codes.ServiceUnavailable, []byte("device not connected")
	}
	b, err := wire.EncodeTrigger(t)
	if err != nil {
		return codes.BadRequest, []byte("bad trigger")
	}
	tctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	resp, err := cc.Post(tctx, wire.PathTrigger, message.AppCBOR, bytes.NewReader(b))
	if err != nil {
		return codes.GatewayTimeout, []byte("device did not answer")
	}
	s.logf("device %s: trigger %d (%s) from %s answered %v", id, t.Counter, t.Action, x.Name, resp.Code())
	if resp.Code() == codes.Changed {
		return codes.Changed, nil
	}
	msg := fmt.Sprintf("device refused the trigger (%v)", resp.Code())
	if why, err := resp.ReadBody(); err == nil && len(why) > 0 && len(why) <= 256 && utf8.Valid(why) {
		msg += ": " + string(why) // the device's reason, e.g. an action it does not implement
	}
	return codes.BadGateway, []byte(msg)
}

func encodeSummary(e *EventSummary, wantJSON bool) []byte {
	m := map[string]any{"device": e.Device, "seq": e.Seq, "kind": e.Kind, "at": e.AtUnix}
	if e.Event != "" {
		m["event"] = e.Event
	}
	return encodeOut(m, wantJSON)
}

// encodeOut encodes a response map as CBOR, or as JSON (embedded CBOR
// converted) when the SCS asked for JSON.
func encodeOut(m map[string]any, wantJSON bool) []byte {
	if !wantJSON {
		b, err := cbor.Marshal(m)
		if err != nil {
			return nil
		}
		return b
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if raw, ok := v.(cbor.RawMessage); ok {
			var x any
			if cbor.Unmarshal(raw, &x) != nil {
				continue
			}
			v = jsonable(x)
		}
		out[k] = v
	}
	b, _ := json.Marshal(out)
	return b
}

// jsonable turns decoded CBOR (maps with any keys) into JSON-encodable values.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i := range x {
			x[i] = jsonable(x[i])
		}
		return x
	case []byte:
		return fmt.Sprintf("%x", x)
	}
	return v
}

// codeText is a response code as "2.05".
func codeText(c codes.Code) string { return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&31) }

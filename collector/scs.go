package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

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
	json  atomic.Bool // answers in JSON (Accept 50); a registration again may change it
	seq   atomic.Uint32
}

func (s *Server) audit(rec AuditRecord) {
	rec.Time = s.now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.st.AppendAudit(ctx, rec); err != nil {
		s.storeError("audit", "writing audit log: %v", err)
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
	wantJSON, acceptable := false, true
	if a, err := r.Options().Accept(); err == nil {
		wantJSON = a == message.AppJSON
		acceptable = a == message.AppJSON || a == message.AppCBOR
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var id, class string
	if len(parts) == 3 && parts[0] == "devices" {
		id, class = parts[1], parts[2]
	}
	rec.Device, rec.Class = id, class
	wantMethod := map[string]string{ClassStatus: "GET", ClassEvents: "GET", ClassTrigger: "POST", ClassHistory: "GET"}[class]
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
	if !acceptable {
		// Answers are CBOR or JSON; any other Accept gets 4.06 (RFC 7252
		// 5.10.4), once the request is granted, so it tells nothing more.
		rec.Decision, rec.Code = "granted (refused: Accept is neither 50 nor 60)", codeText(codes.NotAcceptable)
		s.audit(rec)
		s.logf("scs %s: %s %s -> %s", x.Name, method, path, rec.Code)
		_ = w.SetResponse(codes.NotAcceptable, message.TextPlain, bytes.NewReader([]byte("want Accept 60 (CBOR) or 50 (JSON)")))
		return
	}
	rec.Decision = "granted"
	var code codes.Code
	var body []byte
	var maxAge uint32
	queued, observing := false, false
	switch class {
	case ClassStatus:
		observing = s.observe(w, r, x, ClassStatus, id, wantJSON)
		code, body, queued, maxAge = s.scsStatus(ctx, x, id, wantJSON)
	case ClassEvents:
		observing = s.observe(w, r, x, ClassEvents, id, wantJSON)
		code, body = s.scsEvents(x, id, wantJSON)
	case ClassTrigger:
		payload, _ := r.ReadBody()
		cf, _ := r.Options().ContentFormat()
		code, body, maxAge = s.scsTrigger(ctx, x, id, payload, cf == message.AppJSON, wantJSON)
		queued = code == codes.Created
		if code != codes.Changed && !queued {
			rec.Decision = "granted (refused: " + string(body) + ")"
		}
	case ClassHistory:
		code, body = s.scsHistory(ctx, id, r, wantJSON)
		if code != codes.Content {
			rec.Decision = "granted (refused: " + string(body) + ")"
		}
	}
	if queued {
		rec.Decision = "granted (queued until the device's next message)"
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
	if maxAge > 0 && w.Message() != nil {
		// Fresh until the device is next expected (for a queued answer),
		// or when to retry (a full queue, RFC 7252 5.9.3.4).
		w.Message().SetOptionUint32(message.MaxAge, maxAge)
	}
	if observing && code == codes.Content && w.Message() != nil {
		w.Message().SetObserve(1)
	}
}

// scsStatus returns the device's status: fresh from the device when it is
// reachable now, else the last one it gave, with the read queued for the
// window after its next message (queue mode) and the time it is next
// expected; maxAge is the seconds until then.
// With several instances, a device not reachable from this one but
// holding a session with another has the request relayed there.
func (s *Server) scsStatus(ctx context.Context, x *SCS, id string, wantJSON bool) (code codes.Code, body []byte, queued bool, maxAge uint32) {
	if a, ok := s.relay(ctx, relayRequest{device: id, scs: x.Name, class: ClassStatus, wantJSON: wantJSON}); ok {
		return codes.Code(a.code), a.body, a.queued, a.maxAge
	}
	return s.scsStatusHere(ctx, x, id, wantJSON)
}

// scsStatusHere is scsStatus over this instance's session, if any.
func (s *Server) scsStatusHere(ctx context.Context, x *SCS, id string, wantJSON bool) (code codes.Code, body []byte, queued bool, maxAge uint32) {
	cc, online := s.reachable(id)
	tried := online
	if online {
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
		online = err == nil
	}
	if !online { // not reachable, or it did not answer now (an answer other than 2.05 is not retried)
		queue := s.queueFor
		if tried {
			queue = s.enqueue // reachable, yet unanswered: wait for its next message
		}
		if err := queue(id, queuedRequest{class: ClassStatus, scs: x.Name, at: s.now()}); err == nil {
			queued = true
			s.logf("device %s: status read for %s queued until the device's next message", id, x.Name)
		}
	}
	out, ds := s.statusOut(id, online)
	if queued {
		maxAge = s.queuedAnswer(id, ds, out)
	}
	return codes.Content, encodeOut(out, wantJSON), queued, maxAge
}

// statusOut is the status answer's body: what is known of the device.
func (s *Server) statusOut(id string, online bool) (map[string]any, DeviceState) {
	ds := s.device(id)
	out := map[string]any{
		"device":  id,
		"online":  online && !ds.Overdue,
		"overdue": ds.Overdue,
	}
	if !ds.LastSeen.IsZero() {
		out["last_seen"] = ds.LastSeen.Unix()
	}
	if len(ds.Status) > 0 {
		out["status_at"] = ds.StatusAt.Unix()
		out["status"] = cbor.RawMessage(ds.Status)
	}
	return out, ds
}

func (s *Server) scsEvents(x *SCS, id string, wantJSON bool) (codes.Code, []byte) {
	last := s.device(id).LastEvent
	if last == nil {
		return codes.Content, encodeOut(map[string]any{"device": id}, wantJSON)
	}
	return codes.Content, encodeSummary(last, wantJSON)
}

// observersOf is the observers of a class (ClassEvents or ClassStatus),
// by device; under s.mu.
func (s *Server) observersOf(class string) map[string]map[*observer]struct{} {
	if class == ClassStatus {
		return s.statusObs
	}
	return s.observers
}

// Bounds of the observations one SCS session holds. Each observer costs
// the collector a grant check and an audit record per notification, so
// without them one session, registering again and again with new tokens,
// made every event of a device cost it as many store round trips.
const (
	maxObserversPerResource = 4    // tokens of one session on one device's class
	maxObserversPerSession  = 4096 // in all, over devices and classes
)

// observe registers (Observe 0) or deregisters (Observe 1) the SCS as an
// observer of the device's class, and reports whether it observes now
// (the answer then carries Observe). A registration again with the same
// token updates the one there (RFC 7641 4.1); one beyond the bounds is
// answered as a plain read, which tells the SCS it does not observe.
func (s *Server) observe(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message, x *SCS, class, id string, wantJSON bool) bool {
	obs, err := r.Options().Observe()
	switch {
	case err == nil && obs == 0:
		cc := w.Conn()
		s.observedMu.Lock()
		defer s.observedMu.Unlock()
		s.mu.Lock()
		m := s.observersOf(class)
		mine := 0
		for o := range m[id] {
			if o.cc != cc {
				continue
			}
			if bytes.Equal(o.token, r.Token()) {
				o.json.Store(wantJSON)
				s.mu.Unlock()
				return true
			}
			mine++
		}
		if mine >= maxObserversPerResource || s.sessionObservers[cc] >= maxObserversPerSession {
			s.mu.Unlock()
			s.logLimited("observer-bound", "scs %s: observation of %s not registered: the session holds as many as it may (%d of the device's %s, %d in all)",
				x.Name, id, maxObserversPerResource, class, maxObserversPerSession)
			return false
		}
		o := &observer{cc: cc, token: append(message.Token(nil), r.Token()...), scs: x.Name}
		o.json.Store(wantJSON)
		o.seq.Store(1)
		if m[id] == nil {
			m[id] = map[*observer]struct{}{}
		}
		m[id][o] = struct{}{}
		s.sessionObservers[cc]++
		first := len(m[id]) == 1
		s.mu.Unlock()
		cc.AddOnClose(func() { s.dropObserver(class, id, o) })
		if first {
			s.observedHere(class, id, true)
		}
		return true
	case err == nil && obs == 1:
		s.observedMu.Lock()
		defer s.observedMu.Unlock()
		s.mu.Lock()
		for o := range s.observersOf(class)[id] {
			if o.cc == w.Conn() && bytes.Equal(o.token, r.Token()) {
				delete(s.observersOf(class)[id], o)
				s.forgetObserverLocked(o)
			}
		}
		last := len(s.observersOf(class)[id]) == 0
		s.mu.Unlock()
		if last {
			s.observedHere(class, id, false)
		}
	}
	return false
}

// observedHere records in the database, with several instances, that
// SCSs observe the device's class on this one (on: the first observer;
// off: the last gone), so the instance its messages reach notifies them
// too. Under observedMu, so the records keep the order of the changes.
func (s *Server) observedHere(class, id string, on bool) {
	if s.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.cluster.Observed(ctx, id, class, on); err != nil {
		s.storeError("cluster", "recording the observers of device %s in the store: %v", id, err)
	}
}

// notifyOthers sends a notification's content to the other instances
// with observers of the device's class.
func (s *Server) notifyOthers(class, id string, body []byte) {
	if s.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.cluster.NotifyObservers(ctx, id, class, body); err != nil {
		s.storeError("cluster", "notifying the other instances' observers of device %s: %v", id, err)
	}
}

// remoteNotify is a notification from the instance a device's message
// reached, for the observers here: an event (its summary, JSON), or a
// status ("1" when the device was reachable there).
func (s *Server) remoteNotify(class, id string, body []byte) {
	switch class {
	case ClassEvents:
		var sum EventSummary
		if json.Unmarshal(body, &sum) != nil || sum.Device != id {
			return
		}
		sum.AtUnix = sum.At.Unix()
		s.notifyObservers(ClassEvents, id, func(json bool) []byte { return encodeSummary(&sum, json) })
	case ClassStatus:
		out, _ := s.statusOut(id, string(body) == "1")
		s.notifyObservers(ClassStatus, id, func(json bool) []byte { return encodeOut(out, json) })
	}
}

// forgetObserverLocked counts o out of its session's observations; under
// s.mu, once o has left the observers.
func (s *Server) forgetObserverLocked(o *observer) {
	if n := s.sessionObservers[o.cc] - 1; n > 0 {
		s.sessionObservers[o.cc] = n
	} else {
		delete(s.sessionObservers, o.cc)
	}
}

func (s *Server) dropObserver(class, id string, o *observer) {
	s.observedMu.Lock()
	defer s.observedMu.Unlock()
	s.mu.Lock()
	_, had := s.observersOf(class)[id][o]
	delete(s.observersOf(class)[id], o)
	if had {
		s.forgetObserverLocked(o)
	}
	last := had && len(s.observersOf(class)[id]) == 0
	s.mu.Unlock()
	if last {
		s.observedHere(class, id, false)
	}
}

// notify sends an event to the device's observers, one block each.
func (s *Server) notify(id string, sum *EventSummary) {
	s.notifyObservers(ClassEvents, id, func(json bool) []byte { return encodeSummary(sum, json) })
	if b, err := json.Marshal(sum); err == nil {
		s.notifyOthers(ClassEvents, id, b)
	}
}

// notifyStatus sends the device's status to the observers of its status:
// when a queued read was answered, or a scheduled report came in.
func (s *Server) notifyStatus(id string) {
	_, online := s.reachable(id)
	if online {
		s.notifyOthers(ClassStatus, id, []byte("1"))
	} else {
		s.notifyOthers(ClassStatus, id, []byte("0"))
	}
	s.mu.Lock()
	n := len(s.statusObs[id])
	s.mu.Unlock()
	if n == 0 {
		return
	}
	out, _ := s.statusOut(id, online)
	s.notifyObservers(ClassStatus, id, func(json bool) []byte { return encodeOut(out, json) })
}

// notifyObservers sends one notification (one block) to each observer of
// the device's class, and audits it.
func (s *Server) notifyObservers(class, id string, body func(json bool) []byte) {
	s.mu.Lock()
	var obs []*observer
	for o := range s.observersOf(class)[id] {
		obs = append(obs, o)
	}
	s.mu.Unlock()
	for _, o := range obs {
		if !s.granted(o.scs, id, class) {
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
			s.dropObserver(class, id, o)
			s.audit(AuditRecord{SCS: o.scs, Method: "NOTIFY", Path: "/devices/" + id + "/" + class, Device: id, Class: class, Decision: "denied (grant revoked)", Code: codeText(codes.NotFound)})
			s.logf("scs %s: observation of %s ended: not granted any more", o.scs, id)
			continue
		}
		asJSON := o.json.Load()
		b := body(asJSON)
		cf := message.AppCBOR
		if asJSON {
			cf = message.AppJSON
		}
		m := o.cc.AcquireMessage(o.cc.Context())
		m.SetCode(codes.Content)
		m.SetToken(o.token)
		m.SetObserve(o.seq.Add(1))
		m.SetContentFormat(cf)
		m.SetBody(bytes.NewReader(b))
		err := o.cc.WriteMessage(m)
		o.cc.ReleaseMessage(m)
		code := codeText(codes.Content)
		if err != nil {
			s.dropObserver(class, id, o)
			code = "send failed"
		}
		s.audit(AuditRecord{SCS: o.scs, Method: "NOTIFY", Path: "/devices/" + id + "/" + class, Device: id, Class: class, Decision: "granted", Code: code})
	}
}

// scsTrigger forwards a trigger to the device. The SCS's payload is CBOR
// {1: seq, 2: action} (or JSON {"seq":..,"action":..}); seq must grow per
// SCS and device, so a replayed request is refused with 4.09. A device not
// reachable now gets the trigger in the window after its next message:
// the SCS is answered 2.01 with {queued, next_expected} (maxAge the
// seconds until then), or 5.03 when the queue is full.
// With several instances, one with the device's session performs it
// (see scsStatus).
func (s *Server) scsTrigger(ctx context.Context, x *SCS, id string, payload []byte, isJSON, wantJSON bool) (codes.Code, []byte, uint32) {
	if _, err := parseTriggerRequest(payload, isJSON); err != nil {
		return codes.BadRequest, []byte("want {1: seq, 2: action}"), 0
	}
	if a, ok := s.relay(ctx, relayRequest{device: id, scs: x.Name, class: ClassTrigger, payload: payload, payloadJSON: isJSON, wantJSON: wantJSON}); ok {
		return codes.Code(a.code), a.body, a.maxAge
	}
	return s.scsTriggerHere(ctx, x, id, payload, isJSON, wantJSON)
}

type triggerRequest struct {
	Seq    uint64 `cbor:"1,keyasint" json:"seq"`
	Action string `cbor:"2,keyasint" json:"action"`
}

func parseTriggerRequest(payload []byte, isJSON bool) (triggerRequest, error) {
	var req triggerRequest
	var err error
	if isJSON {
		err = json.Unmarshal(payload, &req)
	} else {
		err = cbor.Unmarshal(payload, &req)
	}
	// The action is logged and sent: UTF-8 text without control
	// characters (a line break was a log line of the SCS's making).
	if err == nil && (req.Seq == 0 || req.Action == "" || len(req.Action) > 64 || !goodText(req.Action)) {
		err = errors.New("want {1: seq, 2: action}")
	}
	return req, err
}

// scsTriggerHere is scsTrigger over this instance's session, if any.
func (s *Server) scsTriggerHere(ctx context.Context, x *SCS, id string, payload []byte, isJSON, wantJSON bool) (codes.Code, []byte, uint32) {
	req, err := parseTriggerRequest(payload, isJSON)
	if err != nil {
		return codes.BadRequest, []byte("want {1: seq, 2: action}"), 0
	}
	cc, online := s.reachable(id)
	full := func() (codes.Code, []byte, uint32) {
		out := map[string]any{}
		retry := s.queuedAnswer(id, s.device(id), out)
		return codes.ServiceUnavailable, []byte(fmt.Sprintf("device not reachable now and its queue is full (%d requests); retry after it is next expected", s.Queued(id))), retry
	}
	if !online && !s.queueRoom(id) {
		return full()
	}
	errReplayed := errors.New("replayed trigger")
	switch err := s.update(id, func(ds *DeviceState) error {
		if ds.SCSSeq == nil {
			ds.SCSSeq = map[string]uint64{}
		}
		if req.Seq <= ds.SCSSeq[x.Name] {
			return errReplayed
		}
		ds.SCSSeq[x.Name] = req.Seq
		return nil
	}); {
	case errors.Is(err, errReplayed):
		return codes.Code(0x89), []byte("replayed trigger (seq not new)"), 0 // 4.09 Conflict
	case err != nil:
		return codes.InternalServerError, []byte("store unavailable"), 0
	}
	if !online {
		if err := s.queueFor(id, queuedRequest{class: ClassTrigger, scs: x.Name, action: req.Action, at: s.now()}); err != nil {
			return full()
		}
		s.logf("device %s: trigger (%s) from %s queued until the device's next message", id, req.Action, x.Name)
		out := map[string]any{"device": id}
		maxAge := s.queuedAnswer(id, s.device(id), out)
		return codes.Created, encodeOut(out, wantJSON), maxAge
	}
	code, why, err := s.sendTrigger(ctx, cc, id, x.Name, req.Action)
	switch {
	case errors.Is(err, errStore):
		return codes.InternalServerError, []byte("store unavailable"), 0
	case err != nil:
		return codes.GatewayTimeout, []byte("device did not answer"), 0
	case code == codes.Changed:
		return codes.Changed, nil, 0
	}
	msg := fmt.Sprintf("device refused the trigger (%v)", code)
	if len(why) > 0 && len(why) <= 256 && goodText(string(why)) {
		// The device's reason, e.g. an action it does not implement; it
		// goes to the SCS and the audit record, so only as plain text.
		msg += ": " + string(why)
	}
	return codes.BadGateway, []byte(msg), 0
}

// relay has the instance holding the device's session perform an SCS
// request, when this instance cannot reach the device now and another
// live one holds a session with it. ok false: do it here (no other
// holder, one instance only, or a status read the holder did not answer
// in time); a trigger it did not answer is 5.04, as one the device did
// not answer.
func (s *Server) relay(ctx context.Context, r relayRequest) (relayAnswer, bool) {
	if s.cluster == nil {
		return relayAnswer{}, false
	}
	if _, online := s.reachable(r.device); online {
		return relayAnswer{}, false
	}
	holder, err := s.cluster.Holder(ctx, r.device)
	if err != nil {
		s.storeError("cluster", "%v", err)
		return relayAnswer{}, false
	}
	if holder == "" {
		return relayAnswer{}, false
	}
	a, err := s.cluster.Relay(ctx, holder, r)
	if err != nil && r.class == ClassTrigger {
		// It may have reached the device (and spent the SCS's sequence
		// number): not sent again from here.
		s.logf("device %s: trigger relayed to instance %s: %v", r.device, holder, err)
		return relayAnswer{code: int(codes.GatewayTimeout), body: []byte("device did not answer")}, true
	}
	if err != nil {
		s.logf("device %s: %s request relayed to instance %s: %v; answering from here", r.device, r.class, holder, err)
		return relayAnswer{}, false
	}
	s.logf("device %s: %s request from %s performed by instance %s: %s", r.device, r.class, r.scs, holder, codeText(codes.Code(a.code)))
	return a, true
}

// performRelayed performs a request another instance relayed here, as if
// the SCS had asked this one (the asker audits it). The grant is checked
// again: it may have been revoked on the way.
func (s *Server) performRelayed(ctx context.Context, r relayRequest) relayAnswer {
	class := r.class
	if class == classDeliverTrigger {
		class = ClassTrigger
	}
	if s.deviceByID(r.device) == nil || !s.granted(r.scs, r.device, class) {
		return relayAnswer{code: int(codes.NotFound), body: notFoundBody}
	}
	if r.class == classDeliverTrigger {
		a := s.deliverRelayed(ctx, r)
		s.logf("scs %s: trigger (%s) queued for device %s on another instance, delivered here: %d", r.scs, r.payload, r.device, a.code)
		return a
	}
	x := &SCS{Name: r.scs}
	var a relayAnswer
	switch r.class {
	case ClassStatus:
		code, body, queued, maxAge := s.scsStatusHere(ctx, x, r.device, r.wantJSON)
		a = relayAnswer{code: int(code), body: body, maxAge: maxAge, queued: queued}
	case ClassTrigger:
		code, body, maxAge := s.scsTriggerHere(ctx, x, r.device, r.payload, r.payloadJSON, r.wantJSON)
		a = relayAnswer{code: int(code), body: body, maxAge: maxAge, queued: code == codes.Created}
	default:
		return relayAnswer{code: int(codes.NotFound), body: notFoundBody}
	}
	s.logf("scs %s: %s of device %s relayed from another instance -> %s", r.scs, r.class, r.device, codeText(codes.Code(a.code)))
	return a
}

func encodeSummary(e *EventSummary, wantJSON bool) []byte {
	m := map[string]any{"device": e.Device, "seq": e.Seq, "kind": e.Kind, "at": e.AtUnix}
	if e.Event != "" {
		m["event"] = e.Event
	}
	return encodeOut(m, wantJSON)
}

// encodeOut encodes a response map as CBOR, or as JSON (embedded CBOR
// converted) when the SCS asked for JSON. Embedded CBOR that is not valid
// (only a store written before reports were checked with wire.CheckItem
// can hold it), or that JSON cannot carry (two map keys alike as text), is
// left out and said so under KEY_error, rather than failing the whole
// answer.
func encodeOut(m map[string]any, wantJSON bool) []byte {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if raw, ok := v.(cbor.RawMessage); ok {
			x, err := wire.DecodeItem(raw)
			if err != nil {
				out[k+"_error"] = "stored value is not valid CBOR"
				continue
			}
			if wantJSON {
				if v, err = jsonable(x); err != nil {
					out[k+"_error"] = "stored value cannot be given as JSON: " + err.Error()
					continue
				}
			}
		}
		out[k] = v
	}
	if !wantJSON {
		b, err := cbor.Marshal(out)
		if err != nil {
			return nil
		}
		return b
	}
	b, _ := json.Marshal(out)
	return b
}

// jsonable turns decoded CBOR into values encoding/json takes, as RFC 8949
// 6.1 converts: map keys as text, byte strings as hex, NaN and the
// infinities as null (JSON has neither), times as unix seconds (JSON has
// no time, and encoding/json refuses one past year 9999), and the same
// within tags. Two keys of a map alike as text (1 and "1") are an error,
// not one dropped.
func jsonable(v any) (any, error) {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			if _, dup := m[ks]; dup {
				return nil, errors.New("two map keys are alike as text")
			}
			je, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			m[ks] = je
		}
		return m, nil
	case []any:
		for i := range x {
			je, err := jsonable(x[i])
			if err != nil {
				return nil, err
			}
			x[i] = je
		}
		return x, nil
	case cbor.Tag:
		c, err := jsonable(x.Content)
		return cbor.Tag{Number: x.Number, Content: c}, err
	case []byte:
		return fmt.Sprintf("%x", x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, nil
		}
	case time.Time:
		if x.Nanosecond() == 0 {
			return x.Unix(), nil
		}
		return float64(x.Unix()) + float64(x.Nanosecond())/1e9, nil
	}
	return v, nil
}

// codeText is a response code as "2.05".
func codeText(c codes.Code) string { return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&31) }

package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/wire"
)

// Queue mode, as LwM2M's. A device keeps no keepalive by default, so
// between its messages the carrier NAT forgets its mapping and the
// collector cannot reach it, though its DTLS session (with its Connection
// ID) lives on. A device is reachable for NATWindow after its last
// datagram; a request from the collector's side (an SCS status read or
// trigger) for a device not reachable now is queued, and delivered in the
// window after the device's next message (a token, a report, a new
// session). The SCS is told it was queued and when the device is next
// expected. The collector's own requests (the attestation challenge on a
// new session, MDT pulls on a new session and after heartbeats) are only
// ever sent in that window. The queue is in memory: bounded per device and
// in total, and lost with a restart. With several instances on one
// database, a request for a device whose session another instance holds
// is relayed there (scs.go), and a queue is handed over to the instance
// where the device's next session comes up (handOver).

// queuedRequest is one request waiting for its device's next message.
type queuedRequest struct {
	class  string // ClassStatus or ClassTrigger
	scs    string // who asked
	action string // a trigger's action
	at     time.Time
}

// requestQueue is the Server's queue (under Server.mu).
type requestQueue struct {
	per   map[string][]queuedRequest // by device
	n     int                        // in all
	busy  map[string]bool            // devices whose queue is being delivered
	beats map[string]beat            // heartbeats seen, by device
}

// beat is a device's last heartbeat and the interval before it.
type beat struct {
	last  time.Time
	every time.Duration
}

var errQueueFull = errors.New("queue full")

// lastActivity is when the session last received a datagram (go-coap's
// inactivity monitor notes every message, pings included).
func lastActivity(cc *udpClient.Conn) time.Time {
	if m, ok := cc.InactivityMonitor().(interface{ LastActivity() time.Time }); ok {
		return m.LastActivity()
	}
	return time.Time{}
}

// reachable returns the device's session, and whether a datagram came
// from it within the NAT window (so its NAT mapping is likely open).
func (s *Server) reachable(id string) (*udpClient.Conn, bool) {
	cc := s.session(id)
	if cc == nil {
		return nil, false
	}
	return cc, time.Since(lastActivity(cc)) < s.cfg.NATWindow
}

// queueRoom reports whether one more request for device id fits.
func (s *Server) queueRoom(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue.per[id]) < s.cfg.QueuePerDevice && s.queue.n < s.cfg.QueueTotal
}

// enqueue queues r for device id. A status read joins one already queued
// (one read of the device answers every SCS).
func (s *Server) enqueue(id string, r queuedRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &s.queue
	if r.class == ClassStatus {
		for _, p := range q.per[id] {
			if p.class == ClassStatus {
				return nil
			}
		}
	}
	if len(q.per[id]) >= s.cfg.QueuePerDevice || q.n >= s.cfg.QueueTotal {
		return errQueueFull
	}
	if q.per == nil {
		q.per = map[string][]queuedRequest{}
	}
	q.per[id] = append(q.per[id], r)
	q.n++
	return nil
}

// queueFor queues r for a device that was not reachable when asked. Should
// a message of the device have come in meanwhile (its window opened after
// it was checked), what is queued goes now rather than at the next one.
func (s *Server) queueFor(id string, r queuedRequest) error {
	if err := s.enqueue(id, r); err != nil {
		return err
	}
	if d := s.deviceByID(id); d != nil {
		if cc, ok := s.reachable(id); ok {
			s.deliverQueued(d, cc)
		}
	}
	return nil
}

// requeue puts requests back at the front of the device's queue (the
// window closed before they went). They were counted already, so the
// bounds may be passed by the requests queued meanwhile.
func (s *Server) requeue(id string, rs []queuedRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue.per == nil {
		s.queue.per = map[string][]queuedRequest{}
	}
	s.queue.per[id] = append(append([]queuedRequest(nil), rs...), s.queue.per[id]...)
	s.queue.n += len(rs)
}

// Queued is how many requests wait for device id's next message.
func (s *Server) Queued(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue.per[id])
}

// heardHeartbeat notes a heartbeat, for nextExpected.
func (s *Server) heardHeartbeat(id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue.beats == nil {
		s.queue.beats = map[string]beat{}
	}
	b := s.queue.beats[id]
	if !b.last.IsZero() && now.After(b.last) {
		b.every = now.Sub(b.last)
	}
	b.last = now
	s.queue.beats[id] = b
}

// nextExpected is when the device is next expected to send (and so to
// take what is queued for it): its last heartbeat plus the interval seen
// between its last two (since this collector started), or plus its
// heartbeat timeout, at the latest. Zero when that has passed too: the
// device is overdue and nobody knows.
func (s *Server) nextExpected(d *Device, ds DeviceState) time.Time {
	now := s.now()
	last := ds.LastHeartbeat
	if last.IsZero() {
		last = ds.LastSeen
	}
	if last.IsZero() {
		return time.Time{}
	}
	s.mu.Lock()
	b := s.queue.beats[d.ID]
	s.mu.Unlock()
	if b.every > 0 && b.every < d.HeartbeatTimeout {
		if t := last.Add(b.every); t.After(now) {
			return t
		}
	}
	if t := last.Add(d.HeartbeatTimeout); t.After(now) {
		return t
	}
	return time.Time{}
}

// deliverQueued sends what is queued for the device over cc, in the
// window its message just opened, in the background and in order. A
// request that cannot go (the session ended, a status read unanswered) is
// put back, with those after it, for the next window.
func (s *Server) deliverQueued(d *Device, cc *udpClient.Conn) {
	take := func() []queuedRequest {
		s.mu.Lock()
		defer s.mu.Unlock()
		rs := s.queue.per[d.ID]
		if len(rs) == 0 {
			delete(s.queue.busy, d.ID)
			return nil
		}
		delete(s.queue.per, d.ID)
		s.queue.n -= len(rs)
		return rs
	}
	s.mu.Lock()
	if len(s.queue.per[d.ID]) == 0 || s.queue.busy[d.ID] {
		s.mu.Unlock()
		return
	}
	if s.queue.busy == nil {
		s.queue.busy = map[string]bool{}
	}
	s.queue.busy[d.ID] = true
	s.mu.Unlock()
	started := s.background(func() {
		for rs := take(); rs != nil; rs = take() {
			for i, r := range rs {
				if err := s.deliver(d, cc, r); err != nil {
					s.requeue(d.ID, rs[i:])
					s.logf("device %s: %d queued request(s) kept for its next message: %v", d.ID, len(rs)-i, err)
					s.mu.Lock()
					delete(s.queue.busy, d.ID)
					s.mu.Unlock()
					return
				}
			}
		}
	})
	if !started { // closing
		s.mu.Lock()
		delete(s.queue.busy, d.ID)
		s.mu.Unlock()
	}
}

// deliver sends one queued request. An error means it did not reach the
// device and should wait for the next window; a trigger is sent once
// whatever comes of it (its counter is spent), and the outcome audited.
func (s *Server) deliver(d *Device, cc *udpClient.Conn, r queuedRequest) error {
	ctx, cancel := context.WithTimeout(cc.Context(), 5*time.Second)
	defer cancel()
	waited := s.now().Sub(r.at).Round(time.Second)
	switch r.class {
	case ClassStatus:
		resp, err := cc.Get(ctx, wire.PathStatus)
		if err != nil {
			return fmt.Errorf("status read: %w", err)
		}
		if resp.Code() != codes.Content {
			s.logf("device %s: queued status read answered %v", d.ID, resp.Code())
			return nil
		}
		b, err := resp.ReadBody()
		if err != nil {
			return nil
		}
		_ = s.update(d.ID, func(ds *DeviceState) error {
			ds.Status, ds.StatusAt = b, s.now()
			return nil
		})
		s.logf("device %s: queued status read answered after %s (%d bytes)", d.ID, waited, len(b))
		s.notifyStatus(d.ID)
	case ClassTrigger:
		rec := AuditRecord{SCS: r.scs, Method: "DELIVER", Path: "/devices/" + d.ID + "/trigger", Device: d.ID, Class: ClassTrigger}
		code, why, err := s.sendTrigger(ctx, cc, d.ID, r.scs, r.action)
		switch {
		case errors.Is(err, errStore):
			return err // not sent: its counter could not be saved
		case err != nil:
			rec.Decision, rec.Code = "queued trigger: device did not answer", "no answer"
		case code == codes.Changed:
			rec.Decision, rec.Code = "queued trigger delivered and accepted", codeText(code)
		default:
			rec.Decision, rec.Code = "queued trigger refused by the device: "+string(why), codeText(code)
		}
		s.audit(rec)
		s.logf("device %s: queued trigger (%s) from %s delivered after %s: %s", d.ID, r.action, r.scs, waited, rec.Code)
	}
	return nil
}

// handOver sends the requests queued here for a device whose session
// has just come up on another instance (holder) to that instance, in
// order, which performs them in the window the new session opened: a
// status read as an SCS's (its answer stored, and sent to the status
// observers here), a trigger only sent (its SCS sequence number was
// spent when it was queued). What does not get there stays queued.
func (s *Server) handOver(id, holder string) {
	if s.cluster == nil {
		return
	}
	s.mu.Lock()
	rs := s.queue.per[id]
	if len(rs) == 0 || s.queue.busy[id] {
		s.mu.Unlock()
		return
	}
	if s.queue.busy == nil {
		s.queue.busy = map[string]bool{}
	}
	s.queue.busy[id] = true
	delete(s.queue.per, id)
	s.queue.n -= len(rs)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.queue.busy, id)
		s.mu.Unlock()
	}()
	for i, r := range rs {
		req := relayRequest{device: id, scs: r.scs, class: r.class}
		if r.class == ClassTrigger {
			req.class, req.payload = classDeliverTrigger, []byte(r.action)
		}
		ctx, cancel := context.WithTimeout(context.Background(), relayWait+time.Second)
		a, err := s.cluster.Relay(ctx, holder, req)
		cancel()
		if err == nil && a.code == relayNotDelivered {
			err = errors.New("not delivered there")
		}
		if err != nil {
			s.requeue(id, rs[i:])
			s.logf("device %s: %d queued request(s) not handed over to instance %s: %v; kept here", id, len(rs)-i, holder, err)
			return
		}
		waited := s.now().Sub(r.at).Round(time.Second)
		switch r.class {
		case ClassStatus:
			s.logf("device %s: queued status read handed over to instance %s, answered %s after %s", id, holder, codeText(codes.Code(a.code)), waited)
			s.notifyStatus(id)
		case ClassTrigger:
			rec := AuditRecord{SCS: r.scs, Method: "DELIVER", Path: "/devices/" + id + "/trigger", Device: id, Class: ClassTrigger}
			switch code := codes.Code(a.code); {
			case a.code == 0:
				rec.Decision, rec.Code = "queued trigger: device did not answer (through instance "+holder+")", "no answer"
			case code == codes.Changed:
				rec.Decision, rec.Code = "queued trigger delivered and accepted (through instance "+holder+")", codeText(code)
			default:
				rec.Decision, rec.Code = "queued trigger refused by the device (through instance "+holder+"): "+string(a.body), codeText(code)
			}
			s.audit(rec)
			s.logf("device %s: queued trigger (%s) from %s handed over to instance %s after %s: %s", id, r.action, r.scs, holder, waited, rec.Code)
		}
	}
}

// relayNotDelivered is a relayed delivery's answer when the holder could
// not send it (no session there any more, or its store failed): the asker
// keeps the request queued.
const relayNotDelivered = -1

// deliverRelayed sends a trigger queued on another instance over this
// one's session with the device.
func (s *Server) deliverRelayed(ctx context.Context, r relayRequest) relayAnswer {
	cc := s.session(r.device)
	if cc == nil {
		return relayAnswer{code: relayNotDelivered}
	}
	code, why, err := s.sendTrigger(ctx, cc, r.device, r.scs, string(r.payload))
	switch {
	case errors.Is(err, errStore):
		return relayAnswer{code: relayNotDelivered}
	case err != nil:
		return relayAnswer{} // sent, not answered
	}
	return relayAnswer{code: int(code), body: why}
}

var errStore = errors.New("store unavailable")

// sendTrigger gives the trigger the device's next counter (durable before
// it leaves, so it never repeats), sends it and returns the device's
// answer and reason.
func (s *Server) sendTrigger(ctx context.Context, cc *udpClient.Conn, id, scs, action string) (codes.Code, []byte, error) {
	var t wire.Trigger
	if err := s.update(id, func(ds *DeviceState) error {
		ds.TriggerSeq++
		t = wire.Trigger{Counter: ds.TriggerSeq, Time: s.now(), Action: action, From: scs}
		return nil
	}); err != nil {
		return 0, nil, errStore
	}
	b, err := wire.EncodeTrigger(t)
	if err != nil {
		return 0, nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	resp, err := cc.Post(tctx, wire.PathTrigger, message.AppCBOR, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	s.logf("device %s: trigger %d (%s) from %s answered %v", id, t.Counter, t.Action, scs, resp.Code())
	why, _ := resp.ReadBody()
	return resp.Code(), why, nil
}

// queuedAnswer is what an SCS is told of a queued request: that it is
// queued, and when the device is next expected (unix seconds; absent when
// it is overdue). maxAge is the seconds until then (0: unknown).
func (s *Server) queuedAnswer(id string, ds DeviceState, out map[string]any) (maxAge uint32) {
	out["queued"] = true
	if d := s.deviceByID(id); d != nil {
		if t := s.nextExpected(d, ds); !t.IsZero() {
			out["next_expected"] = t.Unix()
			return uint32(max(1, t.Sub(s.now())/time.Second))
		}
	}
	return 0
}

package collector

import (
	"bytes"
	"context"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Parking idle device sessions. A live DTLS session costs the collector
// about 43 KiB (pion's connection with its 8 KiB read buffer and three
// goroutines, go-coap's session with two), most of it while nothing
// moves: a device heartbeats every 15 minutes, and after nat_window the
// collector takes it for unreachable anyway. So a session idle for
// park_after is parked: its DTLS state (keys, sequence numbers, Connection
// IDs; about 600 bytes) is kept and the connection let go. The device
// notices nothing: its next record, routed by Connection ID or address
// (udpMux), restores the session from that state, and the record is
// read by the restored connection. No handshake, no attestation
// challenge, no byte more on the air.
//
// Restoring a DTLS state is safe only if the keys are never used for two
// records with one sequence number and the state is restored once (pion
// documents this on ResumeWithOptions). Here:
//   - the session's socket is frozen before its state is taken: nothing
//     the old connection writes afterwards leaves (not its close_notify,
//     not a retransmission), so every record sent used a number below
//     the state's;
//   - the state is kept in this process's memory only, and the mux takes
//     it off its table, under its lock, as it restores it: once;
//   - the restored connection refuses the peer's records up to the last
//     one the state had seen (pion's replay cutoff).
//
// A session is not parked while an exchange of the collector's is on
// its way (an attestation challenge, an MDT pull, a confirmable request
// unanswered) or a device request is being handled. A parked session is
// forgotten after session_idle, as a live one is closed.

// parkedSession is what is left of a parked session.
type parkedSession struct {
	state  []byte // pion's State, serialized: the session's keys
	cid    string // the Connection ID its records carry (none: by addr)
	addr   netip.AddrPort
	device string
	at     time.Time
}

// park takes c off the routing tables and keeps p in its place.
func (m *udpMux) park(c *muxConn, p *parkedSession) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || !c.live {
		return false
	}
	p.cid, p.addr = c.cid, c.addr
	m.forgetLocked(c)
	if p.cid != "" {
		if old := m.parked[p.cid]; old != nil {
			m.unparkLocked(old)
		}
		m.parked[p.cid] = p
	} else {
		if old := m.parkedAddr[p.addr]; old != nil {
			m.unparkLocked(old)
		}
		m.parkedAddr[p.addr] = p
	}
	return true
}

func (m *udpMux) unparkLocked(p *parkedSession) {
	if p.cid != "" && m.parked[p.cid] == p {
		delete(m.parked, p.cid)
	}
	if p.cid == "" && m.parkedAddr[p.addr] == p {
		delete(m.parkedAddr, p.addr)
	}
}

// expireParked forgets the sessions parked before t, and returns how many.
func (m *udpMux) expireParked(t time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, p := range m.parked {
		if p.at.Before(t) {
			clear(p.state)
			delete(m.parked, k)
			n++
		}
	}
	for k, p := range m.parkedAddr {
		if p.at.Before(t) {
			clear(p.state)
			delete(m.parkedAddr, k)
			n++
		}
	}
	return n
}

// parkedCount is the number of parked sessions.
func (m *udpMux) parkedCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.parked) + len(m.parkedAddr)
}

// resume restores parked session p on c, whose first datagram is queued,
// and hands it to the CoAP server as a session whose handshake is done.
func (g *gatedListener) resume(p *parkedSession, c *muxConn) {
	var st piondtls.State
	err := st.UnmarshalBinary(p.state)
	clear(p.state)
	if err != nil {
		_ = c.Close()
		g.log("resume-failed", "device listener: a parked session not restored: %v", err)
		return
	}
	dc, err := piondtls.Resume(&st, c, c.remote(), g.cfg) //nolint:staticcheck // ResumeWithOptions takes options, not this Config; the same call
	if err != nil {
		_ = c.Close()
		g.log("resume-failed", "device listener: a parked session not restored: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	err = dc.HandshakeContext(ctx) // a restored state: returns at once
	cancel()
	if err != nil {
		_ = dc.Close()
		g.log("resume-failed", "device listener: a parked session not restored: %v", err)
		return
	}
	g.inner.bind(dc, c)
	if g.resumed != nil {
		g.resumed(dc, p.device)
	}
	select {
	case g.ready <- dc:
	case <-g.done:
		_ = dc.Close()
	}
}

// sessionMonitor is go-coap's inactivity monitor of a device session:
// parked after park_after without inbound traffic, closed after
// session_idle (where it could not be parked). go-coap does not call it
// while a confirmable request of the collector's is unanswered.
type sessionMonitor struct {
	s       *Server
	last    atomic.Int64 // unix nanoseconds of the last inbound message
	parking atomic.Bool
}

func (m *sessionMonitor) Notify() { m.last.Store(time.Now().UnixNano()) }

// LastActivity is when the session last received a message.
func (m *sessionMonitor) LastActivity() time.Time { return time.Unix(0, m.last.Load()) }

func (m *sessionMonitor) CheckInactivity(now time.Time, cc *udpClient.Conn) {
	idle := now.Sub(m.LastActivity())
	switch park := m.s.cfg.ParkAfter; {
	case idle >= m.s.cfg.SessionIdle:
		_ = cc.Close()
	case park > 0 && idle >= park && m.parking.CompareAndSwap(false, true):
		// Off go-coap's loop over every connection.
		if !m.s.background(func() {
			if !m.s.park(cc) {
				m.parking.Store(false)
			}
		}) {
			m.parking.Store(false)
		}
	}
}

// park parks an idle device session; false if it cannot be now.
func (s *Server) park(cc *udpClient.Conn) bool {
	dc, ok := dtlsOf(cc)
	if !ok {
		return false
	}
	s.mu.Lock()
	id, up := s.sessionIDs[cc]
	var c *muxConn
	for _, g := range s.gates {
		if c = g.inner.connOf(dc); c != nil {
			break
		}
	}
	s.mu.Unlock()
	if !up || c == nil || !s.idleNow(cc, id) {
		return false
	}
	mux := c.m
	c.freeze()
	st, ok := dc.ConnectionState()
	var state []byte
	var err error
	if ok {
		var enc []byte
		if enc, err = st.MarshalBinary(); err == nil {
			state = bytes.Clone(enc) // kept at its length, not the encoder's buffer
		}
		clear(enc)
	}
	// The last check, the parking and its mark are one step under s.mu:
	// a session resumed from the parked state may close cc at once, and
	// its close hook must find cc marked parked.
	s.mu.Lock()
	if !ok || err != nil || !s.idleLocked(cc, id) || !mux.park(c, &parkedSession{state: state, device: id, at: s.now()}) {
		s.mu.Unlock()
		// Nothing taken: the session goes on.
		clear(state)
		c.unfreeze()
		return false
	}
	s.parkedCC[cc] = true
	s.parkWave.parked(time.Now())
	s.mu.Unlock()
	s.metrics.count(&s.metrics.parks)
	if testHookParked != nil {
		testHookParked(id)
	}
	_ = cc.Close() // what it would send is not sent
	return true
}

// testHookParked, when a test sets it, runs after a session's state is
// parked and before its live connection closes.
var testHookParked func(device string)

// idleNow: cc is the device's live session and nothing of it is under
// way (checked before the freeze, and again after it: a request that
// came in meanwhile is answered by the live session).
func (s *Server) idleNow(cc *udpClient.Conn, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idleLocked(cc, id)
}

// idleLocked is idleNow with s.mu held.
func (s *Server) idleLocked(cc *udpClient.Conn, id string) bool {
	return s.sessions[id] == cc && s.handling[cc] == 0 && s.challenging[id] == 0 && s.mdtBusy[id] == nil
}

// parkWave counts the sessions parked since the memory they held was
// last given back to the system: a wave, from its first park (first) to
// its latest (last).
type parkWave struct {
	n           int
	first, last time.Time
}

// Thresholds of releaseAfterParking.
const (
	parkWaveSessions = 1000
	parkWaveQuiet    = 2 * time.Second
	parkWaveEvery    = time.Minute
)

// parked counts one park at now.
func (w *parkWave) parked(now time.Time) {
	if w.n == 0 {
		w.first = now
	}
	w.n++
	w.last = now
}

// due reports whether the wave's memory is to be given back now, and if
// so starts a new wave: parkWaveSessions parked, and none for
// parkWaveQuiet (the closed connections' goroutines and buffers are gone
// by then), or parkWaveEvery since the wave began while it goes on.
func (w *parkWave) due(now time.Time) bool {
	if w.n < parkWaveSessions || (now.Sub(w.last) < parkWaveQuiet && now.Sub(w.first) < parkWaveEvery) {
		return false
	}
	w.n = 0
	return true
}

// releaseAfterParking gives the memory of many sessions parked back to
// the system once their wave has passed, rather than when the runtime's
// scavenger gets to it: a collector whose devices went quiet together
// (2,000 sessions are about 85 MiB) shrinks as soon as they are parked.
func (s *Server) releaseAfterParking() {
	now := time.Now()
	s.mu.Lock()
	due := s.parkWave.due(now)
	s.mu.Unlock()
	if due {
		s.background(func() {
			// Two collections: the first leaves the pools' buffers of the
			// closed connections (pion's 8 KiB read buffers) to the
			// second.
			runtime.GC()
			debug.FreeOSMemory()
		})
	}
}

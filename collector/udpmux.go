package collector

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// udpMux is a listener's UDP socket, its datagrams routed to the DTLS
// sessions above it: by Connection ID (RFC 9146) where the record
// carries one, else by source address. A datagram of no session opens one
// only if it is a ClientHello; one of a parked session (parking.go) wakes
// it; any other is dropped. The DTLS layer (pion) runs on each session's
// muxConn as on a socket of its own.
type udpMux struct {
	pc     *net.UDPConn
	cidLen int // the length of the Connection IDs this listener gives; 0: none

	accept chan *muxConn // new peers: their first datagram is a ClientHello
	wake   func(p *parkedSession, c *muxConn)

	mu         sync.Mutex
	byAddr     map[netip.AddrPort]*muxConn
	byCID      map[string]*muxConn
	parked     map[string]*parkedSession         // by CID
	parkedAddr map[netip.AddrPort]*parkedSession // those without a CID, by address
	owners     map[any]*muxConn                  // each session's muxConn, by its DTLS connection
	closed     bool
	done       chan struct{}
	wg         sync.WaitGroup
	dropped    uint64 // datagrams of no session that were not a ClientHello, or beyond a session's queue
}

// muxQueue bounds the datagrams waiting for one session's reader; beyond
// it, the newest are dropped, as a socket's full buffer would.
const muxQueue = 64

// maxDatagram is the largest datagram read: UDP's limit.
const maxDatagram = 65535

func newUDPMux(network, addr string, cidLen int) (*udpMux, error) {
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP(network, ua)
	if err != nil {
		return nil, err
	}
	m := &udpMux{pc: pc, cidLen: cidLen, accept: make(chan *muxConn, MaxPendingHandshakes),
		byAddr: map[netip.AddrPort]*muxConn{}, byCID: map[string]*muxConn{},
		parked: map[string]*parkedSession{}, parkedAddr: map[netip.AddrPort]*parkedSession{},
		owners: map[any]*muxConn{}, done: make(chan struct{})}
	m.wg.Add(1)
	go m.readLoop()
	return m, nil
}

func (m *udpMux) Addr() net.Addr { return m.pc.LocalAddr() }

// droppedCount is the number of datagrams dropped so far.
func (m *udpMux) droppedCount() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}

// Accept returns the next new peer: a muxConn whose first datagram is a
// ClientHello.
func (m *udpMux) Accept() (*muxConn, error) {
	select {
	case c := <-m.accept:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close closes the socket and every session on it, and forgets the
// parked ones.
func (m *udpMux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	conns := map[*muxConn]bool{}
	for _, c := range m.byAddr {
		conns[c] = true
	}
	for _, c := range m.byCID {
		conns[c] = true
	}
	clear(m.parked)
	clear(m.parkedAddr)
	m.mu.Unlock()
	err := m.pc.Close()
	for c := range conns {
		_ = c.Close()
	}
	m.wg.Wait()
	return err
}

func (m *udpMux) readLoop() {
	defer m.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := m.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// An ICMP error reported on the socket, and the like: go on,
			// without spinning on one that repeats.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		m.route(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
	}
}

// route hands one datagram to its session, wakes a parked one, opens a
// new one for a ClientHello, or drops it.
func (m *udpMux) route(d []byte, from netip.AddrPort) {
	cid, hasCID := recordCID(d, m.cidLen)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	var c *muxConn
	if hasCID {
		c = m.byCID[string(cid)]
	}
	if c == nil {
		c = m.byAddr[from]
	}
	if c != nil {
		m.mu.Unlock()
		c.deliver(d, from)
		return
	}
	hello := isClientHello(d)
	var p *parkedSession
	switch {
	case hasCID:
		p = m.parked[string(cid)]
	case hello:
		// A new handshake from a parked session's address: that peer
		// has let its session go (a device that restarted), and the
		// address is the new one's.
		if old := m.parkedAddr[from]; old != nil {
			m.unparkLocked(old)
			clear(old.state)
		}
	default:
		p = m.parkedAddr[from]
	}
	if p != nil {
		// Taken off the parked sessions here, under the lock: a parked
		// state is restored once at most. The session answers where the
		// device was last heard from in it, until a record it
		// authenticates comes from elsewhere (pion moves it then): an
		// unauthenticated datagram does not redirect it.
		m.unparkLocked(p)
		c = m.newConnLocked(p.addr, p.cid)
		m.mu.Unlock()
		c.deliver(d, from)
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.wake(p, c) }()
		return
	}
	if !hello {
		m.dropped++
		m.mu.Unlock()
		return
	}
	c = m.newConnLocked(from, "")
	m.mu.Unlock()
	c.deliver(d, from)
	select {
	case m.accept <- c:
	default:
		_ = c.Close() // more new peers than pending handshakes: the gate drops the oldest anyway
	}
}

func (m *udpMux) newConnLocked(addr netip.AddrPort, cid string) *muxConn {
	c := &muxConn{m: m, addr: addr, cid: cid, live: true, notify: make(chan struct{}, 1), closedCh: make(chan struct{})}
	c.rdl.init()
	if m.byAddr[addr] == nil { // else a newer session of that address keeps it (this one has its CID)
		m.byAddr[addr] = c
	}
	if cid != "" {
		m.byCID[cid] = c
	}
	return c
}

// bind notes that the DTLS connection dc runs on c.
func (m *udpMux) bind(dc any, c *muxConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !c.live {
		return // closed already
	}
	c.owner = dc
	m.owners[dc] = c
}

// connOf returns the muxConn the DTLS connection dc runs on.
func (m *udpMux) connOf(dc any) *muxConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owners[dc]
}

// remote is the peer's address as the DTLS layer takes it.
func (c *muxConn) remote() net.Addr {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return net.UDPAddrFromAddrPort(c.addr)
}

// forgetLocked takes c off the routing tables.
func (m *udpMux) forgetLocked(c *muxConn) {
	c.live = false
	if c.owner != nil {
		delete(m.owners, c.owner)
		c.owner = nil
	}
	if m.byAddr[c.addr] == c {
		delete(m.byAddr, c.addr)
	}
	if c.cid != "" && m.byCID[c.cid] == c {
		delete(m.byCID, c.cid)
	}
}

// learnCID routes records carrying cid to c (from the ServerHello c sends).
func (m *udpMux) learnCID(c *muxConn, cid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || c.cid != "" || !c.live {
		return
	}
	if old := m.byCID[cid]; old != nil && old != c {
		return // a collision (DeviceCIDBytes): the first keeps it
	}
	c.cid = cid
	m.byCID[cid] = c
}

// moved notes that c's session now answers at addr (its peer's NAT moved
// it, and a record with its CID came from there).
func (m *udpMux) moved(c *muxConn, addr netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || !c.live {
		return
	}
	if m.byAddr[c.addr] == c {
		delete(m.byAddr, c.addr)
	}
	c.addr = addr
	if m.byAddr[addr] == nil { // else another session there (a new handshake from the new address)
		m.byAddr[addr] = c
	}
}

// recordCID returns the Connection ID of a datagram's first record when
// it is of the tls12_cid content type (RFC 9146: the CID follows the
// sequence number; its length is the listener's).
func recordCID(d []byte, cidLen int) ([]byte, bool) {
	const contentTLS12CID = 25
	if cidLen == 0 || len(d) < 11+cidLen+2 || d[0] != contentTLS12CID {
		return nil, false
	}
	return d[11 : 11+cidLen], true
}

// isClientHello: the datagram's first record is an unencrypted handshake
// record holding a ClientHello.
func isClientHello(d []byte) bool {
	const contentHandshake, typeClientHello = 22, 1
	return len(d) >= 13+12 && d[0] == contentHandshake && d[3] == 0 && d[4] == 0 && d[13] == typeClientHello
}

// serverHelloCID finds, in a datagram the server sends, a ServerHello's
// connection_id extension: the CID the peer puts in its records to us.
func serverHelloCID(d []byte) (string, bool) {
	const contentHandshake, typeServerHello, extConnectionID = 22, 2, 54
	for len(d) >= 13 {
		typ, epoch := d[0], binary.BigEndian.Uint16(d[3:5])
		n := int(binary.BigEndian.Uint16(d[11:13]))
		if len(d) < 13+n {
			return "", false
		}
		rec := d[13 : 13+n]
		d = d[13+n:]
		if typ != contentHandshake || epoch != 0 || len(rec) < 12 || rec[0] != typeServerHello {
			continue
		}
		// Unfragmented only: pion sends its ServerHello whole.
		body := rec[12:]
		if fl := int(rec[9])<<16 | int(rec[10])<<8 | int(rec[11]); fl != len(body) || rec[6] != 0 || rec[7] != 0 || rec[8] != 0 {
			return "", false
		}
		p := 2 + 32 // version, random
		if len(body) < p+1 {
			return "", false
		}
		p += 1 + int(body[p]) // session id
		p += 2 + 1            // cipher suite, compression
		if len(body) < p+2 {
			return "", false
		}
		ext := body[p+2:]
		if el := int(binary.BigEndian.Uint16(body[p:])); el != len(ext) {
			return "", false
		}
		for len(ext) >= 4 {
			et, l := binary.BigEndian.Uint16(ext), int(binary.BigEndian.Uint16(ext[2:]))
			if len(ext) < 4+l {
				return "", false
			}
			if et == extConnectionID {
				v := ext[4 : 4+l]
				if len(v) < 1 || int(v[0]) != len(v)-1 || v[0] == 0 {
					return "", false
				}
				return string(v[1:]), true
			}
			ext = ext[4+l:]
		}
		return "", false
	}
	return "", false
}

// muxConn is one session's view of the socket: a net.PacketConn whose
// reads are the datagrams routed to it and whose writes go out on the
// listener's socket.
type muxConn struct {
	m *udpMux

	// Guarded by m.mu.
	addr  netip.AddrPort
	cid   string
	owner any  // the DTLS connection on it (bind)
	live  bool // on the routing tables

	mu       sync.Mutex
	queue    []datagram
	closed   bool
	notify   chan struct{} // a datagram queued
	closedCh chan struct{}
	rdl      deadline

	writeMu sync.Mutex
	frozen  bool // nothing more is sent (parking: the state is taken)
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

// errFrozen refuses a parked session's writes.
var errFrozen = errors.New("collector: session parked")

func (c *muxConn) deliver(d []byte, from netip.AddrPort) {
	c.mu.Lock()
	if c.closed || len(c.queue) >= muxQueue {
		c.mu.Unlock()
		c.m.mu.Lock()
		c.m.dropped++
		c.m.mu.Unlock()
		return
	}
	c.queue = append(c.queue, datagram{b: append([]byte(nil), d...), from: from})
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *muxConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			d := c.queue[0]
			c.queue[0] = datagram{}
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil // let the backing array go while idle
			}
			c.mu.Unlock()
			if len(b) < len(d.b) {
				return 0, nil, errors.New("collector: datagram larger than the read buffer")
			}
			return copy(b, d.b), net.UDPAddrFromAddrPort(d.from), nil
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return 0, nil, net.ErrClosed
		}
		select {
		case <-c.notify:
		case <-c.closedCh:
		case <-c.rdl.wait():
			return 0, nil, os.ErrDeadlineExceeded
		}
	}
}

func (c *muxConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("collector: not a UDP address")
	}
	to := ua.AddrPort()
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.frozen {
		return 0, errFrozen
	}
	c.m.mu.Lock()
	cur, cid := c.addr, c.cid
	c.m.mu.Unlock()
	if cid == "" && c.m.cidLen > 0 {
		if got, ok := serverHelloCID(b); ok && len(got) == c.m.cidLen {
			c.m.learnCID(c, got)
		}
	}
	if to != cur {
		c.m.moved(c, to)
	}
	return c.m.pc.WriteToUDPAddrPort(b, to)
}

// freeze stops every later write; a write under way has ended when it
// returns.
func (c *muxConn) freeze() {
	c.writeMu.Lock()
	c.frozen = true
	c.writeMu.Unlock()
}

// unfreeze undoes freeze when the state taken is dropped unused.
func (c *muxConn) unfreeze() {
	c.writeMu.Lock()
	c.frozen = false
	c.writeMu.Unlock()
}

func (c *muxConn) Close() error {
	c.m.mu.Lock()
	c.m.forgetLocked(c)
	c.m.mu.Unlock()
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.queue = nil
		close(c.closedCh)
	}
	c.mu.Unlock()
	return nil
}

func (c *muxConn) LocalAddr() net.Addr { return c.m.pc.LocalAddr() }

func (c *muxConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *muxConn) SetReadDeadline(t time.Time) error { c.rdl.set(t); return nil }

// SetWriteDeadline: a write to the UDP socket does not wait.
func (c *muxConn) SetWriteDeadline(time.Time) error { return nil }

// deadline is a read deadline: wait's channel is closed once it passes.
type deadline struct {
	mu    sync.Mutex
	ch    chan struct{}
	timer *time.Timer
	gen   uint64
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	select {
	case <-d.ch: // passed: a new one
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			close(d.ch)
			d.timer = nil
		}
	})
}

package collector

import (
	"context"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Bounds on DTLS handshakes not yet complete. A ClientHello costs the
// sender one datagram and the collector a connection with its buffers
// (pion allocates it before any cookie exchange), so a flood of
// half-open handshakes is cheap to send and, unbounded, took the
// collector from 13 MB to 852 MB. The gate below bounds them.
const (
	// MaxPendingHandshakes bounds half-open handshakes in total, per
	// listener. When full, the oldest is dropped for the newest: a flood
	// then churns through the slots while a real device, whose handshake
	// takes a few round trips, still completes.
	MaxPendingHandshakes = 512
	// MaxPendingPerSource bounds them per source address (per /64 for
	// IPv6): one host cannot take the slots of all the others.
	MaxPendingPerSource = 16
	// HandshakeTimeout ends a handshake that has not completed. A device
	// on a slow radio link completes in a few seconds.
	HandshakeTimeout = 10 * time.Second
)

// gatedListener runs the DTLS handshakes of a listener itself, at most
// MaxPendingHandshakes at once (MaxPendingPerSource per source) and each
// within HandshakeTimeout, and hands only completed sessions to the CoAP
// server (whose own HandshakeContext then returns at once).
type gatedListener struct {
	inner   *udpMux
	cfg     *piondtls.Config
	resumed func(dc *piondtls.Conn, device string) // a parked session restored (parking.go)
	ready   chan net.Conn
	log     func(cause, format string, a ...any)
	timeout time.Duration

	mu       sync.Mutex
	pending  map[*pendingConn]struct{}
	bySource map[netip.Prefix]int
	peak     int // most pending since the last memory release

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type pendingConn struct {
	c      net.Conn
	src    netip.Prefix
	start  time.Time
	cancel context.CancelFunc
}

func newGatedListener(inner *udpMux, cfg *piondtls.Config, log func(cause, format string, a ...any)) *gatedListener {
	g := &gatedListener{inner: inner, cfg: cfg, ready: make(chan net.Conn), log: log, timeout: HandshakeTimeout,
		pending: map[*pendingConn]struct{}{}, bySource: map[netip.Prefix]int{}, done: make(chan struct{})}
	inner.wake = g.resume
	g.wg.Add(1)
	go g.acceptLoop()
	return g
}

func sourceOf(a net.Addr) netip.Prefix {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip, _ := netip.AddrFromSlice(ua.IP)
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

func (g *gatedListener) acceptLoop() {
	defer g.wg.Done()
	for {
		mc, err := g.inner.Accept()
		if err != nil {
			return // closed
		}
		dc, err := piondtls.Server(mc, mc.remote(), g.cfg)
		if err != nil {
			_ = mc.Close()
			g.log("accept", "device listener: accept: %v", err)
			continue
		}
		g.inner.bind(dc, mc)
		g.admit(dc)
	}
}

// admit starts the handshake of c, making room first: the oldest pending
// handshake of the same source when it has its share, else the oldest of
// all when the gate is full.
func (g *gatedListener) admit(dc *piondtls.Conn) {
	c := net.Conn(dc)
	p := &pendingConn{c: c, src: sourceOf(c.RemoteAddr()), start: time.Now()}
	var evict []*pendingConn
	g.mu.Lock()
	if g.bySource[p.src] >= MaxPendingPerSource {
		if old := g.oldestLocked(p.src, true); old != nil {
			evict = append(evict, old)
			g.removeLocked(old)
		}
	}
	if len(g.pending) >= MaxPendingHandshakes {
		if old := g.oldestLocked(netip.Prefix{}, false); old != nil {
			evict = append(evict, old)
			g.removeLocked(old)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	p.cancel = cancel
	g.pending[p] = struct{}{}
	g.bySource[p.src]++
	g.peak = max(g.peak, len(g.pending))
	g.mu.Unlock()
	for _, old := range evict {
		old.cancel()
		g.log("handshake-evicted", "device listener: pending handshakes at their bound (%d in total, %d per source): the oldest are dropped", MaxPendingHandshakes, MaxPendingPerSource)
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := dc.HandshakeContext(ctx)
		cancel()
		g.mu.Lock()
		_, still := g.pending[p]
		if still {
			g.removeLocked(p)
		}
		idle := len(g.pending) == 0 && g.peak > MaxPendingHandshakes/4
		if idle {
			g.peak = 0
		}
		g.mu.Unlock()
		if idle {
			// A flood has passed: give its memory back to the system now
			// rather than when the scavenger gets to it.
			debug.FreeOSMemory()
		}
		if err != nil || !still {
			_ = c.Close()
			if err != nil {
				g.log("handshake-failed", "device listener: handshake not completed: %v", err)
			}
			return
		}
		select {
		case g.ready <- c:
		case <-g.done:
			_ = c.Close()
		}
	}()
}

// oldestLocked returns the oldest pending handshake (of src when
// bySrc).
func (g *gatedListener) oldestLocked(src netip.Prefix, bySrc bool) *pendingConn {
	var old *pendingConn
	for p := range g.pending {
		if bySrc && p.src != src {
			continue
		}
		if old == nil || p.start.Before(old.start) {
			old = p
		}
	}
	return old
}

func (g *gatedListener) removeLocked(p *pendingConn) {
	delete(g.pending, p)
	if g.bySource[p.src]--; g.bySource[p.src] <= 0 {
		delete(g.bySource, p.src)
	}
}

// Pending is the number of handshakes in progress.
func (g *gatedListener) Pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}

// AcceptWithContext returns the next session whose handshake completed.
func (g *gatedListener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	select {
	case c := <-g.ready:
		return newSessionConn(c.(*piondtls.Conn)), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.done:
		return nil, coapnet.ErrListenerIsClosed
	}
}

// Close stops accepting and ends every pending handshake.
func (g *gatedListener) Close() error {
	var err error
	g.closeOnce.Do(func() {
		close(g.done)
		err = g.inner.Close()
		g.mu.Lock()
		for p := range g.pending {
			p.cancel()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return err
}

func (g *gatedListener) Addr() net.Addr { return g.inner.Addr() }

// sessionConn is a DTLS session as the CoAP server takes it, with an
// address of its own. go-coap's server (v3.6 to v3.8, pkg/connections)
// keeps its sessions in a map keyed by RemoteAddr().String() and runs
// their inactivity checks and retransmissions off that map. Keyed by the
// peer's address, a session that ends deletes the entry of whichever
// session has that address by then: a restored parked session, or a
// device's new session from the same NAT mapping, is left out of the
// map and never checked again (never parked, never closed when idle,
// its confirmable requests never retransmitted). And a session whose
// peer moved (NAT rebinding, routed by Connection ID) is deleted under
// its new address, so its entry stays in the map for good.
type sessionConn struct {
	*piondtls.Conn
	addr sessionAddr
}

// sessionAddr is a session's address for go-coap: where the peer was
// when the session began, with a number no other session of this
// process has. It does not change when the peer moves.
type sessionAddr struct {
	net.Addr
	n uint64
}

func (a sessionAddr) String() string { return a.Addr.String() + "#" + strconv.FormatUint(a.n, 10) }

var sessionNumbers atomic.Uint64

func newSessionConn(dc *piondtls.Conn) *sessionConn {
	return &sessionConn{Conn: dc, addr: sessionAddr{Addr: dc.RemoteAddr(), n: sessionNumbers.Add(1)}}
}

func (c *sessionConn) RemoteAddr() net.Addr { return c.addr }

// dtlsOf is the DTLS connection under a CoAP session of this server.
func dtlsOf(cc *udpClient.Conn) (*piondtls.Conn, bool) {
	sc, ok := cc.NetConn().(*sessionConn)
	if !ok {
		return nil, false
	}
	return sc.Conn, true
}

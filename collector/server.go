package collector

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/logging"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/clock"
	"github.com/mtcagent/mtcagent/internal/coapx"
	"github.com/mtcagent/mtcagent/wire"
)

// Options are a Server's surroundings.
type Options struct {
	// StateDir holds the pulled measurement logs, the collector's key, and
	// (with the default store) the embedded store and its logs.
	StateDir string
	// Store is the durable state (see OpenStore); the Server takes it
	// over and closes it. nil: the embedded store in StateDir.
	Store Store
	Log   io.Writer // the human-readable timeline (alarms too); nil: discard
	// LogJSON writes the timeline as JSON lines ({"time", "level",
	// "msg"}) for log shippers instead of text.
	LogJSON bool
	// Clock is the collector's time: freshness of tokens, deadlines,
	// alarms, tidying (clock.System when nil).
	Clock clock.Clock
	// CIDPrefix (up to MaxCIDPrefix bytes) begins every DTLS Connection
	// ID this instance gives a device session, so a UDP load balancer in
	// front of several instances can send a session's records to the
	// instance that holds it by their first bytes, whatever address the
	// carrier NAT gives the device. nil: random CIDs only.
	CIDPrefix []byte
}

// MaxCIDPrefix bounds Options.CIDPrefix.
const MaxCIDPrefix = 4

// Server is the collector: DTLS listeners for devices and SCSs, the device
// registry, verification, alarms and durable state.
type Server struct {
	cfg      *Config
	st       Store
	stateDir string
	logw     io.Writer
	logMu    sync.Mutex
	logJSON  bool
	limited  map[string]*limitedLine // by cause, under logMu
	metrics  *metrics
	now      func() time.Time
	started  time.Time
	cid      func() []byte // the device sessions' Connection IDs

	mu          sync.Mutex // guards sessions, sessionIDs, sessionDevs, mdtBusy, observers, servers, gates, queue, challenging, gaps, handling, parkedCC, resumedDC
	sessions    map[string]*udpClient.Conn
	sessionDevs map[*udpClient.Conn]*Device       // the registry record of each live device session (sessionDeviceOf)
	queue       requestQueue                      // queue mode: requests for devices not reachable now
	mdtBusy     map[string]*udpClient.Conn        // devices whose MDT log is being pulled
	mdtFileMu   sync.Mutex                        // orders stores into and tidying of the MDT files
	observers   map[string]map[*observer]struct{} // of events, by device
	statusObs   map[string]map[*observer]struct{} // of status, by device
	observedMu  sync.Mutex                        // orders the database's records of observers (observedHere)
	challenging map[string]int                    // attestation challenges on their way, by device
	handling    map[*udpClient.Conn]int           // device requests being handled, by session (parking.go)
	sessionIDs  map[*udpClient.Conn]string        // the device of each live session
	parkedCC    map[*udpClient.Conn]bool          // sessions closed by parking
	resumedDC   map[*piondtls.Conn]string         // restored sessions not yet up, and their device
	parkWave    parkWave                          // parks since memory was last given back
	gaps        map[string][]pendingGap           // sequence gaps held until they are in, by device
	servers     []*dtlsserver.Server
	gates       []*gatedListener
	closers     []func()     // run by Close (the admin socket)
	cluster     *pgCluster   // with PostgreSQL: this instance among those sharing the database
	handlers    *handlerPool // runs the listeners' handlers
	done        chan struct{}
	closeOnce   sync.Once
	wg          sync.WaitGroup

	// sessionObservers counts each SCS session's observers (both classes).
	sessionObservers map[*udpClient.Conn]int
}

// New opens the store (the embedded one in the state directory unless
// opt.Store is set), imports a state.json an older collector left there,
// and returns a Server with no listeners.
func New(cfg *Config, opt Options) (*Server, error) {
	st := opt.Store
	if st == nil {
		var err error
		if st, err = OpenStore(context.Background(), "", opt.StateDir); err != nil {
			return nil, err
		}
	}
	imported := 0
	if opt.StateDir != "" {
		var err error
		if imported, err = importStateJSON(context.Background(), st, opt.StateDir); err != nil {
			st.Close()
			return nil, err
		}
	}
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	clk := clock.Or(opt.Clock)
	s := &Server{cfg: cfg, st: st, stateDir: opt.StateDir, logw: opt.Log, logJSON: opt.LogJSON, now: func() time.Time { return clock.Mono(clk) }, limited: map[string]*limitedLine{}, metrics: newMetrics(),
		sessions: map[string]*udpClient.Conn{}, sessionDevs: map[*udpClient.Conn]*Device{}, mdtBusy: map[string]*udpClient.Conn{},
		observers: map[string]map[*observer]struct{}{}, statusObs: map[string]map[*observer]struct{}{}, sessionObservers: map[*udpClient.Conn]int{},
		challenging: map[string]int{}, handling: map[*udpClient.Conn]int{}, sessionIDs: map[*udpClient.Conn]string{}, parkedCC: map[*udpClient.Conn]bool{}, resumedDC: map[*piondtls.Conn]string{}, gaps: map[string][]pendingGap{}, done: make(chan struct{})}
	s.started = s.now()
	s.handlers = newHandlerPool(s.done)
	if len(opt.CIDPrefix) > MaxCIDPrefix {
		st.Close()
		return nil, fmt.Errorf("collector: connection ID prefix of %d bytes: at most %d", len(opt.CIDPrefix), MaxCIDPrefix)
	}
	s.cid = cidGenerator(opt.CIDPrefix)
	if err := s.importConfig(); err != nil {
		st.Close()
		return nil, err
	}
	if ps, ok := st.(*pgStore); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := joinCluster(ctx, ps.pool, cfg.InstanceLease, s.performRelayed, s.logf, s.background, s.heldSessions, s.handOver, s.remoteNotify)
		cancel()
		if err != nil {
			st.Close()
			return nil, err
		}
		s.cluster = c
		s.logf("instance %s on the shared database (lease %s)", c.id, c.lease)
	}
	if imported > 0 {
		s.logf("imported the state of %d device(s) from %s (now %s.imported)", imported, StateFile, StateFile)
	}
	// Before any pull appends to them: a power cut may have left a file
	// ending in part of a record.
	s.tidyAllMDT()
	return s, nil
}

func (s *Server) logf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if !s.logJSON {
		fmt.Fprintf(s.logw, "%s %s\n", s.now().UTC().Format("15:04:05.000"), msg)
		return
	}
	level := "info"
	switch {
	case strings.HasPrefix(msg, "ALARM "):
		level, msg = "alarm", strings.TrimPrefix(msg, "ALARM ")
	case strings.HasPrefix(msg, "ERROR "):
		level, msg = "error", strings.TrimPrefix(msg, "ERROR ")
	}
	b, _ := json.Marshal(struct {
		Time  string `json:"time"`
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}{s.now().UTC().Format(time.RFC3339Nano), level, msg})
	s.logw.Write(append(b, '\n'))
}

// logEvery is how often a line of one cause is logged at most.
const logEvery = 10 * time.Second

type limitedLine struct {
	last       time.Time
	suppressed int
}

// logLimited logs a line of a cause that an unauthenticated peer can
// repeat at will (failed handshakes, unknown identities, garbage): at
// most one per cause every logEvery, the next one saying how many were
// left out.
func (s *Server) logLimited(cause, format string, a ...any) {
	now := time.Now()
	s.logMu.Lock()
	l := s.limited[cause]
	if l == nil {
		l = &limitedLine{}
		s.limited[cause] = l
	}
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		s.logMu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	s.logMu.Unlock()
	if n > 0 {
		format += fmt.Sprintf(" (and %d more like it in the last %s)", n, logEvery)
	}
	s.logf(format, a...)
}

// storeError counts a failed store operation and logs it, at most one
// line per operation every logEvery: while a store is down or its disk
// full, every message and request fails the same way, and a line for
// each (thousands a second on a fleet) would bury the first.
func (s *Server) storeError(op, format string, a ...any) {
	s.metrics.inc(s.metrics.storeErr, op)
	s.logLimited("store-"+op, "ERROR "+format, a...)
}

var errUnknownIdentity = errors.New("unknown PSK identity")

// pionLogs gives every DTLS connection one shared logger. Without a
// factory, pion makes a factory and a logger (five log.Loggers) for each
// connection, about 0.5 KiB that an idle session keeps for its life
// (fleetbench's heap profiles). The logger is pion's default one, made
// once: the same level (PION_LOG_* at start) and output.
type pionLogs struct{ l logging.LeveledLogger }

func (p *pionLogs) NewLogger(string) logging.LeveledLogger { return p.l }

var sharedPionLogs = &pionLogs{l: logging.NewDefaultLoggerFactory().NewLogger("dtls")}

// DeviceCIDBytes is the length of the DTLS Connection ID (RFC 9146) the
// collector gives each device session. Records from the device carry it,
// so a session survives the carrier NAT moving the device to another
// address or port (the collector answers at the newest one) instead of
// costing a new handshake; a UDP load balancer can route by it too. Six
// random bytes cost 7 bytes more per device record; two of 100,000
// concurrent sessions share a CID with a chance of about 1 in 56,000 (a
// collision misroutes records, which then fail authentication: that
// session times out and shakes hands again).
const DeviceCIDBytes = 6

// cidGenerator gives Connection IDs of the prefix and DeviceCIDBytes
// random bytes (pion takes the length of the first as every one's).
func cidGenerator(prefix []byte) func() []byte {
	if len(prefix) == 0 {
		return piondtls.RandomCIDGenerator(DeviceCIDBytes)
	}
	p := slices.Clone(prefix)
	return func() []byte {
		b := make([]byte, len(p)+DeviceCIDBytes)
		copy(b, p)
		rand.Read(b[len(p):])
		return b
	}
}

// ListenDevices starts the device listener in PSK mode on addr
// ("127.0.0.1:5684"; port 0 picks one) and returns its address.
func (s *Server) ListenDevices(addr string) (net.Addr, error) {
	dc := &piondtls.Config{
		ExtendedMasterSecret:  piondtls.RequireExtendedMasterSecret,
		CipherSuites:          []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256},
		PSKIdentityHint:       []byte("mtccollector"),
		ConnectionIDGenerator: s.cid,
		LoggerFactory:         sharedPionLogs,
		PSK: func(id []byte) ([]byte, error) {
			if d := s.deviceByPSK(string(id)); d != nil {
				return d.PSK, nil
			}
			s.logLimited("unknown-psk", "refused a device handshake: unknown PSK identity")
			return nil, errUnknownIdentity
		},
	}
	return s.listen(addr, dc, s.serveDevice, true)
}

// ListenDevicesCert starts a device listener in certificate mode: the
// collector presents cert; a device is recognised by the SHA-256 of its
// certificate's public key (key_pin, or its attestation key).
func (s *Server) ListenDevicesCert(addr string, cert tls.Certificate) (net.Addr, error) {
	dc := &piondtls.Config{
		ExtendedMasterSecret:  piondtls.RequireExtendedMasterSecret,
		CipherSuites:          []piondtls.CipherSuiteID{piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		Certificates:          []tls.Certificate{cert},
		ClientAuth:            piondtls.RequireAnyClientCert,
		ConnectionIDGenerator: s.cid,
		LoggerFactory:         sharedPionLogs,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no client certificate")
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			if s.deviceByPin(coapx.Pin(c)) == nil {
				s.logf("refused a device handshake: unknown device key")
				return errors.New("unknown device key")
			}
			return nil
		},
	}
	return s.listen(addr, dc, s.serveDevice, true)
}

// ListenSCS starts the SCS listener (PSK) on addr.
func (s *Server) ListenSCS(addr string) (net.Addr, error) {
	dc := &piondtls.Config{
		ExtendedMasterSecret: piondtls.RequestExtendedMasterSecret,
		CipherSuites:         []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256},
		PSKIdentityHint:      []byte("mtccollector"),
		LoggerFactory:        sharedPionLogs,
		PSK: func(id []byte) ([]byte, error) {
			if x := s.scsByPSK(string(id)); x != nil {
				return x.PSK, nil
			}
			s.logLimited("unknown-scs-psk", "refused an SCS handshake: unknown PSK identity")
			return nil, errUnknownIdentity
		},
	}
	return s.listen(addr, dc, s.serveSCS, false)
}

// scsSessionIdle: an SCS session with no inbound traffic is dropped after
// this (SCSs are servers: no NAT, no radio; they reconnect cheaply).
const scsSessionIdle = 60 * time.Second

func (s *Server) listen(addr string, dc *piondtls.Config, h udpClient.HandlerFunc, device bool) (net.Addr, error) {
	cidLen := 0
	if dc.ConnectionIDGenerator != nil {
		cidLen = len(dc.ConnectionIDGenerator())
	}
	mux, err := newUDPMux("udp", addr, cidLen)
	if err != nil {
		return nil, fmt.Errorf("collector: listen %s: %w", addr, err)
	}
	opts := []dtlsserver.Option{
		options.WithHandlerFunc(h),
		options.WithErrors(func(err error) { s.logLimited("coap", "%v", err) }),
		options.WithProcessReceivedMessageFunc(s.handlers.process),
	}
	if !device {
		// SCS side: one-block responses only, since go-coap's server-side
		// Observe breaks with multi-block notifications. (The device side
		// keeps block-wise transfer for large answers such as an MDT upload.)
		opts = append(opts, options.WithBlockwise(false, 0, 0),
			options.WithInactivityMonitor(scsSessionIdle, func(cc *udpClient.Conn) { _ = cc.Close() }))
	}
	if device {
		opts = append(opts, deviceMonitor{s}, options.WithOnNewConn(func(cc *udpClient.Conn) {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.deviceSession(cc) }()
		}))
	}
	srv := coapdtls.NewServer(opts...)
	gl := newGatedListener(mux, dc, s.logLimited)
	if device {
		gl.resumed = func(dc *piondtls.Conn, id string) {
			s.mu.Lock()
			s.resumedDC[dc] = id
			s.mu.Unlock()
			s.metrics.count(&s.metrics.resumes)
		}
	}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.gates = append(s.gates, gl)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = srv.Serve(gl) }()
	return mux.Addr(), nil
}

// deviceMonitor gives each device session a sessionMonitor (parking.go),
// deferred by go-coap while a confirmable request of the collector's is
// unanswered.
type deviceMonitor struct{ s *Server }

func (o deviceMonitor) DTLSServerApply(cfg *dtlsserver.Config) {
	cfg.CreateInactivityMonitor = func() udpClient.InactivityMonitor {
		m := &sessionMonitor{s: o.s}
		m.Notify()
		return deferredMonitor{m, udpClient.DeferInactivityWhileConfirmableMessagesPending(m)}
	}
}

// deferredMonitor is a sessionMonitor whose checks go through go-coap's
// deferral, and which still tells its LastActivity (lastActivity).
type deferredMonitor struct {
	*sessionMonitor
	deferred udpClient.InactivityMonitor
}

func (d deferredMonitor) CheckInactivity(now time.Time, cc *udpClient.Conn) {
	d.deferred.CheckInactivity(now, cc)
}

// Run checks heartbeats until ctx ends, then closes the server.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	tidied := s.now()                 // New did the first
	tidying := make(chan struct{}, 1) // full while a tidying runs
	var pruned time.Time              // history retention: the first pass at once
	pruning := make(chan struct{}, 1) // full while a pruning pass runs
	for {
		select {
		case <-ctx.Done():
			s.Close()
			return nil
		case <-t.C:
			s.checkOverdue()
			s.expireParked()
			s.releaseAfterParking()
			if now := s.now(); now.Sub(tidied) >= mdtTidyEvery || now.Before(tidied) {
				select {
				case tidying <- struct{}{}:
					tidied = now
					// Off this loop: reading every device's file must not
					// hold up the overdue checks.
					if !s.background(func() { s.tidyAllMDT(); <-tidying }) {
						<-tidying
					}
				default: // the last one is still at work
				}
			}
			if now := s.now(); now.Sub(pruned) >= historyPruneEvery || now.Before(pruned) {
				select {
				case pruning <- struct{}{}:
					pruned = now
					if !s.background(func() { s.pruneHistory(now); <-pruning }) {
						<-pruning
					}
				default:
				}
			}
		}
	}
}

// expireParked forgets the sessions parked for longer than session_idle,
// as a live session idle that long is closed.
func (s *Server) expireParked() {
	s.mu.Lock()
	gates := slices.Clone(s.gates)
	s.mu.Unlock()
	before := s.now().Add(-s.cfg.SessionIdle)
	for _, g := range gates {
		g.inner.expireParked(before)
	}
}

// background runs fn in a goroutine that Close waits for, unless Close
// has begun (then it reports false and runs nothing).
func (s *Server) background(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); fn() }()
	return true
}

// Close stops the listeners and waits for their goroutines.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		srvs, gates, closers := s.servers, s.gates, s.closers
		for _, cc := range s.sessions {
			_ = cc.Close()
		}
		s.mu.Unlock()
		for _, srv := range srvs {
			srv.Stop()
		}
		for _, g := range gates {
			_ = g.Close()
		}
		for _, c := range closers {
			c()
		}
		s.wg.Wait()
		if s.cluster != nil {
			s.cluster.Close()
		}
		if err := s.st.Close(); err != nil {
			s.logf("ERROR closing the store: %v", err)
		}
	})
}

// peer completes the handshake if needed and returns the DTLS state.
func peer(ctx context.Context, cc *udpClient.Conn) (piondtls.State, bool) {
	dc, ok := dtlsOf(cc)
	if !ok {
		return piondtls.State{}, false
	}
	if err := dc.HandshakeContext(ctx); err != nil {
		return piondtls.State{}, false
	}
	return dc.ConnectionState()
}

// deviceOf maps an authenticated session to a registered device. The
// record is looked up once for the session and kept for its next
// messages while the registry does not change (sessionDeviceOf).
func (s *Server) deviceOf(ctx context.Context, cc *udpClient.Conn) *Device {
	return s.sessionDeviceOf(cc, func() *Device {
		st, ok := peer(ctx, cc)
		if !ok {
			return nil
		}
		if len(st.PeerCertificates) > 0 {
			c, err := x509.ParseCertificate(st.PeerCertificates[0])
			if err != nil {
				return nil
			}
			return s.deviceByPin(coapx.Pin(c))
		}
		return s.deviceByPSK(string(st.IdentityHint))
	})
}

// deviceSession runs for each new device session: it registers the
// session and challenges the device for a fresh binding attestation.
func (s *Server) deviceSession(cc *udpClient.Conn) {
	// Not derived from cc.Context(): a child would leave the session's
	// context a map of children for its life (0.25 KiB per idle session).
	// A request on a closed session fails at once anyway.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d := s.deviceOf(ctx, cc)
	dc, _ := dtlsOf(cc)
	s.mu.Lock()
	parkedID, resumed := s.resumedDC[dc]
	delete(s.resumedDC, dc)
	s.mu.Unlock()
	if d == nil || resumed && parkedID != d.ID {
		_ = cc.Close()
		return
	}
	id := d.ID // the close hook keeps only the id, not the registry record
	s.mu.Lock()
	if old := s.sessions[id]; old != nil && old != cc {
		_ = old.Close()
	}
	s.sessions[id] = cc
	s.sessionIDs[cc] = id
	s.mu.Unlock()
	if s.cluster != nil {
		// Where SCS requests for the device are to go, from any instance.
		if err := s.cluster.SessionUp(ctx, d.ID); err != nil {
			s.storeError("cluster", "%v", err)
		}
	}
	cc.AddOnClose(func() {
		s.mu.Lock()
		last := s.sessions[id] == cc
		if last {
			delete(s.sessions, id)
		}
		delete(s.sessionDevs, cc)
		delete(s.handling, cc)
		delete(s.sessionIDs, cc)
		parked := s.parkedCC[cc]
		delete(s.parkedCC, cc)
		s.mu.Unlock()
		if last && s.cluster != nil {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			_ = s.cluster.SessionDown(ctx, id) // a closing pool: the instance's row goes with Close
			cancel()
		}
		if parked {
			s.logf("device %s: session parked", id)
		} else {
			s.logf("device %s: session closed", id)
		}
	})
	if resumed {
		// The same session as before it was parked: no new challenge, and
		// what is queued goes once the record that woke it is read (as
		// after any message).
		s.logf("device %s: session resumed", d.ID)
		return
	}
	s.logf("device %s: session up (%s)", d.ID, dc.RemoteAddr())
	s.challenge(ctx, d, cc)
	s.deliverQueued(d, cc)
	s.maybePullMDT(d, cc, true)
}

// challenge asks the device for a binding attestation with a fresh nonce
// and verifies it.
func (s *Server) challenge(ctx context.Context, d *Device, cc *udpClient.Conn) {
	s.mu.Lock()
	s.challenging[d.ID]++
	s.mu.Unlock()
	var (
		settled bool         // the challenge is off s.challenging
		raise   []pendingGap // held gaps it leaves missing numbers
	)
	defer func() {
		if !settled {
			raise = s.settle(d.ID, 0)
		}
		for _, g := range raise {
			s.gapAlarm(d.ID, g.missing, g.seq)
		}
	}()
	nonce := make([]byte, 16)
	rand.Read(nonce)
	// The token formats this collector reads (attest: both), so the
	// device may sign in the compact one from now on.
	// wire.AttestLater: it confirms non-confirmable posts later.
	ask := map[int]any{wire.AttestNonce: nonce, wire.AttestFormats: []byte{wire.FormatLabels, wire.FormatCompact}}
	if !s.cfg.NoConfirmLater {
		ask[wire.AttestLater] = []byte{1}
	}
	req, _ := cbor.Marshal(ask)
	resp, err := cc.Post(ctx, wire.PathAttest, message.AppCBOR, bytes.NewReader(req))
	if err != nil {
		s.logf("device %s: attestation request failed: %v", d.ID, err)
		s.unansweredChallenge(d.ID)
		return
	}
	if resp.Code() != codes.Content && resp.Code() != codes.Changed {
		s.logf("device %s: attestation request answered %v", d.ID, resp.Code())
		return
	}
	tok, err := resp.ReadBody()
	if err != nil {
		s.unansweredChallenge(d.ID)
		return
	}
	v := attest.Verifier{Key: d.PublicKey, Nonce: nonce, Kind: attest.KindBinding, MaxAge: s.cfg.MaxAge, Now: s.now}
	res, err := v.Verify(tok)
	if err != nil {
		s.alarm(d.ID, "verify-failed", "binding attestation refused: "+err.Error())
		return
	}
	changed := false
	if err := s.record(d.ID, func(ds *DeviceState, h *HistoryBatch) error {
		if res.Token.Seq > ds.LastSeq {
			ds.Consumed = append(ds.Consumed, res.Token.Seq)
		}
		ds.LastSeen = s.now()
		s.setDue(d, ds)
		changed = checkBinding(d, ds, res.Token)
		h.Add(HistoryBinding, res.Token.Seq, res.Token.IssuedAt, ds.LastSeen, bindingDetail(res.Token, changed, "nonce"))
		// Under the device's lock: a message accepted before this saw
		// the number missing and held its gap; one after sees it consumed.
		raise, settled = s.settle(d.ID, res.Token.Seq), true
		return nil
	}); err != nil {
		return
	}
	s.logf("device %s: binding attestation verified (nonce, seq %d)", d.ID, res.Token.Seq)
	if changed {
		s.bindingChanged(d.ID)
	}
}

// maxUnanswered bounds the numbers unanswered challenges may explain.
const maxUnanswered = 3

// unansweredChallenge records a challenge whose answer never came in: the
// request failed (the session closed, this collector stopped, the answer
// was lost on the way). The device may have signed the answer with its
// next number all the same, and nothing else will ever carry that number,
// so the first gap accepted after it has one number fewer missing per
// such challenge (at most maxUnanswered; kept in the device's state, so a
// restart of the collector between the two does not lose it). The gap's
// history entry says how many it explained. A challenge the device never
// received explains a number all the same: the price of not raising an
// alarm at every collector restart for a device caught mid-challenge.
func (s *Server) unansweredChallenge(id string) {
	_ = s.record(id, func(ds *DeviceState, _ *HistoryBatch) error {
		ds.Unanswered = min(ds.Unanswered+1, maxUnanswered)
		return nil
	})
}

// pendingGap is a sequence gap seen while a nonce attestation of the
// device was on its way: the device may have signed it with one of the
// missing numbers before the messages that came first (it answers the
// challenge while its outbox drains), so the gap is judged when the
// attestation is in.
type pendingGap struct {
	last, seq, missing uint64 // accepted last before, the token after, the numbers missing between
}

// holdGap keeps a gap for settle when an attestation of the device is
// on its way (on this instance), and reports whether it did; false:
// judge it now. Called under the device's lock in the store, as settle
// is, so the two see one order.
func (s *Server) holdGap(id string, g pendingGap) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.challenging[id] == 0 {
		return false
	}
	s.gaps[id] = append(s.gaps[id], g)
	return true
}

// settle ends an attestation challenge of the device (seq: the
// attestation's number, 0 if none came): a held gap that number falls in
// has one missing fewer; once no challenge is on its way, it returns the
// held gaps still missing numbers, to be raised.
func (s *Server) settle(id string, seq uint64) []pendingGap {
	s.mu.Lock()
	defer s.mu.Unlock()
	gs := s.gaps[id]
	for i := range gs {
		if seq > gs[i].last && seq < gs[i].seq && gs[i].missing > 0 {
			gs[i].missing--
		}
	}
	if s.challenging[id]--; s.challenging[id] > 0 {
		return nil
	}
	delete(s.challenging, id)
	delete(s.gaps, id)
	var raise []pendingGap
	for _, g := range gs {
		if g.missing > 0 {
			raise = append(raise, g)
		}
	}
	return raise
}

func (s *Server) gapAlarm(id string, missing, seq uint64) {
	s.alarm(id, "sequence-gap", fmt.Sprintf("%d message(s) missing before seq %d (suppressed events?)", missing, seq))
}

// checkBinding compares attested pseudonyms with the expected binding (from
// the config, or the first one seen), records them, and reports whether
// they changed.
func checkBinding(d *Device, ds *DeviceState, t *attest.Token) bool {
	if len(t.Pseudonyms.IMSI) == 0 {
		return false
	}
	var want *attest.Pseudonyms
	switch {
	case d.Binding != nil:
		want = d.Binding
	case ds.Binding != nil:
		want = &attest.Pseudonyms{IMSI: ds.Binding[0], ICCID: ds.Binding[1]}
	}
	changed := want != nil && !want.Equal(t.Pseudonyms)
	ds.Binding = &[2][]byte{t.Pseudonyms.IMSI, t.Pseudonyms.ICCID}
	return changed
}

// bindingDetail is a binding verification's history detail: the result
// and how the token came, never the pseudonyms.
func bindingDetail(t *attest.Token, changed bool, by string) map[string]any {
	result := "ok"
	if changed {
		result = "changed"
	}
	m := map[string]any{"result": result, "by": by, "clock_synced": t.ClockSynced}
	if t.BootCount > 0 {
		m["boot_count"] = t.BootCount
	}
	return m
}

func (s *Server) bindingChanged(id string) {
	s.alarm(id, "binding-changed", "the attested SIM is not the expected one (UICC–device association changed)")
}

// storeTimeout bounds one store operation.
const storeTimeout = 10 * time.Second

// update changes a device's state through the store (see
// Store.UpdateDevice), timing it; a store failure is logged and returned,
// an error of fn only returned.
func (s *Server) update(id string, fn func(*DeviceState) error) error {
	return s.record(id, func(ds *DeviceState, _ *HistoryBatch) error { return fn(ds) })
}

// record is update whose fn also adds to the device's history, in the
// same transaction (Store.RecordDevice).
func (s *Server) record(id string, fn func(*DeviceState, *HistoryBatch) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	var fnErr error
	start := time.Now()
	err := s.st.RecordDevice(ctx, id, func(ds *DeviceState, h *HistoryBatch) error {
		fnErr = fn(ds, h)
		return fnErr
	})
	s.metrics.saved(time.Since(start))
	if err != nil && (fnErr == nil || !errors.Is(err, fnErr)) {
		s.storeError("write", "storing the state of device %s: %v", id, err)
	}
	return err
}

// device reads a device's state; a store failure is logged and gives the
// zero state.
func (s *Server) device(id string) DeviceState {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ds, err := s.st.Device(ctx, id)
	if err != nil {
		s.storeError("read", "reading the state of device %s: %v", id, err)
	}
	return ds
}

func (s *Server) alarm(device, kind, detail string) {
	s.metrics.inc(s.metrics.alarms, kind)
	a := Alarm{Time: s.now().UTC(), Device: device, Kind: kind, Detail: detail}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.st.AppendAlarm(ctx, a); err != nil {
		s.storeError("alarm", "writing alarm log: %v", err)
	}
	s.logf("ALARM device %s %s: %s", device, kind, detail)
}

// serveDevice handles the device's posts: signed tokens.
func (s *Server) serveDevice(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
	cc := w.Conn()
	s.mu.Lock()
	s.handling[cc]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.handling[cc]--; s.handling[cc] <= 0 {
			delete(s.handling, cc)
		}
		s.mu.Unlock()
	}()
	if r.Code() != codes.POST {
		if r.Code() == codes.GET || r.Code() == codes.PUT || r.Code() == codes.DELETE {
			_ = w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	d := s.deviceOf(ctx, w.Conn())
	if d == nil {
		_ = w.SetResponse(codes.Unauthorized, message.TextPlain, nil)
		return
	}
	_, path := coapx.RequestLine(r)
	if path == wire.PathReport {
		d, code := s.judged(ctx, w.Conn(), d, func(d *Device) codes.Code { return s.acceptReport(d, r) })
		_ = w.SetResponse(code, message.TextPlain, nil)
		if d != nil {
			s.deliverQueued(d, w.Conn())
		}
		return
	}
	var kind attest.Kind
	switch path {
	case wire.PathEvent:
		kind = attest.KindEvent
	case wire.PathHeartbeat:
		kind = attest.KindHeartbeat
	case wire.PathBinding:
		kind = attest.KindBinding
	default:
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	body, err := r.ReadBody()
	if err != nil || len(body) > attest.MaxTokenSize {
		_ = w.SetResponse(codes.RequestEntityTooLarge, message.TextPlain, nil)
		return
	}
	if r.Type() == message.NonConfirmable {
		// Confirmed later (wire.AttestLater): no answer now. The device
		// asks in its next confirmable post whether this one arrived.
		// The message opens the delivery window as any other: the
		// device just sent, so its NAT mapping is open.
		if d, _ = s.judged(ctx, w.Conn(), d, func(d *Device) codes.Code { return s.acceptAsked(d, kind, body, true, 0) }); d != nil {
			s.deliverQueued(d, w.Conn())
		}
		return
	}
	back, err := confirmQuery(r)
	if err != nil {
		_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
		return
	}
	d, code := s.judged(ctx, w.Conn(), d, func(d *Device) codes.Code { return s.acceptAsked(d, kind, body, false, back) })
	_ = w.SetResponse(code, message.TextPlain, nil)
	if d == nil {
		return
	}
	if back > 0 && code == codes.Changed {
		// Everything up to the asked seq is here: say so (the CBOR
		// unsigned back, no Content-Format option: 2 bytes).
		w.Message().SetBody(bytes.NewReader(cborUint(back)))
	}
	// The window after the device's message: what was queued for it goes
	// now, while its NAT mapping is open.
	s.deliverQueued(d, w.Conn())
	if code == codes.Changed && kind == attest.KindHeartbeat {
		s.maybePullMDT(d, w.Conn(), false)
	}
}

// judged runs accept with the session's device record d and, when the
// registry changed since that record was read (codeRegistryChanged),
// once more with a fresh one. It returns the record the message was
// judged with (nil: the device is no longer registered, 4.01) and the
// answer.
func (s *Server) judged(ctx context.Context, cc *udpClient.Conn, d *Device, accept func(*Device) codes.Code) (*Device, codes.Code) {
	code := accept(d)
	if code != codeRegistryChanged {
		return d, code
	}
	s.forgetSessionDevice(cc)
	if d = s.deviceOf(ctx, cc); d == nil {
		return nil, codes.Unauthorized
	}
	if code = accept(d); code == codeRegistryChanged { // changed again at once: the device posts again
		return d, codes.ServiceUnavailable
	}
	return d, code
}

// maxReport bounds a scheduled status report (padded reports are a few
// hundred bytes).
const maxReport = 2048

// acceptReport keeps a device's scheduled status report as its last status
// (what an SCS granted status reads). The report is the device's masked
// view for this collector; it is checked to be one valid CBOR item, since
// it is kept as it came and re-encoded into every status answer.
func (s *Server) acceptReport(d *Device, r *pool.Message) codes.Code {
	body, err := r.ReadBody()
	if err != nil || len(body) > maxReport {
		return codes.RequestEntityTooLarge
	}
	if err := wire.CheckItem(body); err != nil {
		s.logf("device %s: scheduled report refused: not one valid CBOR item: %v", d.ID, err)
		return codes.BadRequest
	}
	if err := s.update(d.ID, func(ds *DeviceState) error {
		if registryStale(d, ds) {
			return errRegistryChanged
		}
		ds.Status, ds.StatusAt, ds.LastSeen = body, s.now(), s.now()
		s.setDue(d, ds)
		return nil
	}); errors.Is(err, errRegistryChanged) {
		return codeRegistryChanged
	} else if err != nil {
		return codes.InternalServerError
	}
	s.logf("device %s: scheduled status report (%d bytes)", d.ID, len(body))
	s.notifyStatus(d.ID)
	return codes.Changed
}

// confirmQuery reads the wire.QueryConfirm question of a post: how far
// back from the post's own seq the device's last non-confirmable message
// is (0: no question).
func confirmQuery(r *pool.Message) (uint64, error) {
	qs, _ := r.Options().Queries()
	var back uint64
	for _, q := range qs {
		v, ok := strings.CutPrefix(q, wire.QueryConfirm+"=")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("bad %s query %q", wire.QueryConfirm, q)
		}
		back = n
	}
	return back, nil
}

// cborUint encodes n as a CBOR unsigned integer.
func cborUint(n uint64) []byte {
	b, _ := cbor.Marshal(n)
	return b
}

// errNotConfirmed: the device asked about a non-confirmable message the
// collector does not have; its post is not taken either.
var errNotConfirmed = errors.New("asked-about message missing")

// accept verifies one token and applies it (acceptAsked of a confirmable
// post without a question).
func (s *Server) accept(d *Device, kind attest.Kind, tok []byte) codes.Code {
	if code := s.acceptAsked(d, kind, tok, false, 0); code != codeRegistryChanged {
		return code
	}
	return codes.ServiceUnavailable
}

// acceptAsked verifies one token and applies it: de-duplication, gap and
// binding alarms, heartbeat bookkeeping, observers, state. Verification
// against the last sequence number and the update that moves it are one
// store transaction, so two sessions of one device (here or on another
// instance) never both accept one number, nor lose an update.
//
// non: the token came non-confirmable; it is taken only when it follows
// on what the collector has (no sequence gap), since no answer tells the
// device otherwise: a gap (one of its earlier non-confirmable messages
// lost) is left for the confirmable resend, which is judged as today.
// back > 0: the device asks whether the collector has every message up
// to seq(tok)-back (its last non-confirmable one); when it does not, the
// token is not taken either (wire.CodeNotConfirmed), so that the resent
// messages come first and no gap is alarmed for them. A duplicate token
// had its question answered when it was first taken, so it answers yes.
func (s *Server) acceptAsked(d *Device, kind attest.Kind, tok []byte, non bool, back uint64) codes.Code {
	var (
		verr                error
		t                   *attest.Token
		now                 time.Time
		boot, missing, last uint64
		explained           uint64 // numbers missing that unanswered challenges explain
		wasOverdue, changed bool
		restart, held       bool
		sum                 *EventSummary
	)
	errRefused := errors.New("token refused")
	// The signature first, outside the transaction: it needs no state,
	// and the device's row is then locked only for the judgement.
	signed, serr := (&attest.Verifier{Key: d.PublicKey}).VerifySignature(tok)
	if serr != nil && d.kept {
		return codeRegistryChanged // perhaps signed with a key given since the session's record was read: judge again with a fresh one
	}
	var err error
	if serr != nil {
		verr = serr
	}
	take := func(ds *DeviceState, h *HistoryBatch) error {
		if registryStale(d, ds) {
			return errRegistryChanged
		}
		v := attest.Verifier{LastSeq: ds.LastSeq, Kind: kind, MaxAge: s.cfg.MaxAge, Now: s.now,
			SkipFreshness: ds.LastSeq == 0}
		res, err := v.Judge(signed)
		if errors.Is(err, attest.ErrReplay) {
			verr = err
			ds.Duplicates++
			return nil
		}
		if err != nil {
			verr = err
			return errRefused
		}
		t = res.Token
		now = s.now()
		last = ds.LastSeq
		if back > 0 && (back >= t.Seq || t.Seq-back > last) {
			return errNotConfirmed
		}
		boot, missing = ds.BootCount, 0
		if last > 0 && t.Seq > last+1 {
			missing = t.Seq - last - 1
			var keep []uint64
			for _, c := range ds.Consumed {
				if c > last && c < t.Seq {
					missing--
				} else if c > t.Seq {
					keep = append(keep, c)
				}
			}
			ds.Consumed = keep
		}
		// The first gap after unanswered challenges: their numbers.
		explained = 0
		if missing > 0 && ds.Unanswered > 0 {
			explained = min(missing, ds.Unanswered)
			missing -= explained
			ds.Unanswered = 0
		}
		if non && (missing > 0 || last == 0) {
			// Not taken without an answer: a gap (the lost message
			// comes again, confirmable), or the first message ever,
			// after which nothing could tell a lost predecessor.
			return errNotConfirmed
		}
		restart = missing > 0 && t.BootCount > boot && missing < attest.DefaultSeqBlock
		held = missing > 0 && !restart && s.holdGap(d.ID, pendingGap{last: last, seq: t.Seq, missing: missing})
		ds.LastSeq = t.Seq
		ds.Consumed = slices.DeleteFunc(ds.Consumed, func(c uint64) bool { return c <= t.Seq })
		if t.BootCount > 0 {
			ds.BootCount = t.BootCount
		}
		quietSince := ds.LastHeartbeat // what the overdue check measured from
		if quietSince.IsZero() {
			quietSince = ds.LastSeen
		}
		ds.LastSeen = now
		ds.Accepted++
		if kind == attest.KindHeartbeat {
			ds.LastHeartbeat = now
		}
		wasOverdue = ds.Overdue
		ds.Overdue = false
		s.setDue(d, ds)
		sum = &EventSummary{Device: d.ID, Seq: t.Seq, Kind: kind.String(), Event: t.Event, At: now.UTC(), AtUnix: now.Unix()}
		if kind == attest.KindEvent {
			ds.LastEvent = sum
		}
		if kind == attest.KindBinding {
			changed = checkBinding(d, ds, t)
		}
		// The history, in this transaction: acknowledged means recorded.
		if missing > 0 || explained > 0 {
			g := map[string]any{"type": "seq", "after_seq": last, "before_seq": t.Seq,
				"missing": missing, "restart": t.BootCount > boot && missing < attest.DefaultSeqBlock}
			if explained > 0 {
				g["unanswered_challenges"] = explained
			}
			h.Add(HistoryGap, 0, time.Time{}, now, g)
		}
		if wasOverdue {
			h.Add(HistoryGap, 0, time.Time{}, now, map[string]any{"type": "overdue", "from": quietSince.Unix(), "until": now.Unix()})
		}
		switch kind {
		case attest.KindEvent:
			detail := map[string]any{"event": t.Event, "clock_synced": t.ClockSynced}
			if t.BootCount > 0 {
				detail["boot_count"] = t.BootCount
			}
			h.Add(HistoryEvent, t.Seq, t.IssuedAt, now, detail)
		case attest.KindHeartbeat:
			h.Heartbeat(t.Seq, now)
		case attest.KindBinding:
			h.Add(HistoryBinding, t.Seq, t.IssuedAt, now, bindingDetail(t, changed, "post"))
		}
		return nil
	}
	if serr == nil {
		err = s.record(d.ID, take)
	}
	switch {
	case errors.Is(err, errRegistryChanged):
		return codeRegistryChanged
	case errors.Is(verr, attest.ErrReplay) && err == nil:
		s.metrics.mu.Lock()
		s.metrics.dups++
		s.metrics.mu.Unlock()
		return codes.Changed // already have it: the device may drop it from its outbox
	case verr != nil && !errors.Is(verr, attest.ErrReplay):
		reason := "refused"
		if errors.Is(verr, attest.ErrMalformed) {
			reason = "malformed"
		}
		s.metrics.inc(s.metrics.failures, reason)
		s.alarm(d.ID, "verify-failed", fmt.Sprintf("%s refused: %v", kind, verr))
		if errors.Is(verr, attest.ErrMalformed) {
			return codes.BadRequest
		}
		return codes.Forbidden
	case errors.Is(err, errNotConfirmed):
		if non {
			s.logf("device %s: non-confirmable %s (seq %d) left for its resend: messages before it missing", d.ID, kind, t.Seq)
		} else {
			s.logf("device %s: %s (seq %d) asks about seq %d, not here: the device sends it again", d.ID, kind, t.Seq, t.Seq-min(back, t.Seq))
		}
		return wire.CodeNotConfirmed
	case err != nil:
		return codes.InternalServerError // not stored: the device keeps it and posts it again
	}

	if explained > 0 {
		s.logf("device %s: %d number(s) before seq %d taken by unanswered attestation challenges", d.ID, explained, t.Seq)
	}
	switch {
	case restart:
		s.logf("device %s: restarted (boot %d); %d sequence numbers skipped by the restart", d.ID, t.BootCount, missing)
	case held:
		s.logf("device %s: %d number(s) missing before seq %d, judged when its attestation is in", d.ID, missing, t.Seq)
	case missing > 0:
		s.gapAlarm(d.ID, missing, t.Seq)
	}
	if wasOverdue {
		s.logf("device %s: heard from again", d.ID)
	}
	s.metrics.inc(s.metrics.messages, kind.String())
	switch kind {
	case attest.KindEvent:
		s.logf("device %s: event %s verified (seq %d)", d.ID, t.Event, t.Seq)
		switch t.Event {
		case attest.SIMChanged.String():
			s.alarm(d.ID, "binding-changed", "device reports a different SIM (sim_changed)")
		case attest.SIMRemoved.String():
			s.alarm(d.ID, "sim-removed", "device reports its SIM removed")
		}
		s.notify(d.ID, sum)
	case attest.KindHeartbeat:
		s.heardHeartbeat(d.ID, now)
		s.logf("device %s: heartbeat verified (seq %d)", d.ID, t.Seq)
	case attest.KindBinding:
		s.logf("device %s: binding attestation verified (seq %d)", d.ID, t.Seq)
		if changed {
			s.bindingChanged(d.ID)
		}
	}
	return codes.Changed
}

// setDue sets when the device's next heartbeat is due, after its
// LastHeartbeat (LastSeen before the first): in the transaction that
// accepts its message, so the overdue check never sees an old one.
//
// A device flagged overdue has none: only a token clears the flag (then
// this runs after), and the due index keeps no row the check would pass
// over each time.
func (s *Server) setDue(d *Device, ds *DeviceState) {
	if ds.Overdue {
		ds.NextDue = time.Time{}
		return
	}
	last := ds.LastHeartbeat
	if last.IsZero() {
		last = ds.LastSeen
	}
	timeout := d.HeartbeatTimeout
	if timeout <= 0 {
		timeout = s.cfg.HeartbeatTimeout
	}
	ds.NextDue = last.Add(timeout)
}

// overdueBatch and overdueBatches bound one pass of the overdue check:
// claims of up to overdueBatch devices, overdueBatches of them (what is
// left waits for the next pass, a second later).
const (
	overdueBatch   = 500
	overdueBatches = 20
)

// checkOverdue raises an alarm once per silence longer than a device's
// heartbeat timeout: the store claims the devices due (flag and alarm in
// one transaction, skipping rows another instance or a message holds),
// so with several instances on one database each silence is raised once.
func (s *Server) checkOverdue() {
	now := s.now()
	mk := func(id string, quiet time.Duration) Alarm {
		return Alarm{Time: now.UTC(), Device: id, Kind: "heartbeat-overdue",
			Detail: fmt.Sprintf("no heartbeat for %s (loss of connectivity, or messages suppressed)", quiet.Round(time.Second))}
	}
	for range overdueBatches {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		as, err := s.st.ClaimOverdue(ctx, now, s.started, overdueBatch, mk)
		cancel()
		if err != nil {
			s.logf("ERROR claiming overdue devices in the store: %v", err)
			return
		}
		for _, a := range as {
			s.metrics.inc(s.metrics.alarms, a.Kind)
			s.logf("ALARM device %s %s: %s", a.Device, a.Kind, a.Detail)
		}
		if len(as) == 0 {
			return
		}
	}
}

// heldSessions is the devices with a session on this instance.
func (s *Server) heldSessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	return ids
}

// session returns the device's live session, if any.
func (s *Server) session(id string) *udpClient.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

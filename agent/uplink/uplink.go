package uplink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/internal/coapx"
)

// Sentinels wrapped by the errors of this package.
var (
	// ErrServerKey: the server presented a key other than the pinned one.
	ErrServerKey = errors.New("server key does not match the pinned key")
	// ErrPSKRejected: the PSK handshake failed (identity unknown to the
	// server, or the server holds a different key).
	ErrPSKRejected = errors.New("PSK rejected")
	// ErrNoAnswer: the server did not complete the handshake in time.
	ErrNoAnswer = errors.New("no answer from server")
	// ErrConfig: the Config is unusable.
	ErrConfig = errors.New("bad uplink config")
	// ErrClosed: the session is closed (by Close or because it dropped).
	ErrClosed = errors.New("uplink session closed")
)

// DialError is a failed Dial: which server, and why (wraps one of the
// sentinels above, or a network error).
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "uplink: dial " + e.Addr + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// Defaults.
const (
	// DefaultKeepalive is off: the device sends nothing that carries
	// nothing. With DTLS Connection IDs the collector keeps a silent
	// device's session across NAT rebinding, and queues its own requests
	// until the device's next message (queue mode, docs/collector.md), so
	// no ping is needed to keep a mapping open. An operator who wants the
	// device reachable at any moment sets Keepalive from the carrier NAT's
	// UDP timeout (e.g. 25 s under a 30 s timeout): one ping per idle
	// interval, at the exact idle deadline.
	DefaultKeepalive time.Duration = 0
	// DefaultTimeout bounds the handshake and each request.
	DefaultTimeout = 10 * time.Second
)

// Config is one server the device talks to. Exactly one of PSK mode
// (PSKIdentity and PSK) and certificate mode (Certificate and ServerPin)
// is set.
type Config struct {
	Addr string // the server's UDP "host:port"
	Name string // the server's name in the agent's config; passed to Handler as Request.Peer

	PSKIdentity string
	PSK         []byte

	Certificate *tls.Certificate // the device's certificate (see SelfSigned)
	ServerPin   []byte           // SHA-256 of the server's SubjectPublicKeyInfo (see Pin)

	Handler   Handler       // serves the server's requests; nil answers 4.04 to all
	Keepalive time.Duration // idle time before a ping (size it from the NAT's UDP timeout); 0: DefaultKeepalive (off); <0: none
	Timeout   time.Duration // handshake and per-request bound; 0: DefaultTimeout

	// WrapConn, if set, wraps the UDP socket (connected to Addr) before DTLS
	// runs over it: for metering bytes on the wire, or fault injection.
	WrapConn func(net.Conn) net.Conn
}

// String never shows the PSK.
func (c Config) String() string {
	mode := "psk"
	if c.Certificate != nil {
		mode = "certificate"
	}
	return fmt.Sprintf("uplink.Config{Addr: %s, Name: %s, mode: %s}", c.Addr, c.Name, mode)
}

func (c *Config) check() error {
	psk := c.PSKIdentity != "" || len(c.PSK) > 0
	cert := c.Certificate != nil || len(c.ServerPin) > 0
	switch {
	case c.Addr == "":
		return fmt.Errorf("%w: no server address", ErrConfig)
	case psk && cert:
		return fmt.Errorf("%w: both PSK and certificate set; choose one", ErrConfig)
	case psk && (c.PSKIdentity == "" || len(c.PSK) < 16):
		return fmt.Errorf("%w: PSK mode needs an identity and a key of at least 16 bytes", ErrConfig)
	case cert && (c.Certificate == nil || len(c.ServerPin) != sha256.Size):
		return fmt.Errorf("%w: certificate mode needs the device certificate and a 32-byte server key pin", ErrConfig)
	case !psk && !cert:
		return fmt.Errorf("%w: no credentials (PSK or certificate)", ErrConfig)
	}
	return nil
}

// Client is one DTLS session to one server. Safe for concurrent use.
type Client struct {
	cfg  Config
	cc   *udpClient.Conn
	once sync.Once
	last atomic.Int64 // unix nanoseconds of the last exchange
}

func (c *Client) touch() { c.last.Store(time.Now().UnixNano()) }

// keepalive pings when the session has been idle for Keepalive, and closes
// it when two pings in a row go unanswered. A timer is set at the exact
// idle deadline (last exchange plus Keepalive) and moved on by every
// exchange, so an idle session sends one small record per interval and a
// busy one none. (go-coap's own keep-alive is driven by a 4 s periodic
// check and pings every 4 s or so whatever the interval.)
func (c *Client) keepalive() {
	t := time.NewTimer(c.cfg.Keepalive)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-c.cc.Done():
			return
		case <-t.C:
		}
		if left := time.Until(time.Unix(0, c.last.Load()).Add(c.cfg.Keepalive)); left > 0 {
			t.Reset(left) // an exchange since: the deadline moved
			continue
		}
		ctx, cancel := context.WithTimeout(c.cc.Context(), c.cfg.Timeout)
		err := c.cc.Ping(ctx)
		cancel()
		if err == nil {
			fails = 0
			c.touch()
			t.Reset(c.cfg.Keepalive)
			continue
		}
		if fails++; fails >= 2 {
			_ = c.cc.Close()
			return
		}
		t.Reset(0) // unanswered: try once more now
	}
}

// PSK cipher suites offered, CCM-8 first for the smallest records (our
// collector takes it). The ECDHE_PSK suite (RFC 5489) comes last: forward secrecy for
// a server that insists on it, at the price of a larger handshake and
// records; with it offered, a hostile server can also reach the
// ECDHE_PSK parsing of its ServerKeyExchange, which the regression test of
// GO-2026-6165 relies on (cmd/mtcagent TestCraftedServerKeyExchange).
var pskSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_PSK_WITH_AES_128_CCM_8,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
}

// Certificate suites offered.
var certSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
}

// Dial connects to the server, completes the DTLS handshake (so a wrong
// key is reported here) and starts serving the server's requests.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.check(); err != nil {
		return nil, &DialError{Addr: cfg.Addr, Err: err}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = DefaultKeepalive
	}
	var keyErr error // set by VerifyPeerCertificate; read after the handshake
	dc := &piondtls.Config{
		ExtendedMasterSecret: piondtls.RequireExtendedMasterSecret,
		// Send the Connection ID the server gives us (RFC 9146), so that
		// the session survives the carrier NAT moving us to another port;
		// ask for none in return (the server's address does not move).
		ConnectionIDGenerator: piondtls.OnlySendCIDGenerator(),
	}
	if cfg.Certificate != nil {
		dc.Certificates = []tls.Certificate{*cfg.Certificate}
		dc.CipherSuites = certSuites
		dc.InsecureSkipVerify = true // no CA: the pin below is the check
		dc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				keyErr = ErrServerKey
				return keyErr
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				keyErr = fmt.Errorf("%w: server certificate unreadable", ErrServerKey)
				return keyErr
			}
			if subtle.ConstantTimeCompare(coapx.Pin(c), cfg.ServerPin) != 1 {
				keyErr = ErrServerKey
				return keyErr
			}
			return nil
		}
	} else {
		psk := bytes.Clone(cfg.PSK)
		dc.PSK = func([]byte) ([]byte, error) { return psk, nil }
		dc.PSKIdentityHint = []byte(cfg.PSKIdentity)
		dc.CipherSuites = pskSuites
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "udp", cfg.Addr)
	if err != nil {
		return nil, &DialError{Addr: cfg.Addr, Err: err}
	}
	conn := raw
	if cfg.WrapConn != nil {
		conn = cfg.WrapConn(raw)
	}
	// heard tells a server that stayed silent from one that answered but
	// never completed the handshake (pion drops a message it cannot parse
	// and waits, so both end in the handshake timeout).
	heard := &heardConn{Conn: conn}
	conn = heard
	dconn, err := piondtls.Client(dtlsnet.PacketConnFromConn(conn), conn.RemoteAddr(), dc)
	if err != nil {
		raw.Close()
		return nil, &DialError{Addr: cfg.Addr, Err: err}
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	err = dconn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		dconn.Close()
		raw.Close()
		return nil, &DialError{Addr: cfg.Addr, Err: classify(ctx, err, keyErr, cfg.Certificate == nil, heard.answered.Load())}
	}
	c := &Client{cfg: cfg}
	var tokens atomic.Uint32
	tokens.Store(uint32(time.Now().UnixNano()))
	co := []udp.Option{
		options.WithHandlerFunc(udpClient.HandlerFunc(c.serve)),
		// Two-byte CoAP tokens from a counter instead of go-coap's eight
		// random bytes: 12 bytes less per exchange (the token goes out
		// and comes back). A token only has to be unique among this
		// session's outstanding requests (RFC 7252 5.3.1); randomness
		// against an off-path attacker forging answers is not needed
		// where DTLS authenticates every record (issue 16).
		options.WithGetToken(func() (message.Token, error) {
			n := tokens.Add(1)
			return message.Token{byte(n >> 8), byte(n)}, nil
		}),
		options.WithCloseSocket(),
		// go-coap's internal errors are not actionable here; a dropped
		// session shows on Done and as ErrClosed from Post.
		options.WithErrors(func(error) {}),
	}
	c.cc = coapdtls.Client(dconn, co...)
	c.touch()
	if cfg.Keepalive > 0 {
		go c.keepalive()
	}
	return c, nil
}

// classify turns a handshake failure into one of our sentinels. answered
// says whether the server sent anything at all.
func classify(ctx context.Context, err, keyErr error, psk, answered bool) error {
	switch {
	case keyErr != nil:
		return keyErr
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"):
		// An ICMP port unreachable: the host is there, the server is not.
		return fmt.Errorf("%w: nothing listens on that port (connection refused)", ErrNoAnswer)
	case (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)) && answered:
		// The server answered but the handshake never completed: it
		// refused our identity or key without an alert, or its messages
		// were malformed and dropped (a hostile or broken server).
		if psk {
			return fmt.Errorf("%w: handshake not completed: the server answered but did not finish (unknown identity or key, or malformed handshake messages)", ErrPSKRejected)
		}
		return fmt.Errorf("%w: handshake not completed: the server answered but did not finish (malformed or unexpected handshake messages)", ErrNoAnswer)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		if psk {
			// A server that refuses an unknown identity may stay silent.
			return fmt.Errorf("%w (or %w: the server may not know our identity)", ErrNoAnswer, ErrPSKRejected)
		}
		return ErrNoAnswer
	case psk:
		return fmt.Errorf("%w: %s", ErrPSKRejected, alertText(err))
	}
	return fmt.Errorf("handshake: %s", alertText(err))
}

// heardConn notes whether anything was received.
type heardConn struct {
	net.Conn
	answered atomic.Bool
}

func (c *heardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.answered.Store(true)
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func alertText(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "alert: "); i >= 0 {
		return s[i:]
	}
	return s
}

// Post sends a confirmable POST of a CBOR payload (content-format 60) to
// path and returns the response code and body. Code class 2 means the
// server took it (including a duplicate it had already), 4 that it refuses
// it for good, 5 (or an error) that the caller should retry later. A
// request unanswered within Config.Timeout ends the session (ErrNoAnswer;
// Done is closed), as does a session that has ended (ErrClosed).
func (c *Client) Post(parent context.Context, path string, cbor []byte) (Code, []byte, error) {
	return c.post(parent, path, cbor)
}

// PostQuery is Post with one Uri-Query option (e.g. "c=1", wire.QueryConfirm).
func (c *Client) PostQuery(parent context.Context, path string, cbor []byte, query string) (Code, []byte, error) {
	return c.post(parent, path, cbor, message.Option{ID: message.URIQuery, Value: []byte(query)})
}

// PostNon sends a non-confirmable POST of a CBOR payload to path, with an
// empty token (no answer is expected, so none needs matching): it returns
// once the datagram is written, not when it arrived. The caller learns
// later, from the server, whether it did (wire.QueryConfirm).
func (c *Client) PostNon(parent context.Context, path string, cbor []byte) error {
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	req, err := c.cc.NewPostRequest(ctx, path, message.AppCBOR, bytes.NewReader(cbor))
	if err != nil {
		return fmt.Errorf("uplink: post %s: %w", path, err)
	}
	defer c.cc.ReleaseMessage(req)
	req.SetType(message.NonConfirmable)
	req.SetToken(nil)
	if err := c.cc.WriteMessage(req); err != nil {
		if c.closed() {
			return fmt.Errorf("uplink: post %s: %w", path, ErrClosed)
		}
		return fmt.Errorf("uplink: post %s: %w", path, err)
	}
	c.touch()
	return nil
}

func (c *Client) post(parent context.Context, path string, cbor []byte, opts ...message.Option) (Code, []byte, error) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	resp, err := c.cc.Post(ctx, path, message.AppCBOR, bytes.NewReader(cbor), opts...)
	if err == nil {
		c.touch()
	}
	if err != nil {
		if c.closed() {
			return 0, nil, fmt.Errorf("uplink: post %s: %w", path, ErrClosed)
		}
		if parent.Err() == nil && ctx.Err() != nil {
			// Unanswered through all retransmissions: the path or the
			// server's session is gone (a server need not say so). End
			// the session so the caller's Done loop dials again.
			_ = c.Close()
			return 0, nil, fmt.Errorf("uplink: post %s: %w within %s; session closed", path, ErrNoAnswer, c.cfg.Timeout)
		}
		return 0, nil, fmt.Errorf("uplink: post %s: %w", path, err)
	}
	body, err := resp.ReadBody()
	if err != nil {
		return resp.Code(), nil, fmt.Errorf("uplink: post %s: read response: %w", path, err)
	}
	return resp.Code(), body, nil
}

func (c *Client) closed() bool {
	select {
	case <-c.cc.Done():
		return true
	default:
		return false
	}
}

// Done is closed when the session ends (Close, keep-alive failure, or the
// server closing it).
func (c *Client) Done() <-chan struct{} { return c.cc.Done() }

// Peer is the authenticated server's name (Config.Name, or Addr).
func (c *Client) Peer() string {
	if c.cfg.Name != "" {
		return c.cfg.Name
	}
	return c.cfg.Addr
}

// Close ends the session (sending a DTLS close_notify).
func (c *Client) Close() error {
	var err error
	c.once.Do(func() { err = c.cc.Close() })
	return err
}

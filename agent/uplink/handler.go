package uplink

import (
	"bytes"
	"context"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/internal/coapx"
)

// Code is a CoAP response code (RFC 7252 §12.1.2), e.g. 2.05 Content.
type Code = codes.Code

// Response codes used on the uplink.
const (
	Created      = codes.Created      // 2.01
	Changed      = codes.Changed      // 2.04
	Content      = codes.Content      // 2.05
	BadRequest   = codes.BadRequest   // 4.00
	Unauthorized = codes.Unauthorized // 4.01
	Forbidden    = codes.Forbidden    // 4.03
	NotFound     = codes.NotFound     // 4.04
	Conflict     = codes.Code(0x89)   // 4.09
	ServerError  = codes.InternalServerError
	Unavailable  = codes.ServiceUnavailable
)

// Request is one request the server sent over the session.
type Request struct {
	// Peer is the authenticated server: Config.Name (or Addr). The DTLS
	// handshake proved the server holds the configured PSK or pinned key.
	Peer    string
	Method  string // "GET", "POST", "PUT", "DELETE"
	Path    string // e.g. "/status"
	Query   []string
	Payload []byte
}

// Handler serves the server's requests. It returns the response code and
// a CBOR body (content-format 60; nil for none). It decides what this
// server is granted; a request it does not grant should get Forbidden or
// NotFound.
type Handler interface {
	ServeUplink(ctx context.Context, r *Request) (Code, []byte)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r *Request) (Code, []byte)

// ServeUplink calls f.
func (f HandlerFunc) ServeUplink(ctx context.Context, r *Request) (Code, []byte) { return f(ctx, r) }

// maxRequest bounds a server request's payload.
const maxRequest = 4096

func (c *Client) serve(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
	method, path := coapx.RequestLine(r)
	if method == "" {
		return // responses and signals are not ours to answer
	}
	c.touch()
	req := &Request{Peer: c.Peer(), Method: method, Path: path}
	req.Query, _ = r.Options().Queries()
	if r.Body() != nil {
		b, err := r.ReadBody()
		if err != nil || len(b) > maxRequest {
			_ = w.SetResponse(codes.RequestEntityTooLarge, message.TextPlain, nil)
			return
		}
		req.Payload = b
	}
	if c.cfg.Handler == nil {
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	code, body := c.cfg.Handler.ServeUplink(ctx, req)
	if body == nil {
		_ = w.SetResponse(code, message.AppCBOR, nil)
		return
	}
	_ = w.SetResponse(code, message.AppCBOR, bytes.NewReader(body))
}

// Package coapx is the transport glue that the device's uplink and the
// collector share, and nothing of either side's logic: how a CoAP request
// maps onto the contract's paths (package wire), and the certificate
// helpers of DTLS certificate mode (the key pin, a self-signed
// certificate over an attestation key).
package coapx

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
)

// RequestLine returns a CoAP request's method ("GET", "POST", "PUT",
// "DELETE"; "" for a response or a signal, which no handler answers) and
// its path, always with a leading "/".
//
// A path that is not UTF-8 text without control characters (a NUL, a line
// break, bytes that are not UTF-8, a "/" inside a segment) comes back
// quoted, as strconv.Quote writes it: it names no resource (each begins
// with "/"), and callers log it, store it as text and split it without a
// check of their own. A peer's NUL reached PostgreSQL as a device id, and a
// line break in a path made a log line of the peer's choosing.
func RequestLine(r *pool.Message) (method, path string) {
	switch r.Code() {
	case codes.GET:
		method = "GET"
	case codes.POST:
		method = "POST"
	case codes.PUT:
		method = "PUT"
	case codes.DELETE:
		method = "DELETE"
	}
	var segs []string
	for _, o := range r.Options() {
		if o.ID == message.URIPath {
			segs = append(segs, string(o.Value))
		}
	}
	path = "/" + strings.Join(segs, "/")
	if !plainPath(segs) {
		path = strconv.Quote(path)
	}
	return method, path
}

// plainPath reports whether the segments make a path as they are: UTF-8
// without control characters, and no "/" inside one.
func plainPath(segs []string) bool {
	for _, s := range segs {
		if !utf8.ValidString(s) || strings.ContainsRune(s, '/') || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return false
		}
	}
	return true
}

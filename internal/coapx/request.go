// Package coapx is the transport glue that the device's uplink and the
// collector share, and nothing of either side's logic: how a CoAP request
// maps onto the contract's paths (package wire), and the certificate
// helpers of DTLS certificate mode (the key pin, a self-signed
// certificate over an attestation key).
package coapx

import (
	"strings"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
)

// RequestLine returns a CoAP request's method ("GET", "POST", "PUT",
// "DELETE"; "" for a response or a signal, which no handler answers) and
// its path, always with a leading "/".
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
	path, _ = r.Options().Path()
	return method, "/" + strings.TrimPrefix(path, "/")
}

package coapx

import (
	"context"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
)

// TestRequestLine: the method and path of a request as sent, and a path
// that is not plain text quoted, so that it names no resource and is
// safe to log and store.
func TestRequestLine(t *testing.T) {
	for _, tc := range []struct {
		code   codes.Code
		segs   []string
		method string
		path   string
	}{
		{codes.GET, nil, "GET", "/"},
		{codes.POST, []string{"hb"}, "POST", "/hb"},
		{codes.GET, []string{"devices", "d-1", "status"}, "GET", "/devices/d-1/status"},
		{codes.PUT, []string{"devices", "", "x"}, "PUT", "/devices//x"},
		{codes.DELETE, []string{"dévice"}, "DELETE", "/dévice"},
		{codes.Content, []string{"hb"}, "", "/hb"},
		{codes.GET, []string{"devices", "a\nALARM x", "status"}, "GET", `"/devices/a\nALARM x/status"`},
		{codes.GET, []string{"devices", "a\x00b"}, "GET", `"/devices/a\x00b"`},
		{codes.GET, []string{"\xff\xfe"}, "GET", `"/\xff\xfe"`},
		{codes.GET, []string{"devices/d-1", "status"}, "GET", `"/devices/d-1/status"`}, // a "/" in a segment
		{codes.GET, []string{"a\u0085b"}, "GET", `"/a\u0085b"`},                        // a C1 control
	} {
		m := pool.NewMessage(context.Background())
		m.SetCode(tc.code)
		for _, s := range tc.segs {
			m.AddOptionBytes(message.URIPath, []byte(s))
		}
		if method, path := RequestLine(m); method != tc.method || path != tc.path {
			t.Errorf("%v %q: %q %q, want %q %q", tc.code, tc.segs, method, path, tc.method, tc.path)
		}
	}
}

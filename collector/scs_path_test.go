package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestSCSHostilePath, on both backends: a path with a line break, a NUL
// or bytes that are not UTF-8 gets the answer of a resource that does
// not exist; its audit record is kept, with the path quoted; no log line
// is of the SCS's making, and no store error comes of it. Before, the
// line break wrote a forged ALARM line, and on PostgreSQL the NUL failed
// the device lookup and lost the audit record.
func TestSCSHostilePath(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		testBackends.Store(t, b)
		t.Cleanup(func() { testBackends.Delete(t) })
		dev := newTestDevice(t, "dev1")
		s, _, scsAddr, log := startServer(t, parseTestConfig(t, testConfigText(dev)), t.TempDir())
		alpha := scsDial(t, scsAddr, "alpha", []byte(scsAPSK))
		paths := map[string]string{
			"/devices/a\nALARM device dev1 binding-changed: forged/status": `"/devices/a\nALARM device dev1 binding-changed: forged/status"`,
			"/devices/a\x00b/status":   `"/devices/a\x00b/status"`,
			"/devices/\xff\xfe/status": `"/devices/\xff\xfe/status"`,
			"/devices/dev1/status\x00": `"/devices/dev1/status\x00"`,
		}
		for p := range paths {
			if code, body := scsGetQuery(t, alpha, p, false); code != codes.NotFound || string(body) != string(notFoundBody) {
				t.Errorf("%q: %v %q, want the answer of no such resource", p, code, body)
			}
		}
		// The one path that names a granted resource still works.
		if code, body := scsGetQuery(t, alpha, "/devices/dev1/status", false); code != codes.Content && code != codes.NotFound {
			t.Errorf("a plain path: %v %q", code, body)
		}
		au, err := s.st.Audit(context.Background(), "alpha")
		if err != nil || len(au) != len(paths)+1 {
			t.Fatalf("audit: %d records %v, want %d\n%s", len(au), err, len(paths)+1, log.String())
		}
		for _, a := range au[:len(paths)] {
			if !strings.HasPrefix(a.Path, `"`) || a.Decision != "denied (no such resource)" || a.Code != "4.04" {
				t.Errorf("audit record %+v", a)
			}
		}
		got := map[string]bool{}
		for _, a := range au {
			got[a.Path] = true
		}
		for _, q := range paths {
			if !got[q] {
				t.Errorf("no audit record of %s", q)
			}
		}
		out := log.String()
		for _, bad := range []string{"\nALARM", "ERROR", "\x00", "\xff"} {
			if strings.Contains(out, bad) {
				t.Errorf("log holds %q:\n%s", bad, out)
			}
		}
		if !strings.Contains(out, `scs alpha: GET "/devices/a\nALARM device dev1 binding-changed: forged/status" -> 4.04 (denied (no such resource))`) {
			t.Errorf("the quoted path is not logged:\n%s", out)
		}
	})
}

// TestSCSNotAcceptable: an Accept the collector cannot answer in (neither
// CBOR nor JSON) gets 4.06 (RFC 7252 5.10.4) on a granted resource; any
// other resource still gets the 4.04 of one that does not exist, so the
// Accept tells an SCS nothing about devices. Before, it got CBOR.
func TestSCSNotAcceptable(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, _, scsAddr, _ := startServer(t, parseTestConfig(t, testConfigText(dev)), t.TempDir())
	alpha := scsDial(t, scsAddr, "alpha", []byte(scsAPSK))
	get := func(path string, accept ...byte) (codes.Code, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var opts []message.Option
		if accept != nil {
			opts = append(opts, message.Option{ID: message.Accept, Value: accept})
		}
		resp, err := alpha.Get(ctx, path, opts...)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := resp.ReadBody()
		return resp.Code(), string(b)
	}
	if code, body := get("/devices/dev1/events", 41); code != codes.NotAcceptable || !strings.Contains(body, "want Accept 60 (CBOR) or 50 (JSON)") {
		t.Fatalf("Accept 41 on a granted resource: %v %q", code, body)
	}
	if code, body := get("/devices/ghost/events", 41); code != codes.NotFound || body != string(notFoundBody) {
		t.Fatalf("Accept 41 on a device that does not exist: %v %q", code, body)
	}
	for _, accept := range [][]byte{nil, {60}, {50}} {
		if code, body := get("/devices/dev1/events", accept...); code != codes.Content {
			t.Fatalf("Accept %v: %v %q", accept, code, body)
		}
	}
	au, err := s.st.Audit(context.Background(), "alpha")
	if err != nil || len(au) == 0 || au[0].Code != "4.06" || !strings.Contains(au[0].Decision, "Accept") {
		t.Fatalf("audit: %+v %v", au, err)
	}
}

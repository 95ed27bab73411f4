package collector

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

// TestObserveBounds: an SCS registering again with the same token updates
// its observation (RFC 7641 4.1) instead of adding one; a session holds at
// most maxObserversPerResource tokens on one device's class, and one
// beyond is answered as a plain read (no Observe option); an event is
// notified once per token; deregistering and closing the session count
// its observations out. Before, each registration added an observer, and
// each observer costs a grant check and an audit record per event.
func TestObserveBounds(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, addr, scsAddr, log := startServer(t, parseTestConfig(t, testConfigText(dev)), t.TempDir())
	ctx := context.Background()

	var mu sync.Mutex
	notified := map[string]int{} // by token
	dc := &piondtls.Config{PSK: func([]byte) ([]byte, error) { return []byte(scsAPSK), nil }, PSKIdentityHint: []byte("alpha"),
		CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}}
	oc, err := coapdtls.Dial(scsAddr, dc, options.WithHandlerFunc(func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
		mu.Lock()
		notified[string(r.Token())]++
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	register := func(token string, obs uint32) (codes.Code, bool) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := oc.NewGetRequest(rctx, "/devices/dev1/events")
		if err != nil {
			t.Fatal(err)
		}
		req.SetToken(message.Token(token))
		req.SetObserve(obs)
		resp, err := oc.Do(req)
		if err != nil {
			t.Fatalf("observe %s: %v", token, err)
		}
		_, err = resp.Options().Observe()
		return resp.Code(), err == nil
	}
	count := func() (resource, session int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for o := range s.observers["dev1"] {
			if o.scs == "alpha" {
				resource++
			}
		}
		for _, n := range s.sessionObservers {
			session += n
		}
		return
	}

	for range 3 {
		if code, observing := register("tok-a", 0); code != codes.Content || !observing {
			t.Fatalf("registration of tok-a: %v, observing %v", code, observing)
		}
	}
	if r, n := count(); r != 1 || n != 1 {
		t.Fatalf("tok-a registered three times: %d observers (%d in the session), want 1", r, n)
	}
	for i := 2; i <= maxObserversPerResource; i++ {
		if _, observing := register(fmt.Sprint("tok-", i), 0); !observing {
			t.Fatalf("token %d of %d not registered", i, maxObserversPerResource)
		}
	}
	if code, observing := register("tok-over", 0); code != codes.Content || observing {
		t.Fatalf("a registration beyond the bound: %v, observing %v; want a plain 2.05", code, observing)
	}
	if r, n := count(); r != maxObserversPerResource || n != maxObserversPerResource {
		t.Fatalf("%d observers (%d in the session), want %d", r, n, maxObserversPerResource)
	}

	c, err := uplink.Dial(ctx, dev.uplinkConfig(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed"))
	if code, _, err := c.Post(ctx, wire.PathEvent, tok); err != nil || code != uplink.Changed {
		t.Fatalf("event: %v %v", code, err)
	}
	waitFor(t, 10*time.Second, "a notification per token", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(notified) == maxObserversPerResource
	})
	time.Sleep(300 * time.Millisecond) // any second one would be here by now
	mu.Lock()
	for tk, n := range notified {
		if n != 1 || tk == "tok-over" {
			t.Errorf("token %s notified %d times", tk, n)
		}
	}
	mu.Unlock()

	if _, observing := register("tok-a", 1); observing {
		t.Fatal("deregistration answered with Observe")
	}
	if r, n := count(); r != maxObserversPerResource-1 || n != maxObserversPerResource-1 {
		t.Fatalf("after deregistering tok-a: %d observers (%d in the session)", r, n)
	}
	// The session's bound in all: as if it held maxObserversPerSession
	// observations elsewhere, one more on dev1 (under its own bound) is
	// refused.
	s.mu.Lock()
	for cc := range s.sessionObservers {
		s.sessionObservers[cc] = maxObserversPerSession
	}
	s.mu.Unlock()
	if _, observing := register("tok-new", 0); observing {
		t.Fatal("a registration beyond the session's bound was taken")
	}
	s.mu.Lock()
	for cc := range s.sessionObservers {
		s.sessionObservers[cc] = maxObserversPerResource - 1
	}
	s.mu.Unlock()
	oc.Close()
	waitFor(t, 10*time.Second, "the session's observers dropped", func() bool {
		r, n := count()
		return r == 0 && n == 0
	})
	_ = log
}

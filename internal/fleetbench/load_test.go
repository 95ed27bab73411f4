package fleetbench

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

// device is one in-process device: its signer, its uplink session, and
// heartbeat tokens signed before the clock starts (a real device signs on
// its own CPU, not the collector's).
type device struct {
	id     string
	iss    *attest.Issuer
	c      *uplink.Client
	answer bool          // answer the collector's attestation challenge
	asked  *atomic.Int64 // challenges answered, all devices

	mu   sync.Mutex
	toks [][]byte // in sequence order
	busy atomic.Bool
	dead atomic.Bool
}

func newDevice(id string, key ed25519.PrivateKey, answer bool, asked *atomic.Int64) *device {
	clock := attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false })
	iss, err := attest.NewIssuer(key, &attest.MemSequence{}, clock, 1)
	if err != nil {
		panic(err) // a fixed, valid key: cannot happen
	}
	return &device{id: id, iss: iss, answer: answer, asked: asked}
}

// ServeUplink answers the collector's requests: the attestation challenge
// (a binding token over its nonce) when answer is set, 4.04 otherwise.
func (d *device) ServeUplink(_ context.Context, r *uplink.Request) (uplink.Code, []byte) {
	if r.Path != wire.PathAttest || !d.answer {
		return uplink.NotFound, nil
	}
	var req struct {
		Nonce []byte `cbor:"1,keyasint"`
	}
	if cbor.Unmarshal(r.Payload, &req) != nil {
		return uplink.BadRequest, nil
	}
	d.mu.Lock()
	tok, err := d.iss.Sign(attest.KindBinding, attest.NonceClaim(req.Nonce))
	d.mu.Unlock()
	if err != nil {
		return uplink.ServerError, nil
	}
	d.asked.Add(1)
	return uplink.Content, tok
}

// presign signs n heartbeats ahead.
func (d *device) presign(n int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := 0; i < n; i++ {
		t, err := d.iss.SignHeartbeat()
		if err != nil {
			return err
		}
		d.toks = append(d.toks, t)
	}
	return nil
}

// token is the next heartbeat: a pre-signed one, or signed now when they
// ran out (counted in signedLate).
func (d *device) token(signedLate *atomic.Int64) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.toks) > 0 {
		t := d.toks[0]
		d.toks = d.toks[1:]
		return t, nil
	}
	signedLate.Add(1)
	return d.iss.SignHeartbeat()
}

var errNotChanged = errors.New("heartbeat not acknowledged with 2.04")

// fleet is the devices with a session, and what the load left behind.
type fleet struct {
	devs       []*device
	next       atomic.Int64
	signedLate atomic.Int64
	firstErr   atomic.Value // string
	failures   atomic.Int64
}

// pick takes a device with a live session and no request in flight, in
// turn; nil if every device is busy.
func (f *fleet) pick() *device {
	n := int64(len(f.devs))
	for try := int64(0); try < n; try++ {
		d := f.devs[f.next.Add(1)%n]
		if !d.dead.Load() && d.busy.CompareAndSwap(false, true) {
			return d
		}
	}
	return nil
}

// heartbeat posts d's next heartbeat and waits for the acknowledgement
// (2.04: verified and stored). A session whose request went unanswered
// is closed by the uplink: the device is then left out.
func (f *fleet) heartbeat(d *device) error {
	defer d.busy.Store(false)
	tok, err := d.token(&f.signedLate)
	if err != nil {
		return err
	}
	code, _, err := d.c.Post(context.Background(), wire.PathHeartbeat, tok)
	if err == nil && code != uplink.Changed {
		err = fmt.Errorf("%w: %v", errNotChanged, code)
	}
	if err != nil {
		f.failures.Add(1)
		f.firstErr.CompareAndSwap(nil, fmt.Sprintf("device %s: %v", d.id, err))
		select {
		case <-d.c.Done():
			d.dead.Store(true)
		default:
		}
	}
	return err
}

// sustained runs a closed loop of inflight concurrent heartbeats (each
// from a different device, in turn) for window and returns the number
// acknowledged within it. Requests still in flight at the end are waited
// for, so the next phase starts from a quiet collector.
func (f *fleet) sustained(inflight int, window time.Duration) (acked int64, took time.Duration) {
	start := time.Now()
	end := start.Add(window)
	var n atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				d := f.pick()
				if d == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				if f.heartbeat(d) == nil && time.Now().Before(end) {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return n.Load(), time.Since(start)
}

// pacedResult is the open-loop phase: round trips measured from each
// heartbeat's scheduled send time (so a collector falling behind shows in
// them), and from its actual send.
type pacedResult struct {
	fromDue, fromSend []time.Duration
	failed            int64
	sent              int
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// paced sends rate heartbeats a second, on a fixed schedule, for window.
// A failed heartbeat counts as the uplink's timeout in the round trips.
func (f *fleet) paced(rate int, window, timeout time.Duration) pacedResult {
	interval := time.Second / time.Duration(rate)
	total := int(window / interval)
	var (
		mu  sync.Mutex
		res pacedResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	giveUp := start.Add(window + timeout)
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		d := f.pick()
		for d == nil && time.Now().Before(giveUp) {
			time.Sleep(200 * time.Microsecond)
			d = f.pick()
		}
		if d == nil {
			break
		}
		res.sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := time.Now()
			err := f.heartbeat(d)
			now := time.Now()
			a, s := now.Sub(due), now.Sub(sent)
			if err != nil {
				a, s = timeout, timeout
			}
			mu.Lock()
			res.fromDue = append(res.fromDue, a)
			res.fromSend = append(res.fromSend, s)
			if err != nil {
				res.failed++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

package collector

import (
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// What an idle session costs is mostly goroutine stacks (five per
// session, in pion/dtls and go-coap) and buffers the dependencies hold
// while blocked in a read. A goroutine's stack grows to the deepest call
// it has made and only halves at a collection when it uses under a
// quarter of it, so a long-lived goroutine that once ran deep code keeps
// the grown stack for several collections, and one that needs more than
// 1 KiB at rest never gets back below 4 KiB.

// handlerPool is go-coap's received-message processor
// (options.WithProcessReceivedMessageFunc) for the collector's
// listeners. go-coap calls it on the session's long-lived queue
// goroutine; it runs the handler (our serveDevice or serveSCS: CBOR,
// Ed25519, a store transaction) on a worker goroutine and waits for it.
// The deep stack the handler needs is then the worker's, not kept by
// every idle session's queue goroutine. Waiting keeps go-coap's
// semantics: one message of a session at a time, and its in-flight
// duplicate tracking ends when the handler has answered.
//
// Workers are kept between messages, up to handlerWorkers of them, and
// end after handlerWorkerIdle without one: under load a message finds a
// worker whose stack has already grown to what a handler needs (on a
// fresh goroutine, growing it was about 7% of the collector's CPU), and
// a quiet collector keeps none. Past handlerWorkers busy at once, a
// message runs on a goroutine of its own, as every message once did.
type handlerPool struct {
	work chan func()     // unbuffered: a send succeeds when a worker waits
	quit <-chan struct{} // closed: the workers end
	n    atomic.Int32    // workers alive
}

const (
	handlerWorkers    = 256
	handlerWorkerIdle = time.Second
)

func newHandlerPool(quit <-chan struct{}) *handlerPool {
	return &handlerPool{work: make(chan func()), quit: quit}
}

func (p *handlerPool) process(req *pool.Message, cc *udpClient.Conn, h config.HandlerFunc[*udpClient.Conn]) {
	p.do(func() { cc.ProcessReceivedMessageWithHandler(req, h) })
}

// do runs fn on a worker, a new one if none waits, and returns when it
// has.
func (p *handlerPool) do(fn func()) {
	done := make(chan struct{})
	run := func() {
		defer close(done)
		fn()
	}
	select {
	case p.work <- run:
	default:
		if p.n.Add(1) <= handlerWorkers {
			go p.worker(run)
		} else {
			p.n.Add(-1)
			go run()
		}
	}
	<-done
}

// worker runs first, then what it is handed, until it has been idle for
// handlerWorkerIdle or the pool is closed.
func (p *handlerPool) worker(first func()) {
	defer p.n.Add(-1)
	first()
	idle := time.NewTimer(handlerWorkerIdle)
	defer idle.Stop()
	for {
		select {
		case run := <-p.work:
			run()
			idle.Reset(handlerWorkerIdle)
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}

package collector

import (
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

// handleOnShortGoroutine is go-coap's received-message processor
// (options.WithProcessReceivedMessageFunc) for the collector's
// listeners. go-coap calls it on the session's long-lived queue
// goroutine; it runs the handler (our serveDevice or serveSCS: CBOR,
// Ed25519, a store transaction) on a goroutine of its own and waits for
// it. The deep stack the handler needs is then that goroutine's, freed
// when it ends, instead of staying with every idle session's queue
// goroutine. Waiting keeps go-coap's semantics: one message of a
// session at a time, and its in-flight duplicate tracking ends when the
// handler has answered.
func handleOnShortGoroutine(req *pool.Message, cc *udpClient.Conn, h config.HandlerFunc[*udpClient.Conn]) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		cc.ProcessReceivedMessageWithHandler(req, h)
	}()
	<-done
}

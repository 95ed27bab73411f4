// Package udprelay is a UDP relay for tests, on loopback: it stands for a
// carrier NAT between a device and a server. The device talks to its
// address; it forwards from one server-side socket, which Rebind moves to
// a new source port as a NAT does when its mapping times out, and keeps
// every datagram it forwards, both ways.
package udprelay

import (
	"net"
	"sync"
	"testing"
)

// Relay forwards between one device and a server.
type Relay struct {
	t      testing.TB
	down   *net.UDPConn // the device's side
	to     *net.UDPAddr // the server
	mu     sync.Mutex
	up     *net.UDPConn
	device *net.UDPAddr
	ups    [][]byte // device -> server
	downs  [][]byte // server -> device
	wg     sync.WaitGroup
}

// Start relays to server until the test ends.
func Start(t testing.TB, server string) *Relay {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	down, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{t: t, down: down, to: to}
	r.Rebind()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := down.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.device, r.ups = from, append(r.ups, append([]byte(nil), buf[:n]...))
			up := r.up
			r.mu.Unlock()
			_, _ = up.WriteToUDP(buf[:n], to)
		}
	}()
	t.Cleanup(func() {
		down.Close()
		r.mu.Lock()
		r.up.Close()
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// Addr is where the device sends.
func (r *Relay) Addr() string { return r.down.LocalAddr().String() }

// Server is the server's address.
func (r *Relay) Server() *net.UDPAddr { return r.to }

// Rebind moves the server side to a new source port.
func (r *Relay) Rebind() {
	r.t.Helper()
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	old := r.up
	r.up = up
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, _, err := up.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.downs = append(r.downs, append([]byte(nil), buf[:n]...))
			dev := r.device
			r.mu.Unlock()
			if dev != nil {
				_, _ = r.down.WriteToUDP(buf[:n], dev)
			}
		}
	}()
}

// Datagrams returns copies of what was forwarded so far: from the device,
// and to it.
func (r *Relay) Datagrams() (ups, downs [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.ups...), append([][]byte(nil), r.downs...)
}

package modemsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PTY serves a Sim on a real pseudo-terminal, so the host side opens it
// exactly as it opens /dev/ttyUSB2. Path is a stable symlink to the pty
// slave, like /dev/serial/by-id: an unplug fault removes it and, after the
// fault, points it at a new pty.
type PTY struct {
	sim  *Sim
	link string

	mu     sync.Mutex
	master *os.File
	closed bool
	wg     sync.WaitGroup
}

// ServePTY starts serving s on a new pty; the symlink is created in dir.
func ServePTY(s *Sim, dir string) (*PTY, error) {
	p := &PTY{sim: s, link: filepath.Join(dir, "modem")}
	if err := p.plug(); err != nil {
		return nil, err
	}
	s.SetUnplugHook(p.unplug)
	return p, nil
}

// Path is the device path the host opens.
func (p *PTY) Path() string { return p.link }

func (p *PTY) plug() error {
	master, slave, err := pty.Open()
	if err != nil {
		return fmt.Errorf("open pty: %w", err)
	}
	if err := makeRaw(slave); err != nil {
		master.Close()
		slave.Close()
		return err
	}
	tmp := p.link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(slave.Name(), tmp); err != nil {
		master.Close()
		slave.Close()
		return err
	}
	if err := os.Rename(tmp, p.link); err != nil {
		master.Close()
		slave.Close()
		return err
	}
	// The simulator does not keep the slave open: the host must see no
	// other process holding its port.
	slave.Close()
	p.mu.Lock()
	p.master = master
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.sim.Serve(masterConn{master})
	}()
	return nil
}

// unplug closes the pty (the host's reads fail, as when a USB modem goes)
// and plugs a new one in after d.
func (p *PTY) unplug(d time.Duration) {
	p.mu.Lock()
	os.Remove(p.link)
	if p.master != nil {
		p.master.Close()
		p.master = nil
	}
	p.mu.Unlock()
	time.AfterFunc(d, func() {
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if !closed {
			p.plug()
		}
	})
}

// Close stops serving and removes the symlink. A read blocked on the
// master (a host still holding the slave open) is cut short by a deadline
// where the pty is pollable; Close waits at most a second for it.
func (p *PTY) Close() error {
	p.mu.Lock()
	p.closed = true
	os.Remove(p.link)
	if p.master != nil {
		p.master.SetReadDeadline(time.Now())
		p.master.Close()
		p.master = nil
	}
	p.mu.Unlock()
	p.sim.Stop()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return nil
}

// masterConn reads the pty master, riding out EIO, which the master
// returns while no process has the slave open (between two opens by the
// host). It ends when the master is closed.
type masterConn struct{ f *os.File }

func (c masterConn) Read(b []byte) (int, error) {
	for {
		n, err := c.f.Read(b)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if err != nil && errors.Is(err, syscall.EIO) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return n, err
	}
}

// Write gives up after a second when nobody reads the slave, so a stalled
// host cannot wedge the simulator.
func (c masterConn) Write(b []byte) (int, error) {
	c.f.SetWriteDeadline(time.Now().Add(time.Second))
	return c.f.Write(b)
}

// makeRaw puts the pty slave in raw mode: no echo, no line editing, no CR
// translation — a modem's port, not a terminal.
func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("pty termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// ServeListener serves the simulator to each connection accepted on l (a
// TCP or unix socket: ser2net, a QEMU chardev). One at a time.
func ServeListener(s *Sim, l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		s.Serve(c)
		c.Close()
	}
}

// StartPTY loads the scenario file and serves it on a pty in a fresh
// temporary directory (mtcagent --modem sim:FILE). It returns the pty's
// path and stop, which closes the pty and removes the directory.
func StartPTY(file string) (path string, stop func(), err error) {
	sc, err := Load(file)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "mtcsim-")
	if err != nil {
		return "", nil, err
	}
	s := New(sc)
	p, err := ServePTY(s, dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	s.Start()
	return p.Path(), func() { p.Close(); os.RemoveAll(dir) }, nil
}

// ServeUntil serves s to each connection accepted on l until ctx ends: a
// new connection takes over (as a replugged cable would), for a QEMU serial
// chardev or `mtcagent run --modem tcp:HOST:PORT`. It closes l, and returns
// nil once ctx has ended and every connection is closed.
func ServeUntil(ctx context.Context, s *Sim, l net.Listener) error {
	stopL := context.AfterFunc(ctx, func() { l.Close() })
	defer stopL()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			s.Serve(c)
		}()
	}
}

// ListenAndServe starts the scenario sc's simulator and serves it on a
// socket (network "unix" or "tcp") until ctx ends (ServeUntil), for
// `mtcagent sim --listen`; ready is called with the bound address once
// the socket accepts connections.
func ListenAndServe(ctx context.Context, sc *Scenario, network, address string, ready func(net.Addr)) error {
	ln, err := net.Listen(network, address)
	if err != nil {
		return err
	}
	defer ln.Close()
	s := New(sc)
	s.Start()
	defer s.Stop()
	ready(ln.Addr())
	return ServeUntil(ctx, s, ln)
}

// ServeScenarioPTY parses a scenario's JSON, makes its Sim and serves it on
// a pseudo-terminal in dir: what tests of the serial path start from.
func ServeScenarioPTY(scenario []byte, dir string) (*Sim, *PTY, error) {
	sc, err := Parse(scenario)
	if err != nil {
		return nil, nil, err
	}
	s := New(sc)
	p, err := ServePTY(s, dir)
	if err != nil {
		return nil, nil, err
	}
	return s, p, nil
}

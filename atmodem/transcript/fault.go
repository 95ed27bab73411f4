package transcript

import (
	"errors"
	"io"
	"sync"
	"time"
)

// ErrVanished is what a vanished port returns from every Read and Write, as
// a USB serial port returns EIO once the modem is unplugged.
var ErrVanished = errors.New("transcript: port vanished (input/output error)")

// OneByte returns rwc with Reads of at most one byte: the worst a serial
// driver can do to a line splitter.
func OneByte(rwc io.ReadWriteCloser) io.ReadWriteCloser {
	return &oneByte{rwc}
}

type oneByte struct{ io.ReadWriteCloser }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.ReadWriteCloser.Read(p)
}

// Stall returns rwc whose Reads pause for d after every n bytes, as a
// modem that stops in the middle of a line. Close ends a pause at once.
func Stall(rwc io.ReadWriteCloser, n int, d time.Duration) io.ReadWriteCloser {
	if n < 1 {
		n = 1
	}
	return &stall{rwc: rwc, every: n, d: d, closed: make(chan struct{})}
}

type stall struct {
	rwc   io.ReadWriteCloser
	every int
	d     time.Duration

	mu     sync.Mutex
	count  int // bytes since the last pause
	closed chan struct{}
	once   sync.Once
}

func (s *stall) Read(p []byte) (int, error) {
	s.mu.Lock()
	pause := s.count >= s.every
	if pause {
		s.count = 0
	}
	left := s.every - s.count
	s.mu.Unlock()
	if pause {
		t := time.NewTimer(s.d)
		select {
		case <-t.C:
		case <-s.closed:
			t.Stop()
			return 0, ErrClosed
		}
	}
	if len(p) > left {
		p = p[:left]
	}
	n, err := s.rwc.Read(p)
	s.mu.Lock()
	s.count += n
	s.mu.Unlock()
	return n, err
}

func (s *stall) Write(p []byte) (int, error) { return s.rwc.Write(p) }

func (s *stall) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.rwc.Close()
}

// Vanish returns rwc that delivers the first after bytes and then fails
// every Read and Write with ErrVanished, cutting the read that crosses the
// limit short: a modem unplugged in the middle of a reply.
func Vanish(rwc io.ReadWriteCloser, after int) io.ReadWriteCloser {
	return &vanish{rwc: rwc, left: after}
}

type vanish struct {
	rwc  io.ReadWriteCloser
	mu   sync.Mutex
	left int
}

func (v *vanish) Read(p []byte) (int, error) {
	v.mu.Lock()
	left := v.left
	v.mu.Unlock()
	if left <= 0 {
		return 0, ErrVanished
	}
	if len(p) > left {
		p = p[:left]
	}
	n, err := v.rwc.Read(p)
	v.mu.Lock()
	v.left -= n
	v.mu.Unlock()
	return n, err
}

func (v *vanish) Write(p []byte) (int, error) {
	v.mu.Lock()
	gone := v.left <= 0
	v.mu.Unlock()
	if gone {
		return 0, ErrVanished
	}
	return v.rwc.Write(p)
}

func (v *vanish) Close() error { return v.rwc.Close() }

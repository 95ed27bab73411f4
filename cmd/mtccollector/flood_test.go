package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/internal/testexec"
)

// procKiB reads a "VmRSS"/"VmHWM"-style field of /proc/PID/status in KiB.
func procKiB(pid int, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}

// TestHandshakeFlood: 20,000 half-open DTLS handshakes in 10 s, from 254
// loopback addresses, each from a fresh port that never answers the
// collector. The collector stays under 100 MiB, a real device connects and
// delivers during the flood, and afterwards the memory goes back down.
func TestHandshakeFlood(t *testing.T) {
	total, span := 20000, 10*time.Second
	if testing.Short() || testexec.Emulated() {
		total = 2000
	}
	o := startOneDevice(t)
	p, devAddr := o.p, o.devAddr
	pid := p.cmd.Process.Pid
	base := procKiB(pid, "VmRSS")
	// What a flood takes is anonymous memory (heap, stacks); the resident
	// pages of the store's memory-mapped file come and go with the
	// device's own writes and are no flood's doing.
	baseAnon := procKiB(pid, "RssAnon")
	to, err := net.ResolveUDPAddr("udp", devAddr)
	if err != nil {
		t.Fatal(err)
	}
	hello := captureClientHello(t)

	var sent atomic.Int64
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		start := time.Now()
		for i := 0; i < total; i++ {
			// Paced over span; each from a fresh port on 127.0.0.2-255.
			if d := time.Duration(i) * span / time.Duration(total); time.Since(start) < d {
				time.Sleep(d - time.Since(start))
			}
			src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%254))}
			c, err := net.ListenUDP("udp", src)
			if err != nil {
				continue
			}
			if _, err := c.WriteToUDP(hello, to); err == nil {
				sent.Add(1)
			}
			c.Close()
		}
	}()

	// A real device during the flood.
	time.Sleep(span / 3)
	dialStart := time.Now()
	c, err := uplink.Dial(context.Background(), o.uplink)
	if err != nil {
		t.Fatalf("a real device during the flood (%d handshakes sent): %v\n%s", sent.Load(), err, p.out)
	}
	o.heartbeat(t, c, "during the flood")
	t.Logf("a device connected and delivered during the flood in %v", time.Since(dialStart).Round(time.Millisecond))
	<-floodDone
	peak := procKiB(pid, "VmHWM")
	t.Logf("%d half-open handshakes sent; collector RSS %d KiB before, peak %d KiB", sent.Load(), base, peak)
	if sent.Load() < int64(total)*9/10 {
		t.Fatalf("only %d of %d handshakes sent", sent.Load(), total)
	}
	if !testexec.Emulated() && peak > 100<<10 {
		t.Fatalf("collector peak RSS %d KiB during the flood, want < 100 MiB", peak)
	}
	// The pending handshakes time out; the memory goes back down.
	deadline := time.Now().Add(30 * time.Second)
	for {
		anon := procKiB(pid, "RssAnon")
		if testexec.Emulated() || anon < baseAnon+12<<10 {
			t.Logf("collector RSS %d KiB after the flood (anonymous %d KiB, from %d KiB before)", procKiB(pid, "VmRSS"), anon, baseAnon)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector anonymous RSS %d KiB 30 s after the flood, from %d KiB before (VmRSS %d KiB)", anon, baseAnon, procKiB(pid, "VmRSS"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Still serving.
	o.heartbeat(t, c, "after the flood")
	c.Close()
	if n := strings.Count(p.out.String(), "\n"); n > 200 {
		t.Fatalf("the flood wrote %d log lines: logs are not rate-limited\n%s", n, p.out.String()[:4000])
	}
	p.stop(t)
}

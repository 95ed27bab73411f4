package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
)

// BenchmarkIdleSessionMemory measures what an idle device session costs
// the collector (the serve binary, in its own process): its resident set
// before and after 500 devices have connected and gone quiet, per session.
// Queue mode keeps a silent device's session for session_idle, so this is
// what a fleet pays per device between heartbeats (docs/collector.md).
func BenchmarkIdleSessionMemory(b *testing.B) {
	const n = 500
	for i := 0; i < b.N; i++ {
		benchIdleSessions(b, n)
	}
}

func benchIdleSessions(b *testing.B, n int) {
	bin := buildCollector(b)
	dir := b.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pemb, _ := attest.MarshalPublicKeyPEM(pub)
	if err := os.WriteFile(filepath.Join(dir, "d.pem"), pemb, 0o644); err != nil {
		b.Fatal(err)
	}
	var text strings.Builder
	text.WriteString("[collector]\nheartbeat_timeout = 15m\nmdt_pull = off\n\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&text, "[device \"d%d\"]\npsk_identity = d%d\npsk = %s\npublic_key = d.pem\n\n", i, i, tDevPSK)
	}
	conf := filepath.Join(dir, "collector.conf")
	if err := os.WriteFile(conf, []byte(text.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	p, devAddr, _ := startServe(b, bin, conf, filepath.Join(dir, "state"), "127.0.0.1:0")
	pid := p.cmd.Process.Pid
	time.Sleep(2 * time.Second)
	base := procKiB(pid, "VmRSS")
	psk, _ := hex.DecodeString(tDevPSK)
	var clients []*uplink.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := uplink.Dial(context.Background(), uplink.Config{Addr: devAddr, Name: "collector", PSKIdentity: fmt.Sprintf("d%d", i), PSK: psk, Timeout: 10 * time.Second})
		if err != nil {
			b.Fatalf("device %d: %v", i, err)
		}
		clients = append(clients, c)
	}
	time.Sleep(5 * time.Second) // the challenges answered (4.04: no handler), then quiet
	rss := procKiB(pid, "VmRSS")
	b.Logf("collector RSS %d KiB before, %d KiB with %d idle device sessions", base, rss, n)
	b.ReportMetric(float64(rss-base)/float64(n), "KiB/idle-session")
}

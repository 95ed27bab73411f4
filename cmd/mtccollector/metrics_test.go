package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

var metricsRE = regexp.MustCompile(`metrics on http://(\S+)/metrics`)

// TestMetricsAndJSONLogs: with --metrics and --log-format json, every line
// the collector writes is one JSON object, and /metrics counts what a real
// device did in the Prometheus text format.
func TestMetricsAndJSONLogs(t *testing.T) {
	bin := buildCollector(t)
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pemb, _ := attest.MarshalPublicKeyPEM(pub)
	os.WriteFile(filepath.Join(dir, "d1.pem"), pemb, 0o644)
	conf := filepath.Join(dir, "collector.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[collector]\nheartbeat_timeout = 60s\n\n[device \"d1\"]\npsk_identity = d1\npsk = %s\npublic_key = d1.pem\n", tDevPSK)), 0o600)
	p, devAddr, _ := startServe(t, bin, conf, filepath.Join(dir, "state"), "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-format", "json")
	var m []string
	waitUntil(t, 10*time.Second, "the metrics address", func() bool { m = metricsRE.FindStringSubmatch(p.out.String()); return m != nil })

	iss, _ := attest.NewIssuer(priv, &attest.MemSequence{}, attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false }), 1)
	psk, _ := hex.DecodeString(tDevPSK)
	c, err := uplink.Dial(context.Background(), uplink.Config{Addr: devAddr, Name: "collector", PSKIdentity: "d1", PSK: psk, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 2; i++ {
		hb, _ := iss.SignHeartbeat()
		if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
			t.Fatalf("heartbeat: %v %v", code, err)
		}
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		"# TYPE mtccollector_device_sessions gauge\nmtccollector_device_sessions 1\n",
		`mtccollector_messages_total{kind="heartbeat"} 2`,
		"mtccollector_pending_handshakes 0\n",
		"mtccollector_store_write_seconds_count ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, text)
		}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	c.Close()
	p.stop(t)
	for _, l := range strings.Split(strings.TrimSpace(p.out.String()), "\n") {
		var v struct{ Time, Level, Msg string }
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Time == "" || v.Level == "" || v.Msg == "" {
			t.Errorf("not a JSON log line: %q (%v)", l, err)
		}
	}
}

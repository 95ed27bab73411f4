package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
)

var metricsRE = regexp.MustCompile(`metrics on http://(\S+)/metrics`)

// TestMetricsAndJSONLogs: with --metrics and --log-format json, every line
// the collector writes is one JSON object, and /metrics counts what a real
// device did in the Prometheus text format.
func TestMetricsAndJSONLogs(t *testing.T) {
	o := startOneDevice(t, "--metrics", "127.0.0.1:0", "--log-format", "json")
	p := o.p
	var m []string
	waitUntil(t, 10*time.Second, "the metrics address", func() bool { m = metricsRE.FindStringSubmatch(p.out.String()); return m != nil })

	c, err := uplink.Dial(context.Background(), o.uplink)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o.heartbeat(t, c, "one")
	o.heartbeat(t, c, "two")
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

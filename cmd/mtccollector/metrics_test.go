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

// TestPprof: --pprof needs --metrics; with both, the profiles and the
// free-memory hook answer on the metrics listener, next to /metrics.
func TestPprof(t *testing.T) {
	if code, _, errs := run(t, "serve", "--state", t.TempDir(), "--pprof"); code != 2 || !strings.Contains(errs, "--pprof needs --metrics") {
		t.Fatalf("--pprof without --metrics: exit %d\n%s", code, errs)
	}
	o := startOneDevice(t, "--metrics", "127.0.0.1:0", "--pprof")
	var m []string
	waitUntil(t, 10*time.Second, "the metrics address", func() bool { m = metricsRE.FindStringSubmatch(o.p.out.String()); return m != nil })
	base := "http://" + m[1]
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	resp, err := http.Post(base+"/debug/free-os-memory", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /debug/free-os-memory: %s", resp.Status)
	}
	resp, err = http.Get(base + "/debug/free-os-memory")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /debug/free-os-memory: %s, want 405", resp.Status)
	}
}

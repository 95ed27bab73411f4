package collector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// metrics are the collector's counters, exported in the Prometheus text
// format (WriteMetrics). Gauges are read at scrape time.
type metrics struct {
	mu       sync.Mutex
	messages map[string]uint64 // verified tokens by kind
	dups     uint64            // tokens already had (replays, re-sends)
	failures map[string]uint64 // verification failures by reason
	alarms   map[string]uint64 // by kind
	saves    uint64            // store writes
	saveSecs float64           // their total time
	parks    uint64            // device sessions parked (parking.go)
	resumes  uint64            // parked sessions restored
	storeErr map[string]uint64 // store operations failed, by operation (Server.storeError)
	started  time.Time
}

func newMetrics() *metrics {
	return &metrics{messages: map[string]uint64{}, failures: map[string]uint64{}, alarms: map[string]uint64{}, storeErr: map[string]uint64{}, started: time.Now()}
}

func (m *metrics) inc(c map[string]uint64, label string) {
	m.mu.Lock()
	c[label]++
	m.mu.Unlock()
}

func (m *metrics) count(c *uint64) {
	m.mu.Lock()
	*c++
	m.mu.Unlock()
}

func (m *metrics) saved(d time.Duration) {
	m.mu.Lock()
	m.saves++
	m.saveSecs += d.Seconds()
	m.mu.Unlock()
}

// WriteMetrics writes the collector's metrics in the Prometheus text
// exposition format (version 0.0.4).
func (s *Server) WriteMetrics(w io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	overdue, err := s.st.CountOverdue(ctx)
	cancel()
	if err != nil {
		s.logf("ERROR counting overdue devices: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), storeTimeout)
	devices, err := s.st.CountDevices(ctx)
	cancel()
	if err != nil {
		s.logf("ERROR counting devices: %v", err)
	}
	s.mu.Lock()
	sessions, queued := len(s.sessions), s.queue.n
	gates := slices.Clone(s.gates)
	s.mu.Unlock()
	pending, parked, dropped := 0, 0, uint64(0)
	for _, g := range gates {
		pending += g.Pending()
		parked += g.inner.parkedCount()
		dropped += g.inner.droppedCount()
	}
	m := s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	counter := func(name, help, label string, c map[string]uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s{%s=%q} %d\n", name, label, k, c[k])
		}
	}
	gauge("mtccollector_device_sessions", "Device DTLS sessions open.", float64(sessions))
	gauge("mtccollector_parked_sessions", "Idle device sessions parked: their DTLS state kept, no connection.", float64(parked))
	gauge("mtccollector_devices", "Devices registered.", float64(devices))
	gauge("mtccollector_overdue_devices", "Devices whose heartbeat is overdue.", float64(overdue))
	gauge("mtccollector_queued_requests", "Requests queued for devices not reachable now (queue mode).", float64(queued))
	gauge("mtccollector_pending_handshakes", "DTLS handshakes in progress, all listeners.", float64(pending))
	counter("mtccollector_messages_total", "Signed messages verified, by kind.", "kind", m.messages)
	fmt.Fprintf(w, "# HELP mtccollector_duplicates_total Tokens received again (already stored).\n# TYPE mtccollector_duplicates_total counter\nmtccollector_duplicates_total %d\n", m.dups)
	fmt.Fprintf(w, "# HELP mtccollector_session_parks_total Idle device sessions parked.\n# TYPE mtccollector_session_parks_total counter\nmtccollector_session_parks_total %d\n", m.parks)
	fmt.Fprintf(w, "# HELP mtccollector_session_resumes_total Parked sessions restored by the device's next record.\n# TYPE mtccollector_session_resumes_total counter\nmtccollector_session_resumes_total %d\n", m.resumes)
	fmt.Fprintf(w, "# HELP mtccollector_datagrams_dropped_total Datagrams of no session that were not a ClientHello, or beyond a session's queue, all listeners.\n# TYPE mtccollector_datagrams_dropped_total counter\nmtccollector_datagrams_dropped_total %d\n", dropped)
	counter("mtccollector_verify_failures_total", "Tokens refused, by reason.", "reason", m.failures)
	counter("mtccollector_alarms_total", "Alarms raised, by kind.", "kind", m.alarms)
	counter("mtccollector_store_errors_total", "Store operations that failed, by operation (their log lines are rate-limited).", "op", m.storeErr)
	fmt.Fprintf(w, "# HELP mtccollector_store_write_seconds Time spent writing the state store.\n# TYPE mtccollector_store_write_seconds summary\nmtccollector_store_write_seconds_sum %g\nmtccollector_store_write_seconds_count %d\n", m.saveSecs, m.saves)
	gauge("mtccollector_uptime_seconds", "Seconds since the collector started.", time.Since(m.started).Seconds())
}

// MetricsHandler serves WriteMetrics at /metrics.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		var b strings.Builder
		s.WriteMetrics(&b)
		io.WriteString(w, b.String())
	})
	return mux
}

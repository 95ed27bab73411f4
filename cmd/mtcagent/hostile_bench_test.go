//go:build !mtc_omit_sim

package main

import (
	"testing"
	"time"
)

// BenchmarkStatusEndlessReplyRSS: the peak RSS of `mtcagent status` (its
// own process) on a modem that answers AT+CGMR with lines without end.
func BenchmarkStatusEndlessReplyRSS(b *testing.B) {
	var peak int64
	for i := 0; i < b.N; i++ {
		_, rss, _ := statusPeakRSS(b, hostileScenarios["endless"])
		peak = max(peak, rss)
	}
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-rss")
}

// BenchmarkDaemonEndlessReplyRSS: the peak RSS of the daemon (its own
// process) polling, every second for 6 s, a modem that answers the
// registration query without end (goal <= 32 MiB).
func BenchmarkDaemonEndlessReplyRSS(b *testing.B) {
	var peak int64
	for i := 0; i < b.N; i++ {
		rss, _ := daemonPeakRSS(b, hostileScenarios["endless-cereg"], 6*time.Second)
		peak = max(peak, rss)
	}
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-rss")
}

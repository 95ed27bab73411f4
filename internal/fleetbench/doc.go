// Package fleetbench holds BenchmarkFleet, the collector's fleet benchmark
// (`make bench`; docs/collector.md, "Fleet benchmark"). It has no code
// outside its tests: a load generator of in-process devices that speak the
// real uplink (agent/uplink, CoAP over DTLS on loopback) to mtccollector
// serve processes built from this tree, on PostgreSQL (one and two
// instances, through internal/pgtest), on the embedded store, and to the
// collector of commit 13a4428 (the file store, state.json) as the baseline.
//
// The benchmark owns every process it starts (serve, the baseline's build,
// PostgreSQL through pgtest) and stops them when each sub-benchmark ends.
// It measures only what it can read from outside the collector: the
// devices' acknowledgements, the collector's --metrics endpoint,
// /proc/PID/io and /proc/PID/status.
package fleetbench

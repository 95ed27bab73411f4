// Package pcmsg is what the whole-system power-cut test (targets/qemu,
// TestPowerCut) writes: the outbox message and the MDT record numbered
// (boot, seq), made the same way on the host and in the guest, so that the
// host can tell intact from damaged by a hash alone. Test equipment only.
package pcmsg

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/mtcagent/mtcagent/mdtlog"
)

// Message is outbox message seq of boot: a header the guest parses back and
// 60 to 400 bytes of filler derived from both numbers (about the size of a
// signed event).
func Message(boot, seq uint64) []byte {
	b := fmt.Appendf(nil, "mtc-powercut boot=%d seq=%d ", boot, seq)
	n := 60 + int((boot*7919+seq*104729)%341)
	h := sha256.Sum256(b)
	for len(b) < n+len(h) {
		b = append(b, hex.EncodeToString(h[:])...)
		h = sha256.Sum256(h[:])
	}
	return b[:n+len(h)]
}

// Parse returns the numbers in a message's header.
func Parse(msg []byte) (boot, seq uint64, err error) {
	_, err = fmt.Sscanf(string(msg), "mtc-powercut boot=%d seq=%d ", &boot, &seq)
	return boot, seq, err
}

// Record is MDT record seq of boot: the numbers are the serving cell's TAC
// and cell id.
func Record(boot, seq uint64) mdtlog.Record {
	tac, cell := uint32(boot), seq
	rsrp, sinr := -80-float64(seq%40), float64(boot%30)
	return mdtlog.Record{
		Time:        time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(boot)*time.Hour + time.Duration(seq)*time.Second),
		ClockSynced: seq%2 == 0,
		Serving:     mdtlog.Cell{RAT: "lte", MCC: "001", MNC: "01", TAC: &tac, CellID: &cell, RSRP: &rsrp, SINR: &sinr},
	}
}

// RecordNumbers returns the numbers a record carries (false if it has none).
func RecordNumbers(r mdtlog.Record) (boot, seq uint64, ok bool) {
	if r.Serving.TAC == nil || r.Serving.CellID == nil {
		return 0, 0, false
	}
	return uint64(*r.Serving.TAC), *r.Serving.CellID, true
}

// Sum is the short content hash printed on the console: the first 8 bytes
// of SHA-256, in hex.
func Sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// RecordSum is Sum of the record's CBOR encoding.
func RecordSum(r mdtlog.Record) string {
	b, err := r.MarshalCBOR()
	if err != nil {
		return "unencodable"
	}
	return Sum(b)
}

package control

import (
	"errors"

	"github.com/mtcagent/mtcagent/mdtlog"
)

// OutboxState is the answer to CmdOutbox: messages signed and kept but
// not yet confirmed by the collector.
type OutboxState struct {
	Pending int   `json:"pending"`
	Bytes   int64 `json:"bytes"`
}

// Scan is mdtlog.ScanReport over the socket (errors as text).
type Scan struct {
	mdtlog.ScanReport
	Errors []string `json:"errors,omitempty"`
}

// ToScan is r in its wire form.
func ToScan(r mdtlog.ScanReport) Scan {
	s := Scan{ScanReport: r}
	for _, e := range r.Errors {
		s.Errors = append(s.Errors, e.Error())
	}
	s.ScanReport.Errors = nil
	return s
}

// Report turns the wire form back into a ScanReport.
func (s Scan) Report() mdtlog.ScanReport {
	r := s.ScanReport
	for _, e := range s.Errors {
		r.Errors = append(r.Errors, errors.New(e))
	}
	return r
}

// MDTStatus is the answer to CmdMDTStatus: mdtlog.Status over the socket.
type MDTStatus struct {
	mdtlog.Status
	Scan Scan `json:"scan"`
}

// MDTExport is the answer to CmdMDTExport: the exported file's bytes.
type MDTExport struct {
	Data []byte `json:"data"`
	Scan Scan   `json:"scan"`
}

// MDTRecords is the answer to CmdMDTRecords.
type MDTRecords struct {
	Entries []mdtlog.Entry `json:"entries"`
	Scan    Scan           `json:"scan"`
}

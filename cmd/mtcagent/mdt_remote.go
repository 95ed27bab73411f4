package main

import (
	"context"
	"io"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// While the daemon runs it owns the measurement log (and its lock): the
// mdt commands then go through its control socket, so `mdt clear` and
// `mdt optout` work at any time.
func init() {
	local := openMDT
	openMDT = func(stateDir string, opts mdtlog.Options) (mdtService, error) {
		r := &remoteMDT{stateDir: stateDir}
		if _, err := r.Status(); err == nil {
			return r, nil
		}
		return local(stateDir, opts)
	}
}

// remoteMDT is mdtService over the control socket.
type remoteMDT struct{ stateDir string }

func (r *remoteMDT) call(cmd string, args, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return agent.Call(ctx, r.stateDir, cmd, args, result)
}

func (r *remoteMDT) Consent(req mdtlog.ConsentRequest) (mdtlog.Consent, error) {
	var c mdtlog.Consent
	return c, r.call("mdt.consent", req, &c)
}

func (r *remoteMDT) OptOut(bool) (mdtlog.Destroyed, error) {
	var d mdtlog.Destroyed
	return d, r.call("mdt.optout", nil, &d)
}

func (r *remoteMDT) Clear() (mdtlog.Destroyed, error) {
	var d mdtlog.Destroyed
	return d, r.call("mdt.clear", nil, &d)
}

func (r *remoteMDT) Status() (mdtlog.Status, error) {
	var s agent.MDTStatus
	if err := r.call("mdt.status", nil, &s); err != nil {
		return mdtlog.Status{}, err
	}
	st := s.Status
	st.ScanReport = agent.FromScan(s.Scan)
	return st, nil
}

func (r *remoteMDT) Export(w io.Writer, format string) (mdtlog.ScanReport, error) {
	var res struct {
		Data []byte        `json:"data"`
		Scan agent.MDTScan `json:"scan"`
	}
	if err := r.call("mdt.export", format, &res); err != nil {
		return mdtlog.ScanReport{}, err
	}
	_, err := w.Write(res.Data)
	return agent.FromScan(res.Scan), err
}

func (r *remoteMDT) Records(fn func(mdtlog.Entry) error) (mdtlog.ScanReport, error) {
	var res struct {
		Entries []mdtlog.Entry `json:"entries"`
		Scan    agent.MDTScan  `json:"scan"`
	}
	if err := r.call("mdt.records", nil, &res); err != nil {
		return mdtlog.ScanReport{}, err
	}
	if fn != nil {
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				return agent.FromScan(res.Scan), err
			}
		}
	}
	return agent.FromScan(res.Scan), nil
}

func (r *remoteMDT) Close() error { return nil }

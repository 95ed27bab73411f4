package control

import (
	"context"
	"io"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// Client is the typed client of one daemon's control socket.
type Client struct {
	StateDir string
	// Timeout bounds each call that has no deadline of its own
	// (default 30s).
	Timeout time.Duration
}

func (c *Client) call(ctx context.Context, cmd string, args, result any) error {
	if _, ok := ctx.Deadline(); !ok {
		t := c.Timeout
		if t == 0 {
			t = connTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	return Call(ctx, c.StateDir, cmd, args, result)
}

// Status is the daemon's last reading of the modem, identifiers in clear.
func (c *Client) Status(ctx context.Context) (*atmodem.StatusJSON, error) {
	var j atmodem.StatusJSON
	if err := c.call(ctx, CmdStatus, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// Outbox is what the daemon's outbox holds undelivered.
func (c *Client) Outbox(ctx context.Context) (OutboxState, error) {
	var o OutboxState
	return o, c.call(ctx, CmdOutbox, nil, &o)
}

// MDT is the daemon's measurement log: the methods of *mdtlog.Store, so a
// command uses either the same way.
type MDT struct{ c *Client }

// MDT is the client of the daemon's measurement log.
func (c *Client) MDT() *MDT { return &MDT{c: c} }

// Consent records the user's consent to MDT logging.
func (m *MDT) Consent(req mdtlog.ConsentRequest) (mdtlog.Consent, error) {
	var r mdtlog.Consent
	return r, m.c.call(context.Background(), CmdMDTConsent, req, &r)
}

// OptOut stops MDT logging for good and erases the log; the daemon
// judges its own clock.
func (m *MDT) OptOut(bool) (mdtlog.Destroyed, error) {
	var d mdtlog.Destroyed
	return d, m.c.call(context.Background(), CmdMDTOptOut, nil, &d)
}

// Clear erases the measurement log.
func (m *MDT) Clear() (mdtlog.Destroyed, error) {
	var d mdtlog.Destroyed
	return d, m.c.call(context.Background(), CmdMDTClear, nil, &d)
}

// Status is the measurement log's status.
func (m *MDT) Status() (mdtlog.Status, error) {
	var s MDTStatus
	if err := m.c.call(context.Background(), CmdMDTStatus, nil, &s); err != nil {
		return mdtlog.Status{}, err
	}
	st := s.Status
	st.ScanReport = s.Scan.Report()
	return st, nil
}

// Export writes the decrypted log to w in format (mdtlog.FormatJSONL or
// FormatCBOR).
func (m *MDT) Export(w io.Writer, format string) (mdtlog.ScanReport, error) {
	var res MDTExport
	if err := m.c.call(context.Background(), CmdMDTExport, format, &res); err != nil {
		return mdtlog.ScanReport{}, err
	}
	_, err := w.Write(res.Data)
	return res.Scan.Report(), err
}

// Records calls fn for each stored record, oldest first.
func (m *MDT) Records(fn func(mdtlog.Entry) error) (mdtlog.ScanReport, error) {
	var res MDTRecords
	if err := m.c.call(context.Background(), CmdMDTRecords, nil, &res); err != nil {
		return mdtlog.ScanReport{}, err
	}
	if fn != nil {
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				return res.Scan.Report(), err
			}
		}
	}
	return res.Scan.Report(), nil
}

// Close is a no-op: each call is one connection.
func (m *MDT) Close() error { return nil }

// MDTService is what a command needs of the measurement log: an
// *mdtlog.Store opened directly, or the running daemon's (*MDT).
type MDTService interface {
	Consent(mdtlog.ConsentRequest) (mdtlog.Consent, error)
	OptOut(clockSynced bool) (mdtlog.Destroyed, error)
	Clear() (mdtlog.Destroyed, error)
	Status() (mdtlog.Status, error)
	Export(w io.Writer, format string) (mdtlog.ScanReport, error)
	Records(fn func(mdtlog.Entry) error) (mdtlog.ScanReport, error)
	Close() error
}

// OpenMDT opens the measurement log of stateDir for a command. While the
// daemon runs it owns the log (and its lock): the command then goes
// through its control socket, so `mdt clear` and `mdt optout` work at any
// time; otherwise the log is opened directly with opts.
func OpenMDT(stateDir string, opts mdtlog.Options) (MDTService, error) {
	r := (&Client{StateDir: stateDir}).MDT()
	if _, err := r.Status(); err == nil {
		return r, nil
	}
	s, err := mdtlog.Open(stateDir, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"sync"
)

// AdminSocket is the unix socket in the state directory through which
// mtccollector device|scs|grant|revoke|import reach a running serve. The
// embedded store's file is held by one process, so the commands cannot
// open it while serve runs; with PostgreSQL they go to the database
// directly. The socket is mode 0600 (it carries PSKs), for the user the
// collector runs as.
const AdminSocket = "admin.sock"

// ServeAdmin answers registry operations on the unix socket at path until
// the server closes, applying them to the server's store.
func (s *Server) ServeAdmin(path string) error {
	_ = os.Remove(path) // one a killed collector left
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("collector: admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("collector: admin socket: %w", err)
	}
	rs := rpc.NewServer()
	if err := rs.RegisterName("Admin", &adminRPC{r: s.st, h: s.st}); err != nil {
		l.Close()
		return err
	}
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	closed := false
	s.mu.Lock()
	s.closers = append(s.closers, func() {
		l.Close()
		os.Remove(path)
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = struct{}{}
			s.wg.Add(1)
			mu.Unlock()
			go func() {
				defer s.wg.Done()
				rs.ServeConn(c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	return nil
}

// AdminArgs is one registry operation over the admin socket.
type AdminArgs struct {
	Op      string
	Devices []*Device
	SCS     *SCS
	Replace bool
	Key     string // id, name or psk identity
	Pin     []byte
	IDs     []string
	Classes []string
	Class   string
	Scs     string
	History *HistoryQuery
}

// AdminReply is its answer; Err keeps the error's kind across the socket.
type AdminReply struct {
	Devices []*Device
	SCSs    []*SCS
	Grants  []Grant
	N       int
	OK      bool
	Page    *HistoryPage
	Err     *AdminError
}

// AdminError is an error across the admin socket.
type AdminError struct{ Kind, What, Value, Msg string }

func adminErr(err error) *AdminError {
	if err == nil {
		return nil
	}
	var d *DuplicateError
	var n *NotFoundError
	switch {
	case errors.As(err, &d):
		return &AdminError{Kind: "duplicate", What: d.What, Value: d.Value}
	case errors.As(err, &n):
		return &AdminError{Kind: "notfound", What: n.What, Value: n.Value}
	}
	return &AdminError{Msg: err.Error()}
}

func (e *AdminError) err() error {
	switch {
	case e == nil:
		return nil
	case e.Kind == "duplicate":
		return &DuplicateError{What: e.What, Value: e.Value}
	case e.Kind == "notfound":
		return &NotFoundError{What: e.What, Value: e.Value}
	}
	return errors.New(e.Msg)
}

type adminRPC struct {
	r Registry
	h HistoryReader
}

// HistoryReader reads a device's history: a Store, or a running serve
// through its admin socket (AdminClient).
type HistoryReader interface {
	History(ctx context.Context, device string, q HistoryQuery) (HistoryPage, error)
}

// Do runs one operation.
func (a *adminRPC) Do(in *AdminArgs, out *AdminReply) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*storeTimeout)
	defer cancel()
	var err error
	one := func(d *Device, e error) {
		if d != nil {
			out.Devices = []*Device{d}
		}
		err = e
	}
	oneSCS := func(x *SCS, e error) {
		if x != nil {
			out.SCSs = []*SCS{x}
		}
		err = e
	}
	switch in.Op {
	case "AddDevices":
		err = a.r.AddDevices(ctx, in.Devices, in.Replace)
	case "RemoveDevice":
		err = a.r.RemoveDevice(ctx, in.Key)
	case "DeviceByID":
		one(a.r.DeviceByID(ctx, in.Key))
	case "DeviceByPSK":
		one(a.r.DeviceByPSK(ctx, in.Key))
	case "DeviceByPin":
		one(a.r.DeviceByPin(ctx, in.Pin))
	case "ListDevices":
		out.Devices, err = a.r.ListDevices(ctx)
	case "CountDevices":
		out.N, err = a.r.CountDevices(ctx)
	case "AddSCS":
		err = a.r.AddSCS(ctx, in.SCS, in.Replace)
	case "RemoveSCS":
		err = a.r.RemoveSCS(ctx, in.Key)
	case "SCSByName":
		oneSCS(a.r.SCSByName(ctx, in.Key))
	case "SCSByPSK":
		oneSCS(a.r.SCSByPSK(ctx, in.Key))
	case "ListSCS":
		out.SCSs, err = a.r.ListSCS(ctx)
	case "Grant":
		err = a.r.Grant(ctx, in.Scs, in.IDs, in.Classes)
	case "Revoke":
		err = a.r.Revoke(ctx, in.Scs, in.IDs, in.Classes)
	case "Granted":
		out.OK, err = a.r.Granted(ctx, in.Scs, in.Key, in.Class)
	case "Grants":
		out.Grants, err = a.r.Grants(ctx, in.Scs)
	case "History":
		if in.History == nil {
			err = errors.New("history: no query")
			break
		}
		var p HistoryPage
		if p, err = a.h.History(ctx, in.Key, *in.History); err == nil {
			out.Page = &p
		}
	default:
		err = fmt.Errorf("unknown operation %q", in.Op)
	}
	out.Err = adminErr(err)
	return nil
}

// AdminClient is a Registry reached through a running serve's admin
// socket.
type AdminClient struct{ c *rpc.Client }

// DialAdmin connects to the admin socket in stateDir.
func DialAdmin(stateDir string) (*AdminClient, error) {
	c, err := rpc.Dial("unix", filepath.Join(stateDir, AdminSocket))
	if err != nil {
		return nil, err
	}
	return &AdminClient{c: c}, nil
}

// Close closes the connection.
func (a *AdminClient) Close() error { return a.c.Close() }

func (a *AdminClient) do(ctx context.Context, in *AdminArgs) (*AdminReply, error) {
	out := &AdminReply{}
	call := a.c.Go("Admin.Do", in, out, make(chan *rpc.Call, 1))
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-call.Done:
	}
	if call.Error != nil {
		return nil, fmt.Errorf("collector: admin socket: %w", call.Error)
	}
	return out, out.Err.err()
}

func (a *AdminClient) device(ctx context.Context, in *AdminArgs) (*Device, error) {
	out, err := a.do(ctx, in)
	if err != nil || len(out.Devices) == 0 {
		return nil, err
	}
	return out.Devices[0], nil
}

func (a *AdminClient) scs(ctx context.Context, in *AdminArgs) (*SCS, error) {
	out, err := a.do(ctx, in)
	if err != nil || len(out.SCSs) == 0 {
		return nil, err
	}
	return out.SCSs[0], nil
}

func (a *AdminClient) AddDevices(ctx context.Context, ds []*Device, replace bool) error {
	_, err := a.do(ctx, &AdminArgs{Op: "AddDevices", Devices: ds, Replace: replace})
	return err
}

func (a *AdminClient) RemoveDevice(ctx context.Context, id string) error {
	_, err := a.do(ctx, &AdminArgs{Op: "RemoveDevice", Key: id})
	return err
}

func (a *AdminClient) DeviceByID(ctx context.Context, id string) (*Device, error) {
	return a.device(ctx, &AdminArgs{Op: "DeviceByID", Key: id})
}

func (a *AdminClient) DeviceByPSK(ctx context.Context, identity string) (*Device, error) {
	return a.device(ctx, &AdminArgs{Op: "DeviceByPSK", Key: identity})
}

func (a *AdminClient) DeviceByPin(ctx context.Context, pin []byte) (*Device, error) {
	return a.device(ctx, &AdminArgs{Op: "DeviceByPin", Pin: pin})
}

func (a *AdminClient) ListDevices(ctx context.Context) ([]*Device, error) {
	out, err := a.do(ctx, &AdminArgs{Op: "ListDevices"})
	if err != nil {
		return nil, err
	}
	return out.Devices, nil
}

func (a *AdminClient) CountDevices(ctx context.Context) (int, error) {
	out, err := a.do(ctx, &AdminArgs{Op: "CountDevices"})
	if err != nil {
		return 0, err
	}
	return out.N, nil
}

func (a *AdminClient) AddSCS(ctx context.Context, x *SCS, replace bool) error {
	_, err := a.do(ctx, &AdminArgs{Op: "AddSCS", SCS: x, Replace: replace})
	return err
}

func (a *AdminClient) RemoveSCS(ctx context.Context, name string) error {
	_, err := a.do(ctx, &AdminArgs{Op: "RemoveSCS", Key: name})
	return err
}

func (a *AdminClient) SCSByName(ctx context.Context, name string) (*SCS, error) {
	return a.scs(ctx, &AdminArgs{Op: "SCSByName", Key: name})
}

func (a *AdminClient) SCSByPSK(ctx context.Context, identity string) (*SCS, error) {
	return a.scs(ctx, &AdminArgs{Op: "SCSByPSK", Key: identity})
}

func (a *AdminClient) ListSCS(ctx context.Context) ([]*SCS, error) {
	out, err := a.do(ctx, &AdminArgs{Op: "ListSCS"})
	if err != nil {
		return nil, err
	}
	return out.SCSs, nil
}

func (a *AdminClient) Grant(ctx context.Context, scs string, devices, classes []string) error {
	_, err := a.do(ctx, &AdminArgs{Op: "Grant", Scs: scs, IDs: devices, Classes: classes})
	return err
}

func (a *AdminClient) Revoke(ctx context.Context, scs string, devices, classes []string) error {
	_, err := a.do(ctx, &AdminArgs{Op: "Revoke", Scs: scs, IDs: devices, Classes: classes})
	return err
}

func (a *AdminClient) Granted(ctx context.Context, scs, device, class string) (bool, error) {
	out, err := a.do(ctx, &AdminArgs{Op: "Granted", Scs: scs, Key: device, Class: class})
	if err != nil {
		return false, err
	}
	return out.OK, nil
}

func (a *AdminClient) Grants(ctx context.Context, scs string) ([]Grant, error) {
	out, err := a.do(ctx, &AdminArgs{Op: "Grants", Scs: scs})
	if err != nil {
		return nil, err
	}
	return out.Grants, nil
}

// History reads a page of a device's history from the running serve.
func (a *AdminClient) History(ctx context.Context, device string, q HistoryQuery) (HistoryPage, error) {
	out, err := a.do(ctx, &AdminArgs{Op: "History", Key: device, History: &q})
	if err != nil {
		return HistoryPage{}, err
	}
	if out.Page == nil {
		return HistoryPage{}, errors.New("collector: admin socket: no history page in the answer")
	}
	return *out.Page, nil
}

var (
	_ Registry      = (*AdminClient)(nil)
	_ HistoryReader = (*AdminClient)(nil)
	_ HistoryReader = Store(nil)
)

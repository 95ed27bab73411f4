// Package control is the local control socket through which mtcagent's
// commands (status, mdt) talk to the running daemon: the protocol, its
// server and its typed client, in one place.
//
// The socket is control.sock in the state directory, mode 0600; the server
// admits only peers of the agent's own user or root. One request per
// connection: a JSON line {"cmd": "...", "args": ...} in, a JSON line
// {"result": ...} or {"error": "..."} out. The commands and their results
// are the Cmd* constants and the types below.
//
// Goroutines: Serve owns its accept loop and one goroutine per connection,
// and returns when ctx ends (connections in flight end by their deadline,
// answering with ctx already done).
// Errors: ErrNotRunning when no daemon answers; a daemon's refusal is an
// error carrying its text. Tests serve a Handler on a temporary directory.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The control commands.
const (
	CmdStatus     = "status"      // → the owner's atmodem.StatusJSON (identifiers in clear)
	CmdEvents     = "events"      // → the recent events
	CmdOutbox     = "outbox"      // → OutboxState
	CmdMDTConsent = "mdt.consent" // mdtlog.ConsentRequest → mdtlog.Consent
	CmdMDTOptOut  = "mdt.optout"  // → mdtlog.Destroyed
	CmdMDTClear   = "mdt.clear"   // → mdtlog.Destroyed
	CmdMDTStatus  = "mdt.status"  // → MDTStatus
	CmdMDTExport  = "mdt.export"  // format string → MDTExport
	CmdMDTRecords = "mdt.records" // → MDTRecords
)

// Socket is the control socket's path in stateDir.
func Socket(stateDir string) string { return filepath.Join(stateDir, "control.sock") }

// Request is a control request.
type Request struct {
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is a control response: Error set on failure.
type Response struct {
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Handler answers one request; its result is sent as JSON.
type Handler func(ctx context.Context, req Request) (any, error)

// connTimeout bounds one connection, request and answer.
const connTimeout = 30 * time.Second

// Listen opens the control socket of stateDir, owner-only. It refuses
// while another agent answers there.
func Listen(stateDir string) (net.Listener, error) {
	path := Socket(stateDir)
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent is running (control socket %s answers)", path)
	}
	os.Remove(path)
	old := unix.Umask(0o077)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(path, 0o600)
	return l, nil
}

// Serve answers requests on l (from Listen) with h until ctx ends, then
// closes l and removes the socket.
func Serve(ctx context.Context, l net.Listener, h Handler) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer os.Remove(l.Addr().String())
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go serveConn(ctx, c.(*net.UnixConn), h)
	}
}

func serveConn(ctx context.Context, c *net.UnixConn, h Handler) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(connTimeout))
	enc := json.NewEncoder(c)
	if err := checkPeer(c); err != nil {
		enc.Encode(Response{Error: err.Error()})
		return
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	res, err := h(ctx, req)
	if err != nil {
		enc.Encode(Response{Error: err.Error()})
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		enc.Encode(Response{Error: err.Error()})
		return
	}
	enc.Encode(Response{Result: b})
}

// checkPeer admits only the agent's own user and root.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return errors.New("permission denied: not the agent's user")
	}
	return nil
}

// ErrNotRunning: no daemon answers on the control socket.
var ErrNotRunning = errors.New("agent not running")

// Call sends one request to the daemon of stateDir and decodes its result
// into result (unless nil).
func Call(ctx context.Context, stateDir string, cmd string, args any, result any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", Socket(stateDir))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := Request{Cmd: cmd}
	if args != nil {
		if req.Args, err = json.Marshal(args); err != nil {
			return err
		}
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	if result != nil {
		return json.Unmarshal(resp.Result, result)
	}
	return nil
}

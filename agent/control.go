package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ControlSocket is the local socket (in the state directory, mode 0600,
// peers checked to be the agent's own user or root) through which the
// status, mdt, privacy and report commands talk to the running daemon.
// One request per connection: a JSON line {"cmd": "..."} in, a JSON line
// out.
func ControlSocket(stateDir string) string { return filepath.Join(stateDir, "control.sock") }

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

// ControlHandler answers one request.
type ControlHandler func(ctx context.Context, req Request) (any, error)

// ServeControl listens on the control socket until ctx ends.
func ServeControl(ctx context.Context, stateDir string, h ControlHandler) error {
	path := ControlSocket(stateDir)
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("another agent is running (control socket %s answers)", path)
	}
	os.Remove(path)
	old := unix.Umask(0o077)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(path, 0o600)
	go func() { <-ctx.Done(); l.Close() }()
	defer os.Remove(path)
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

func serveConn(ctx context.Context, c *net.UnixConn, h ControlHandler) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
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

// Call sends one request to the running daemon.
func Call(ctx context.Context, stateDir string, cmd string, args any, result any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", ControlSocket(stateDir))
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

// OutboxState is the answer to the "outbox" control request: messages
// signed and kept but not yet confirmed by the collector.
type OutboxState struct {
	Pending int   `json:"pending"`
	Bytes   int64 `json:"bytes"`
}

// Handle answers the agent's own control requests: status (the owner's
// view, identifiers in clear, as `mtcagent status` prints them), events
// and outbox.
func (a *Agent) Handle(ctx context.Context, req Request) (any, error) {
	switch req.Cmd {
	case "status":
		st := a.Status()
		if st == nil {
			return nil, errors.New("no reading of the modem yet")
		}
		return st.Revealed(), nil
	case "events":
		return a.Recent(), nil
	case "outbox":
		l, ok := a.deps.Outbox.(interface{ Len() (int, int64) })
		if !ok {
			return nil, errors.New("this agent's outbox does not count its messages")
		}
		n, b := l.Len()
		return OutboxState{Pending: n, Bytes: b}, nil
	}
	if strings.HasPrefix(req.Cmd, "mdt.") {
		return a.handleMDT(req)
	}
	return nil, fmt.Errorf("unknown control command %q", req.Cmd)
}

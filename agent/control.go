package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mtcagent/mtcagent/agent/control"
)

// Handle answers the agent's control requests (package control: the
// protocol, server and client): status (the owner's
// view, identifiers in clear, as `mtcagent status` prints them), events
// and outbox.
func (a *Agent) Handle(ctx context.Context, req control.Request) (any, error) {
	switch req.Cmd {
	case control.CmdStatus:
		st := a.Status()
		if st == nil {
			return nil, errors.New("no reading of the modem yet")
		}
		return st.Revealed(), nil
	case control.CmdEvents:
		return a.Recent(), nil
	case control.CmdOutbox:
		l, ok := a.deps.Outbox.(interface{ Len() (int, int64) })
		if !ok {
			return nil, errors.New("this agent's outbox does not count its messages")
		}
		n, b := l.Len()
		return control.OutboxState{Pending: n, Bytes: b}, nil
	}
	if strings.HasPrefix(req.Cmd, "mdt.") {
		return a.handleMDT(req)
	}
	return nil, fmt.Errorf("unknown control command %q", req.Cmd)
}

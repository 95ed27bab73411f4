package uplink

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/wire"
)

// ErrTriggerReplay is wrapped when a trigger's counter is not new;
// ErrTriggerStale when its time is out of window; ErrTriggerAction when the
// device does not implement its action. (A malformed trigger is
// wire.ErrTrigger.)
var (
	ErrTriggerAction = errors.New("unknown trigger action")
	ErrTriggerReplay = errors.New("trigger replayed: counter not new")
	ErrTriggerStale  = errors.New("trigger not fresh")
)

// TriggerGuard remembers the last trigger counter accepted from one server.
// With a path it is durable (atomic rename), so a replay after a restart is
// refused too. Safe for concurrent use.
type TriggerGuard struct {
	mu     sync.Mutex
	path   string
	last   uint64
	window time.Duration
}

// OpenTriggerGuard loads the guard kept at path ("" keeps it in memory).
// window bounds |now - Trigger.Time| when the caller's clock is
// synchronised; 0 means 5 minutes.
func OpenTriggerGuard(path string, window time.Duration) (*TriggerGuard, error) {
	if window <= 0 {
		window = 5 * time.Minute
	}
	g := &TriggerGuard{path: path, window: window}
	if path == "" {
		return g, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return g, nil
	case err != nil:
		return nil, fmt.Errorf("uplink: trigger guard: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("uplink: trigger guard %s: corrupt", path)
	}
	g.last = n
	return g, nil
}

// Last is the last accepted counter.
func (g *TriggerGuard) Last() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// Accept checks t and, when it passes, records its counter (durably) before
// returning nil; the caller acts on the trigger only then. clockSynced says
// whether now can judge t.Time.
func (g *TriggerGuard) Accept(t wire.Trigger, now time.Time, clockSynced bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.Counter <= g.last {
		return fmt.Errorf("uplink: trigger %d: %w (last %d)", t.Counter, ErrTriggerReplay, g.last)
	}
	if clockSynced {
		d := now.Sub(t.Time)
		if d < 0 {
			d = -d
		}
		if d > g.window {
			return fmt.Errorf("uplink: trigger %d: %w (issued %s from now)", t.Counter, ErrTriggerStale, d.Round(time.Second))
		}
	}
	if g.path != "" {
		if err := fsutil.WriteFileAtomic(g.path, []byte(strconv.FormatUint(t.Counter, 10)+"\n"), 0o600); err != nil {
			return fmt.Errorf("uplink: trigger guard: %w", err)
		}
	}
	g.last = t.Counter
	return nil
}

package collector

import (
	"fmt"
	"slices"
	"sync"
)

// Group commit. The RecordDevice calls waiting at one moment share one
// transaction, each fn run in turn on its device's state: under load a
// transaction's fixed cost (on PostgreSQL BEGIN, COMMIT and the round
// trips, on bbolt the pages it rewrites and its fsync) is paid once for
// many messages instead of once for each; alone, a call runs at once in
// a transaction of its own. Each caller returns only when its change is
// committed, or with the error that kept it out.
//
// A fn's error concerns its call alone: its changes are dropped and the
// next call for the same device sees the state before it. A failure of
// the store fails every call of the batch (nothing of it is stored), as
// it would have failed each alone.

// recordCall is one RecordDevice call waiting for its batch.
type recordCall struct {
	id   string
	fn   func(*DeviceState, *HistoryBatch) error
	done chan error // buffered: the batch never waits on its caller
	told bool       // done has the outcome
}

// call runs fn; a panic fails this call alone (it runs on the batch's
// goroutine, not its caller's).
func (c *recordCall) call(ds *DeviceState, h *HistoryBatch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("collector: store: update device %s: panic: %v", c.id, r)
		}
	}()
	return c.fn(ds, h)
}

// tell gives the caller its outcome, once.
func (c *recordCall) tell(err error) {
	if !c.told {
		c.told = true
		c.done <- err
	}
}

// groupCommit queues the calls and runs the batches: at most maxBatch
// calls each, at most maxRunning at once.
type groupCommit struct {
	run                  func([]*recordCall) // one batch; tells every call
	maxBatch, maxRunning int

	mu      sync.Mutex
	waiting []*recordCall
	running int
}

// do queues one call and waits for its outcome.
func (g *groupCommit) do(id string, fn func(*DeviceState, *HistoryBatch) error) error {
	c := &recordCall{id: id, fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.waiting = append(g.waiting, c)
	start := g.running < g.maxRunning
	if start {
		g.running++
	}
	g.mu.Unlock()
	if start {
		go g.drain()
	}
	return <-c.done
}

// drain runs batches of what is waiting until nothing is.
func (g *groupCommit) drain() {
	for {
		g.mu.Lock()
		n := min(len(g.waiting), g.maxBatch)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		calls := slices.Clone(g.waiting[:n])
		g.waiting = slices.Delete(g.waiting, 0, n)
		if len(g.waiting) == 0 {
			g.waiting = nil // let a burst's backing array go
		}
		g.mu.Unlock()
		g.run(calls)
	}
}

// tellAll gives every call not told yet the batch's outcome.
func tellAll(calls []*recordCall, err error) {
	for _, c := range calls {
		c.tell(err)
	}
}

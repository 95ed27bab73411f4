package attest

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// DefaultSeqBlock is how many sequence numbers are reserved per write of the
// bound file: one flash write per 64 tokens, at most 63 numbers skipped by a
// crash or power cut.
const DefaultSeqBlock = 64

// ErrCounterCorrupt is wrapped when a counter file cannot be read back. The
// counter fails closed: it never restarts from zero on its own.
var ErrCounterCorrupt = errors.New("attest: counter file corrupt")

// ErrCounterClosed is returned by Next after Close.
var ErrCounterClosed = errors.New("attest: counter closed")

// CounterError names the counter file and what went wrong.
type CounterError struct {
	Path string
	Op   string // "read", "write", "lock"
	Err  error
}

func (e *CounterError) Error() string {
	return fmt.Sprintf("attest: %s counter %s: %v", e.Op, e.Path, e.Err)
}

func (e *CounterError) Unwrap() error { return e.Err }

// Counter issues sequence numbers that never repeat, even across power cuts
// and across processes sharing the state directory. It keeps a reserved
// upper bound in <stateDir>/seq.bound: before issuing any number of a block
// it writes, fsyncs and renames the new bound into place, so after a crash
// the next process starts above anything that may have been issued. Numbers
// start at 1; gaps appear after a crash (at most a block) and where two
// processes interleave blocks. Safe for concurrent use.
type Counter struct {
	mu     sync.Mutex
	dir    string
	block  uint64
	next   uint64 // next number to issue
	bound  uint64 // numbers < bound are reserved by this Counter
	closed bool
}

// OpenCounter opens the sequence counter in stateDir. block is the
// reservation size (0 means DefaultSeqBlock).
func OpenCounter(stateDir string, block uint64) (*Counter, error) {
	if block == 0 {
		block = DefaultSeqBlock
	}
	if err := ensureStateDir(stateDir); err != nil {
		return nil, err
	}
	c := &Counter{dir: stateDir, block: block}
	// Check the file is readable now rather than at the first token.
	unlock, err := lockDir(stateDir)
	if err != nil {
		return nil, &CounterError{Path: c.path(), Op: "lock", Err: err}
	}
	defer unlock()
	if _, err := readCounterFile(c.path()); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Counter) path() string { return filepath.Join(c.dir, SeqFile) }

// Next returns the next sequence number. It is issued only once its block
// is durably reserved.
func (c *Counter) Next() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrCounterClosed
	}
	if c.next >= c.bound {
		if err := c.reserve(); err != nil {
			return 0, err
		}
	}
	n := c.next
	c.next++
	return n, nil
}

// reserve takes the next block from the file under the directory lock.
func (c *Counter) reserve() error {
	unlock, err := lockDir(c.dir)
	if err != nil {
		return &CounterError{Path: c.path(), Op: "lock", Err: err}
	}
	defer unlock()
	start, err := readCounterFile(c.path())
	if err != nil {
		return err
	}
	if start == 0 {
		start = 1
	}
	if start > math.MaxUint64-c.block {
		return &CounterError{Path: c.path(), Op: "reserve", Err: errors.New("sequence space exhausted")}
	}
	bound := start + c.block
	if err := writeCounterFile(c.path(), bound); err != nil {
		return err
	}
	c.next, c.bound = start, bound
	return nil
}

// Close gives back the unused rest of the block when no other process has
// reserved after it, so a clean restart leaves no gap.
func (c *Counter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.next >= c.bound {
		return nil
	}
	unlock, err := lockDir(c.dir)
	if err != nil {
		return &CounterError{Path: c.path(), Op: "lock", Err: err}
	}
	defer unlock()
	cur, err := readCounterFile(c.path())
	if err != nil {
		return err
	}
	if cur != c.bound {
		return nil
	}
	return writeCounterFile(c.path(), c.next)
}

// IncrementBootCount adds one to <stateDir>/bootcount and returns the new
// value. The daemon calls it once per start.
func IncrementBootCount(stateDir string) (uint64, error) {
	if err := ensureStateDir(stateDir); err != nil {
		return 0, err
	}
	path := filepath.Join(stateDir, BootCountFile)
	unlock, err := lockDir(stateDir)
	if err != nil {
		return 0, &CounterError{Path: path, Op: "lock", Err: err}
	}
	defer unlock()
	n, err := readCounterFile(path)
	if err != nil {
		return 0, err
	}
	n++
	if err := writeCounterFile(path, n); err != nil {
		return 0, err
	}
	return n, nil
}

// BootCount returns the current boot count without changing it (0 when
// the agent never started).
func BootCount(stateDir string) (uint64, error) {
	return readCounterFile(filepath.Join(stateDir, BootCountFile))
}

// The counter file is one line: "mtcagent-counter v1 <decimal> <crc32 hex>".
const counterMagic = "mtcagent-counter v1 "

func counterLine(n uint64) string {
	v := strconv.FormatUint(n, 10)
	return fmt.Sprintf("%s%s %08x\n", counterMagic, v, crc32.ChecksumIEEE([]byte(v)))
}

// readCounterFile returns 0 for a missing file and fails on anything else
// that is not a well-formed line.
func readCounterFile(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, &CounterError{Path: path, Op: "read", Err: err}
	}
	bad := &CounterError{Path: path, Op: "read", Err: ErrCounterCorrupt}
	s, ok := strings.CutPrefix(string(b), counterMagic)
	if !ok || !strings.HasSuffix(s, "\n") {
		return 0, bad
	}
	v, sum, ok := strings.Cut(strings.TrimSuffix(s, "\n"), " ")
	if !ok {
		return 0, bad
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(v))) != sum {
		return 0, bad
	}
	return n, nil
}

func writeCounterFile(path string, n uint64) error {
	if err := fsutil.WriteFileAtomic(path, []byte(counterLine(n)), 0o600); err != nil {
		return &CounterError{Path: path, Op: "write", Err: err}
	}
	return nil
}

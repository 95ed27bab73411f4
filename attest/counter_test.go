package attest

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mtcagent/mtcagent/internal/testexec"
)

func TestCounterMonotonicAndResume(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenCounter(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := 0; i < 10; i++ {
		n, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if n <= last {
			t.Fatalf("number %d after %d", n, last)
		}
		last = n
	}
	if last != 10 {
		t.Fatalf("first ten numbers end at %d, want 10", last)
	}
	// A second opener (another process, or after a crash) starts above the
	// reserved bound: 10 issued from block 9..12, so 13.
	c2, err := OpenCounter(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	n, err := c2.Next()
	if err != nil || n != 13 {
		t.Fatalf("resume: got %d, %v; want 13", n, err)
	}
	// Closing c gives nothing back: c2 reserved after it.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(); !errors.Is(err, ErrCounterClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	// Closing c2 (the last reserver) gives back 14..16.
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	c3, _ := OpenCounter(dir, 4)
	if n, _ := c3.Next(); n != 14 {
		t.Fatalf("after clean close: got %d, want 14", n)
	}
}

func TestCounterConcurrent(t *testing.T) {
	dir := t.TempDir()
	a, _ := OpenCounter(dir, 2)
	b, _ := OpenCounter(dir, 3)
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for _, c := range []*Counter{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				n, err := c.Next()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("number %d issued twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCounterCorruptFailsClosed(t *testing.T) {
	for _, content := range []string{
		"", "garbage\n", counterMagic + "12 00000000\n", counterMagic + "12\n",
		strings.TrimSuffix(counterLine(12), "\n"), counterLine(12)[:len(counterLine(12))-4],
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SeqFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenCounter(dir, 0); !errors.Is(err, ErrCounterCorrupt) {
			t.Errorf("content %q: got %v, want ErrCounterCorrupt", content, err)
		}
	}
}

func TestBootCount(t *testing.T) {
	dir := t.TempDir()
	if n, err := BootCount(dir); err != nil || n != 0 {
		t.Fatalf("fresh: %d %v", n, err)
	}
	for want := uint64(1); want <= 3; want++ {
		n, err := IncrementBootCount(dir)
		if err != nil || n != want {
			t.Fatalf("increment: %d %v, want %d", n, err, want)
		}
	}
	if n, _ := BootCount(dir); n != 3 {
		t.Fatalf("read back %d", n)
	}
}

// TestCounterPowerCut kills a child process with SIGKILL while it issues
// numbers (often in the middle of a reservation) and checks that no number
// is ever issued twice, and that each run starts above everything before.
func TestCounterPowerCut(t *testing.T) {
	runs := 50
	if testing.Short() || testexec.Emulated() {
		runs = 10
	}
	dir := t.TempDir()
	seen := map[uint64]bool{}
	var max uint64
	total := 0
	for run := 0; run < runs; run++ {
		cmd, err := testexec.Self()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), childCounterEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after 0..10 numbers: run 0 kills before the first line; with
		// blocks of 3 most kills land near or inside a reservation.
		killAfter := (run * 7) % 11
		r := bufio.NewReader(out)
		var got []uint64
		killed := false
		for {
			if !killed && len(got) >= killAfter {
				cmd.Process.Kill()
				killed = true
			}
			line, err := r.ReadString('\n')
			if err != nil {
				if err != io.EOF {
					t.Fatal(err)
				}
				break // a partial last line was cut by the kill
			}
			n, perr := strconv.ParseUint(strings.TrimSuffix(line, "\n"), 10, 64)
			if perr != nil {
				t.Fatalf("run %d: bad line %q", run, line)
			}
			got = append(got, n)
		}
		cmd.Wait()
		if strings.Contains(stderr.String(), "child:") {
			t.Fatalf("run %d: child failed: %s", run, stderr.String())
		}
		for i, n := range got {
			if seen[n] {
				t.Fatalf("run %d: number %d issued twice", run, n)
			}
			if i == 0 && n <= max {
				t.Fatalf("run %d started at %d, not above %d", run, n, max)
			}
			seen[n] = true
			if n > max {
				max = n
			}
		}
		total += len(got)
	}
	if total == 0 {
		t.Fatal("no numbers issued at all")
	}
	// The file is still readable: a new counter continues above everything.
	c, err := OpenCounter(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Next(); err != nil || n <= max {
		t.Fatalf("after runs: %d %v, max was %d", n, err, max)
	}
}

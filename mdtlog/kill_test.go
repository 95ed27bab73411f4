package mdtlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/testexec"
)

const (
	killChildEnv = "MDTLOG_KILL_CHILD_DIR"
	killStartEnv = "MDTLOG_KILL_CHILD_START"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		os.Exit(killChild(dir))
	}
	os.Exit(m.Run())
}

// killChild appends records start, start+1, ... and prints each index only
// after Append returned, i.e. once the record is durable. The parent kills
// it at a random moment; the loop is bounded in case it never does.
func killChild(dir string) int {
	start, err := strconv.Atoi(os.Getenv(killStartEnv))
	if err != nil {
		return 3
	}
	s, err := Open(dir, Options{SegmentBytes: 8 << 10, MaxBytes: 64 << 20, Retention: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 3
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := start; i < start+100000 && time.Now().Before(deadline); i++ {
		if err := s.Append(testRecord(i)); err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			return 3
		}
		if _, err := fmt.Fprintf(os.Stdout, "%d\n", i); err != nil {
			return 3
		}
	}
	return 0
}

// TestKillDurability kills an appending child with SIGKILL at random
// moments; every record it reported durable must read back intact, and no
// corrupt record may ever be accepted.
func TestKillDurability(t *testing.T) {
	rounds := 200 // the acceptance figure, in the plain native run
	switch {
	case os.Getenv("MDTLOG_KILL_ROUNDS") != "":
		rounds, _ = strconv.Atoi(os.Getenv("MDTLOG_KILL_ROUNDS"))
	case testing.Short() || testexec.Emulated():
		rounds = 20
	case raceEnabled:
		rounds = 60
	}
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	consent(t, s)
	s.Close()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	reported := map[int]bool{}
	next := 0
	for round := range rounds {
		cmd, err := testexec.Self()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir, killStartEnv+"="+strconv.Itoa(next))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		read := func() bool {
			if !sc.Scan() {
				return false
			}
			i, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("round %d: child said %q", round, sc.Text())
			}
			reported[i] = true
			next = max(next, i+1)
			return true
		}
		// Kill after a random number of durable appends plus a random
		// delay, so the kill lands at any point of an append (or of the
		// start-up repair when the count is 0).
		wait := rng.IntN(6)
		for range wait {
			if !read() {
				break
			}
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill()
		for read() {
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}

	s = openTest(t, dir, Options{Retention: -1, MaxBytes: 64 << 20})
	found := map[int]bool{}
	rep, err := s.Records(func(e Entry) error {
		i := int(*e.Record.Serving.CellID - 27447553)
		if !reflect.DeepEqual(e.Record, testRecord(i)) {
			return fmt.Errorf("record at %v does not match what was written", e.Pos)
		}
		found[i] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 {
		t.Fatalf("%d records failed authentication after kills: %v", rep.Failed, rep.Errors)
	}
	if rep.Torn > 1 {
		t.Fatalf("%d torn segments; only the last may be torn before repair", rep.Torn)
	}
	lost := 0
	for i := range reported {
		if !found[i] {
			lost++
		}
	}
	if lost != 0 {
		t.Fatalf("%d of %d records reported durable were lost", lost, len(reported))
	}
	t.Logf("%d kills, %d records reported durable, all read back; %d segments, %d torn", rounds, len(reported), rep.Segments, rep.Torn)
	if len(reported) == 0 {
		t.Fatal("no child ever reported a record")
	}
}

// TestSegmentCreateKilled: a kill while a segment was being created
// leaves only its temporary file, which the next open removes; no
// segment without a header is ever seen (a kill right after the file was
// created used to leave one, which reading counted as a failed record).
func TestSegmentCreateKilled(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{Retention: -1, MaxBytes: 64 << 20})
	consent(t, s)
	if err := s.Append(testRecord(0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	mdt := Dir(dir)
	left := filepath.Join(mdt, segTempPrefix+segName(99))
	if err := os.WriteFile(left, []byte("MTC"), 0o600); err != nil { // a header cut short
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{Retention: -1, MaxBytes: 64 << 20})
	defer s.Close()
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the interrupted segment's temporary file is still there: %v", err)
	}
	rep, err := s.Records(func(Entry) error { return nil })
	if err != nil || rep.Failed != 0 {
		t.Fatalf("records after the interrupted create: %+v, %v", rep, err)
	}
	ents, _ := os.ReadDir(mdt)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".seg") {
			t.Fatalf("left in the log directory: %s", e.Name())
		}
	}
}

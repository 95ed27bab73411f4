package outbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/internal/testexec"
)

const (
	killDirEnv   = "OUTBOX_KILL_CHILD_DIR"
	killRoundEnv = "OUTBOX_KILL_CHILD_ROUND"
	// killFaultsEnv makes the child's disk fail one write, sync or file
	// creation in five (ENOSPC or EIO, writes cut in half); the child
	// retries, as the agent does.
	killFaultsEnv = "OUTBOX_KILL_CHILD_FAULTS"
)

// killOptions make segments roll and get compacted often.
var killOptions = Options{SegmentBytes: 2048, MaxMessages: 400}

func TestMain(m *testing.M) {
	if dir := os.Getenv(killDirEnv); dir != "" {
		os.Exit(killChild(dir, os.Getenv(killRoundEnv), os.Getenv(killFaultsEnv) != ""))
	}
	os.Exit(m.Run())
}

// killChild appends and acknowledges at random until killed, printing
//
//	I key    before Append(msgFor(key))
//	A id key after Append returned id
//	k id     before Ack(id)
//	K id     after Ack returned
//	F key    Append failed (faults only; the same key is tried again)
//	X id     Ack failed (faults only)
//
// Each line is one write to an unbuffered pipe, so the parent sees a line
// only after the step it announces happened.
func killChild(dir, round string, faulty bool) int {
	o, err := Open(dir, killOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 3
	}
	seed, _ := strconv.Atoi(round)
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(time.Now().UnixNano())))
	if faulty {
		err := syscall.ENOSPC
		if seed%2 == 1 {
			err = syscall.EIO
		}
		injectFaults(o, &faults{err: err, rng: rand.New(rand.NewPCG(uint64(seed), 5)), oneIn: 5})
	}
	deadline := time.Now().Add(30 * time.Second)
	say := func(format string, args ...any) bool {
		_, err := fmt.Fprintf(os.Stdout, format+"\n", args...)
		return err == nil
	}
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		n, _ := o.Len()
		if n < 30 && rng.IntN(3) > 0 || n == 0 {
			key := fmt.Sprintf("r%s-%d", round, i)
			if !say("I %s", key) {
				return 3
			}
			id, err := o.Append(msgFor(key))
			for faulty && err != nil && fsutil.FaultOf(err) != "" {
				if !say("F %s", key) {
					return 3
				}
				id, err = o.Append(msgFor(key))
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "child append:", err)
				return 3
			}
			if !say("A %d %s", id, key) {
				return 3
			}
			continue
		}
		ms, err := o.Pending(1 + rng.IntN(8))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child pending:", err)
			return 3
		}
		id := ms[rng.IntN(len(ms))].ID
		if !say("k %d", id) {
			return 3
		}
		if err := o.Ack(id); faulty && fsutil.FaultOf(err) != "" {
			if !say("X %d", id) {
				return 3
			}
			continue
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "child ack:", err)
			return 3
		}
		if !say("K %d", id) {
			return 3
		}
	}
	return 0
}

// TestKillAppendAck kills a child that appends and acknowledges, with
// SIGKILL at random moments. After each kill the parent opens the outbox
// and checks: every message reported appended and not acknowledged is
// pending, in order, intact; nothing acknowledged comes back; no id twice;
// at most the one append in flight shows up unannounced (with the bytes
// the child was appending); an ack in flight took effect wholly or not at
// all; nothing is reported damaged.
func TestKillAppendAck(t *testing.T) {
	rounds := 50
	switch {
	case os.Getenv("OUTBOX_KILL_ROUNDS") != "":
		rounds, _ = strconv.Atoi(os.Getenv("OUTBOX_KILL_ROUNDS"))
	case testing.Short() || testexec.Emulated():
		rounds = 10
	}
	killAppendAck(t, rounds, false)
}

// TestKillAppendAckFaults is TestKillAppendAck on a failing disk: the
// child's writes, syncs and file creations fail at random (ENOSPC or EIO,
// writes cut in half) and it retries without reopening. The same checks
// hold: every append reported durable survives the kill, exactly once, in
// order, intact; a failed append may come back only as the append in
// flight; a failed ack took no effect.
func TestKillAppendAckFaults(t *testing.T) {
	rounds := 30
	switch {
	case os.Getenv("OUTBOX_KILL_ROUNDS") != "":
		rounds, _ = strconv.Atoi(os.Getenv("OUTBOX_KILL_ROUNDS"))
	case testing.Short() || testexec.Emulated():
		rounds = 8
	}
	killAppendAck(t, rounds, true)
}

func killAppendAck(t *testing.T, rounds int, faulty bool) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	keys := map[uint64]string{} // every id known appended, with its key
	var acked uint64            // highest ack known durable
	var maxID uint64            // highest id ever seen
	appends, acks, failures := 0, 0, 0
	for round := range rounds {
		cmd, err := testexec.Self()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), killDirEnv+"="+dir, killRoundEnv+"="+strconv.Itoa(round))
		if faulty {
			cmd.Env = append(cmd.Env, killFaultsEnv+"=1")
		}
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		intent := ""           // key of an append announced, not confirmed
		var ackInFlight uint64 // ack announced, not confirmed
		read := func() bool {
			if !sc.Scan() {
				return false
			}
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				t.Fatalf("round %d: child said %q", round, sc.Text())
			}
			id, _ := strconv.ParseUint(f[1], 10, 64)
			switch f[0] {
			case "I":
				intent = f[1]
			case "A":
				if id <= maxID {
					t.Fatalf("round %d: append got id %d, not above %d", round, id, maxID)
				}
				keys[id], maxID, intent = f[2], id, ""
				appends++
			case "k":
				ackInFlight = id
			case "K":
				acked, ackInFlight = max(acked, id), 0
				acks++
			case "F":
				failures++ // the same key is tried again: intent stands
			case "X":
				ackInFlight = 0 // a failed ack wrote nothing
				failures++
			default:
				t.Fatalf("round %d: child said %q", round, sc.Text())
			}
			return true
		}
		for range rng.IntN(40) {
			if !read() {
				break
			}
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		cmd.Process.Kill()
		for read() {
		}
		io.Copy(io.Discard, out)
		cmd.Wait()

		o, err := Open(dir, killOptions)
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		r := o.Report()
		if len(r.Corrupt) != 0 {
			t.Fatalf("round %d: damage reported after a kill: %v", round, r.Corrupt)
		}
		switch {
		case r.Acked == acked:
		case ackInFlight != 0 && r.Acked == ackInFlight:
			acked = ackInFlight
		default:
			t.Fatalf("round %d: acked %d on disk, want %d (or %d in flight)", round, r.Acked, acked, ackInFlight)
		}
		ms, err := o.Pending(0)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got := map[uint64]bool{}
		for i, m := range ms {
			if i > 0 && m.ID <= ms[i-1].ID {
				t.Fatalf("round %d: pending not in order or duplicated: %v", round, ids(ms))
			}
			if m.ID <= acked {
				t.Fatalf("round %d: acknowledged id %d came back", round, m.ID)
			}
			key, ok := keys[m.ID]
			if !ok {
				// Only the append in flight may appear unannounced.
				if intent == "" || m.ID <= maxID || i != len(ms)-1 {
					t.Fatalf("round %d: unknown id %d pending (max known %d)", round, m.ID, maxID)
				}
				key, keys[m.ID], maxID = intent, intent, m.ID
			}
			if !bytes.Equal(m.Data, msgFor(key)) {
				t.Fatalf("round %d: message %d altered", round, m.ID)
			}
			got[m.ID] = true
		}
		for id := range keys {
			if id > acked && !got[id] {
				t.Fatalf("round %d: id %d reported appended, not acknowledged, is lost", round, id)
			}
		}
		if r.NextID <= maxID {
			t.Fatalf("round %d: next id %d would reuse an id (max %d)", round, r.NextID, maxID)
		}
		o.Close()
	}
	t.Logf("%d kills; %d appends and %d acks confirmed, %d failed; last ack %d, highest id %d", rounds, appends, acks, failures, acked, maxID)
	if appends == 0 || acks == 0 {
		t.Fatal("the children never appended or never acknowledged")
	}
	if faulty && failures == 0 {
		t.Fatal("no injected fault was hit")
	}
}

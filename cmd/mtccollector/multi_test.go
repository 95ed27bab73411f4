package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/jackc/pgx/v5"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/pgtest"
	"github.com/mtcagent/mtcagent/wire"
)

// fleet is two `mtccollector serve` processes on one PostgreSQL database
// and n devices d0..d(n-1) they both know (one key for all, fictional
// PSKs), with the SCS alpha granted status and trigger on every one.
type fleet struct {
	dir, url string
	a, b     *proc
	addr     [2]string // device listeners of a and b
	scs      [2]string // SCS listeners
	priv     ed25519.PrivateKey
	n        int
	st       collector.Store
}

func startFleet(t *testing.T, bin string, n int, collectorConf string) *fleet {
	t.Helper()
	f := &fleet{dir: t.TempDir(), url: pgtest.URL(t), n: n}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.priv = priv
	pemb, _ := attest.MarshalPublicKeyPEM(pub)
	if err := os.WriteFile(filepath.Join(f.dir, "dev.pem"), pemb, 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[collector]\n%s\n", collectorConf)
	var ids []string
	for i := range n {
		id := fmt.Sprintf("d%d", i)
		ids = append(ids, id)
		fmt.Fprintf(&b, "[device %q]\npsk_identity = %s\npsk = %s\npublic_key = dev.pem\n\n", id, id, tDevPSK)
	}
	fmt.Fprintf(&b, "[scs \"alpha\"]\npsk_identity = alpha\npsk = %x\ndevices = %s\nclasses = status trigger\n", tAlpha, strings.Join(ids, " "))
	conf := filepath.Join(f.dir, "collector.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// One after the other: the first makes the schema and imports the
	// registry; the second finds both.
	f.a, f.addr[0], f.scs[0] = startServe(t, bin, conf, filepath.Join(f.dir, "a"), "127.0.0.1:0", "--store", f.url, "--cid-prefix", "0a")
	f.b, f.addr[1], f.scs[1] = startServe(t, bin, conf, filepath.Join(f.dir, "b"), "127.0.0.1:0", "--store", f.url, "--cid-prefix", "0b")
	st, err := collector.OpenPostgres(context.Background(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	return f
}

// logs is both instances' output.
func (f *fleet) logs() string { return f.a.out.String() + f.b.out.String() }

// boundDev is a device whose attestations carry its binding (IMSI and
// ICCID pseudonyms), so the collector records it at the first and
// compares every later one, on whichever instance.
type boundDev struct {
	*testDev
	p attest.Pseudonyms
}

func (d *boundDev) ServeUplink(ctx context.Context, r *uplink.Request) (uplink.Code, []byte) {
	if r.Path != wire.PathAttest {
		return d.testDev.ServeUplink(ctx, r)
	}
	var req struct {
		Nonce []byte `cbor:"1,keyasint"`
	}
	if cbor.Unmarshal(r.Payload, &req) != nil {
		return uplink.BadRequest, nil
	}
	tok, err := d.iss.Sign(attest.KindBinding, append([]attest.Claim{attest.NonceClaim(req.Nonce)}, attest.PseudonymClaims(d.p)...)...)
	if err != nil {
		return uplink.ServerError, nil
	}
	return uplink.Content, tok
}

// device is one device of the fleet, with its own sequence (shared by
// its sessions, as one agent's is) and binding.
func (f *fleet) device(t *testing.T, i int) *boundDev {
	t.Helper()
	iss, err := attest.NewIssuer(f.priv, &attest.MemSequence{}, attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false }), 1)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := uplink.OpenTriggerGuard(filepath.Join(f.dir, fmt.Sprintf("trigger%d.last", i)), 0)
	if err != nil {
		t.Fatal(err)
	}
	d := &boundDev{testDev: &testDev{key: f.priv, iss: iss, guard: guard}, p: attest.Pseudonyms{IMSI: make([]byte, 16), ICCID: make([]byte, 16)}}
	rand.Read(d.p.IMSI)
	rand.Read(d.p.ICCID)
	return d
}

// dial opens a session of device i with instance k (0: a, 1: b) and
// waits until that instance verified the binding attestation it asked for.
func (f *fleet) dial(t *testing.T, dev *boundDev, i, k int) *uplink.Client {
	t.Helper()
	p := []*proc{f.a, f.b}[k]
	id := fmt.Sprintf("d%d", i)
	before := strings.Count(p.out.String(), "device "+id+": binding attestation verified (nonce")
	psk, _ := hex.DecodeString(tDevPSK)
	c, err := uplink.Dial(context.Background(), uplink.Config{Addr: f.addr[k], Name: "collector", PSKIdentity: id, PSK: psk, Handler: dev, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("dial %s to instance %d: %v", id, k, err)
	}
	t.Cleanup(func() { c.Close() })
	waitUntil(t, 30*time.Second, id+"'s attestation on instance "+fmt.Sprint(k), func() bool {
		return strings.Count(p.out.String(), "device "+id+": binding attestation verified (nonce") > before
	})
	return c
}

func (f *fleet) alarms(t *testing.T, kind string) map[string]int {
	t.Helper()
	as, err := f.st.Alarms(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, a := range as {
		if a.Kind == kind {
			out[a.Device]++
		}
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestManyInstances runs two collector processes on one PostgreSQL with
// devices on both and moving between them (issue 14, Many instances).
func TestManyInstances(t *testing.T) {
	pgtest.URL(t) // skipped here without PostgreSQL (a failure with MTC_REQUIRE_POSTGRES=1)
	bin := buildCollector(t)

	// Silent devices, half on each instance: each silence raises exactly
	// one overdue alarm in the store, not one per instance, and none is
	// missed; again after each device came back on the other instance.
	t.Run("OverdueOnce", func(t *testing.T) {
		const n = 6
		f := startFleet(t, bin, n, "heartbeat_timeout = 2s")
		devs := make([]*boundDev, n)
		// One alarm per silence: a device's alarms are one more than the
		// times it was heard from again after one (a slow heartbeat after
		// the attestation may make two silences of a round, never two
		// alarms of one).
		heard := func(i int) int { return strings.Count(f.logs(), fmt.Sprintf("device d%d: heard from again", i)) }
		once := func() error {
			got := f.alarms(t, "heartbeat-overdue")
			for i := range n {
				if a, h := got[fmt.Sprintf("d%d", i)], heard(i); a != h+1 {
					return fmt.Errorf("d%d: %d overdue alarms, heard from again %d times", i, a, h)
				}
			}
			return nil
		}
		// round r: device i on instance (i+r)%2, one heartbeat, silence.
		round := func(r int) {
			t.Helper()
			for i := range n {
				c := f.dial(t, devs[i], i, (i+r)%2)
				hb, _ := devs[i].iss.SignHeartbeat()
				if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
					t.Fatalf("heartbeat of d%d: %v %v", i, code, err)
				}
				c.Close()
			}
			waitUntil(t, 60*time.Second, "every device overdue", func() bool {
				got := f.alarms(t, "heartbeat-overdue")
				for i := range n {
					if got[fmt.Sprintf("d%d", i)] < r+1 {
						return false
					}
				}
				c, err := f.st.CountOverdue(context.Background())
				return err == nil && c == n
			})
			// Both instances check every second; give each several passes
			// to raise a second alarm, which the claim must prevent.
			for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
				if err := once(); err != nil {
					t.Fatalf("round %d: %v\n%s", r, err, f.logs())
				}
			}
			if a, l := sum(f.alarms(t, "heartbeat-overdue")), strings.Count(f.logs(), "heartbeat-overdue:"); a != l {
				t.Fatalf("%d overdue alarms stored, %d in the two logs", a, l)
			}
		}
		for i := range n {
			devs[i] = f.device(t, i)
		}
		round(0)
		// Each comes back on the other instance (which clears the flag the
		// first one set), then falls silent again: one more alarm each.
		round(1)
		for i := range n {
			if heard(i) < 1 {
				t.Fatalf("d%d not heard from again", i)
			}
		}
	})

	// An SCS asks instance a about a device whose session is on b: b reads
	// the device and a answers with what the device said; a trigger goes
	// the same way.
	t.Run("RelayedSCSRequest", func(t *testing.T) {
		if _, err := exec.LookPath("coap-client-openssl"); err != nil {
			t.Skip("coap-client-openssl not installed (Debian libcoap3-bin; scripts/deps.sh installs it)")
		}
		f := startFleet(t, bin, 1, "heartbeat_timeout = 60s")
		dev := f.device(t, 0)
		f.dial(t, dev, 0, 1)
		got := coapClient(t, "alpha", tAlpha, "get", "coaps://"+f.scs[0]+"/devices/d0/status", "-A", "50")
		var st struct {
			Device string
			Online bool
			Queued bool
			Status map[string]any
		}
		if err := json.Unmarshal([]byte(got), &st); err != nil || st.Device != "d0" || !st.Online || st.Queued || st.Status["sim"] != "ready" {
			t.Fatalf("status of d0 through instance a: %q (%v)\n%s", got, err, f.logs())
		}
		// Each instance logs its part after it answered, so the lines may
		// come just after the SCS has its answer.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if strings.Contains(f.a.out.String(), "device d0: status request from alpha performed by instance") &&
				strings.Contains(f.b.out.String(), "scs alpha: status of device d0 relayed from another instance -> 2.05") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not relayed:\n%s", f.logs())
			}
		}
		trig, _ := cbor.Marshal(map[int]any{1: 1, 2: "report"})
		tf := filepath.Join(f.dir, "trigger.cbor")
		os.WriteFile(tf, trig, 0o600)
		if got := coapClient(t, "alpha", tAlpha, "post", "coaps://"+f.scs[0]+"/devices/d0/trigger", "-t", "60", "-f", tf); strings.Contains(got, "4.") || strings.Contains(got, "5.") {
			t.Fatalf("trigger through instance a: %q\n%s", got, f.logs())
		}
		dev.mu.Lock()
		n := len(dev.trig)
		dev.mu.Unlock()
		if n != 1 {
			t.Fatalf("device got %d triggers, want 1", n)
		}
		// Replayed at b this time: refused as replayed, whichever instance.
		if got := coapClient(t, "alpha", tAlpha, "post", "coaps://"+f.scs[1]+"/devices/d0/trigger", "-t", "60", "-f", tf); !strings.Contains(got, "4.09") {
			t.Fatalf("replayed trigger at instance b: %q", got)
		}
	})

	// One device with a session on each instance posts the same tokens
	// on both at once: each sequence number is accepted once, the other
	// copy is a duplicate, and the nonce attestations' numbers are
	// consumed once (no gap).
	t.Run("TwoSessionsOneDevice", func(t *testing.T) {
		f := startFleet(t, bin, 1, "heartbeat_timeout = 60s")
		dev := f.device(t, 0)
		cs := []*uplink.Client{f.dial(t, dev, 0, 0), f.dial(t, dev, 0, 1)}
		const m = 30
		toks := make([][]byte, m)
		for i := range toks {
			var err error
			if i%3 == 2 {
				toks[i], err = dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed"))
			} else {
				toks[i], err = dev.iss.SignHeartbeat()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		path := func(i int) string {
			if i%3 == 2 {
				return wire.PathEvent
			}
			return wire.PathHeartbeat
		}
		var wg sync.WaitGroup
		for k, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, tok := range toks {
					if code, _, err := c.Post(context.Background(), path(i), tok); err != nil || code != uplink.Changed {
						t.Errorf("session %d, token %d: %v %v", k, i, code, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		ds, err := f.st.Device(context.Background(), "d0")
		if err != nil {
			t.Fatal(err)
		}
		// Two nonce attestations (seq 1, 2), then the m tokens.
		if ds.Accepted != m || ds.Duplicates != m || ds.LastSeq != m+2 || len(ds.Consumed) != 0 {
			t.Fatalf("accepted %d, duplicates %d, last seq %d, consumed %v; want %d, %d, %d, none", ds.Accepted, ds.Duplicates, ds.LastSeq, ds.Consumed, m, m, m+2)
		}
		logs := f.logs()
		for seq := 3; seq <= m+2; seq++ {
			if c := strings.Count(logs, fmt.Sprintf(" verified (seq %d)\n", seq)); c != 1 {
				t.Fatalf("seq %d accepted %d times\n%s", seq, c, logs)
			}
		}
		if g := f.alarms(t, "sequence-gap"); len(g) > 0 {
			t.Fatalf("gap alarms %v\n%s", g, logs)
		}
	})

	// Devices load both instances; b is killed with SIGKILL mid-load.
	// Each device keeps posting a token until it is acknowledged, moving
	// to a when b is gone (as a load balancer would send it). Every
	// acknowledged message is in the store, each accepted once; the
	// sequences go on without a gap or a binding alarm; a's renewal
	// removes b once its lease has run out.
	t.Run("SIGKILL", func(t *testing.T) {
		const n, k = 4, 40
		f := startFleet(t, bin, n, "heartbeat_timeout = 60s\ninstance_lease = 3s")
		type result struct {
			acked    []uint64 // sequence numbers acknowledged 2.04
			moved    bool
			lastSeq  uint64
			postErrs int
		}
		results := make([]result, n)
		devs := make([]*boundDev, n)
		clients := make([]*uplink.Client, n)
		for i := range n {
			devs[i] = f.device(t, i)
			clients[i] = f.dial(t, devs[i], i, i%2)
		}
		var (
			mu    sync.Mutex
			total int
			wg    sync.WaitGroup
		)
		killed := make(chan struct{})
		deadline := time.Now().Add(90 * time.Second)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := &results[i]
				c := clients[i]
				for j := 0; j < k; j++ {
					tok, err := devs[i].iss.SignHeartbeat()
					if err != nil {
						t.Error(err)
						return
					}
					v := attest.Verifier{Key: f.priv.Public().(ed25519.PublicKey), Kind: attest.KindHeartbeat, SkipFreshness: true}
					res, err := v.Verify(tok)
					if err != nil {
						t.Error(err)
						return
					}
					for {
						if time.Now().After(deadline) {
							t.Errorf("d%d: token %d not acknowledged by the deadline", i, j)
							return
						}
						code, _, err := c.Post(context.Background(), wire.PathHeartbeat, tok)
						if err == nil && code == uplink.Changed {
							break
						}
						r.postErrs++
						// Not acknowledged: the device keeps it and, once
						// b is gone, reconnects to a.
						select {
						case <-killed:
						case <-time.After(100 * time.Millisecond):
							continue
						}
						c.Close()
						psk, _ := hex.DecodeString(tDevPSK)
						id := fmt.Sprintf("d%d", i)
						nc, derr := uplink.Dial(context.Background(), uplink.Config{Addr: f.addr[0], Name: "collector", PSKIdentity: id, PSK: psk, Handler: devs[i], Timeout: 5 * time.Second})
						if derr != nil {
							continue
						}
						c, r.moved = nc, true
					}
					r.acked = append(r.acked, res.Token.Seq)
					r.lastSeq = res.Token.Seq
					mu.Lock()
					total++
					mu.Unlock()
				}
				clients[i] = c
			}()
		}
		waitUntil(t, 60*time.Second, "load under way", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return total >= n*k/4
		})
		if err := f.b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-f.b.done
		f.b.cmd.Wait()
		close(killed)
		wg.Wait()
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		moved := 0
		for i, r := range results {
			ds, err := f.st.Device(context.Background(), fmt.Sprintf("d%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.acked) != k || ds.LastSeq < r.lastSeq || ds.Accepted != k {
				t.Fatalf("d%d: %d acknowledged up to seq %d; store has last seq %d, %d accepted (want %d)", i, len(r.acked), r.lastSeq, ds.LastSeq, ds.Accepted, k)
			}
			if ds.Binding == nil || !bytes.Equal(ds.Binding[0], devs[i].p.IMSI) || !bytes.Equal(ds.Binding[1], devs[i].p.ICCID) {
				t.Fatalf("d%d: binding in the store %x, want the device's", i, ds.Binding)
			}
			if r.moved {
				moved++
				// Its new session on a attested the binding again, and a
				// compared it with the one b had recorded.
				if !strings.Contains(f.a.out.String(), fmt.Sprintf("device d%d: binding attestation verified (nonce", i)) {
					t.Fatalf("d%d moved to a without an attestation there\n%s", i, f.a.out)
				}
			}
			t.Logf("d%d: %d acknowledged, last seq %d, %d posts unanswered, moved %v; store: %d accepted, %d duplicates", i, len(r.acked), r.lastSeq, r.postErrs, r.moved, ds.Accepted, ds.Duplicates)
		}
		if moved < n/2 {
			t.Fatalf("%d devices moved to the surviving instance, want the %d of the killed one", moved, n/2)
		}
		if g := f.alarms(t, "sequence-gap"); len(g) > 0 {
			t.Fatalf("gap alarms %v\n%s", g, f.logs())
		}
		if g := f.alarms(t, "binding-changed"); len(g) > 0 {
			t.Fatalf("binding alarms %v\n%s", g, f.logs())
		}
		// The lease of the killed instance runs out; a removes it and the
		// sessions it held.
		conn, err := pgx.Connect(context.Background(), f.url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		waitUntil(t, 30*time.Second, "the killed instance's removal", func() bool {
			var inst int
			err := conn.QueryRow(context.Background(), `SELECT count(*) FROM instances`).Scan(&inst)
			return err == nil && inst == 1
		})
		if !strings.Contains(f.a.out.String(), "whose lease ran out removed") {
			t.Fatalf("no removal in a's log:\n%s", f.a.out)
		}
	})
}

package wire

import (
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Trigger is a device trigger as the collector sends it on PathTrigger.
//
// Replay protection: the collector keeps, per device and durably, a
// counter it increments for every trigger it sends; the device accepts a
// trigger only when its Counter is strictly greater than the last one it
// accepted from that server (TriggerGuard, persisted) and, when the device
// clock is synchronised, when Time is within the guard's window. The
// trigger rides the mutually authenticated DTLS session, so only the
// configured server can produce one; DTLS's own record replay window
// stops a re-sent datagram, and the counter stops a replay at the
// application level (e.g. an SCS re-posting an old trigger, which the
// collector also refuses by the SCS's own sequence number).
type Trigger struct {
	Counter uint64    // strictly increasing per device, from 1
	Time    time.Time // when the collector issued it (whole seconds)
	Action  string    // what the device is asked to do; the agent implements "ping" only
	From    string    // the SCS on whose behalf (for the device's audit)
}

type triggerWire struct {
	Counter uint64 `cbor:"1,keyasint"`
	Time    uint64 `cbor:"2,keyasint"`
	Action  string `cbor:"3,keyasint"`
	From    string `cbor:"4,keyasint,omitempty"`
}

// ErrTrigger is wrapped when a trigger is malformed.
var ErrTrigger = errors.New("bad trigger")

var triggerEnc = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

var triggerDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxMapPairs: 16, MaxNestedLevels: 4}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// EncodeTrigger is a trigger's wire form: CBOR {1: counter, 2: time (unix
// seconds), 3: action, 4: from}.
func EncodeTrigger(t Trigger) ([]byte, error) {
	if t.Counter == 0 || t.Action == "" {
		return nil, fmt.Errorf("uplink: encode trigger: %w: counter and action required", ErrTrigger)
	}
	return triggerEnc.Marshal(triggerWire{t.Counter, uint64(max(t.Time.Unix(), 0)), t.Action, t.From})
}

// DecodeTrigger parses EncodeTrigger's output.
func DecodeTrigger(b []byte) (Trigger, error) {
	var w triggerWire
	if len(b) > 512 {
		return Trigger{}, fmt.Errorf("uplink: decode trigger: %w: too long", ErrTrigger)
	}
	if err := triggerDec.Unmarshal(b, &w); err != nil {
		return Trigger{}, fmt.Errorf("uplink: decode trigger: %w: not a trigger map", ErrTrigger)
	}
	if w.Counter == 0 || w.Action == "" || len(w.Action) > 64 || len(w.From) > 128 || w.Time > 1<<40 {
		return Trigger{}, fmt.Errorf("uplink: decode trigger: %w: missing or oversized field", ErrTrigger)
	}
	return Trigger{Counter: w.Counter, Time: time.Unix(int64(w.Time), 0), Action: w.Action, From: w.From}, nil
}

package mdtlog

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// ConsentState is the user's decision about MDT logging.
type ConsentState int

const (
	// Unset: the user was never asked; logging is off.
	Unset ConsentState = iota
	// Consented: the user consented on the device; logging may run.
	Consented
	// OptedOut: the user opted out; logging is off for good until the user
	// consents again on the device.
	OptedOut
)

var consentNames = [...]string{"unset", "consented", "opted_out"}

func (c ConsentState) String() string {
	if int(c) < len(consentNames) && c >= 0 {
		return consentNames[c]
	}
	return fmt.Sprintf("consent(%d)", int(c))
}

// Consent is the recorded consent state with the time it was set.
type Consent struct {
	State       ConsentState
	Time        time.Time // zero for Unset
	ClockSynced bool      // whether Time came from a synchronised clock
	// Damaged is set when the consent file could not be read; the state is
	// then treated as OptedOut (fail closed) until the user decides again.
	Damaged bool
}

// ConsentRequest says where a consent request came from.
type ConsentRequest struct {
	// Remote is true for a request that arrived over the network (a
	// collector or any peer). Remote requests never turn logging on: the
	// user must be shown the notice on the device first.
	Remote bool
	// ClockSynced records whether the device clock is trusted now.
	ClockSynced bool
}

type consentFile struct {
	State       string `json:"state"`
	Time        string `json:"time,omitempty"`
	ClockSynced bool   `json:"clock_synced,omitempty"`
}

func readConsent(path string) Consent {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Consent{State: Unset}
	}
	var cf consentFile
	if err == nil {
		err = json.Unmarshal(b, &cf)
	}
	var c Consent
	switch {
	case err != nil:
	case cf.State == "consented":
		c.State = Consented
	case cf.State == "opted_out":
		c.State = OptedOut
	case cf.State == "unset":
		return Consent{State: Unset}
	default:
		err = fmt.Errorf("unknown state")
	}
	if err == nil && cf.Time != "" {
		c.Time, err = time.Parse(time.RFC3339Nano, cf.Time)
	}
	if err != nil {
		return Consent{State: OptedOut, Damaged: true}
	}
	c.ClockSynced = cf.ClockSynced
	return c
}

func writeConsent(path string, c Consent) error {
	cf := consentFile{State: c.State.String(), ClockSynced: c.ClockSynced}
	if !c.Time.IsZero() {
		cf.Time = c.Time.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(cf)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write mdt consent: %w", err)
	}
	return nil
}

package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Store is the collector's durable state: per-device state, the alarm log
// and the SCS audit log. Every operation touches one device or appends one
// record, so a message costs the same whatever the size of the fleet.
// Two implementations: the embedded default (OpenBolt, one bbolt file) and
// PostgreSQL (OpenPostgres), which any number of collector instances may
// share. OpenStore picks one from a --store value.
//
// Methods are safe for concurrent use. Errors name the operation and
// never contain a device's keys.
type Store interface {
	// Device returns a copy of a device's state; a device never heard of
	// has the zero state (and no error).
	Device(ctx context.Context, id string) (DeviceState, error)
	// UpdateDevice runs fn on the device's state in one transaction with
	// that device locked against every other update of it, from this
	// process or another one sharing the store, and stores what fn left.
	// If fn returns an error nothing is stored and UpdateDevice returns
	// that error. fn runs once; it must not call the Store. It may run
	// on another goroutine, in a transaction shared with other calls
	// (PostgreSQL's group commit), so it must not wait on anything a
	// caller of the Store may hold while it calls.
	UpdateDevice(ctx context.Context, id string, fn func(*DeviceState) error) error
	// RecordDevice is UpdateDevice whose fn may also add to the device's
	// history: what fn left in the batch is stored in the same
	// transaction as the state, so a message acknowledged is in the
	// history and one refused (fn's error) is not.
	RecordDevice(ctx context.Context, id string, fn func(*DeviceState, *HistoryBatch) error) error
	// History returns a page of a device's history, oldest first, with
	// its heartbeat summary. A device never heard of has an empty one.
	History(ctx context.Context, device string, q HistoryQuery) (HistoryPage, error)
	// PruneHistory removes at most max records of kind received before
	// before, oldest first, in one transaction, and returns how many.
	PruneHistory(ctx context.Context, kind string, before time.Time, max int) (int, error)
	// ClaimOverdue raises the heartbeat-overdue alarm of up to limit
	// devices whose NextDue is before now: registered, not flagged yet,
	// and silent for their timeout counted from since too (the
	// collector's start: a device is not blamed for the collector's own
	// downtime). In one transaction it flags each overdue, clears its
	// NextDue and stores the alarm that alarm(id, silence) returns, then
	// returns those alarms. Devices another instance is claiming (or a
	// message is updating) at that moment are skipped, so across
	// instances each silence is raised once. A pass costs what is due,
	// not the size of the fleet. A due device no longer registered
	// loses its NextDue without an alarm.
	ClaimOverdue(ctx context.Context, now, since time.Time, limit int, alarm func(id string, silence time.Duration) Alarm) ([]Alarm, error)
	// CountOverdue returns the number of devices flagged overdue.
	CountOverdue(ctx context.Context) (int, error)
	// AppendAlarm and AppendAudit add one record to the alarm log and the
	// SCS audit log; they are durable when the call returns. An alarm is
	// also a record of its device's history (on PostgreSQL in the same
	// transaction).
	AppendAlarm(ctx context.Context, a Alarm) error
	AppendAudit(ctx context.Context, r AuditRecord) error
	// Alarms returns a device's alarms ("" for every device), and Audit
	// the audit records of an SCS ("" for every SCS), oldest first.
	Alarms(ctx context.Context, device string) ([]Alarm, error)
	Audit(ctx context.Context, scs string) ([]AuditRecord, error)
	Close() error
	Registry
}

// overdueFor reports whether a device is overdue at now, counting its
// silence from since at the earliest, and for how long it has been
// silent. Its timeout is NextDue minus the time it is counted from.
func (ds *DeviceState) overdueFor(now, since time.Time) (time.Duration, bool) {
	if ds.NextDue.IsZero() || ds.Overdue || !ds.NextDue.Before(now) {
		return 0, false
	}
	last := ds.LastHeartbeat
	if last.IsZero() {
		last = ds.LastSeen
	}
	timeout := ds.NextDue.Sub(last)
	if last.Before(since) {
		last = since
	}
	return now.Sub(last), now.Sub(last) > timeout
}

// BoltFile is the embedded store's file in the state directory, the
// default --store.
const BoltFile = "collector.db"

// IsPostgresURL reports whether a --store value names a PostgreSQL
// database rather than a file.
func IsPostgresURL(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// OpenStore opens the store a --store value names: a postgres:// (or
// postgresql://) URL, a file path for the embedded store, or "" for the
// embedded store in stateDir.
func OpenStore(ctx context.Context, spec, stateDir string) (Store, error) {
	switch {
	case IsPostgresURL(spec):
		return OpenPostgres(ctx, spec)
	case spec == "":
		if stateDir == "" {
			return nil, errors.New("collector: open store: no --store and no state directory")
		}
		spec = filepath.Join(stateDir, BoltFile)
	}
	return OpenBolt(spec)
}

// importStateJSON moves the devices of a state.json left by an older
// collector into st once, then renames the file to state.json.imported,
// so a deployment upgrades in place. The file's state replaces what st
// holds for those devices.
func importStateJSON(ctx context.Context, st Store, dir string) (int, error) {
	p := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("collector: import %s: %w", p, err)
	}
	var f struct {
		Devices map[string]*DeviceState `json:"devices"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, fmt.Errorf("collector: import %s: corrupt: %w", p, err)
	}
	ids := make([]string, 0, len(f.Devices))
	for id, ds := range f.Devices {
		if ds != nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		in := *f.Devices[id]
		in.normalize()
		if err := st.UpdateDevice(ctx, id, func(ds *DeviceState) error { *ds = in; return nil }); err != nil {
			return 0, fmt.Errorf("collector: import %s: device %s: %w", p, id, err)
		}
	}
	if err := os.Rename(p, p+".imported"); err != nil {
		return 0, fmt.Errorf("collector: import %s: %w", p, err)
	}
	return len(ids), nil
}

// normalize restores what the JSON form does not carry.
func (ds *DeviceState) normalize() {
	if ds.LastEvent != nil {
		ds.LastEvent.AtUnix = ds.LastEvent.At.Unix()
	}
}

// clone returns a deep copy, so a caller's changes never reach the store
// except through UpdateDevice.
func (ds DeviceState) clone() DeviceState {
	c := ds
	c.Consumed = append([]uint64(nil), ds.Consumed...)
	if ds.Binding != nil {
		b := [2][]byte{append([]byte(nil), ds.Binding[0]...), append([]byte(nil), ds.Binding[1]...)}
		c.Binding = &b
	}
	c.Status = append([]byte(nil), ds.Status...)
	if ds.LastEvent != nil {
		e := *ds.LastEvent
		c.LastEvent = &e
	}
	if ds.SCSSeq != nil {
		c.SCSSeq = make(map[string]uint64, len(ds.SCSSeq))
		for k, v := range ds.SCSSeq {
			c.SCSSeq[k] = v
		}
	}
	if ds.MDTCursor != nil {
		m := *ds.MDTCursor
		c.MDTCursor = &m
	}
	if len(c.Consumed) == 0 {
		c.Consumed = nil
	}
	if len(c.Status) == 0 {
		c.Status = nil
	}
	return c
}

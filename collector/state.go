package collector

import (
	"time"

	"github.com/mtcagent/mtcagent/wire"
)

// Files in the state directory.
const (
	StateFile = "state.json" // an older collector's whole state: imported once, then renamed state.json.imported
	AlarmLog  = "alarms.log" // JSON lines, append-only (embedded store)
	AuditLog  = "audit.log"  // JSON lines, append-only: every SCS access (embedded store)
)

// DeviceState is what the collector remembers of a device across restarts.
type DeviceState struct {
	LastSeq       uint64            `json:"last_seq"`             // highest sequence number accepted in order
	Consumed      []uint64          `json:"consumed,omitempty"`   // seqs above LastSeq used by nonce attestations
	Unanswered    uint64            `json:"unanswered,omitempty"` // challenges whose answer never came in (unansweredChallenge)
	BootCount     uint64            `json:"boot_count"`
	Binding       *[2][]byte        `json:"binding,omitempty"` // pseudonyms (IMSI, ICCID) last attested
	LastSeen      time.Time         `json:"last_seen"`
	LastHeartbeat time.Time         `json:"last_heartbeat"`
	Overdue       bool              `json:"overdue"`
	NextDue       time.Time         `json:"next_due"`         // heartbeat due: LastHeartbeat (LastSeen before one) + timeout; zero once overdue
	Status        []byte            `json:"status,omitempty"` // last status (CBOR) the device gave us
	StatusAt      time.Time         `json:"status_at"`
	LastEvent     *EventSummary     `json:"last_event,omitempty"`
	TriggerSeq    uint64            `json:"trigger_seq"`       // last trigger counter sent to the device
	SCSSeq        map[string]uint64 `json:"scs_seq,omitempty"` // last trigger sequence per SCS
	Accepted      uint64            `json:"accepted"`
	Duplicates    uint64            `json:"duplicates"`
	MDTCursor     *wire.MDTPos      `json:"mdt_cursor,omitempty"` // last measurement record stored
	MDTRecords    uint64            `json:"mdt_records,omitempty"`
	MDTPulledAt   time.Time         `json:"mdt_pulled_at"`

	// registryGen is the registry's generation as the transaction that
	// read this state sees it (not stored; 0 where not known).
	registryGen uint64
}

// EventSummary is what an SCS observing a device's events receives.
type EventSummary struct {
	Device string    `json:"device" cbor:"device"`
	Seq    uint64    `json:"seq" cbor:"seq"`
	Kind   string    `json:"kind" cbor:"kind"`
	Event  string    `json:"event,omitempty" cbor:"event,omitempty"`
	At     time.Time `json:"at" cbor:"-"`
	AtUnix int64     `json:"-" cbor:"at"`
}

// Alarm is one line of the alarm log.
type Alarm struct {
	Time   time.Time `json:"time"`
	Device string    `json:"device"`
	Kind   string    `json:"kind"` // binding-changed, sim-removed, sequence-gap, heartbeat-overdue, verify-failed
	Detail string    `json:"detail"`
}

// AuditRecord is one line of the SCS audit log.
type AuditRecord struct {
	Time     time.Time `json:"time"`
	SCS      string    `json:"scs"`
	Method   string    `json:"method"`
	Path     string    `json:"path"`
	Device   string    `json:"device,omitempty"`
	Class    string    `json:"class,omitempty"`
	Decision string    `json:"decision"` // granted, denied (not granted), denied (unknown device), bad request
	Code     string    `json:"code"`
}

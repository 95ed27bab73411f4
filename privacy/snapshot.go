package privacy

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Status is the device's connection state.
type Status uint8

// States. Online means registered with the RRC state not known.
const (
	StatusUnknown Status = iota
	StatusOffline
	StatusOnline
	StatusIdle
	StatusConnected
)

var statusNames = []string{"unknown", "offline", "online", "idle", "connected"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// ParseStatus reads a state word (unknown, offline, online, idle, connected).
func ParseStatus(w string) (Status, bool) {
	for i, n := range statusNames {
		if n == w {
			return Status(i), true
		}
	}
	return StatusUnknown, false
}

// Reachable reports whether the network can reach the device.
func (s Status) Reachable() bool {
	return s == StatusOnline || s == StatusIdle || s == StatusConnected
}

// Location is a position fix in WGS84 degrees with its accuracy radius.
type Location struct {
	Lat, Lon  float64
	AccuracyM float64
}

// Cell is the serving cell. MCC and MNC are digit strings.
type Cell struct {
	MCC, MNC string
	TAC      *uint32 // tracking area (LTE, NR)
	LAC      *uint32 // location area (GSM, UMTS)
	CellID   *uint64 // up to 36 bits (NR)
}

// Radio is the last signal measurement; nil fields are unknown.
type Radio struct {
	RSRPdBm, RSRQdB, SINRdB, RSSIdBm *float64
}

// IdentitySource yields the identities a recipient may receive instead of
// the IMSI: a pseudonym per recipient and the SUCI. The attest package
// provides one; this package never sees the keys behind them.
type IdentitySource interface {
	Pseudonym(recipient string) (string, error)
	SUCI() (string, error)
}

// Snapshot is one reading of the device, the only input from which reports
// are built. Every field carries a privacy class (checked by a test); the
// raw identifiers are ident types that redact themselves and no grant
// level copies them into a report.
type Snapshot struct {
	Time     time.Time      `privacy:"meta"`
	Status   Status         `privacy:"status"`
	Location *Location      `privacy:"location"`
	Cell     *Cell          `privacy:"cell"`
	Radio    *Radio         `privacy:"radio"`
	IMSI     ident.IMSI     `privacy:"identity"`
	ICCID    ident.ICCID    `privacy:"identity"`
	IMEI     ident.IMEI     `privacy:"identity"`
	Identity IdentitySource `privacy:"identity"`
}

// summary names which parts are present, never their values: a snapshot
// printed or logged by accident reveals neither place nor identity.
func (s Snapshot) summary() string {
	parts := []string{"status=" + s.Status.String()}
	if s.Location != nil {
		parts = append(parts, "location")
	}
	if s.Cell != nil {
		parts = append(parts, "cell")
	}
	if s.Radio != nil {
		parts = append(parts, "radio")
	}
	if !s.IMSI.IsZero() || !s.ICCID.IsZero() || !s.IMEI.IsZero() || s.Identity != nil {
		parts = append(parts, "identity")
	}
	return "privacy.Snapshot{" + strings.Join(parts, " ") + "}"
}

func (s Snapshot) String() string   { return s.summary() }
func (s Snapshot) GoString() string { return s.summary() }

// Format prints the summary for every verb.
func (s Snapshot) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.summary()) }

// LogValue logs the summary.
func (s Snapshot) LogValue() slog.Value { return slog.StringValue(s.summary()) }

// MarshalJSON encodes the summary: a Snapshot is not a report.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%q", s.summary())), nil
}

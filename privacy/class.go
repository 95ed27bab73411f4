package privacy

import (
	"fmt"
	"strconv"
)

// Class is the privacy class of a reported field. Every field that can leave
// the device in a Report carries one (the struct tag `privacy:"CLASS[:LEVEL]"`).
type Class uint8

// The classes. ClassMeta holds what a report needs to be a report (format
// version, the schedule slot, the list of classes it carries, padding); it
// reveals nothing about the device beyond the fact that it reports.
const (
	ClassMeta Class = iota
	ClassStatus
	ClassLocation
	ClassCell
	ClassIdentity
	ClassRadio
	numClasses
)

var classNames = [numClasses]string{"meta", "status", "location", "cell", "identity", "radio"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Classes lists the classes a policy grants (all but ClassMeta), in order.
func Classes() []Class {
	return []Class{ClassStatus, ClassLocation, ClassCell, ClassIdentity, ClassRadio}
}

// Level is how much of a class a recipient may receive: 0 is none; higher
// levels include what lower levels disclose.
type Level uint8

// Levels per class. A recipient granted a level receives every field whose
// minimum level is at or below it.
const (
	LevelNone Level = 0

	StatusReachable Level = 1 // reachable: true/false only
	StatusFull      Level = 2 // offline, online, idle, connected

	LocationRegion  Level = 1 // masked, snapped to a grid (Grants.GridMeters)
	LocationPrecise Level = 2 // the fix as measured, with its accuracy

	CellTrackingArea Level = 1 // PLMN and tracking/location area code
	CellFull         Level = 2 // plus the cell identity

	IdentityPseudonym Level = 1 // a per-recipient pseudonym
	IdentitySUCI      Level = 2 // plus the SUCI (only the home network can open it)

	RadioFull Level = 1 // RSRP, RSRQ, SINR, RSSI
)

// levelNames[class][level] is the configuration word for a level.
var levelNames = [numClasses][]string{
	ClassMeta:     {"none", "always"},
	ClassStatus:   {"none", "reachable", "full"},
	ClassLocation: {"none", "region", "precise"},
	ClassCell:     {"none", "tracking_area", "full"},
	ClassIdentity: {"none", "pseudonym", "suci"},
	ClassRadio:    {"none", "full"},
}

func levelName(c Class, l Level) string {
	if c < numClasses && int(l) < len(levelNames[c]) {
		return levelNames[c][l]
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

func parseLevel(c Class, s string) (Level, bool) {
	for i, n := range levelNames[c] {
		if n == s {
			return Level(i), true
		}
	}
	return 0, false
}

// Grants is what one recipient may receive, class by class.
type Grants struct {
	Status     Level
	Location   Level
	GridMeters int // grid size for LocationRegion
	Cell       Level
	Identity   Level
	Radio      Level
}

// Level returns the granted level of class c (ClassMeta is always granted).
func (g Grants) Level(c Class) Level {
	switch c {
	case ClassMeta:
		return 1
	case ClassStatus:
		return g.Status
	case ClassLocation:
		return g.Location
	case ClassCell:
		return g.Cell
	case ClassIdentity:
		return g.Identity
	case ClassRadio:
		return g.Radio
	}
	return LevelNone
}

// Precision is the configuration word of the granted level of c, e.g.
// "reachable", "region:2km", "tracking_area", "none".
func (g Grants) Precision(c Class) string {
	l := g.Level(c)
	if c == ClassLocation && l == LocationRegion {
		return "region:" + formatMeters(g.GridMeters)
	}
	return levelName(c, l)
}

// String lists the granted classes, e.g. "status=reachable location=region:2km".
func (g Grants) String() string {
	s := ""
	for _, c := range Classes() {
		if g.Level(c) == LevelNone {
			continue
		}
		if s != "" {
			s += " "
		}
		s += c.String() + "=" + g.Precision(c)
	}
	if s == "" {
		return "nothing"
	}
	return s
}

func formatMeters(m int) string {
	if m >= 1000 && m%1000 == 0 {
		return strconv.Itoa(m/1000) + "km"
	}
	return strconv.Itoa(m) + "m"
}

// parseMeters reads "500m", "2km", "1.5km".
func parseMeters(s string) (int, error) {
	var unit float64
	var num string
	switch {
	case len(s) > 2 && s[len(s)-2:] == "km":
		unit, num = 1000, s[:len(s)-2]
	case len(s) > 1 && s[len(s)-1] == 'm':
		unit, num = 1, s[:len(s)-1]
	default:
		return 0, fmt.Errorf("grid size %q needs a unit, m or km (e.g. 2km)", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f != f || f <= 0 {
		return 0, fmt.Errorf("grid size %q is not a positive number of m or km", s)
	}
	m := f * unit
	if m < minGridMeters || m > maxGridMeters {
		return 0, fmt.Errorf("grid size %q outside %s..%s", s, formatMeters(minGridMeters), formatMeters(maxGridMeters))
	}
	return int(m + 0.5), nil
}

const (
	minGridMeters = 100
	maxGridMeters = 500000
)

package mdtlog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WhatIsLogged says in one sentence what a record holds (for status).
const WhatIsLogged = "time (and whether the clock was synchronised), serving cell (radio technology, MCC/MNC, TAC or LAC, cell id), its RSRP/RSRQ/SINR or RSSI, neighbour cells the modem reports, and a location only at the precision the privacy policy grants the MDT recipient; no IMSI, ICCID, IMEI, numbers or messages"

// Notice is the plain-language notice shown before the user consents, for
// the logging the configuration c describes.
func Notice(c Config) string {
	var b strings.Builder
	session := "for " + humanDuration(c.Duration) + " each time a logging session starts (when you consent, and each time the agent starts while your consent stands)"
	if c.Duration == 0 {
		session = "continuously"
	}
	upload := "kept until uploaded"
	if c.DeleteAfterUpload {
		upload = "deleted as soon as the collector confirms it received them"
	}
	fmt.Fprintf(&b, `Radio measurement log (MDT) — please read before you consent

What is logged
  Every %s seconds, %s, this device records:
  the time, the mobile network and cell it is using (radio technology,
  country and network code, tracking or location area, cell id), how strong
  and clean that cell's signal is (RSRP, RSRQ, SINR or RSSI), the
  neighbouring cells the modem reports, and a location only as precise as
  the privacy policy allows the MDT recipient (none if it allows none).
  It never logs your SIM or device identity (IMSI, ICCID, IMEI), phone
  numbers or messages.

How long it is kept
  Encrypted on this device; records are %s, and in any case
  deleted after %s; the log never grows beyond %s (oldest first).

Who may receive it
  Only the network-side collector(s) that this device's privacy policy grants
  radio measurements, over the device's authenticated, encrypted uplink.
  These measurements mainly help the network operator find coverage
  problems; they are of little direct benefit to you.

Your choices, at any time
  mtcagent mdt show     see exactly what is stored
  mtcagent mdt clear    erase everything logged so far
  mtcagent mdt optout   stop logging for good and erase the log; only a new
                        consent given here, on this device, undoes it
  A request over the network can never turn logging on.
`, formatSeconds(c.Interval), session, upload, humanDuration(c.Retention), humanBytes(c.MaxBytes))
	return b.String()
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

func humanDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		n := int(d / (24 * time.Hour))
		return plural(n, "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	}
	return d.String()
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// Summary is the configuration in one line, e.g. "every 10.24 s in
// 2-hour sessions, at most 4 MiB, kept 7 days, deleted after upload".
func (c Config) Summary() string {
	s := "every " + formatSeconds(c.Interval) + " s"
	if c.Duration == 0 {
		s += ", continuously"
	} else {
		s += " in sessions of " + humanDuration(c.Duration)
	}
	s += ", at most " + humanBytes(c.MaxBytes) + ", kept " + humanDuration(c.Retention)
	if c.DeleteAfterUpload {
		s += ", deleted after upload"
	}
	return s
}

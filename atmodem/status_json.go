package atmodem

import "encoding/json"

// StatusJSON is the status contract of DESIGN.md §4 ("status --json"):
// snake_case, numbers as numbers, unknown as null. It holds the identifiers
// in clear: build it only for the device's owner (RevealedJSON).
type StatusJSON struct {
	Modem struct {
		Manufacturer *string `json:"manufacturer"`
		Model        *string `json:"model"`
		Revision     *string `json:"revision"`
		IMEI         *string `json:"imei"`
		Family       *string `json:"family"` // extension: the dialect's vendor and series
	} `json:"modem"`
	SIM struct {
		State *string `json:"state"`
		IMSI  *string `json:"imsi"`
		ICCID *string `json:"iccid"`
		EID   *string `json:"eid"` // extension: the eUICC's EID, where the card gives it
	} `json:"sim"`
	Registration struct {
		CS  *Registration `json:"cs"`
		PS  *Registration `json:"ps"`
		EPS *Registration `json:"eps"`
		FGS *Registration `json:"5gs"`
	} `json:"registration"`
	Operator Operator     `json:"operator"`
	Signal   Signal       `json:"signal"`
	Cell     *ServingCell `json:"serving_cell"`
	Location *Position    `json:"location"` // GNSS fix; null when off or not fixed
	Dialect  string       `json:"dialect"`
	Time     string       `json:"time"`
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Revealed returns the contract form with identifiers in clear, for the
// owner's own status command. Everything bound for a recipient goes through
// package privacy instead.
func (s *Status) Revealed() *StatusJSON {
	var j StatusJSON
	j.Modem.Manufacturer = nonEmpty(s.Modem.Manufacturer)
	j.Modem.Model = nonEmpty(s.Modem.Model)
	j.Modem.Revision = nonEmpty(s.Modem.Revision)
	j.Modem.IMEI = nonEmpty(s.Modem.IMEI.Reveal())
	j.Modem.Family = nonEmpty(s.Family)
	j.SIM.State = nonEmpty(s.SIM.State)
	j.SIM.IMSI = nonEmpty(s.SIM.IMSI.Reveal())
	j.SIM.ICCID = nonEmpty(s.SIM.ICCID.Reveal())
	j.SIM.EID = nonEmpty(s.SIM.EID.Reveal())
	j.Registration.CS = s.Registration[DomainCS]
	j.Registration.PS = s.Registration[DomainPS]
	j.Registration.EPS = s.Registration[DomainEPS]
	j.Registration.FGS = s.Registration[Domain5GS]
	j.Operator, j.Signal, j.Cell, j.Dialect = s.Operator, s.Signal, s.Cell, s.Dialect
	j.Location = s.Location
	if !s.Time.IsZero() {
		j.Time = s.Time.UTC().Format("2006-01-02T15:04:05Z")
	}
	return &j
}

// MarshalJSON of Status itself redacts identifiers (through the ident
// types), so a Status logged or encoded by accident leaks nothing.
func (s *Status) MarshalJSON() ([]byte, error) {
	j := s.Revealed()
	j.Modem.IMEI = redactedPtr(s.Modem.IMEI.String(), s.Modem.IMEI.IsZero())
	j.SIM.IMSI = redactedPtr(s.SIM.IMSI.String(), s.SIM.IMSI.IsZero())
	j.SIM.ICCID = redactedPtr(s.SIM.ICCID.String(), s.SIM.ICCID.IsZero())
	j.SIM.EID = redactedPtr(s.SIM.EID.String(), s.SIM.EID.IsZero())
	return json.Marshal(j)
}

func redactedPtr(s string, zero bool) *string {
	if zero {
		return nil
	}
	return &s
}

package atmodem

import "strings"

// Reading names the readings of a Status that can fail. Every reading is
// a value, unknown or absent:
//
//   - a value: the modem answered and the answer passed validation
//     (charset, length, range);
//   - absent: the modem said there is none (no SIM, +COPS without an
//     operator, a registration domain it does not support);
//   - unknown: the read failed, timed out, or the answer was garbled.
//
// An unknown reading has its bit set in the Failed field of the struct
// that holds it (SIMInfo, ModemInfo, Status) and a zero value (null in
// JSON). It is never compared as if it were a value: it produces no change
// event, never drives the binding policy, and never enters a signed claim.
type Reading uint32

// The readings that can be unknown.
const (
	ReadSIMState Reading = 1 << iota // +CPIN?
	ReadIMSI                         // +CIMI
	ReadICCID                        // +CCID and the dialect's variants, +CRSM
	ReadManufacturer
	ReadModel
	ReadRevision
	ReadIMEI
	ReadOperator // the numeric operator (MCC, MNC) of +COPS?
	ReadCS       // +CREG?
	ReadPS       // +CGREG?
	ReadEPS      // +CEREG?
	Read5GS      // +C5GREG?
)

// ReadFirmware is what the firmware-change check hashes.
const ReadFirmware = ReadManufacturer | ReadModel | ReadRevision

// ReadSIM is the SIM's state and identity.
const ReadSIM = ReadSIMState | ReadIMSI | ReadICCID

// RegReading is the Reading of one domain's registration.
func RegReading(d Domain) Reading {
	switch d {
	case DomainCS:
		return ReadCS
	case DomainPS:
		return ReadPS
	case DomainEPS:
		return ReadEPS
	case Domain5GS:
		return Read5GS
	}
	return 0
}

// Known reports whether the SIM reading is a value or absent: the state
// was read and, for a ready SIM, both identifiers were read.
func (s SIMInfo) Known() bool {
	if s.Failed&ReadSIMState != 0 || s.State == "" {
		return false
	}
	return s.State != SIMReady || s.Failed&(ReadIMSI|ReadICCID) == 0
}

// Same reports whether two known SIM readings are the same SIM in the same
// state (identifiers compared in constant time).
func (s SIMInfo) Same(o SIMInfo) bool {
	return s.State == o.State && s.IMSI.Equal(o.IMSI) && s.ICCID.Equal(o.ICCID)
}

// Unknown reports whether any of the readings r failed in this Status.
func (s *Status) Unknown(r Reading) bool {
	return (s.Failed|s.SIM.Failed|s.Modem.Failed)&r != 0
}

// NothingRead reports whether every reading of the Status failed: the
// modem's identity, the SIM, every registration domain and the operator.
// Such a Status says nothing about the device (a port that echoes OK to
// everything, a modem still booting) and must not be shown as one.
func (s *Status) NothingRead() bool {
	all := ReadFirmware | ReadIMEI | ReadSIMState | ReadCS | ReadPS | ReadEPS | Read5GS | ReadOperator
	return (s.Failed|s.SIM.Failed|s.Modem.Failed)&all == all
}

// RegistrationKnown reports whether Registered is a value: some domain is
// registered, or every domain was read.
func (s *Status) RegistrationKnown() bool {
	return s.Registered() || !s.Unknown(ReadCS|ReadPS|ReadEPS|Read5GS)
}

// maxInfoLen bounds a manufacturer, model or revision string: real ones
// are a few dozen characters.
const maxInfoLen = 128

// validInfo reports whether s can be a manufacturer, model or revision:
// printable ASCII, 1..maxInfoLen characters.
func validInfo(s string) bool {
	if s == "" || len(s) > maxInfoLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return strings.TrimSpace(s) != ""
}

// sameReg reports whether two registrations of one domain say the same:
// the same <stat> and location.
func sameReg(a, b *Registration) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Stat == b.Stat && sameCell(a, b)
}

// agree returns b with every reading on which a and b disagree marked
// unknown, and every reading either failed: a change is believed only when
// a second read confirms it.
func agree(a, b *Status) *Status {
	ns := *b
	ns.Registration = copyRegs(b.Registration)
	if !a.SIM.Known() || !ns.SIM.Known() || !a.SIM.Same(ns.SIM) {
		ns.SIM = SIMInfo{Failed: ReadSIM}
	}
	for _, d := range Domains {
		r := RegReading(d)
		if a.Unknown(r) || ns.Unknown(r) || !sameReg(a.Registration[d], ns.Registration[d]) {
			ns.Registration[d] = nil
			ns.Failed |= r
		}
	}
	if a.Unknown(ReadOperator) || ns.Unknown(ReadOperator) || plmnOf(a) != plmnOf(&ns) {
		ns.Operator.MCC, ns.Operator.MNC = nil, nil
		ns.Failed |= ReadOperator
	}
	return &ns
}

// mergeKnown returns cur with each unknown reading replaced by prev's
// (the last known value): the baseline later readings are compared with.
func mergeKnown(prev, cur *Status) *Status {
	ns := *cur
	ns.Registration = copyRegs(cur.Registration)
	if prev == nil {
		return &ns
	}
	if !ns.SIM.Known() {
		ns.SIM = prev.SIM
	}
	for _, d := range Domains {
		r := RegReading(d)
		if ns.Failed&r != 0 {
			ns.Registration[d] = prev.Registration[d]
			ns.Failed = ns.Failed&^r | prev.Failed&r
		}
	}
	if ns.Failed&ReadOperator != 0 {
		ns.Operator.MCC, ns.Operator.MNC = prev.Operator.MCC, prev.Operator.MNC
		ns.Failed = ns.Failed&^ReadOperator | prev.Failed&ReadOperator
	}
	m := &ns.Modem
	for _, f := range []struct {
		r        Reading
		dst, src *string
	}{{ReadManufacturer, &m.Manufacturer, &prev.Modem.Manufacturer}, {ReadModel, &m.Model, &prev.Modem.Model},
		{ReadRevision, &m.Revision, &prev.Modem.Revision}} {
		if m.Failed&f.r != 0 {
			*f.dst = *f.src
			m.Failed = m.Failed&^f.r | prev.Modem.Failed&f.r
		}
	}
	if m.Failed&ReadIMEI != 0 {
		m.IMEI = prev.Modem.IMEI
		m.Failed = m.Failed&^ReadIMEI | prev.Modem.Failed&ReadIMEI
	}
	return &ns
}

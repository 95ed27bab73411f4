package atmodem

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// The EID of an eUICC is read from its ISD-R (GSMA SGP.22) over a logical
// channel (3GPP TS 27.007 §8.45 +CCHO, §8.43 +CGLA, §8.46 +CCHC):
// ES10c.GetEID is a STORE DATA command carrying GetEuiccDataRequest
// (BF3E, tag list 5C 01 5A), answered with BF3E { 5A 10 <EID> } and 9000.
const (
	isdrAID    = "A0000005591010FFFFFFFF8900000100"
	getEIDApdu = "80E2910006BF3E035C015A00"
)

// ParseCCHO reads the session id of a +CCHO reply: "<sessionid>" as
// 27.007 gives it, or "+CCHO: <sessionid>" as much firmware does.
func ParseCCHO(lines []string) (int, error) {
	for _, l := range lines {
		v, ok := valueOf(l, "+CCHO:")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.Trim(v, `" `)); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("ccho: %w", ErrNoReading)
}

// ParseCGLAEID reads the EID from the reply to GET EID over +CGLA:
// "+CGLA: <length>,"BF3E125A10<32 digits>9000"". Any other shape, status
// word or an EID that fails its check digits is an error: unknown.
func ParseCGLAEID(line string) (ident.EID, error) {
	v, ok := valueOf(line, "+CGLA:")
	if !ok {
		return ident.EID{}, fmt.Errorf("cgla: not a +CGLA line")
	}
	f := splitFields(v)
	if len(f) < 2 {
		return ident.EID{}, fmt.Errorf("cgla: %d fields, want 2", len(f))
	}
	r := strings.ToUpper(strings.TrimSpace(f[1].s))
	if n, ok := f[0].int(); !ok || n != len(r) {
		return ident.EID{}, fmt.Errorf("cgla: length does not match the response")
	}
	if !strings.HasSuffix(r, "9000") {
		return ident.EID{}, fmt.Errorf("cgla: status word is not 9000")
	}
	r = strings.TrimSuffix(r, "9000")
	// BF3E <len> 5A 10 <16 bytes>
	if len(r) != 2*(3+2+16) || !strings.HasPrefix(r, "BF3E12") || r[6:10] != "5A10" {
		return ident.EID{}, fmt.Errorf("cgla: not a GetEuiccData response")
	}
	eid, err := ident.ParseEID(r[10:])
	if err != nil {
		return ident.EID{}, fmt.Errorf("cgla: %w", err)
	}
	return eid, nil
}

// readEID opens a logical channel to the ISD-R, asks for the EID and
// closes the channel. A SIM that is no eUICC refuses the channel: no EID
// (the reading is not given, not unknown: the EID drives no event).
func (m *Modem) readEID(ctx context.Context) (ident.EID, error) {
	lines, err := m.E.Command(ctx, `AT+CCHO="`+isdrAID+`"`)
	if err != nil {
		return ident.EID{}, err
	}
	sid, err := ParseCCHO(lines)
	if err != nil {
		return ident.EID{}, err
	}
	defer func() {
		if _, err := m.E.Command(ctx, "AT+CCHC="+strconv.Itoa(sid)); err != nil && !errors.Is(err, at.ErrClosed) {
			m.log.Debug("logical channel not closed", "err", err)
		}
	}()
	lines, err = m.E.Run(ctx, at.Cmd{Line: fmt.Sprintf(`AT+CGLA=%d,%d,"%s"`, sid, len(getEIDApdu), getEIDApdu), Prefix: "+CGLA:"})
	if err != nil {
		return ident.EID{}, err
	}
	if len(lines) == 0 {
		return ident.EID{}, ErrNoReading
	}
	return ParseCGLAEID(lines[0])
}

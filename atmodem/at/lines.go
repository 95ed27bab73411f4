package at

// Bounds on what the engine keeps of a modem's output, whatever the modem
// sends (a runaway reply, a line without end, a URC flood, an attack of the
// class of oFono's CVE-2024-7539/7540, which overflowed on long +CUSD and
// SMS lines). Each is several times what real modems print; beyond it the
// input is noise, dropped and reported as an *OverflowError (ErrOverflow),
// which the modem layer treats as an unknown reading.
const (
	// MaxLineBytes bounds one line. The longest lines real modems print
	// are a few hundred bytes: AT+COPS=? with a dozen operators (~1 KB),
	// a +CUSD answer in UCS2 hex (182 characters: ~750 B), a +CMGL/+CMGR
	// PDU (176 octets in hex plus header: ~400 B), Quectel's neighbour
	// cell lists. A longer line is dropped whole, never cut into pieces
	// that could be taken as data.
	MaxLineBytes = 4096
	// MaxReplyLines bounds the information lines of one reply. The
	// longest real replies are listings: +CMGL of a full SIM (50
	// messages, two lines each), +CPBR of a phone book, AT+CLAC (~200
	// commands on Quectel modules).
	MaxReplyLines = 256
	// MaxReplyBytes bounds the information bytes of one reply (the same
	// listings are a few KB to ~30 KB).
	MaxReplyBytes = 64 << 10
	// maxQueuedURCs and maxQueuedURCBytes bound the unsolicited lines
	// waiting for the dispatcher; beyond them the oldest are dropped. A
	// modem sends a few URCs a minute; a burst after a reset is a dozen.
	maxQueuedURCs     = 1024
	maxQueuedURCBytes = 256 << 10
	// maxOwed bounds the final result codes the engine expects from
	// commands it gave up on (the resync probe ends on a quiet spell
	// anyway: a larger count would only swallow more lines).
	maxOwed = 4
)

// lineSplitter cuts the modem's byte stream into lines. A line ends at any
// run of CR and LF, so "\r\n", "\r\r\n", "\n\r" and a bare "\r" (echo) all
// work; empty lines vanish. Control characters other than tab are dropped:
// line noise must not reach a parser. A line longer than maxLine is
// dropped whole: its bytes are skipped up to its end, so garbage without
// terminators neither grows memory nor becomes a line (tooLong is called
// once, when the line outgrows the bound).
type lineSplitter struct {
	buf     []byte
	maxLine int
	long    bool // skipping the rest of an over-long line
}

// feed adds bytes and returns the complete lines they finish.
func (s *lineSplitter) feed(p []byte, emit func(string), tooLong func()) {
	max := s.maxLine
	if max <= 0 {
		max = MaxLineBytes
	}
	if s.buf == nil {
		s.buf = make([]byte, 0, 256)
	}
	for _, c := range p {
		switch {
		case c == '\r' || c == '\n':
			if len(s.buf) > 0 && !s.long {
				emit(string(s.buf))
			}
			s.buf = s.buf[:0]
			s.long = false
		case s.long:
			// the rest of an over-long line
		case c < 0x20 && c != '\t', c == 0x7f:
			// drop control characters and NUL
		default:
			if len(s.buf) >= max {
				s.buf = s.buf[:0]
				s.long = true
				if tooLong != nil {
					tooLong()
				}
				continue
			}
			s.buf = append(s.buf, c)
		}
	}
}

// pending returns the bytes of an unfinished line.
func (s *lineSplitter) pending() string { return string(s.buf) }

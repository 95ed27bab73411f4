package atmodem

// lineSplitter cuts the modem's byte stream into lines. A line ends at any
// run of CR and LF, so "\r\n", "\r\r\n", "\n\r" and a bare "\r" (echo) all
// work; empty lines vanish. Control characters other than tab are dropped:
// line noise must not reach a parser. A line longer than maxLine is cut, so
// garbage without terminators cannot grow memory without bound.
type lineSplitter struct {
	buf     []byte
	maxLine int
}

const defaultMaxLine = 4096

// feed adds bytes and returns the complete lines they finish.
func (s *lineSplitter) feed(p []byte, emit func(string)) {
	max := s.maxLine
	if max <= 0 {
		max = defaultMaxLine
	}
	for _, c := range p {
		switch {
		case c == '\r' || c == '\n':
			if len(s.buf) > 0 {
				emit(string(s.buf))
				s.buf = s.buf[:0]
			}
		case c < 0x20 && c != '\t', c == 0x7f:
			// drop control characters and NUL
		default:
			if len(s.buf) >= max {
				emit(string(s.buf))
				s.buf = s.buf[:0]
			}
			s.buf = append(s.buf, c)
		}
	}
}

// pending returns the bytes of an unfinished line.
func (s *lineSplitter) pending() string { return string(s.buf) }

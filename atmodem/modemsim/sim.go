package modemsim

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/transcript"
)

// Sim is a stateful modem. It answers commands from its state in its
// dialect, plays a scenario's timeline, and serves one connection at a
// time (a pty master, a net.Conn, an in-process pipe).
type Sim struct {
	mu      sync.Mutex
	sc      *Scenario
	sim     SIMState
	net     Network
	gnss    *GNSSFix
	gnssOn  bool
	echo    bool
	urcN    map[string]int // +CREG etc. -> <n>
	copsFmt int
	// vendorURCs: the host enabled the dialect's SIM URCs (AT#QSS=1,
	// AT+USIMSTAT=1, AT%XSIM=1); a reboot clears it.
	vendorURCs bool
	conn       io.ReadWriter
	connGen    int
	silent     time.Time // answers held until then
	held       []string  // commands received while silent
	partial    time.Time // writes fragmented until then
	down       time.Time // rebooting: input dropped until then
	unplugged  bool
	record     io.Writer
	onUnplug   func(d time.Duration)
	started    time.Time
	stop       chan struct{}
	stopped    atomic.Bool // set once by Stop; read without mu
	stopOnce   sync.Once
	rnd        *rand.Rand
	// abort, while an endless answer streams, is closed by the host's
	// next command line, which ends the stream.
	abort      chan struct{}
	abortFinal string // the final result that ends the aborted stream
	// resp are the answer overrides: the scenario's, then Respond's.
	resp map[string]*override
}

// override is one answer override and what is left of it.
type override struct {
	r    Response
	left int           // answers left when r.Times > 0
	done chan struct{} // closed when used up
}

// New returns a simulator in the scenario's initial state.
func New(sc *Scenario) *Sim {
	s := &Sim{sc: sc, sim: sc.SIM, net: sc.Network, gnss: sc.GNSS, urcN: map[string]int{}, stop: make(chan struct{}),
		rnd: rand.New(rand.NewPCG(1, 2)), resp: map[string]*override{}}
	for cmd, r := range sc.Responses {
		s.override(cmd, r)
	}
	return s
}

// Respond overrides the answer to the exact command line cmd from now on
// (for r.Times answers when that is above 0), as a scenario's responses
// do. The channel is closed when a counted override is used up.
func (s *Sim) Respond(cmd string, r Response) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.override(cmd, r)
}

func (s *Sim) override(cmd string, r Response) <-chan struct{} {
	o := &override{r: r, left: r.Times, done: make(chan struct{})}
	s.resp[strings.TrimSpace(cmd)] = o
	return o.done
}

// ReplaceSIM swaps the SIM without a word: no URC, as from a modem that
// does not report it; only a read notices.
func (s *Sim) ReplaceSIM(ns SIMState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns.State == "" {
		ns.State = "ready"
	}
	s.sim = ns
}

// Record writes a transcript of every exchange to w ("> " host to modem,
// "< " modem to host), in the format of atmodem/transcript: a header saying
// where it came from, then one step per line. Lines are written verbatim;
// an echo and garbage are raw ("<<") steps.
func (s *Sim) Record(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record = w
	fmt.Fprintf(w, "# source: atmodem/modemsim, dialect %s\n# kind: synthetic\n", s.sc.Dialect)
}

// Serve answers commands read from rw until rw fails or Stop is called.
// Only one connection is served at a time: a new Serve takes over.
func (s *Sim) Serve(rw io.ReadWriter) error {
	s.mu.Lock()
	s.conn = rw
	s.connGen++
	gen := s.connGen
	s.mu.Unlock()
	buf := make([]byte, 256)
	var line []byte
	for {
		n, err := rw.Read(buf)
		for _, c := range buf[:n] {
			switch c {
			case '\r', '\n':
				if len(line) > 0 {
					s.command(gen, string(line))
					line = line[:0]
				}
			default:
				if len(line) < 1024 {
					line = append(line, c)
				}
			}
		}
		if err != nil {
			s.mu.Lock()
			if s.connGen == gen {
				s.conn = nil
			}
			s.mu.Unlock()
			return err
		}
	}
}

// Stop ends the timeline.
//
// It takes no lock: a writer blocked on a full pty holds s.mu, and the
// PTY's Close, which unblocks it, calls Stop (taking s.mu here deadlocked
// under load).
func (s *Sim) Stop() {
	s.stopOnce.Do(func() {
		s.stopped.Store(true)
		close(s.stop)
	})
}

// Start plays the scenario's timeline from now, in a goroutine.
func (s *Sim) Start() {
	s.mu.Lock()
	s.started = time.Now()
	steps := append([]Step(nil), s.sc.Timeline...)
	s.mu.Unlock()
	go func() {
		for _, st := range steps {
			wait := time.Until(s.started.Add(time.Duration(st.At)))
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
			s.Apply(st)
		}
	}()
}

// Apply plays one timeline step now.
func (s *Sim) Apply(st Step) {
	switch {
	case st.URC != "":
		s.URC(st.URC)
	case len(st.SIM) > 0:
		remove, ns, _ := st.simChange()
		if remove {
			s.RemoveSIM()
		} else {
			s.InsertSIM(ns)
		}
	case st.Network != nil:
		s.SetNetwork(*st.Network)
	case len(st.Respond) > 0:
		for cmd, r := range st.Respond {
			s.Respond(cmd, r)
		}
	case st.GNSS != nil:
		s.mu.Lock()
		s.gnss = st.GNSS
		s.mu.Unlock()
	case st.Fault != "":
		s.Fault(st.Fault, time.Duration(st.For))
	case st.Flap != nil:
		s.Flap(*st.Flap)
	}
}

// Flap plays a cell storm (see Flap) and returns when the last change
// was written.
func (s *Sim) Flap(f Flap) {
	for i := 0; i < f.Times; i++ {
		c := f.Cells[i%len(f.Cells)]
		s.SetNetwork(Network{CellID: &c})
		if f.Every > 0 {
			select {
			case <-s.stop:
				return
			case <-time.After(time.Duration(f.Every)):
			}
		}
	}
}

// write sends raw bytes on the current connection (fragmented during a
// "partial" fault). Called with s.mu held.
func (s *Sim) write(b string) {
	if s.conn == nil || s.unplugged {
		return
	}
	if time.Now().Before(s.partial) {
		for len(b) > 0 {
			n := 1 + s.rnd.IntN(3)
			if n > len(b) {
				n = len(b)
			}
			s.conn.Write([]byte(b[:n]))
			b = b[n:]
			time.Sleep(time.Millisecond)
		}
		return
	}
	s.conn.Write([]byte(b))
}

// writeRaw sends bytes that are not a framed line (an echo, noise) and
// records them as a raw step. Called with s.mu held.
func (s *Sim) writeRaw(b string) {
	if s.record != nil {
		fmt.Fprintf(s.record, "<< %s\n", transcript.Escape(b))
	}
	s.write(b)
}

func (s *Sim) emitLine(l string) {
	if s.record != nil {
		fmt.Fprintf(s.record, "< %s\n", l)
	}
	s.write("\r\n" + l + "\r\n")
}

// URC sends an unsolicited line now.
func (s *Sim) URC(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.down) {
		return
	}
	s.emitLine(line)
}

// command handles one command line from the host.
func (s *Sim) command(gen int, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.connGen || time.Now().Before(s.down) || s.unplugged {
		return
	}
	if s.record != nil {
		fmt.Fprintf(s.record, "> %s\n", line)
	}
	if s.abort != nil {
		// The line aborts an endless answer, which ends with its final
		// result before the line is answered.
		close(s.abort)
		s.abort = nil
		if s.abortFinal != "" {
			s.emitLine(s.abortFinal)
		}
	}
	if s.echo {
		s.writeRaw(line + "\r")
	}
	if d := time.Until(s.silent); d > 0 {
		s.held = append(s.held, line)
		if len(s.held) == 1 {
			time.AfterFunc(d, s.release)
		}
		return
	}
	s.answer(line)
}

// release answers the commands held during a silence: late replies.
func (s *Sim) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.held
	s.held = nil
	for _, l := range held {
		s.answer(l)
	}
}

func (s *Sim) answer(line string) {
	key := strings.TrimSpace(line)
	if o, ok := s.resp[key]; ok {
		r := o.r
		if r.Times > 0 {
			if o.left--; o.left <= 0 {
				delete(s.resp, key)
				close(o.done)
			}
		}
		if r.NoAnswer {
			return
		}
		if r.Long > 0 || r.Raw != "" || r.Endless {
			s.hostile(r)
			return
		}
		if r.Delay > 0 {
			time.AfterFunc(time.Duration(r.Delay), func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.reply(r.Lines, r.Final)
			})
			return
		}
		s.reply(r.Lines, r.Final)
		return
	}
	lines, final := s.respond(key)
	s.reply(lines, final)
}

// hostile plays a hostile answer (Response.Long, Raw, Endless). Called
// with s.mu held.
func (s *Sim) hostile(r Response) {
	if r.Long > 0 {
		s.writeRaw("\r\n")
		chunk := strings.Repeat("A", min(r.Long, 64<<10))
		for n := r.Long; n > 0; n -= len(chunk) {
			s.write(chunk[:min(n, len(chunk))]) // not recorded: too long
		}
	}
	if r.Raw != "" {
		raw, _ := transcript.Unescape(r.Raw)
		s.writeRaw(raw)
	}
	if !r.Endless {
		s.reply(r.Lines, r.Final)
		return
	}
	gen := s.connGen
	var abort chan struct{}
	var until time.Time
	if r.For > 0 {
		until = time.Now().Add(time.Duration(r.For))
	} else {
		abort = make(chan struct{})
		s.abort, s.abortFinal = abort, r.Final
	}
	go func() {
		for {
			select {
			case <-s.stop:
				return
			case <-abort:
				// command() closed it and wrote the final result.
				return
			default:
			}
			s.mu.Lock()
			if gen != s.connGen || s.conn == nil || s.stopped.Load() {
				s.mu.Unlock()
				return
			}
			if !until.IsZero() && !time.Now().Before(until) {
				s.reply(nil, r.Final)
				s.mu.Unlock()
				return
			}
			select {
			case <-abort:
				s.mu.Unlock()
				return
			default:
			}
			for _, l := range r.Lines {
				s.write("\r\n" + l + "\r\n") // not recorded: endless
			}
			s.mu.Unlock()
		}
	}()
}

func (s *Sim) reply(lines []string, final string) {
	for _, l := range lines {
		s.emitLine(l)
	}
	if final != "" {
		s.emitLine(final)
	}
}

var errCME10 = "+CME ERROR: 10"

// respond computes the answer to cmd from the state, in the dialect.
func (s *Sim) respond(cmd string) ([]string, string) {
	u := strings.ToUpper(cmd)
	simReady := s.sim.State == "ready"
	dialect := s.sc.Dialect
	switch {
	case u == "AT":
		return nil, "OK"
	case u == "ATE0" || u == "ATE1":
		s.echo = u == "ATE1"
		return nil, "OK"
	case u == "ATZ":
		s.urcN = map[string]int{}
		return nil, "OK"
	case strings.HasPrefix(u, "AT+CMEE="):
		return nil, "OK"
	case u == "AT+CGMI" || u == "AT+GMI":
		return []string{s.sc.Modem.Manufacturer}, "OK"
	case u == "AT+CGMM" || u == "AT+GMM":
		return []string{s.sc.Modem.Model}, "OK"
	case u == "AT+CGMR" || u == "AT+GMR":
		if dialect == "simcom" {
			return []string{"+CGMR: " + s.sc.Modem.Revision}, "OK"
		}
		return []string{s.sc.Modem.Revision}, "OK"
	case u == "AT+CGSN" || u == "AT+GSN":
		return []string{s.sc.Modem.IMEI}, "OK"
	case u == "AT+CPIN?":
		switch s.sim.State {
		case "ready":
			return []string{"+CPIN: READY"}, "OK"
		}
		if code := CPINCode(s.sim.State); code != "" {
			return []string{"+CPIN: " + code}, "OK"
		}
		return nil, errCME10
	case u == "AT+CIMI":
		if !simReady {
			return nil, errCME10
		}
		return []string{s.sim.IMSI}, "OK"
	}
	if lines, final, ok := s.vendorRespond(u); ok {
		return lines, final
	}
	switch {
	case u == "AT+CCID" || u == "AT+ICCID":
		if !simReady {
			return nil, errCME10
		}
		if dialect == "generic" || isVendorDialect(dialect) {
			return []string{"+CCID: " + s.sim.ICCID}, "OK"
		}
		return []string{s.sim.ICCID}, "OK"
	case u == "AT+QCCID" && dialect == "quectel":
		if !simReady {
			return nil, errCME10
		}
		return []string{"+QCCID: " + s.sim.ICCID}, "OK"
	case u == "AT+CICCID" && dialect == "simcom":
		if !simReady {
			return nil, errCME10
		}
		return []string{"+ICCID: " + s.sim.ICCID}, "OK"
	case strings.HasPrefix(u, "AT+CCHO="):
		if !simReady || s.sim.EID == "" || u != `AT+CCHO="A0000005591010FFFFFFFF8900000100"` {
			return nil, "+CME ERROR: 4"
		}
		return []string{"1"}, "OK"
	case strings.HasPrefix(u, "AT+CGLA="):
		if !simReady || s.sim.EID == "" || u != `AT+CGLA=1,24,"80E2910006BF3E035C015A00"` {
			return nil, "+CME ERROR: 4"
		}
		r := "BF3E125A10" + s.sim.EID + "9000"
		return []string{fmt.Sprintf("+CGLA: %d,\"%s\"", len(r), r)}, "OK"
	case u == "AT+CCHC=1":
		return nil, "OK"
	case u == "AT+CRSM=176,12258,0,0,10":
		if !simReady {
			return nil, errCME10
		}
		return []string{fmt.Sprintf("+CRSM: 144,0,\"%s\"", swappedBCD(s.sim.ICCID))}, "OK"
	case strings.HasPrefix(u, "AT+QSIMSTAT") && dialect == "quectel":
		return nil, "OK"
	case u == `AT+QENG="SERVINGCELL"` && dialect == "quectel":
		return strings.Split(s.qeng(), "\r\n"), "OK"
	case u == "AT+CPSI?" && dialect == "simcom":
		return []string{s.cpsi()}, "OK"
	case u == "AT+QGPS=1" && dialect == "quectel":
		if s.gnssOn {
			return nil, "+CME ERROR: 504" // session is ongoing
		}
		s.gnssOn = true
		return nil, "OK"
	case u == "AT+QGPSEND" && dialect == "quectel":
		if !s.gnssOn {
			return nil, "+CME ERROR: 505" // session not active
		}
		s.gnssOn = false
		return nil, "OK"
	case u == "AT+CGPS=0" && dialect == "simcom":
		if !s.gnssOn {
			return nil, "ERROR"
		}
		s.gnssOn = false
		return nil, "OK"
	case u == "AT+QGPSLOC=2" && dialect == "quectel":
		switch {
		case !s.gnssOn:
			return nil, "+CME ERROR: 505" // session not active
		case s.gnss == nil:
			return nil, "+CME ERROR: 516" // not fixed now
		}
		return []string{s.qgpsloc()}, "OK"
	case u == "AT+CGPS=1" && dialect == "simcom":
		if s.gnssOn {
			return nil, "ERROR"
		}
		s.gnssOn = true
		return nil, "OK"
	case u == "AT+CGPSINFO" && dialect == "simcom":
		if !s.gnssOn || s.gnss == nil {
			return []string{"+CGPSINFO: ,,,,,,,,"}, "OK"
		}
		return []string{s.cgpsinfo()}, "OK"
	case strings.HasPrefix(u, "AT+COPS=3,"):
		f, err := strconv.Atoi(u[len("AT+COPS=3,"):])
		if err != nil || f < 0 || f > 2 {
			return nil, "+CME ERROR: 50"
		}
		s.copsFmt = f
		return nil, "OK"
	case u == "AT+COPS?":
		if !s.registered() {
			return []string{"+COPS: 0"}, "OK"
		}
		oper := *s.net.Operator
		if s.copsFmt == 2 {
			oper = *s.net.MCC + *s.net.MNC
		}
		return []string{fmt.Sprintf("+COPS: 0,%d,\"%s\",%d", s.copsFmt, oper, *s.net.Act)}, "OK"
	case u == "AT+CSQ":
		rssi := 99
		if s.registered() {
			rssi = (*s.net.RSSIdBm + 113) / 2
			rssi = max(0, min(31, rssi))
		}
		return []string{fmt.Sprintf("+CSQ: %d,99", rssi)}, "OK"
	case u == "AT+CESQ":
		rsrq, rsrp := 255, 255
		if s.registered() {
			rsrq = max(0, min(34, (*s.net.RSRQdB+20)*2))
			rsrp = max(0, min(97, *s.net.RSRPdBm+141))
		}
		return []string{fmt.Sprintf("+CESQ: 99,99,255,255,%d,%d", rsrq, rsrp)}, "OK"
	}
	for _, c := range regCommands {
		if !s.supportsReg(c) {
			continue
		}
		switch {
		case u == "AT"+c+"?":
			return []string{s.regLine(c, true)}, "OK"
		case strings.HasPrefix(u, "AT"+c+"="):
			n, err := strconv.Atoi(u[len(c)+3:])
			if err != nil || n < 0 || n > 2 {
				return nil, "+CME ERROR: 50"
			}
			s.urcN[c] = n
			return nil, "OK"
		}
	}
	return nil, "ERROR"
}

var regCommands = []string{"+CREG", "+CGREG", "+CEREG", "+C5GREG"}

// supportsReg: +C5GREG only on a 5G network (AcT 10..13), as LTE-only
// modules answer ERROR.
func (s *Sim) supportsReg(c string) bool {
	return c != "+C5GREG" || *s.net.Act >= 10
}

func (s *Sim) stat() int {
	if s.sim.State != "ready" {
		return 2
	}
	return *s.net.Stat
}

func (s *Sim) registered() bool { st := s.stat(); return st == 1 || st == 5 }

// regLine renders +CxREG for a query (with <n>) or as a URC.
func (s *Sim) regLine(c string, query bool) string {
	n := s.urcN[c]
	var b strings.Builder
	b.WriteString(c + ": ")
	if query {
		fmt.Fprintf(&b, "%d,", n)
	}
	fmt.Fprintf(&b, "%d", s.stat())
	if n >= 2 && s.registered() {
		area := *s.net.TAC
		if c == "+CREG" || c == "+CGREG" {
			area = *s.net.LAC
		}
		fmt.Fprintf(&b, ",\"%04X\",\"%08X\",%d", area, *s.net.CellID, *s.net.Act)
	}
	return b.String()
}

// emitRegURCs sends the registration URCs the host enabled.
func (s *Sim) emitRegURCs() {
	for _, c := range regCommands {
		if s.urcN[c] > 0 && s.supportsReg(c) {
			s.emitLine(s.regLine(c, false))
		}
	}
}

// rat names the radio of the network's access technology (27.007 <AcT>).
func (s *Sim) rat() string {
	switch *s.net.Act {
	case 0, 1, 3:
		return "gsm"
	case 2, 4, 5, 6:
		return "wcdma"
	case 11, 12:
		return "nr5g-sa"
	case 13:
		return "en-dc"
	}
	return "lte"
}

// qeng is Quectel's AT+QENG="servingcell" answer for the network's radio.
func (s *Sim) qeng() string {
	if !s.registered() {
		return `+QENG: "servingcell","SEARCH"`
	}
	st := "NOCONN"
	if *s.net.Connected {
		st = "CONNECT"
	}
	n := s.net
	lte := fmt.Sprintf(`"LTE","FDD",%s,%s,%X,%d,%d,%d,5,5,%X,%d,%d,%d,%d,-`,
		*n.MCC, *n.MNC, *n.CellID, *n.PCI, *n.EARFCN, *n.Band, *n.TAC, *n.RSRPdBm, *n.RSRQdB, *n.RSSIdBm, *n.SINRdB)
	switch s.rat() {
	case "gsm":
		// RxLev is dBm + 111.
		return fmt.Sprintf(`+QENG: "servingcell","%s","GSM",%s,%s,%X,%X,23,%d,%d,%d,25,-,0,0,0,1,-,-,-,-,-,-,-,-,-,-`,
			st, *n.MCC, *n.MNC, *n.LAC, *n.CellID, *n.EARFCN, *n.Band, *n.RSSIdBm+111)
	case "wcdma":
		return fmt.Sprintf(`+QENG: "servingcell","%s","WCDMA",%s,%s,%X,%X,%d,%d,1,%d,-5,-,-,-,-,-,0`,
			st, *n.MCC, *n.MNC, *n.LAC, *n.CellID, *n.EARFCN, *n.PCI, *n.RSRPdBm)
	case "nr5g-sa":
		return fmt.Sprintf(`+QENG: "servingcell","%s","NR5G-SA","TDD",%s,%s,%X,%d,%X,%d,%d,4,%d,%d,%d,1,-`,
			st, *n.MCC, *n.MNC, *n.CellID, *n.PCI, *n.TAC, *n.EARFCN, *n.Band, *n.RSRPdBm, *n.RSRQdB, *n.SINRdB)
	case "en-dc":
		// A state line, the LTE anchor without the first two fields, the NR leg.
		return fmt.Sprintf("+QENG: \"servingcell\",\"%s\"\r\n+QENG: %s\r\n+QENG: \"NR5G-NSA\",%s,%s,%d,%d,%d,%d,627264,78",
			st, lte, *n.MCC, *n.MNC, *n.PCI, *n.RSRPdBm-3, *n.SINRdB, *n.RSRQdB)
	}
	return fmt.Sprintf(`+QENG: "servingcell","%s",%s`, st, lte)
}

// cpsi is SIMCom's AT+CPSI? answer for the network's radio.
func (s *Sim) cpsi() string {
	if !s.registered() {
		return "+CPSI: NO SERVICE,Online"
	}
	n := s.net
	switch s.rat() {
	case "gsm":
		return fmt.Sprintf("+CPSI: GSM,Online,%s-%s,0x%04X,%d,%d EGSM 900,%d,0,42-42",
			*n.MCC, *n.MNC, *n.LAC, *n.CellID, *n.EARFCN, *n.RSSIdBm)
	case "wcdma":
		return fmt.Sprintf("+CPSI: WCDMA,Online,%s-%s,0x%04X,%d,WCDMA IMT 2000,%d,%d,0,-5,%d,-5,24,42,-34,-16,3",
			*n.MCC, *n.MNC, *n.LAC, *n.CellID, *n.PCI, *n.EARFCN, *n.RSRPdBm)
	case "nr5g-sa":
		return fmt.Sprintf("+CPSI: NR5G_SA,Online,%s-%s,0x%06X,%d,%d,NR5G_BAND%d,%d,%d,%d,%d",
			*n.MCC, *n.MNC, *n.TAC, *n.CellID, *n.PCI, *n.Band, *n.EARFCN, *n.RSRPdBm*10, *n.RSRQdB*10, *n.SINRdB*10)
	}
	return fmt.Sprintf("+CPSI: LTE,Online,%s-%s,0x%04X,%d,%d,EUTRAN-BAND%d,%d,5,5,%d,%d,%d,%d",
		*n.MCC, *n.MNC, *n.TAC, *n.CellID, *n.PCI, *n.Band, *n.EARFCN,
		*n.RSRQdB*10, *n.RSRPdBm*10, *n.RSSIdBm*10, *n.SINRdB)
}

// swappedBCD encodes an ICCID as EF_ICCID stores it: BCD, nibbles swapped,
// F-padded to ten bytes.
func swappedBCD(iccid string) string {
	d := iccid
	for len(d) < 20 {
		d += "F"
	}
	out := make([]byte, 0, 10)
	for i := 0; i+1 < len(d); i += 2 {
		lo, _ := strconv.ParseUint(d[i:i+1], 16, 8)
		hi, _ := strconv.ParseUint(d[i+1:i+2], 16, 8)
		out = append(out, byte(hi<<4|lo))
	}
	return strings.ToUpper(hex.EncodeToString(out))
}

// RemoveSIM takes the SIM out: dialect URCs, then registration lost.
func (s *Sim) RemoveSIM() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sim = SIMState{State: "absent"}
	switch s.sc.Dialect {
	case "quectel":
		s.emitLine("+QSIMSTAT: 1,0")
	case "simcom":
		s.emitLine("+SIMCARD: NOT AVAILABLE")
	default:
		for _, l := range s.simURCs(false) {
			s.emitLine(l)
		}
		s.emitLine("+CPIN: NOT READY")
	}
	s.emitRegURCs()
}

// InsertSIM puts a SIM in (a different one if ns differs), then the
// modem registers again.
func (s *Sim) InsertSIM(ns SIMState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns.State == "" {
		ns.State = "ready"
	}
	s.sim = ns
	switch s.sc.Dialect {
	case "quectel":
		s.emitLine("+QSIMSTAT: 1,1")
		s.emitLine("+QUSIM: 1")
		s.emitLine("+CPIN: READY")
		s.emitLine("+QIND: SMS DONE")
	default:
		for _, l := range s.simURCs(true) {
			s.emitLine(l)
		}
		s.emitLine("+CPIN: READY")
	}
	s.emitRegURCs()
}

// SetNetwork changes the network view; registration URCs follow when the
// registration or the serving cell changed.
func (s *Sim) SetNetwork(p Network) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.regLine("+CEREG", false) + s.regLine("+CREG", false)
	s.net.patch(p)
	if s.regLine("+CEREG", false)+s.regLine("+CREG", false) != before {
		s.emitRegURCs()
	}
}

// SetUnplugHook is called by the pty server when an unplug fault starts.
func (s *Sim) SetUnplugHook(fn func(d time.Duration)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onUnplug = fn
}

// ErrUnplugged is returned by connections while the modem is unplugged.
var ErrUnplugged = errors.New("modem unplugged")

// Fault plays a fault: silence (answers held for d, then sent late),
// garbage (a line of noise), partial (replies fragmented for d), echo
// (echo switched on), reboot (deaf for d, URC settings lost, echo on,
// then RDY), unplug (the port vanishes for d).
func (s *Sim) Fault(kind string, d time.Duration) {
	s.mu.Lock()
	switch kind {
	case "silence":
		s.silent = time.Now().Add(d)
	case "garbage":
		noise := make([]byte, 24)
		for i := range noise {
			noise[i] = byte(s.rnd.IntN(256))
		}
		s.writeRaw("\r\n" + string(noise) + "\r\n")
	case "partial":
		if d <= 0 {
			d = time.Second
		}
		s.partial = time.Now().Add(d)
	case "echo":
		s.echo = true
	case "reboot":
		if d <= 0 {
			d = time.Second
		}
		s.down = time.Now().Add(d)
		s.held = nil
		s.urcN = map[string]int{}
		s.echo = true
		s.copsFmt = 0
		s.gnssOn = false
		s.vendorURCs = false
		time.AfterFunc(d, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if u := resetURC(s.sc.Dialect); u != "" {
				s.emitLine(u)
			}
			if s.sim.State == "ready" {
				s.emitLine("+CPIN: READY")
			}
		})
	case "unplug":
		s.unplugged = true
		hook := s.onUnplug
		s.mu.Unlock()
		if hook != nil {
			hook(d)
		}
		time.AfterFunc(d, func() {
			s.mu.Lock()
			s.unplugged = false
			s.mu.Unlock()
		})
		return
	}
	s.mu.Unlock()
}

// Unplugged reports whether an unplug fault is in progress.
func (s *Sim) Unplugged() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unplugged
}

// GNSSOn reports whether the GNSS receiver is on (turned on by the host,
// off again after AT+QGPSEND / AT+CGPS=0 or a reboot).
func (s *Sim) GNSSOn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gnssOn
}

// URCMode returns the <n> the host last set with AT+CxREG=<n> (c is
// "+CREG", "+CEREG", ...): 0 after a reboot until the host re-enables it.
func (s *Sim) URCMode(c string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urcN[c]
}

func (f *GNSSFix) hdopSats() (float64, int) {
	h, n := f.HDOP, f.Sats
	if h == 0 {
		h = 0.9
	}
	if n == 0 {
		n = 8
	}
	return h, n
}

// qgpsloc is Quectel's AT+QGPSLOC=2 answer (decimal degrees).
func (s *Sim) qgpsloc() string {
	h, n := s.gnss.hdopSats()
	now := time.Now().UTC()
	return fmt.Sprintf("+QGPSLOC: %s,%.5f,%.5f,%.1f,35.0,3,0.00,0.0,0.0,%s,%02d",
		now.Format("150405.000"), s.gnss.Lat, s.gnss.Lon, h, now.Format("020106"), n)
}

// cgpsinfo is SIMCom's AT+CGPSINFO answer (ddmm.mmmmmm with hemispheres).
func (s *Sim) cgpsinfo() string {
	dm := func(v float64, pos, neg string) (float64, string) {
		h := pos
		if v < 0 {
			v, h = -v, neg
		}
		d := math.Floor(v)
		return d*100 + (v-d)*60, h
	}
	lat, ns := dm(s.gnss.Lat, "N", "S")
	lon, ew := dm(s.gnss.Lon, "E", "W")
	now := time.Now().UTC()
	return fmt.Sprintf("+CGPSINFO: %011.6f,%s,%012.6f,%s,%s,%s.0,35.0,0.0,0", lat, ns, lon, ew, now.Format("020106"), now.Format("150405"))
}

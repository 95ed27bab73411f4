// Package serialport opens the modem's AT port for the engine: a spec
// (a device path, "auto", "tcp:HOST:PORT") resolved to an
// io.ReadWriteCloser, the serial line set up, the port locked against a
// second user (TIOCEXCL and an flock, which also stop root), the
// processes holding a busy port named, and the AT interface of a known
// USB modem found in sysfs. Only the commands and the daemon's assembly
// import it: the engine and the modem layer above it work over any
// io.ReadWriter.
package serialport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// ErrBusy: another process has the port open.
var ErrBusy = errors.New("port in use by another process")

// Error explains why a port could not be opened, with a hint for the
// operator.
type Error struct {
	Path    string
	Holders []string // "ModemManager (pid 612)"
	Err     error
}

func (e *Error) Error() string {
	if len(e.Holders) > 0 {
		return fmt.Sprintf("open %s: %v: held by %s", e.Path, e.Err, strings.Join(e.Holders, ", "))
	}
	return fmt.Sprintf("open %s: %v", e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Hint says how to free the port.
func (e *Error) Hint() string {
	switch {
	case errors.Is(e.Err, ErrBusy):
		for _, h := range e.Holders {
			if strings.HasPrefix(h, "ModemManager") {
				return "ModemManager is using this port: stop it (systemctl stop ModemManager), or keep it off this port with a udev rule setting ENV{ID_MM_PORT_IGNORE}=\"1\" (see docs/install-pi.md), or use another of the modem's AT ports"
			}
		}
		return "another program is using the port; stop it or use another of the modem's AT ports"
	case errors.Is(e.Err, os.ErrPermission):
		return "no permission: add the user to the 'dialout' group (usermod -aG dialout USER) or run as the mtcagent service"
	case errors.Is(e.Err, os.ErrNotExist):
		return "no such device: is the modem plugged in? try --modem auto, or list ports with ls -l /dev/serial/by-id/"
	}
	return ""
}

// Port is an open modem port.
type Port struct {
	io.ReadWriteCloser
	Path string // what was opened
}

// Open resolves a modem spec other than sim: (the caller handles that):
// a device path, "auto", or "tcp:HOST:PORT".
func Open(spec string) (*Port, error) {
	switch {
	case spec == "auto":
		path, err := FindAT(DefaultSysfs)
		if err != nil {
			return nil, err
		}
		return OpenDevice(path)
	case strings.HasPrefix(spec, "tcp:"):
		addr := strings.TrimPrefix(spec, "tcp:")
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("connect to modem at %s: %w", addr, err)
		}
		return &Port{ReadWriteCloser: c, Path: spec}, nil
	case strings.HasPrefix(spec, "/"), strings.HasPrefix(spec, "."):
		return OpenDevice(spec)
	}
	return nil, fmt.Errorf("modem spec %q: want a device path, auto, tcp:HOST:PORT or sim:FILE", spec)
}

// OpenDevice opens a serial device for the engine: 115200 8N1, no read
// timeout (a read timeout makes Read return (0, nil), which the engine
// tolerates but need not), and an exclusive lock. go.bug.st/serial's
// TIOCEXCL does not stop root, so the agent also takes an flock and looks
// for other processes holding the device, and refuses to share it.
func OpenDevice(path string) (*Port, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	if holders := Holders(real); len(holders) > 0 {
		return nil, &Error{Path: path, Holders: holders, Err: ErrBusy}
	}
	p, err := serial.Open(real, &serial.Mode{BaudRate: 115200, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		var pe *serial.PortError
		if errors.As(err, &pe) && pe.Code() == serial.PortBusy {
			return nil, &Error{Path: path, Holders: Holders(real), Err: ErrBusy}
		}
		if _, serr := os.Stat(real); serr != nil {
			return nil, &Error{Path: path, Err: serr}
		}
		if f, oerr := os.OpenFile(real, os.O_RDWR, 0); oerr != nil {
			return nil, &Error{Path: path, Err: oerr}
		} else {
			f.Close()
		}
		return nil, &Error{Path: path, Err: err}
	}
	// An advisory lock on a separate descriptor keeps a second mtcagent
	// off the port, root or not.
	lock, err := os.OpenFile(real, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err == nil {
		if ferr := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); ferr != nil {
			lock.Close()
			p.Close()
			return nil, &Error{Path: path, Holders: Holders(real), Err: ErrBusy}
		}
	}
	return &Port{ReadWriteCloser: &lockedPort{Port: p, lock: lock}, Path: path}, nil
}

type lockedPort struct {
	serial.Port
	lock *os.File
}

func (l *lockedPort) Close() error {
	err := l.Port.Close()
	if l.lock != nil {
		l.lock.Close()
	}
	return err
}

// Holders lists other processes that have dev open ("name (pid N)"),
// found through /proc/*/fd. Without root only our own user's processes
// are visible; the open itself then reports EBUSY for the rest.
func Holders(dev string) []string {
	self := os.Getpid()
	procs, _ := os.ReadDir("/proc")
	var out []string
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err == nil && target == dev {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				out = append(out, fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid))
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// DefaultSysfs is where FindAT looks for tty devices.
var DefaultSysfs = "/sys"

// knownPort is a USB modem whose AT port sits on a known interface, or,
// where the interface number moves between firmware compositions (Huawei),
// on the interface with a known class/subclass/protocol.
type knownPort struct {
	vendor, product string // hex, lower case
	iface           int    // bInterfaceNumber, or -1: match class
	class           string // "ff/02/02": bInterfaceClass/SubClass/Protocol, when iface is -1
	name            string
}

// atPorts lists AT command interfaces of common modules (vendor manuals,
// the Linux option driver's tables, and ModemManager's udev port-type
// rules, which name each vendor's primary AT port). First match wins.
// Nordic nRF91 modules are UART modems without a USB interface of their
// own: give their port path (docs/atmodem.md).
var atPorts = []knownPort{
	{"2c7c", "0125", 2, "", "Quectel EC25/EG25"},
	{"2c7c", "0121", 2, "", "Quectel EC21"},
	{"2c7c", "0191", 2, "", "Quectel EG91"},
	{"2c7c", "0195", 2, "", "Quectel EG95"},
	{"2c7c", "0296", 2, "", "Quectel BG96"},
	{"2c7c", "0306", 2, "", "Quectel EP06/EG06"},
	{"2c7c", "0800", 2, "", "Quectel RM5xxQ"},
	{"1e0e", "9001", 2, "", "SIMCom SIM7600"},
	{"1e0e", "9011", 4, "", "SIMCom SIM7600 (RNDIS)"},
	{"1199", "9071", 3, "", "Sierra MC7455/EM7455"},  // MM: MC74XX primary if 03
	{"1199", "9091", 3, "", "Sierra EM7565"},         // MM: EM7565 primary if 03
	{"1bc7", "1201", 4, "", "Telit LE910C1"},         // MM: LE910C1 default cfg, if 04
	{"1bc7", "1101", 1, "", "Telit ME910C1"},         // MM: ME910C1, if 01
	{"1bc7", "110a", 1, "", "Telit ME910G1/ML865G1"}, // MM: MEx10G1, if 01
	{"1bc7", "1204", 3, "", "Telit ME910"},
	{"2cb7", "0104", 1, "", "Fibocom FM150"},              // MM: if 01 AT primary
	{"2cb7", "01a0", 2, "", "Fibocom NL668"},              // MM: if 02 AT primary
	{"2cb7", "0007", 2, "", "Fibocom L850-GL"},            // MM: ttyACM0 (if 02) AT
	{"12d1", "15c1", -1, "ff/02/02", "Huawei ME909s-120"}, // MM: PCUI ff/02/02
	{"12d1", "15c1", -1, "ff/01/02", "Huawei ME909s-120"},
	{"12d1", "1573", -1, "ff/01/02", "Huawei ME909u/MU609"},
	{"1546", "110a", 0, "", "u-blox LARA-R2/TOBY-R2"}, // MM: if 0 primary
	{"1546", "1141", 2, "", "u-blox SARA-U2/LISA-U2"},
	{"1546", "1146", 2, "", "u-blox TOBY-L2"},
}

// FindAT finds the AT port of a known USB modem under sysfs root and
// returns its /dev/serial/by-id name when there is one.
func FindAT(sysfs string) (string, error) {
	ttys, _ := filepath.Glob(filepath.Join(sysfs, "class", "tty", "tty*"))
	var seen []string
	for _, kp := range atPorts {
		for _, t := range ttys {
			name := filepath.Base(t)
			if !strings.HasPrefix(name, "ttyUSB") && !strings.HasPrefix(name, "ttyACM") {
				continue
			}
			iface, vid, pid, ok := usbInfo(t)
			if !ok {
				continue
			}
			if len(seen) < 8 {
				seen = append(seen, fmt.Sprintf("%s=%s:%s/%d", name, vid, pid, iface))
			}
			if vid != kp.vendor || pid != kp.product {
				continue
			}
			if kp.iface >= 0 && iface == kp.iface || kp.iface < 0 && usbClass(t) == kp.class {
				return byID(filepath.Join("/dev", name)), nil
			}
		}
	}
	if len(seen) > 0 {
		sort.Strings(seen)
		return "", fmt.Errorf("auto: no known modem AT port among USB serial ports %s; give the port with --modem /dev/ttyUSBn", strings.Join(seen, " "))
	}
	return "", fmt.Errorf("auto: no USB serial ports found: is the modem plugged in (lsusb)?")
}

// usbInfo reads the interface number and VID/PID above a tty in sysfs:
// .../usbN/N-1/N-1:1.2/ttyUSB2/tty/ttyUSB2 (usb-serial) or
// .../N-1:1.2/tty/ttyACM0 (cdc-acm).
func usbInfo(tty string) (iface int, vid, pid string, ok bool) {
	dev, err := filepath.EvalSymlinks(filepath.Join(tty, "device"))
	if err != nil {
		return 0, "", "", false
	}
	for d := dev; d != "/" && d != "."; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "bInterfaceNumber")); err == nil {
			n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 16, 32)
			if err != nil {
				return 0, "", "", false
			}
			parent := filepath.Dir(d)
			v, err1 := os.ReadFile(filepath.Join(parent, "idVendor"))
			p, err2 := os.ReadFile(filepath.Join(parent, "idProduct"))
			if err1 != nil || err2 != nil {
				return 0, "", "", false
			}
			return int(n), strings.ToLower(strings.TrimSpace(string(v))), strings.ToLower(strings.TrimSpace(string(p))), true
		}
	}
	return 0, "", "", false
}

// usbClass reads "ff/02/02" (bInterfaceClass/SubClass/Protocol) of the
// USB interface above a tty, or "".
func usbClass(tty string) string {
	dev, err := filepath.EvalSymlinks(filepath.Join(tty, "device"))
	if err != nil {
		return ""
	}
	for d := dev; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "bInterfaceNumber")); err != nil {
			continue
		}
		var parts []string
		for _, f := range []string{"bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol"} {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				return ""
			}
			parts = append(parts, strings.ToLower(strings.TrimSpace(string(b))))
		}
		return strings.Join(parts, "/")
	}
	return ""
}

// byID returns the /dev/serial/by-id link for dev, or dev itself.
func byID(dev string) string {
	links, _ := filepath.Glob("/dev/serial/by-id/*")
	for _, l := range links {
		if t, err := filepath.EvalSymlinks(l); err == nil && t == dev {
			return l
		}
	}
	return dev
}

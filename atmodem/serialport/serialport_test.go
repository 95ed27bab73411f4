package serialport_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/atmodem/serialport"
)

func TestSecondOpenRefused(t *testing.T) {
	_, path := startSim(t, `{}`)
	p, err := serialport.OpenDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = serialport.OpenDevice(path)
	if !errors.Is(err, serialport.ErrBusy) {
		t.Fatalf("second open: want ErrBusy, got %v", err)
	}
}

func TestHolderNamed(t *testing.T) {
	_, path := startSim(t, `{}`)
	real, _ := filepath.EvalSymlinks(path)
	// Another process holding the tty open, as ModemManager would.
	cmd := exec.Command("sleep", "30")
	f, err := os.OpenFile(real, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = f
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	f.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for len(serialport.Holders(real)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	_, err = serialport.OpenDevice(path)
	var pe *serialport.Error
	if !errors.As(err, &pe) || !errors.Is(err, serialport.ErrBusy) {
		t.Fatalf("want Error busy, got %v", err)
	}
	if !strings.Contains(err.Error(), "sleep (pid ") {
		t.Fatalf("holder not named: %v", err)
	}
	pe.Holders = []string{"ModemManager (pid 612)"}
	if !strings.Contains(pe.Hint(), "ID_MM_PORT_IGNORE") {
		t.Fatalf("hint for ModemManager: %q", pe.Hint())
	}
}

// fakeSysfs builds the sysfs layout of USB serial ports:
// class/tty/ttyUSBn/device -> devices/.../1-1:1.<if>/ttyUSBn.
func fakeSysfs(t *testing.T, ports map[string][3]string) string {
	t.Helper()
	root := t.TempDir()
	for tty, p := range ports { // p = vid, pid, interface
		usb := filepath.Join(root, "devices", "usb1", "1-1-"+tty)
		iface := filepath.Join(usb, "1-1:1."+p[2])
		dev := filepath.Join(iface, tty)
		must(t, os.MkdirAll(dev, 0o755))
		must(t, os.WriteFile(filepath.Join(usb, "idVendor"), []byte(p[0]+"\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(usb, "idProduct"), []byte(p[1]+"\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(iface, "bInterfaceNumber"), []byte("0"+p[2]+"\n"), 0o644))
		cls := filepath.Join(root, "class", "tty", tty)
		must(t, os.MkdirAll(cls, 0o755))
		must(t, os.Symlink(dev, filepath.Join(cls, "device")))
	}
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFindPort(t *testing.T) {
	// A Quectel EC25 exposes ttyUSB0..3; AT commands on interface 2.
	root := fakeSysfs(t, map[string][3]string{
		"ttyUSB0": {"2c7c", "0125", "0"}, "ttyUSB1": {"2c7c", "0125", "1"},
		"ttyUSB2": {"2c7c", "0125", "2"}, "ttyUSB3": {"2c7c", "0125", "3"},
		"ttyACM0": {"1234", "5678", "0"},
	})
	got, err := serialport.FindAT(root)
	if err != nil || got != "/dev/ttyUSB2" {
		t.Fatalf("FindAT = %q, %v", got, err)
	}
	// SIMCom SIM7600: interface 2 as well; Sierra: interface 3.
	root = fakeSysfs(t, map[string][3]string{"ttyUSB4": {"1199", "9071", "3"}, "ttyUSB5": {"1199", "9071", "2"}})
	if got, err := serialport.FindAT(root); err != nil || got != "/dev/ttyUSB4" {
		t.Fatalf("Sierra: %q, %v", got, err)
	}
	root = fakeSysfs(t, map[string][3]string{"ttyUSB0": {"1234", "5678", "0"}})
	if _, err := serialport.FindAT(root); err == nil || !strings.Contains(err.Error(), "ttyUSB0=1234:5678/0") {
		t.Fatalf("unknown modem: %v", err)
	}
	if _, err := serialport.FindAT(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no USB serial ports") {
		t.Fatalf("no ports: %v", err)
	}
}

// fakeSysfsClass is fakeSysfs with interface classes ("ff/02/02").
func fakeSysfsClass(t *testing.T, ports map[string][4]string) string {
	t.Helper()
	simple := map[string][3]string{}
	for tty, p := range ports {
		simple[tty] = [3]string{p[0], p[1], p[2]}
	}
	root := fakeSysfs(t, simple)
	for tty, p := range ports {
		iface := filepath.Join(root, "devices", "usb1", "1-1-"+tty, "1-1:1."+p[2])
		c := strings.Split(p[3], "/")
		for i, f := range []string{"bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol"} {
			must(t, os.WriteFile(filepath.Join(iface, f), []byte(c[i]+"\n"), 0o644))
		}
	}
	return root
}

func TestFindPortFamilies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ports map[string][4]string
		want  string
	}{
		{"telit ME910C1 if 1", map[string][4]string{"ttyUSB0": {"1bc7", "1101", "0", "ff/ff/ff"}, "ttyUSB1": {"1bc7", "1101", "1", "ff/ff/ff"}}, "/dev/ttyUSB1"},
		{"telit LE910C1 if 4", map[string][4]string{"ttyUSB2": {"1bc7", "1201", "3", "ff/ff/ff"}, "ttyUSB3": {"1bc7", "1201", "4", "ff/ff/ff"}}, "/dev/ttyUSB3"},
		{"fibocom FM150 if 1", map[string][4]string{"ttyUSB0": {"2cb7", "0104", "0", "ff/ff/30"}, "ttyUSB1": {"2cb7", "0104", "1", "ff/00/00"}}, "/dev/ttyUSB1"},
		{"fibocom L850 acm if 2", map[string][4]string{"ttyACM0": {"2cb7", "0007", "2", "02/02/01"}}, "/dev/ttyACM0"},
		{"sierra EM7565 if 3", map[string][4]string{"ttyUSB1": {"1199", "9091", "2", "ff/ff/ff"}, "ttyUSB2": {"1199", "9091", "3", "ff/ff/ff"}}, "/dev/ttyUSB2"},
		// Huawei: the PCUI by class, wherever the composition puts it.
		{"huawei ME909s PCUI by class", map[string][4]string{
			"ttyUSB0": {"12d1", "15c1", "0", "ff/02/01"}, "ttyUSB1": {"12d1", "15c1", "1", "ff/02/12"},
			"ttyUSB2": {"12d1", "15c1", "3", "ff/02/02"}}, "/dev/ttyUSB2"},
		{"u-blox LARA-R2 if 0", map[string][4]string{"ttyACM0": {"1546", "110a", "0", "02/02/01"}, "ttyACM1": {"1546", "110a", "2", "02/02/01"}}, "/dev/ttyACM0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := serialport.FindAT(fakeSysfsClass(t, tc.ports))
			if err != nil || got != tc.want {
				t.Fatalf("FindAT = %q, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// startSim serves scenario JSON on a real pty and returns the sim and the
// port path.
func startSim(t *testing.T, scenario string) (*modemsim.Sim, string) {
	t.Helper()
	s, p, err := modemsim.ServeScenarioPTY([]byte(scenario), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return s, p.Path()
}

//go:build linux

// Command init is PID 1 of the guest in the whole-system QEMU test
// (targets/qemu): it mounts /proc, /sys and /dev, puts the modem's serial
// port in raw mode, checks that an AT command gets an answer through it, runs
// the mtcagent commands listed in /etc/mtc-test.json, prints what each
// printed between markers on the console, and restarts the machine (QEMU
// runs with -no-reboot, so it exits). For the power-cut test it first loads
// kernel modules packed into the initramfs and mounts a disk, and runs a
// step with the console as its stdout, so that its lines reach the host as
// they are printed.
//
// Console protocol, one line each (the host ignores everything else):
//
//	MTC-INIT start GOARCH
//	MTC-MOUNT ok | MTC-MOUNT fail: reason
//	MTC-PROBE ok | MTC-PROBE fail: reason
//	MTC-STEP name exit=N stdout=BASE64 stderr=BASE64
//	MTC-INIT done
//
// It is test equipment, never part of a package.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// Spec is /etc/mtc-test.json, written by the host.
type Spec struct {
	Modem   string   `json:"modem"`   // e.g. /dev/ttyAMA1
	Probe   bool     `json:"probe"`   // send AT and wait for OK first
	Env     []string `json:"env"`     // extra environment for the steps
	Steps   []Step   `json:"steps"`   // run in order
	Timeout string   `json:"timeout"` // per step, time.ParseDuration
	Modules []string `json:"modules"` // .ko files to load first, in order
	Mount   *Mount   `json:"mount"`   // a disk to mount before the steps
}

// Mount is a file system to mount.
type Mount struct {
	Dev  string `json:"dev"`  // e.g. /dev/mmcblk0, waited for
	Dir  string `json:"dir"`  // mount point, created
	Type string `json:"type"` // e.g. ext4
	Data string `json:"data"` // mount options
}

// Step is one command.
type Step struct {
	Name string   `json:"name"`
	Args []string `json:"args"` // argv; Args[0] is the program
	// Console runs the step with the console as stdout and stderr, so its
	// lines are seen as they come; the MTC-STEP line then carries none.
	Console bool `json:"console"`
}

func main() {
	setup()
	fmt.Printf("\nMTC-INIT start %s\n", runtime.GOARCH)
	if err := run(); err != nil {
		fmt.Printf("MTC-INIT error: %v\n", err)
	}
	fmt.Printf("MTC-INIT done\n")
	syscall.Sync()
	time.Sleep(200 * time.Millisecond) // let the UART drain
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	select {}
}

// setup mounts the pseudo file systems and makes the console stdio.
func setup() {
	for _, m := range []struct{ src, dir, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.dir, 0o755)
		if err := syscall.Mount(m.src, m.dir, m.fs, 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			fmt.Fprintf(os.Stderr, "MTC-INIT mount %s: %v\n", m.dir, err)
		}
	}
	seedRandom()
	if fd, err := syscall.Open("/dev/console", syscall.O_RDWR|syscall.O_NOCTTY, 0); err == nil {
		for i := 0; i < 3; i++ {
			syscall.Dup3(fd, i, 0)
		}
		if fd > 2 {
			syscall.Close(fd)
		}
	}
}

// seedRandom credits /etc/random-seed (written by the host, when there is
// one) to the kernel's random pool, as a distribution's saved seed would:
// an emulated ARM board has no hardware RNG, and getrandom(2) (Go's
// crypto/rand) otherwise blocks for seconds after boot.
func seedRandom() {
	seed, err := os.ReadFile("/etc/random-seed")
	if err != nil || len(seed) == 0 {
		return
	}
	fd, err := syscall.Open("/dev/urandom", syscall.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer syscall.Close(fd)
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(seed))
	*(*int32)(unsafe.Pointer(&info[0])) = int32(8 * len(seed))
	*(*int32)(unsafe.Pointer(&info[4])) = int32(len(seed))
	copy(info[8:], seed)
	const rndAddEntropy = 0x40085203 // _IOW('R', 0x03, int[2])
	if err := ioctl(fd, rndAddEntropy, unsafe.Pointer(&info[0])); err != nil {
		fmt.Printf("MTC-INIT seed: %v\n", err)
	}
}

func run() error {
	b, err := os.ReadFile("/etc/mtc-test.json")
	if err != nil {
		return err
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("parse spec: %w", err)
	}
	timeout := 2 * time.Minute
	if spec.Timeout != "" {
		if timeout, err = time.ParseDuration(spec.Timeout); err != nil {
			return fmt.Errorf("parse spec timeout: %w", err)
		}
	}
	if len(spec.Modules) > 0 || spec.Mount != nil {
		if err := mount(spec.Modules, spec.Mount); err != nil {
			fmt.Printf("MTC-MOUNT fail: %v\n", err)
			return nil
		}
		fmt.Printf("MTC-MOUNT ok\n")
	}
	if spec.Modem != "" {
		if err := makeRaw(spec.Modem); err != nil {
			fmt.Printf("MTC-PROBE fail: raw mode: %v\n", err)
			return nil
		}
		if spec.Probe {
			if err := probe(spec.Modem, 30*time.Second); err != nil {
				fmt.Printf("MTC-PROBE fail: %v\n", err)
				return nil
			}
			fmt.Printf("MTC-PROBE ok\n")
		}
	}
	for _, s := range spec.Steps {
		runStep(s, spec.Env, timeout)
	}
	return nil
}

func runStep(s Step, env []string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Args[0], s.Args[1:]...)
	cmd.Env = append([]string{"PATH=/", "HOME=/tmp"}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if s.Console {
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		code = -1
		errb.WriteString("init: " + err.Error())
	}
	if ctx.Err() != nil {
		errb.WriteString("\ninit: step timed out after " + timeout.String())
	}
	enc := base64.StdEncoding
	fmt.Printf("MTC-STEP %s exit=%d stdout=%s stderr=%s\n", s.Name, code, enc.EncodeToString(out.Bytes()), enc.EncodeToString(errb.Bytes()))
}

// mount loads the modules (init_module(2), in the order given: there is
// no modprobe to resolve dependencies) and mounts m.
func mount(modules []string, m *Mount) error {
	for _, path := range modules {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		p := []byte{0}
		_, _, e := syscall.Syscall(syscall.SYS_INIT_MODULE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&p[0])))
		if e != 0 && e != syscall.EEXIST {
			return fmt.Errorf("init_module %s: %w", path, e)
		}
	}
	if m == nil {
		return nil
	}
	// The driver probes the card asynchronously.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(m.Dev); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear", m.Dev)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return err
	}
	// devtmpfs makes the node when the disk is registered, a moment
	// before the disk can be opened: a mount in that moment fails with
	// ENXIO (seen once in a power-cut run's 21 boots), so it is tried
	// again until the same deadline.
	for {
		err := syscall.Mount(m.Dev, m.Dir, m.Type, 0, m.Data)
		if err == nil {
			return nil
		}
		if err != syscall.ENXIO || time.Now().After(deadline) {
			return fmt.Errorf("mount %s on %s: %w", m.Dev, m.Dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makeRaw puts the tty in raw mode (cfmakeraw): the kernel's line
// discipline starts in cooked mode, which echoes and maps CR to NL.
func makeRaw(path string) error {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var t syscall.Termios
	if err := ioctl(fd, syscall.TCGETS, unsafe.Pointer(&t)); err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	t.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP | syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
	t.Oflag &^= syscall.OPOST
	t.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
	t.Cflag &^= syscall.CSIZE | syscall.PARENB
	t.Cflag |= syscall.CS8 | syscall.CREAD | syscall.CLOCAL
	t.Cc[syscall.VMIN] = 1
	t.Cc[syscall.VTIME] = 0
	if err := ioctl(fd, syscall.TCSETS, unsafe.Pointer(&t)); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	return nil
}

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// probe sends AT until the modem answers OK, proving the path from the
// guest's UART through QEMU's chardev to the simulator on the host.
func probe(path string, limit time.Duration) error {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(limit)
	var got []byte
	buf := make([]byte, 256)
	for time.Now().Before(deadline) {
		if _, err := f.Write([]byte("AT\r")); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		f.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, err := f.Read(buf)
			got = append(got, buf[:n]...)
			if strings.Contains(string(got), "OK\r\n") {
				// Let any remaining bytes arrive and drop them, so the
				// agent starts on a quiet line.
				f.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				for {
					if _, err := f.Read(buf); err != nil {
						break
					}
				}
				return nil
			}
			if err != nil {
				break
			}
		}
	}
	return fmt.Errorf("no OK to AT within %v (got %q)", limit, truncate(got, 80))
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

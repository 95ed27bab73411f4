package openwrt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
)

const (
	initScript    = "mtcagent/files/mtcagent.init"
	hotplugScript = "mtcagent/files/mtcagent.hotplug"
	defaultUCI    = "mtcagent/files/mtcagent.config"
	stubsLib      = "testdata/stubs.sh"
)

// stubCommands writes commands that log their name and arguments to
// $STUB_LOG. mkdir really creates directories only under $TEST_TMP, so a
// script under test cannot touch the host's /etc.
func stubCommands(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		body := "#!/bin/sh\necho \"${0##*/} $*\" >>\"$STUB_LOG\"\n"
		switch n {
		case "mkdir":
			body += "for a in \"$@\"; do case \"$a\" in -*) ;; \"$TEST_TMP\"/*) " + mustLook(t, "mkdir") + " -p \"$a\" || exit 1 ;; esac; done\n"
		case "uci":
			body += "printf '%s\\n' \"$STUB_MODEM\"\n"
		}
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func mustLook(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %v", name, err)
	}
	return p
}

type shResult struct {
	stdout, stderr string
	err            error
	stubCalls      []string
}

// runSh runs script under sh with the stub commands first on PATH.
func runSh(t *testing.T, tmp string, env []string, script string) shResult {
	t.Helper()
	bin := filepath.Join(tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	stubCommands(t, bin, "chown", "chgrp", "chmod", "mkdir", "uci", "logger")
	log := filepath.Join(tmp, "stub.log")
	cmd := exec.Command(mustLook(t, "sh"), "-c", script)
	cmd.Env = append([]string{
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		"STUB_LOG=" + log,
		"TEST_TMP=" + tmp,
	}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	r := shResult{err: cmd.Run()}
	r.stdout, r.stderr = out.String(), errb.String()
	if b, err := os.ReadFile(log); err == nil {
		r.stubCalls = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	return r
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type initRun struct {
	shResult
	confPath string
	conf     *config.File // nil when no config was written
	procd    [][]string   // one call per entry: name, args...
}

// runInit loads uci (the text of /etc/config/mtcagent) and calls fn
// (start_service or service_triggers) of the init script.
func runInit(t *testing.T, uci, fn string) initRun {
	t.Helper()
	tmp := t.TempDir()
	cfgDir := filepath.Join(tmp, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "mtcagent"), []byte(uci), 0o644); err != nil {
		t.Fatal(err)
	}
	confDir := filepath.Join(tmp, "var/etc/mtcagent")
	procdLog := filepath.Join(tmp, "procd.log")
	script := `. "$STUBS" && . "$INIT" && ` + fn
	r := initRun{confPath: filepath.Join(confDir, "mtcagent.conf"), shResult: runSh(t, tmp, []string{
		"STUBS=" + abs(t, stubsLib), "INIT=" + abs(t, initScript),
		"UCI_CONFIG_DIR=" + cfgDir, "PROCD_LOG=" + procdLog, "MTCAGENT_CONF_DIR=" + confDir,
	}, script)}
	if b, err := os.ReadFile(filepath.Join(confDir, "mtcagent.conf")); err == nil {
		f, err := config.Parse("mtcagent.conf", string(b))
		if err != nil {
			t.Fatalf("generated config does not parse: %v\n%s", err, b)
		}
		r.conf = f
	}
	if b, err := os.ReadFile(procdLog); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			r.procd = append(r.procd, strings.Split(line, "\t"))
		}
	}
	if _, err := os.Stat(filepath.Join(confDir, "mtcagent.conf.tmp")); err == nil {
		t.Error("temporary config left behind")
	}
	// Where the script told the agent to read its config.
	for _, c := range r.procd {
		if len(c) > 2 && c[1] == "command" {
			for i := range c {
				if c[i] == filepath.Join(confDir, "mtcagent.conf") {
					c[i] = "CONF"
				}
			}
		}
	}
	return r
}

type section struct {
	name, label string
	entries     map[string]string
}

func sections(f *config.File) []section {
	var out []section
	for _, s := range f.Sections {
		m := map[string]string{}
		for _, e := range s.Entries {
			m[e.Key] = e.Value
		}
		out = append(out, section{s.Name, s.Label, m})
	}
	return out
}

func TestInitDefaultConfig(t *testing.T) {
	b, err := os.ReadFile(defaultUCI)
	if err != nil {
		t.Fatal(err)
	}
	r := runInit(t, string(b), "start_service")
	if r.err != nil {
		t.Fatalf("start_service: %v\n%s", r.err, r.stderr)
	}
	if r.conf == nil {
		t.Fatal("no config written")
	}
	want := []section{{"agent", "", map[string]string{"modem": "auto", "state_dir": "/etc/mtcagent/state", "log_level": "info"}}}
	if got := sections(r.conf); !reflect.DeepEqual(got, want) {
		t.Errorf("config sections %+v, want %+v", got, want)
	}
	wantProcd := [][]string{
		{"procd_open_instance"},
		{"procd_set_param", "command", "/usr/bin/mtcagent", "run", "--config", "CONF", "--state-dir", "/etc/mtcagent/state"},
		{"procd_set_param", "respawn", "3600", "5", "0"},
		{"procd_set_param", "user", "mtcagent"},
		{"procd_set_param", "group", "mtcagent"},
		{"procd_set_param", "stdout", "1"},
		{"procd_set_param", "stderr", "1"},
		{"procd_set_param", "file", "/etc/config/mtcagent"},
		{"procd_set_param", "term_timeout", "15"},
		{"procd_close_instance"},
	}
	if !reflect.DeepEqual(r.procd, wantProcd) {
		t.Errorf("procd calls:\n got %q\nwant %q", r.procd, wantProcd)
	}
	if _, err := agent.LoadConfig(r.confPath); err != nil {
		t.Errorf("agent refuses the generated config: %v", err)
	}
	for _, c := range []string{"mkdir -p /etc/mtcagent/state", "chown mtcagent:mtcagent /etc/mtcagent/state", "chmod 0700 /etc/mtcagent/state"} {
		if !contains(r.stubCalls, c) {
			t.Errorf("no %q among %q", c, r.stubCalls)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestInitTranslation(t *testing.T) {
	uci := `
config agent 'main'
	option enabled '1'
	option modem '/dev/null'
	option state_dir '/srv/mtc'
	option log_level 'debug'
	option respawn_retry '7'

config recipient 'operator'
	option status 'full'
	option location 'region:2km'

config uplink
	option url 'coaps://collector.example.net:5684'
	option note 'say "hi" \ # not a comment'
	option who 'it'\''s'

config recipient
	option name 'scs-home camera'
	option location 'none'

config privacy
	list windows '08:00-12:00'
	list windows '14:00-18:00'
	option device_class 'home-camera'

config mdt
	option enabled '1'
	option interval '10s'
`
	r := runInit(t, uci, "start_service")
	if r.err != nil {
		t.Fatalf("start_service: %v\n%s", r.err, r.stderr)
	}
	if r.conf == nil {
		t.Fatal("no config written")
	}
	want := []section{
		{"agent", "", map[string]string{"modem": "/dev/null", "state_dir": "/srv/mtc", "log_level": "debug"}},
		{"uplink", "", map[string]string{"url": "coaps://collector.example.net:5684", "note": `say "hi" \ # not a comment`, "who": "it's"}},
		{"privacy", "", map[string]string{"windows": "08:00-12:00, 14:00-18:00", "device_class": "home-camera"}},
		{"mdt", "", map[string]string{"enabled": "1", "interval": "10s"}},
		{"recipient", "operator", map[string]string{"status": "full", "location": "region:2km"}},
		{"recipient", "scs-home camera", map[string]string{"location": "none"}},
	}
	if got := sections(r.conf); !reflect.DeepEqual(got, want) {
		t.Errorf("config sections:\n got %+v\nwant %+v", got, want)
	}
	if len(r.procd) < 3 || !reflect.DeepEqual(r.procd[2], []string{"procd_set_param", "respawn", "3600", "5", "7"}) {
		t.Errorf("respawn not taken from UCI: %q", r.procd)
	}
	for _, c := range []string{"chgrp mtcagent /dev/null", "chmod 0660 /dev/null"} {
		if !contains(r.stubCalls, c) {
			t.Errorf("no %q among %q", c, r.stubCalls)
		}
	}
}

// TestInitExamples enables every commented example of the shipped UCI file
// and checks that the agent's own readers accept the translation.
func TestInitExamples(t *testing.T) {
	b, err := os.ReadFile(defaultUCI)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "#config "), strings.HasPrefix(l, "#\toption "):
			l = l[1:]
		case strings.HasPrefix(l, "\t#option "):
			l = "\t" + l[2:]
		}
		lines = append(lines, l)
	}
	r := runInit(t, strings.Join(lines, "\n"), "start_service")
	if r.err != nil {
		t.Fatalf("start_service: %v\n%s", r.err, r.stderr)
	}
	if r.conf == nil {
		t.Fatal("no config written")
	}
	var names []string
	for _, s := range r.conf.Sections {
		names = append(names, s.Name)
	}
	if want := []string{"agent", "uplink", "privacy", "mdt", "recipient"}; !reflect.DeepEqual(names, want) {
		t.Errorf("sections %q, want %q", names, want)
	}
	if _, err := agent.LoadConfig(r.confPath); err != nil {
		t.Errorf("agent refuses the translation: %v", err)
	}
	if _, err := privacy.ParsePolicy(r.conf); err != nil {
		t.Errorf("privacy refuses the translation: %v", err)
	}
	if _, err := mdtlog.ParseConfig(r.conf); err != nil {
		t.Errorf("mdtlog refuses the translation: %v", err)
	}
}

func TestInitRefuses(t *testing.T) {
	tests := []struct {
		name, uci, stderr string
	}{
		{"unknown type", "config agent 'main'\n\toption modem 'auto'\nconfig modem 'x'\n\toption a 'b'\n", "unknown section type 'modem'"},
		{"two agents", "config agent 'main'\nconfig agent 'other'\n", "2 sections of type 'agent'"},
		{"no agent", "config uplink\n\toption url 'x'\n", "no 'config agent' section"},
		{"newline", "config agent 'main'\n\toption modem 'a\nb'\n", "has a newline"},
		{"newline in a middle recipient", "config agent 'main'\nconfig recipient 'a'\n\toption x 'a\nb'\nconfig recipient 'b'\n\toption x 'y'\n", "mtcagent.a.x has a newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runInit(t, tt.uci, "start_service")
			if r.err == nil {
				t.Fatal("start_service succeeded")
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q lacks %q", r.stderr, tt.stderr)
			}
			if r.conf != nil || len(r.procd) != 0 {
				t.Errorf("config written or procd called: %q", r.procd)
			}
		})
	}
}

func TestInitDisabled(t *testing.T) {
	r := runInit(t, "config agent 'main'\n\toption enabled '0'\n", "start_service")
	if r.err != nil {
		t.Fatalf("start_service: %v\n%s", r.err, r.stderr)
	}
	if r.conf != nil || len(r.procd) != 0 {
		t.Errorf("disabled service started: %q", r.procd)
	}
}

func TestInitTriggers(t *testing.T) {
	r := runInit(t, "config agent 'main'\n", "service_triggers")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := [][]string{{"procd_add_reload_trigger", "mtcagent"}}; !reflect.DeepEqual(r.procd, want) {
		t.Errorf("procd calls %q, want %q", r.procd, want)
	}
}

func TestHotplug(t *testing.T) {
	const devpath = "/devices/platform/usb1/1-1/1-1:1.2/ttyUSB2/tty/ttyUSB2"
	tests := []struct {
		name, vendor, modem, action, devname string
		grant                                bool
	}{
		{"auto quectel", "2c7c", "auto", "add", "ttyUSB2", true},
		{"unset simcom", "1e0e", "", "add", "ttyUSB2", true},
		{"auto ftdi", "0403", "auto", "add", "ttyUSB2", false},
		{"named port", "0403", "/dev/ttyUSB2", "add", "ttyUSB2", true},
		{"other port", "2c7c", "/dev/ttyUSB3", "add", "ttyUSB2", false},
		{"remove", "2c7c", "auto", "remove", "ttyUSB2", false},
		{"not usb", "2c7c", "auto", "add", "ttyS0", false},
		{"tcp modem", "2c7c", "tcp:127.0.0.1:2000", "add", "ttyUSB2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			sys := filepath.Join(tmp, "sys")
			if err := os.MkdirAll(sys+devpath, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(sys, "devices/platform/usb1/1-1/idVendor"), []byte(tt.vendor+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			dev := filepath.Join(tmp, "dev")
			r := runSh(t, tmp, []string{
				"ACTION=" + tt.action, "DEVNAME=" + tt.devname, "DEVPATH=" + devpath,
				"MTCAGENT_SYSFS=" + sys, "MTCAGENT_DEVDIR=" + dev, "STUB_MODEM=" + tt.modem,
			}, `. "`+abs(t, hotplugScript)+`"`)
			if r.err != nil {
				t.Fatalf("hotplug: %v\n%s", r.err, r.stderr)
			}
			granted := contains(r.stubCalls, "chgrp mtcagent "+dev+"/"+tt.devname) &&
				contains(r.stubCalls, "chmod 0660 "+dev+"/"+tt.devname)
			if granted != tt.grant {
				t.Errorf("granted = %v, want %v; calls %q", granted, tt.grant, r.stubCalls)
			}
		})
	}
}

// TestPackageMakefile checks the OpenWrt package Makefile for the pieces
// the SDK needs (it cannot be run outside an OpenWrt tree).
func TestPackageMakefile(t *testing.T) {
	b, err := os.ReadFile("mtcagent/Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(b)
	for _, want := range []string{
		"include $(TOPDIR)/feeds/packages/lang/golang/golang-package.mk",
		"GO_PKG:=github.com/mtcagent/mtcagent",
		"GO_PKG_BUILD_PKG:=github.com/mtcagent/mtcagent/cmd/mtcagent",
		"PKG_BUILD_DEPENDS:=golang/host",
		"DEPENDS:=$(GO_ARCH_DEPENDS)",
		"USERID:=mtcagent=",
		"$(INSTALL_BIN) ./files/mtcagent.init $(1)/etc/init.d/mtcagent",
		"$(INSTALL_CONF) ./files/mtcagent.config $(1)/etc/config/mtcagent",
		"./files/mtcagent.hotplug $(1)/etc/hotplug.d/tty/",
		"/etc/config/mtcagent\n",
		"$(eval $(call GoBinPackage,mtcagent))",
		"$(eval $(call BuildPackage,mtcagent))",
	} {
		if !strings.Contains(mk, want) {
			t.Errorf("Makefile lacks %q", want)
		}
	}
	for _, f := range []string{initScript, hotplugScript} {
		if out, err := exec.Command("sh", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", f, err, out)
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == initScript && fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not executable", f)
		}
	}
}

package debian

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
)

// buildDeb builds the amd64 package from a fresh build of cmd/mtcagent and
// returns its path. Host tools (go, bash, dpkg-deb) run natively, also when
// this test binary runs under qemu-user.
func buildDeb(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go tool not found in PATH; needed to build the packaged binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mtcagent")
	build := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-s -w -X main.version=1.0.0", "-o", bin, "./cmd/mtcagent")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(cleanGoEnv(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command("bash", "build-deb.sh", "amd64", bin, "v1.0.0", filepath.Join(dir, "out"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, stderrOf(err))
	}
	deb := strings.TrimSpace(string(out))
	if filepath.Base(deb) != "mtcagent_1.0.0_amd64.deb" {
		t.Fatalf("package name %q", filepath.Base(deb))
	}
	return deb
}

// cleanGoEnv drops the cross-build variables that the emulated test runs
// set (GOARCH=arm, GOARM=7, ...), so the package is built for amd64.
func cleanGoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOOS", "GOARCH", "GOARM", "GOMIPS", "GOAMD64", "GO386", "CGO_ENABLED":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderrOf(err))
	}
	return string(out)
}

func TestDebPackage(t *testing.T) {
	deb := buildDeb(t)
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	ctl := filepath.Join(root, "DEBIAN")
	run(t, "dpkg-deb", "-e", deb, ctl)

	t.Run("listing", func(t *testing.T) { checkListing(t, run(t, "dpkg-deb", "-c", deb)) })
	t.Run("control", func(t *testing.T) { checkControl(t, ctl) })
	t.Run("md5sums", func(t *testing.T) { checkMD5(t, root, ctl) })
	t.Run("config", func(t *testing.T) { checkConfig(t, filepath.Join(root, "etc/mtcagent/mtcagent.conf")) })
	t.Run("unit", func(t *testing.T) { checkUnit(t, root) })
	t.Run("udev", func(t *testing.T) {
		checkUdev(t, filepath.Join(root, "usr/share/mtcagent/udev/77-mtcagent-modemmanager.rules"))
	})
	t.Run("postinst", func(t *testing.T) { checkPostinst(t, filepath.Join(ctl, "postinst")) })
	t.Run("binary", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(root, "usr/bin/mtcagent"))
		if err != nil {
			t.Fatal(err)
		}
		// ELF, 64-bit, little-endian, machine x86-64 (62).
		if len(b) < 20 || string(b[:4]) != "\x7fELF" || b[4] != 2 || b[5] != 1 || b[18] != 62 {
			t.Error("usr/bin/mtcagent is not an x86-64 ELF executable")
		}
	})
}

// checkListing checks every path's mode and that everything is root-owned
// (dpkg-deb --root-owner-group); the state directory's owner is set by
// postinst.
func checkListing(t *testing.T, listing string) {
	want := map[string]string{
		"./usr/bin/mtcagent":                                       "-rwxr-xr-x",
		"./etc/mtcagent/":                                          "drwxr-xr-x",
		"./etc/mtcagent/mtcagent.conf":                             "-rw-r--r--",
		"./var/lib/mtcagent/":                                      "drwx------",
		"./usr/lib/systemd/system/mtcagent.service":                "-rw-r--r--",
		"./usr/share/mtcagent/udev/77-mtcagent-modemmanager.rules": "-rw-r--r--",
		"./usr/share/mtcagent/udev/README":                         "-rw-r--r--",
		"./usr/share/doc/mtcagent/README.Debian":                   "-rw-r--r--",
		"./":                                                       "drwxr-xr-x",
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(listing))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			t.Errorf("odd listing line %q", sc.Text())
			continue
		}
		mode, owner, path := f[0], f[1], f[len(f)-1]
		got[path] = mode
		if owner != "root/root" {
			t.Errorf("%s owned by %s, want root/root", path, owner)
		}
		if strings.Contains(mode, "w") && mode[8] == 'w' {
			t.Errorf("%s is world-writable (%s)", path, mode)
		}
	}
	for p, m := range want {
		if got[p] != m {
			t.Errorf("%s: mode %q, want %q", p, got[p], m)
		}
	}
}

func readFields(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func checkControl(t *testing.T, ctl string) {
	c := readFields(t, filepath.Join(ctl, "control"))
	for k, v := range map[string]string{"Package": "mtcagent", "Version": "1.0.0", "Architecture": "amd64", "Depends": "adduser"} {
		if c[k] != v {
			t.Errorf("control %s = %q, want %q", k, c[k], v)
		}
	}
	for _, k := range []string{"Maintainer", "Description", "Installed-Size"} {
		if c[k] == "" {
			t.Errorf("control has no %s", k)
		}
	}
	b, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); len(got) != 1 || got[0] != "/etc/mtcagent/mtcagent.conf" {
		t.Errorf("conffiles = %q", got)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(ctl, s)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("no %s: %v", s, err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v, want 0755", s, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		if !strings.HasPrefix(string(b), "#!/bin/sh\n") || !strings.Contains(string(b), "set -e") {
			t.Errorf("%s does not start with #!/bin/sh and set -e", s)
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
	}
	b, _ = os.ReadFile(filepath.Join(ctl, "postrm"))
	if !strings.Contains(string(b), "rm -rf /var/lib/mtcagent") {
		t.Error("postrm does not remove the state directory on purge")
	}
}

func checkMD5(t *testing.T, root, ctl string) {
	b, err := os.ReadFile(filepath.Join(ctl, "md5sums"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		sum, path, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("md5sums line %q", line)
		}
		data, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Errorf("md5sums names %s: %v", path, err)
			continue
		}
		h := md5.Sum(data)
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("md5 of %s differs", path)
		}
		n++
	}
	if n < 5 {
		t.Errorf("md5sums lists %d files", n)
	}
}

// checkConfig parses the shipped config with the agent's parser and checks
// that only the [agent] section is active with the documented defaults.
func checkConfig(t *testing.T, path string) {
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sections) != 1 || f.Sections[0].Name != "agent" {
		var names []string
		for _, s := range f.Sections {
			names = append(names, s.Name)
		}
		t.Fatalf("active sections %q, want only [agent]", names)
	}
	a := f.Section("agent")
	if err := a.Unknown("modem", "state_dir", "log_level"); err != nil {
		t.Error(err)
	}
	for k, v := range map[string]string{"modem": "auto", "state_dir": "/var/lib/mtcagent", "log_level": "info"} {
		if e, ok := a.Get(k); !ok || e.Value != v {
			t.Errorf("[agent] %s = %q, want %q", k, e.Value, v)
		}
	}
	// The commented examples must parse too once uncommented.
	b, _ := os.ReadFile(path)
	var un []string
	for _, line := range strings.Split(string(b), "\n") {
		if exampleLine.MatchString(line) {
			line = strings.TrimPrefix(line, "# ")
		}
		un = append(un, line)
	}
	full, err := config.Parse(path, strings.Join(un, "\n"))
	if err != nil {
		t.Fatalf("config with examples uncommented: %v", err)
	}
	// The agent's own readers accept the default and the examples.
	if _, err := agent.LoadConfig(path); err != nil {
		t.Errorf("agent refuses the shipped config: %v", err)
	}
	fullPath := filepath.Join(t.TempDir(), "full.conf")
	if err := os.WriteFile(fullPath, []byte(strings.Join(un, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.LoadConfig(fullPath); err != nil {
		t.Errorf("agent refuses the [agent] examples: %v", err)
	}
	if _, err := privacy.ParsePolicy(full); err != nil {
		t.Errorf("privacy refuses the examples: %v", err)
	}
	if _, err := mdtlog.ParseConfig(full); err != nil {
		t.Errorf("mdtlog refuses the [mdt] example: %v", err)
	}
}

// exampleLine is a commented-out section header or key = value line.
var exampleLine = regexp.MustCompile(`^# (\[[a-z]+( "[^"]+")?\]|[a-z_]+ = )`)

// unitFile is a systemd unit as section -> key -> values.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	sec := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			sec = strings.Trim(line, "[]")
			u[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				t.Fatalf("unit line %q", line)
			}
			u[sec][k] = append(u[sec][k], v)
		}
	}
	return u
}

func checkUnit(t *testing.T, root string) {
	path := filepath.Join(root, "usr/lib/systemd/system/mtcagent.service")
	u := parseUnit(t, path)
	svc := u["Service"]
	want := map[string]string{
		"User":                    "mtcagent",
		"SupplementaryGroups":     "dialout",
		"DevicePolicy":            "closed",
		"DeviceAllow":             "char-ttyUSB rw|char-ttyACM rw",
		"ProtectSystem":           "strict",
		"StateDirectory":          "mtcagent",
		"StateDirectoryMode":      "0700",
		"NoNewPrivileges":         "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"CapabilityBoundingSet":   "",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"Restart":                 "on-failure",
	}
	for k, v := range want {
		if got := strings.Join(svc[k], "|"); got != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	if v, ok := svc["PrivateDevices"]; ok {
		t.Errorf("unit sets PrivateDevices=%v: it would hide the modem", v)
	}
	exe := strings.Fields(strings.Join(svc["ExecStart"], ""))
	if len(exe) < 2 || exe[0] != "/usr/bin/mtcagent" || exe[1] != "run" || !strings.Contains(strings.Join(exe, " "), "--config /etc/mtcagent/mtcagent.conf") {
		t.Errorf("ExecStart = %q", exe)
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("WantedBy = %q", got)
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit not verified by systemd")
		return
	}
	// systemd-analyze checks that ExecStart exists; point it at the
	// unpacked binary in a copy of the unit.
	b, _ := os.ReadFile(path)
	dir := t.TempDir()
	tmpUnit := filepath.Join(dir, "mtcagent.service")
	text := strings.ReplaceAll(string(b), "ExecStart=/usr/bin/mtcagent", "ExecStart="+filepath.Join(root, "usr/bin/mtcagent"))
	if err := os.WriteFile(tmpUnit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", tmpUnit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func checkUdev(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rules := 0
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.Count(line, `"`)%2 != 0 {
			t.Errorf("line %d: unbalanced quotes", i+1)
		}
		if !strings.Contains(line, "ID_MM_PORT_IGNORE") {
			continue
		}
		rules++
		for _, need := range []string{`ATTRS{idVendor}=="`, `ATTRS{idProduct}=="`, `ENV{.MTCAGENT_IFNUM}=="`, `ENV{ID_MM_PORT_IGNORE}="1"`} {
			if !strings.Contains(line, need) {
				t.Errorf("line %d lacks %s", i+1, need)
			}
		}
		key := line[:strings.Index(line, "ENV{.MTCAGENT_IFNUM}")]
		if seen[key] {
			t.Errorf("line %d: modem listed twice", i+1)
		}
		seen[key] = true
	}
	if rules < 3 {
		t.Errorf("%d modem rules", rules)
	}
	if !strings.Contains(string(b), `LABEL="mtcagent_mm_end"`) || strings.Count(string(b), `GOTO="mtcagent_mm_end"`) != 2 {
		t.Error("rule file's GOTO/LABEL do not match")
	}
}

// checkPostinst runs postinst configure against stub commands and checks
// what it asked them to do on a first install.
func checkPostinst(t *testing.T, postinst string) {
	stubs := t.TempDir()
	log := filepath.Join(stubs, "calls.log")
	stub := "#!/bin/sh\necho \"${0##*/} $*\" >>\"$STUB_LOG\"\n"
	getent := "#!/bin/sh\necho \"${0##*/} $*\" >>\"$STUB_LOG\"\n[ \"$1 $2\" = \"group dialout\" ] && { echo dialout:x:20:; exit 0; }\nexit 2\n"
	dsh := "#!/bin/sh\necho \"${0##*/} $*\" >>\"$STUB_LOG\"\n[ \"$1\" = --quiet ] && [ \"$2\" = was-enabled ] && exit 0\nexit 0\n"
	statov := "#!/bin/sh\necho \"${0##*/} $*\" >>\"$STUB_LOG\"\nexit 1\n"
	files := map[string]string{"adduser": stub, "chown": stub, "chmod": stub, "systemctl": stub, "deb-systemd-invoke": stub,
		"getent": getent, "deb-systemd-helper": dsh, "dpkg-statoverride": statov}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sh, postinst, "configure", "")
	cmd.Env = []string{"PATH=" + stubs, "STUB_LOG=" + log}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postinst configure: %v\n%s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		"adduser --system --group --home /var/lib/mtcagent --no-create-home --shell /usr/sbin/nologin --gecos mtcagent cellular device agent --quiet mtcagent",
		"adduser --quiet mtcagent dialout",
		"chown mtcagent:mtcagent /var/lib/mtcagent",
		"chmod 0700 /var/lib/mtcagent",
		"deb-systemd-helper enable mtcagent.service",
	}
	have := map[string]bool{}
	for _, c := range calls {
		have[c] = true
	}
	for _, w := range want {
		if !have[w] {
			sort.Strings(calls)
			t.Errorf("postinst did not call %q; calls:\n%s", w, strings.Join(calls, "\n"))
		}
	}
}

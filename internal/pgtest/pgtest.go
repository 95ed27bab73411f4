// Package pgtest gives tests a real PostgreSQL: a throwaway cluster made
// with Debian's binaries (initdb, pg_ctl from /usr/lib/postgresql/*/bin)
// in a temporary directory, listening on a unix socket only, shared by a
// test binary; each URL call creates an empty database and drops it when
// the test ends.
//
// initdb refuses to run as root, and tests run as root here and in CI: as
// root, the cluster's processes run as the `postgres` system user that
// the Debian package creates (exec.Cmd with a syscall.Credential), in a
// directory chowned to it. The cluster stops when the test binary exits:
// Main stops it, and a watchdog process (started with the cluster, in its
// own process group) stops it and removes its directory if the binary
// dies first (a timeout, a kill).
//
// Without the binaries a test calling URL is skipped with a message
// saying so, unless MTC_REQUIRE_POSTGRES is set (CI sets it): then it
// fails, so a missing PostgreSQL cannot pass unnoticed.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv names the variable that turns a missing PostgreSQL from a
// skip into a failure.
const RequireEnv = "MTC_REQUIRE_POSTGRES"

// BinEnv may name the directory holding initdb and pg_ctl; by default the
// newest /usr/lib/postgresql/*/bin.
const BinEnv = "MTC_PG_BIN"

var errNoBinaries = errors.New("PostgreSQL binaries not found")

type cluster struct {
	bin, dir, data string
	cred           *syscall.Credential
}

var (
	once    sync.Once
	shared  *cluster
	initErr error
	dbs     atomic.Int64
)

// URL returns the URL (postgres://...) of a new, empty database in the
// shared cluster, starting the cluster on first use, and drops the
// database when t ends.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { shared, initErr = start() })
	if errors.Is(initErr, errNoBinaries) && os.Getenv(RequireEnv) == "" {
		t.Skipf("pgtest: %v; install Debian's postgresql (scripts/deps.sh), or set %s=1 to make this a failure", initErr, RequireEnv)
	}
	if initErr != nil {
		t.Fatalf("pgtest: %v", initErr)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := shared.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := shared.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return shared.url(name)
}

// Main runs the tests and stops the cluster, if one was started, before
// the binary exits: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the shared cluster and removes its directory.
func Stop() {
	if shared != nil {
		shared.stop()
	}
}

func (c *cluster) stop() {
	_ = c.cmd(filepath.Join(c.bin, "pg_ctl"), "stop", "-D", c.data, "-m", "fast", "-w").Run()
	_ = os.RemoveAll(c.dir)
}

func (c *cluster) url(db string) string {
	return "postgres://postgres@/" + db + "?host=" + c.dir + "&sslmode=disable"
}

func (c *cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// cmd runs a program as the cluster's owner, in its directory.
func (c *cluster) cmd(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

// binDir finds initdb and pg_ctl.
func binDir() (string, error) {
	if d := os.Getenv(BinEnv); d != "" {
		return d, nil
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(m) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("%w (/usr/lib/postgresql/*/bin/initdb, or initdb on PATH)", errNoBinaries)
	}
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	sort.Slice(m, func(i, j int) bool { return version(m[i]) > version(m[j]) })
	return filepath.Dir(m[0]), nil
}

func start() (*cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	fail := func(what string, err error, out []byte) (*cluster, error) {
		_ = os.RemoveAll(dir)
		if len(out) > 0 {
			err = fmt.Errorf("%w\n%s", err, strings.TrimSpace(string(out)))
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if os.Geteuid() == 0 {
		// initdb will not run as root: run the cluster as postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			return fail("running as root, the cluster needs the postgres system user (Debian's postgresql package creates it)", err, nil)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail("chown the cluster directory", err, nil)
		}
	}
	if out, err := c.cmd(filepath.Join(bin, "initdb"), "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return fail("initdb", err, out)
	}
	// A unix socket in the cluster's directory and no TCP port; durability
	// is not wanted of a throwaway cluster.
	conf := fmt.Sprintf("\nlisten_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_connections = 200\n", dir)
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fail("configure", err, nil)
	}
	_, werr := f.WriteString(conf)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fail("configure", err, nil)
	}
	if out, err := c.cmd(filepath.Join(bin, "pg_ctl"), "start", "-D", c.data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return fail("pg_ctl start", err, append(out, log...))
	}
	// The watchdog: when this process is gone, stop the cluster and remove
	// its directory. Its own process group keeps it out of a signal meant
	// for the test binary's group.
	w := c.cmd("/bin/sh", "-c", `while [ -d /proc/$3 ]; do sleep 1; done; "$0" stop -D "$1" -m immediate >/dev/null 2>&1; rm -rf "$2"`,
		filepath.Join(bin, "pg_ctl"), c.data, dir, strconv.Itoa(os.Getpid()))
	if w.SysProcAttr == nil {
		w.SysProcAttr = &syscall.SysProcAttr{}
	}
	w.SysProcAttr.Setpgid = true
	if err := w.Start(); err != nil {
		c.stop()
		return nil, fmt.Errorf("start the watchdog: %w", err)
	}
	go w.Wait()
	return c, nil
}

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/internal/config"
)

func init() {
	app.Register(&cli.Command{
		Name:    "serve",
		Args:    "--state DIR [--config FILE] [--store PATH|postgres://...] [--listen udp:HOST:PORT] [--scs-listen udp:HOST:PORT] [--cert-listen udp:HOST:PORT] [--metrics HOST:PORT [--pprof]] [--log-format text|json] [--cid-prefix HEX]",
		Summary: "run the collector: devices and SCSs over CoAP/DTLS, alarms, audit (see docs/collector.md)",
		Run:     runServe,
	})
	app.Register(&cli.Command{
		Name:    "pin",
		Args:    "--state DIR",
		Summary: "print the SHA-256 pin of the collector's key (devices in certificate mode pin it)",
		Run:     runPin,
	})
}

// udpAddr accepts "udp:HOST:PORT" or "HOST:PORT".
func udpAddr(flagName, v string) (string, error) {
	a := strings.TrimPrefix(v, "udp:")
	if !strings.Contains(a, ":") {
		return "", cli.Usagef("--%s %q: want udp:HOST:PORT", flagName, v)
	}
	return a, nil
}

func runServe(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "serve")
	listen := fs.String("listen", "udp:127.0.0.1:5684", "device listener (PSK)")
	scsListen := fs.String("scs-listen", "udp:127.0.0.1:5685", "SCS listener (PSK)")
	certListen := fs.String("cert-listen", "", "device listener in certificate mode (optional)")
	state := fs.String("state", "", "state directory (measurement logs, the collector's key; with the default store also device state, alarm log, audit log)")
	storeSpec := fs.String("store", "", "where device state, alarms and audit go: a file (the embedded store; default STATE/"+collector.BoltFile+") or a postgres:// URL")
	cfgPath := fs.String("config", "", "configuration file ([collector] settings; its [device] and [scs] sections are imported into an empty store; see docs/collector.md)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics over HTTP at HOST:PORT/metrics (e.g. 127.0.0.1:9465; off by default)")
	withPprof := fs.Bool("pprof", false, "with --metrics, also serve Go's runtime profiles at /debug/pprof/ (heap, goroutines, CPU) and POST /debug/free-os-memory, for developers; the same exposure as --metrics")
	logFormat := fs.String("log-format", "text", "text, or json (one JSON object a line, for log shippers)")
	cidPrefix := fs.String("cid-prefix", "", "hex, up to 4 bytes: begins the DTLS Connection ID of every device session of this instance, for a UDP load balancer routing by it (docs/collector.md, Many instances)")
	if _, err := cli.ParseInterleaved(fs, args, 0); err != nil {
		return err
	}
	if *state == "" {
		return cli.Usagef("serve: --state is required")
	}
	if *withPprof && *metricsAddr == "" {
		return cli.Usagef("serve: --pprof needs --metrics HOST:PORT (the profiles are served there)")
	}
	if *logFormat != "text" && *logFormat != "json" {
		return cli.Usagef("serve: --log-format %q: want text or json", *logFormat)
	}
	say := func(format string, a ...any) {
		if *logFormat == "json" {
			b, _ := json.Marshal(map[string]string{"time": time.Now().UTC().Format(time.RFC3339Nano), "level": "info", "msg": fmt.Sprintf(format, a...)})
			fmt.Fprintf(env.Stdout, "%s\n", b)
			return
		}
		fmt.Fprintf(env.Stdout, "mtccollector: "+format+"\n", a...)
	}
	prefix, err := hex.DecodeString(*cidPrefix)
	if err != nil || len(prefix) > collector.MaxCIDPrefix {
		return cli.Usagef("serve: --cid-prefix %q: want up to %d bytes in hex, e.g. 01", *cidPrefix, collector.MaxCIDPrefix)
	}
	cfg, err := collector.ParseConfig(&config.File{})
	if *cfgPath != "" {
		cfg, err = collector.LoadConfig(*cfgPath)
	}
	if err != nil {
		return &cli.UsageError{Msg: err.Error(), Hint: "format: see docs/collector.md"}
	}
	dev, err := udpAddr("listen", *listen)
	if err != nil {
		return err
	}
	scs, err := udpAddr("scs-listen", *scsListen)
	if err != nil {
		return err
	}
	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := collector.OpenStore(octx, *storeSpec, *state)
	ocancel()
	switch {
	case errors.Is(err, collector.ErrStoreLocked):
		return cli.WithHint(err, "another mtccollector runs on this store; stop it, or share a PostgreSQL database between instances (--store postgres://...)")
	case err != nil && collector.IsPostgresURL(*storeSpec):
		return cli.WithHint(err, "check the URL, that the database exists and that the user may create tables in it (docs/collector.md, Fleet)")
	case err != nil:
		return err
	}
	srv, err := collector.New(cfg, collector.Options{StateDir: *state, Store: st, Log: env.Stdout, LogJSON: *logFormat == "json", CIDPrefix: prefix})
	if err != nil {
		return err
	}
	da, err := srv.ListenDevices(dev)
	if err != nil {
		srv.Close()
		return err
	}
	sa, err := srv.ListenSCS(scs)
	if err != nil {
		srv.Close()
		return err
	}
	if err := srv.ServeAdmin(filepath.Join(*state, collector.AdminSocket)); err != nil {
		// Not fatal: the registry commands still reach a PostgreSQL store.
		say("ERROR %v: mtccollector device|scs|grant|revoke cannot reach this serve's embedded store while it runs", err)
	}
	nd, ns := srv.Registered()
	say("devices on udp:%s, scs on udp:%s, %d device(s), %d scs", da, sa, nd, ns)
	say("store: %s", storeName(*storeSpec, *state))
	if *certListen != "" {
		a, err := udpAddr("cert-listen", *certListen)
		if err != nil {
			srv.Close()
			return err
		}
		cert, pin, err := collector.LoadOrCreateCert(*state)
		if err != nil {
			srv.Close()
			return err
		}
		ca, err := srv.ListenDevicesCert(a, *cert)
		if err != nil {
			srv.Close()
			return err
		}
		say("certificate-mode devices on udp:%s, server key pin %s", ca, hex.EncodeToString(pin))
	}
	if *metricsAddr != "" {
		ml, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			srv.Close()
			return cli.WithHint(fmt.Errorf("--metrics %s: %w", *metricsAddr, err), "give a free HOST:PORT, e.g. 127.0.0.1:9465; keep it on loopback or behind your scraper's network")
		}
		h := srv.MetricsHandler()
		if *withPprof {
			mux := http.NewServeMux()
			mux.Handle("/", h)
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			// For memory measurements (fleetbench): return all free
			// memory to the system now, so that a resident-set reading
			// starts from what is live.
			mux.HandleFunc("/debug/free-os-memory", func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					http.Error(w, "POST only", http.StatusMethodNotAllowed)
					return
				}
				debug.FreeOSMemory()
			})
			h = mux
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		say("metrics on http://%s/metrics", ml.Addr())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv.Run(ctx)
	say("stopped")
	return nil
}

func runPin(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "pin")
	state := fs.String("state", "", "state directory")
	if _, err := cli.ParseInterleaved(fs, args, 0); err != nil {
		return err
	}
	if *state == "" {
		return cli.Usagef("pin: --state is required")
	}
	_, pin, err := collector.LoadOrCreateCert(*state)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, hex.EncodeToString(pin))
	return nil
}

// storeName says which store serves, without a password.
func storeName(spec, state string) string {
	switch {
	case spec == "":
		return "embedded " + filepath.Join(state, collector.BoltFile)
	case collector.IsPostgresURL(spec):
		u, err := url.Parse(spec)
		if err != nil {
			return "postgresql"
		}
		u.User, u.RawQuery = nil, ""
		return "postgresql " + u.Redacted()
	}
	return "embedded " + spec
}

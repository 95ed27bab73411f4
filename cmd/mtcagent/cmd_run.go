package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/mdtlog"
)

func init() {
	app.Register(&cli.Command{
		Name:    "run",
		Args:    "[--config FILE] [--modem SPEC] [--state-dir DIR] [--log-format text|json]",
		Summary: "the daemon: follow the modem, sign and queue monitoring events and heartbeats, serve the control socket",
		Run:     runRun,
	})
}

func runRun(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "run")
	cfgPath := fs.String("config", "", "configuration file (see /etc/mtcagent/mtcagent.conf)")
	modem := modemFlag(fs, env)
	stateDir := stateDirFlag(fs, env)
	logFormat := fs.String("log-format", "text", "text (key=value), or json (one JSON object a line, for log shippers)")
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	if *logFormat != "text" && *logFormat != "json" {
		return cli.Usagef("run: --log-format %q: want text or json", *logFormat)
	}
	cfg := agent.DefaultConfig()
	if *cfgPath != "" {
		var err error
		if cfg, err = loadConfig(*cfgPath, false, ""); err != nil {
			return err
		}
	}
	// Flags given on the command line win over the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "modem":
			cfg.Modem = *modem
		case "state-dir":
			cfg.StateDir = *stateDir
		}
	})
	if *cfgPath == "" {
		cfg.Modem, cfg.StateDir = *modem, *stateDir
	}
	var h slog.Handler = slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	if *logFormat == "json" {
		h = slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	}
	log := slog.New(h)
	return runAgent(env, cfg, log)
}

func runAgent(env *cli.Env, cfg agent.Config, log *slog.Logger) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	spec := cfg.Modem
	open := func(context.Context) (io.ReadWriteCloser, error) {
		p, _, err := openModem(spec)
		return p, err
	}
	if file, ok := cutSim(spec); ok {
		if simOpener == nil {
			return errors.New("this build has no simulator (built with mtc_omit_sim)")
		}
		path, stop, err := simOpener(file)
		if err != nil {
			return &cli.UsageError{Msg: err.Error()}
		}
		defer stop()
		spec = path
	}
	// The state directory first: nobody else may own or write it.
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return stateHint(fmt.Errorf("state directory: %w", err), cfg.StateDir)
	}
	if err := fsutil.CheckPrivateDir(cfg.StateDir); err != nil {
		return stateHint(fmt.Errorf("state directory: %w", err), cfg.StateDir)
	}
	ob, err := outbox.Open(filepath.Join(cfg.StateDir, "outbox"), outbox.Options{})
	if err != nil {
		return stateHint(fmt.Errorf("outbox: %w", err), cfg.StateDir)
	}
	defer ob.Close()
	logOutboxReport(log, ob.Report())
	queue := agent.DurableQueue{O: ob}
	deps := agent.Deps{Open: open, Outbox: queue, Log: log}
	mcfg := cfg.MDT
	store, err := mdtlog.Open(cfg.StateDir, mcfg.Options())
	if err != nil {
		return stateHint(fmt.Errorf("measurement log: %w", err), cfg.StateDir)
	}
	defer store.Close()
	logMDTReport(log, store)
	deps.MDT = &agent.MDT{Store: store, Config: mcfg}
	a, err := agent.New(cfg, deps)
	if err != nil {
		return stateHint(err, cfg.StateDir)
	}
	// Deferred before the uplink's stop, so it runs after it: nothing signs
	// once the counter is closed.
	defer func() {
		if err := a.Close(); err != nil {
			log.Error("sequence counter not closed: the next start skips the rest of its block", "err", err)
		}
	}()
	stopUplink, err := startUplink(ctx, cfg, a, queue, log)
	if err != nil {
		return err
	}
	defer stopUplink()
	ctlErr := make(chan error, 1)
	go func() { ctlErr <- agent.ServeControl(ctx, cfg.StateDir, a.Handle) }()
	log.Info("mtcagent starting", "version", version, "state_dir", cfg.StateDir)
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	select {
	case err := <-ctlErr:
		if err != nil {
			cancel()
			<-runErr
			return err
		}
		return <-runErr
	case err := <-runErr:
		cancel()
		<-ctlErr
		return err
	}
}

// maxReportLines bounds how many damaged stretches a start logs one by one.
const maxReportLines = 16

// logOutboxReport logs what outbox.Open found on disk (docs/outbox.md):
// a torn tail is what a crash mid-append leaves (that record was never
// reported appended); a damaged record in the middle means a failing
// medium, and the ids it lost. Offsets and ids only, never content.
func logOutboxReport(log *slog.Logger, r outbox.Report) {
	log.Info("outbox opened", "segments", r.Segments, "next_id", r.NextID, "acked", r.Acked,
		"torn_bytes", r.TornBytes, "damaged", len(r.Corrupt))
	if r.TornBytes > 0 {
		log.Warn("outbox: torn tail dropped at start (a crash mid-append; that record was never reported appended)",
			"torn_bytes", r.TornBytes)
	}
	for i, re := range r.Corrupt {
		if i == maxReportLines {
			log.Error("outbox: more damaged records at start", "not_listed", len(r.Corrupt)-i)
			break
		}
		log.Error("outbox: damaged record skipped at start (a failing medium?)", "err", re)
	}
}

// logMDTReport reads the measurement log once at start and logs what it
// found: records that do not authenticate (tampering or a failing medium)
// and torn tails (a crash mid-append; repaired at the next append).
func logMDTReport(log *slog.Logger, store *mdtlog.Store) {
	rep, err := store.Records(nil)
	if err != nil {
		log.Error("measurement log: not readable at start", "err", err)
		return
	}
	log.Info("measurement log opened", "consent", store.ConsentState().State.String(), "segments", rep.Segments,
		"records", rep.Records, "damaged", rep.Failed, "torn", rep.Torn)
	if rep.Torn > 0 {
		log.Warn("measurement log: torn tail found at start (a crash mid-append; repaired at the next append)", "segments", rep.Torn)
	}
	if rep.Failed > 0 {
		log.Error("measurement log: records that do not authenticate found at start (tampering or a failing medium); they are skipped",
			"records", rep.Failed)
		for _, e := range rep.Errors {
			log.Error("measurement log: damaged", "err", e)
		}
	}
}

// loadConfig reads and checks the configuration file, the one way every
// command does (agent.LoadConfig): a bad file is bad input (exit 2) with
// its file:line. missingOK: a missing file means the defaults (the
// default path of a command that works without one). hint is added when
// the file cannot be read.
func loadConfig(path string, missingOK bool, hint string) (agent.Config, error) {
	cfg, err := agent.LoadConfig(path)
	var ce *config.Error
	switch {
	case err == nil:
		return cfg, nil
	case missingOK && errors.Is(err, fs.ErrNotExist):
		return agent.DefaultConfig(), nil
	case errors.As(err, &ce):
		return cfg, cli.WithHint(cli.Usagef("config: %v", err), "see docs/agent.md for the file's sections and keys")
	}
	h := "pass --config FILE or set MTCAGENT_CONFIG"
	if hint != "" {
		h += "; " + hint
	}
	return cfg, cli.WithHint(fmt.Errorf("read config: %w", err), h)
}

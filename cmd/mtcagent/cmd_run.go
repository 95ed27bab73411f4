package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/internal/config"
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
	open, stop, err := modemOpener(cfg.Modem)
	if err != nil {
		return err
	}
	defer stop()
	d, err := agent.Open(cfg, agent.DaemonDeps{Open: open, Log: log, Version: version})
	var ce *agent.ConfigError
	var se *agent.StateError
	switch {
	case errors.Is(err, agent.ErrNoUplinkBuild):
		return cli.WithHint(err, "use a build without the mtc_omit_coap tag, or remove the [uplink] section")
	case errors.As(err, &ce):
		return &cli.UsageError{Msg: ce.Error()}
	case errors.As(err, &se):
		return stateHint(se.Err, cfg.StateDir)
	case err != nil:
		return err
	}
	defer d.Close()
	return d.Run(ctx)
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

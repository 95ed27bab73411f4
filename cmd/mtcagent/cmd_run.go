package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
)

func init() {
	register(&command{
		name:    "run",
		args:    "[--config FILE] [--modem SPEC] [--state-dir DIR]",
		summary: "the daemon: follow the modem, sign and queue monitoring events and heartbeats, serve the control socket",
		run:     runRun,
	})
}

func runRun(env *cmdEnv, args []string) error {
	fs := newFlags(env, "run")
	cfgPath := fs.String("config", "", "configuration file (see /etc/mtcagent/mtcagent.conf)")
	modem := modemFlag(fs, env)
	stateDir := stateDirFlag(fs, env)
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg := agent.DefaultConfig()
	if *cfgPath != "" {
		var err error
		if cfg, err = agent.LoadConfig(*cfgPath); err != nil {
			return &usageError{msg: fmt.Sprintf("config: %v", err)}
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
	log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return runAgent(env, cfg, log)
}

func runAgent(env *cmdEnv, cfg agent.Config, log *slog.Logger) error {
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
			return &usageError{msg: err.Error()}
		}
		defer stop()
		spec = path
	}
	ob, err := outbox.Open(filepath.Join(cfg.StateDir, "outbox"), outbox.Options{})
	if err != nil {
		return withHint(fmt.Errorf("outbox: %w", err), "is another mtcagent running with this --state-dir?")
	}
	defer ob.Close()
	queue := agent.DurableQueue{O: ob}
	deps := agent.Deps{Open: open, Outbox: queue, Log: log}
	mcfg, err := mdtlog.ParseConfig(cfg.File)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("config: %v", err)}
	}
	store, err := mdtlog.Open(cfg.StateDir, mcfg.Options())
	if err != nil {
		return withHint(fmt.Errorf("measurement log: %w", err), "is another mtcagent running, or an 'mtcagent mdt' command? stop it first")
	}
	defer store.Close()
	deps.MDT = &agent.MDT{Store: store, Config: mcfg}
	a, err := agent.New(cfg, deps)
	if err != nil {
		return withHint(err, "check --state-dir (it must be writable by the agent and not readable by others)")
	}
	var link *agent.LinkSender
	if up, err := agent.ParseUplink(cfg.File, cfg.StateDir); err != nil {
		return &usageError{msg: fmt.Sprintf("config: %v", err)}
	} else if up != nil {
		h, err := linkHandler(cfg, a)
		if err != nil {
			return err
		}
		up.Handler = h
		link = &agent.LinkSender{Config: *up, Log: log}
		defer link.Close()
		d := &agent.Deliverer{Q: queue, S: link, Log: log, BackoffMin: time.Second, BackoffMax: time.Minute, Online: a.Online}
		a.SetWake(d.Wake)
		go d.Run(ctx)
	} else {
		log.Info("no [uplink] configured: events are signed and kept in the outbox only")
	}
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

// linkHandler builds what serves the collector's requests: the privacy
// policy (default deny), its audit, the trigger replay guard.
func linkHandler(cfg agent.Config, a *agent.Agent) (*agent.LinkHandler, error) {
	pol, err := privacy.ParsePolicy(cfg.File)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("config: %v", err)}
	}
	secret, err := privacy.LoadSecret(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if err := pol.SetSecret(secret); err != nil {
		return nil, err
	}
	guard, err := uplink.OpenTriggerGuard(filepath.Join(cfg.StateDir, "trigger.guard"), 0)
	if err != nil {
		return nil, err
	}
	d, err := attest.LoadOrCreateDeriver(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &agent.LinkHandler{A: a, Policy: pol, Audit: privacy.OpenAudit(cfg.StateDir, pol.AuditMax), Guard: guard, Deriver: d}, nil
}

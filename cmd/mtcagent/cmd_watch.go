package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	app.Register(&cli.Command{
		Name:    "watch",
		Args:    "[--modem SPEC] [--for DURATION] [--poll DURATION] [--json]",
		Summary: "follow the modem and print events (SIM, registration, cell, reset, port) as they happen",
		Run:     runWatch,
	})
}

func runWatch(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "watch")
	modem := modemFlag(fs, env)
	dur := fs.Duration("for", 0, "stop after this long (default: until interrupted)")
	poll := fs.Duration("poll", 30*time.Second, "full re-read interval (URCs are followed at once)")
	asJSON := fs.Bool("json", false, "one JSON object per event")
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	if *poll < 100*time.Millisecond {
		return cli.Usagef("--poll %v is too short (minimum 100ms)", *poll)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if *dur > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, *dur)
		defer c2()
	}
	open, stop, err := modemOpener(*modem)
	if err != nil {
		return err
	}
	defer stop()
	if !strings.HasPrefix(*modem, "sim:") {
		p, err := open(ctx)
		if err != nil {
			return err // fail fast on a wrong spec; later losses are events
		}
		p.Close()
	}
	start := time.Now()
	var mu sync.Mutex
	printEv := func(ev any, text string) {
		mu.Lock()
		defer mu.Unlock()
		if *asJSON {
			json.NewEncoder(env.Stdout).Encode(ev)
			return
		}
		fmt.Fprintf(env.Stdout, "%7.2fs  %s\n", time.Since(start).Seconds(), text)
	}
	mon := atmodem.NewMonitor(atmodem.MonitorConfig{
		Open: open,
		Poll: *poll,
		OnEvent: func(ev atmodem.Event) {
			printEv(ev.JSON(), ev.String())
		},
	})
	done := make(chan struct{})
	go func() { mon.Run(ctx); close(done) }()
	select {
	case <-mon.Ready():
		st := mon.Status()
		_, reg := st.Serving()
		state := "not registered"
		if reg != nil {
			state = reg.State
		}
		printEv(map[string]any{"kind": "ready", "dialect": st.Dialect, "sim": st.SIM.State, "registration": state},
			fmt.Sprintf("ready: %s %s, sim %s, %s", st.Modem.Manufacturer, st.Modem.Model, st.SIM.State, state))
	case <-done:
	}
	<-done
	return nil
}

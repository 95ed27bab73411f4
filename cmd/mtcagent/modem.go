package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/serialport"
	"github.com/mtcagent/mtcagent/internal/cli"
)

// simOpener is set by sim.go (absent in builds tagged mtc_omit_sim): it
// starts the built-in simulator on a pty for a sim:FILE spec and returns
// the pty's path and a stop function.
var simOpener func(scenario string) (path string, stop func(), err error)

// modemOpener is the opener of spec (a device path, auto, tcp:HOST:PORT
// or sim:FILE): a sim: spec starts its simulator once, so that for a
// long-running command (run, watch) an unplug fault is a real unplug of
// that pty, not a new simulator; stop ends it.
func modemOpener(spec string) (open atmodem.Opener, stop func(), err error) {
	stop = func() {}
	if file, ok := strings.CutPrefix(spec, "sim:"); ok {
		if simOpener == nil {
			return nil, nil, errors.New("this build has no simulator (built with mtc_omit_sim)")
		}
		path, s, err := simOpener(file)
		if err != nil {
			return nil, nil, &cli.UsageError{Msg: err.Error()}
		}
		spec, stop = path, s
	}
	return func(context.Context) (io.ReadWriteCloser, error) {
		p, err := serialport.Open(spec)
		if err == nil {
			return p, nil
		}
		var pe *serialport.Error
		if errors.As(err, &pe) && pe.Hint() != "" {
			return nil, cli.WithHint(err, pe.Hint())
		}
		if strings.Contains(err.Error(), "modem spec") {
			return nil, &cli.UsageError{Msg: err.Error(), Hint: "examples: --modem /dev/ttyUSB2, --modem auto, --modem tcp:127.0.0.1:2000, --modem sim:scenario.json"}
		}
		return nil, err
	}, stop, nil
}

// readStatus takes one full reading of the modem named by spec within
// modemTimeout.
func readStatus(spec string) (*atmodem.Status, error) {
	open, stop, err := modemOpener(spec)
	if err != nil {
		return nil, err
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), modemTimeout)
	defer cancel()
	port, err := open(ctx)
	if err != nil {
		return nil, err
	}
	st, err := atmodem.ReadOnce(ctx, port)
	if errors.Is(err, atmodem.ErrNoAnswer) {
		return nil, cli.WithHint(err, "is this the modem's AT port? Quectel and SIMCom modules have several; try --modem auto or another /dev/ttyUSBn")
	}
	return st, err
}

// modemTimeout bounds one-shot commands that read the modem.
const modemTimeout = 60 * time.Second

package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	app.Register(&cli.Command{
		Name:    "serve",
		Args:    "--config FILE --state DIR [--listen udp:HOST:PORT] [--scs-listen udp:HOST:PORT] [--cert-listen udp:HOST:PORT]",
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
	state := fs.String("state", "", "state directory (state, alarm log, audit log)")
	cfgPath := fs.String("config", "", "configuration file (devices, SCSs; see docs/collector.md)")
	if _, err := cli.ParseInterleaved(fs, args, 0); err != nil {
		return err
	}
	if *state == "" || *cfgPath == "" {
		return cli.Usagef("serve: --state and --config are required")
	}
	cfg, err := collector.LoadConfig(*cfgPath)
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
	srv, err := collector.New(cfg, collector.Options{StateDir: *state, Log: env.Stdout})
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
	fmt.Fprintf(env.Stdout, "mtccollector: devices on udp:%s, scs on udp:%s, %d device(s), %d scs\n", da, sa, len(cfg.Devices), len(cfg.SCS))
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
		fmt.Fprintf(env.Stdout, "mtccollector: certificate-mode devices on udp:%s, server key pin %s\n", ca, hex.EncodeToString(pin))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv.Run(ctx)
	fmt.Fprintln(env.Stdout, "mtccollector: stopped")
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

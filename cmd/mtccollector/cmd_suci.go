package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	app.Register(&cli.Command{
		Name:    "suci",
		Summary: "SUCI de-concealment (the SIDF role)",
		Subs: []*cli.Command{{
			Name:    "decode",
			Args:    "--hn-key PRIVFILE SUCI",
			Summary: "recover the SUPI (imsi-...) from a SUCI with the home network's private key",
			Run:     runSUCIDecode,
		}},
	})
}

func runSUCIDecode(env *cli.Env, args []string) error {
	fset := app.NewFlags(env, "suci decode")
	keyPath := fset.String("hn-key", "", "the home network's private key file (0600; see docs/attestation.md)")
	pos, err := cli.ParseInterleaved(fset, args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("suci decode: want one SUCI, e.g. suci-0-208-93-0-1-1-<scheme output hex>")
	}
	s, err := attest.ParseSUCI(pos[0])
	if err != nil {
		return &cli.UsageError{Msg: err.Error()}
	}
	var priv *attest.HNPrivateKey
	if *keyPath != "" {
		priv, err = attest.LoadHNPrivateKey(*keyPath)
		var pe *attest.PermissionError
		switch {
		case errors.As(err, &pe):
			return cli.WithHint(fmt.Errorf("UNPROTECTED PRIVATE KEY FILE: %w", err), pe.Hint())
		case errors.Is(err, fs.ErrNotExist):
			return &cli.UsageError{Msg: err.Error()}
		case err != nil:
			return &cli.UsageError{Msg: err.Error(), Hint: "format: see 'home-network key file' in docs/attestation.md"}
		}
	} else if s.Scheme != attest.SchemeNull {
		return &cli.UsageError{Msg: "suci decode: --hn-key is required for Profiles A and B"}
	}
	imsi, err := attest.Decode(priv, s)
	if err != nil {
		if errors.Is(err, attest.ErrSUCIMAC) {
			return cli.WithHint(&cli.UsageError{Msg: err.Error()}, "the SUCI was altered, or concealed for another home-network key")
		}
		return &cli.UsageError{Msg: err.Error()}
	}
	// Disclosure is the point of this command: the SIDF's output.
	_, err = fmt.Fprintf(env.Stdout, "imsi-%s\n", imsi.Reveal())
	return err
}

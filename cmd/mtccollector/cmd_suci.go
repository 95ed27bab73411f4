package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/mtcagent/mtcagent/attest"
)

func init() {
	register(&command{
		name:    "suci",
		summary: "SUCI de-concealment (the SIDF role)",
		subs: []*command{{
			name:    "decode",
			args:    "--hn-key PRIVFILE SUCI",
			summary: "recover the SUPI (imsi-...) from a SUCI with the home network's private key",
			run:     runSUCIDecode,
		}},
	})
}

func runSUCIDecode(env *cmdEnv, args []string) error {
	fset := newFlags(env, "suci decode")
	keyPath := fset.String("hn-key", "", "the home network's private key file (0600; see docs/attestation.md)")
	pos, err := parseFlags(fset, args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("suci decode: want one SUCI, e.g. suci-0-208-93-0-1-1-<scheme output hex>")
	}
	s, err := attest.ParseSUCI(pos[0])
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	var priv *attest.HNPrivateKey
	if *keyPath != "" {
		priv, err = attest.LoadHNPrivateKey(*keyPath)
		var pe *attest.PermissionError
		switch {
		case errors.As(err, &pe):
			return withHint(fmt.Errorf("UNPROTECTED PRIVATE KEY FILE: %w", err), "chmod 600 "+pe.Path)
		case errors.Is(err, fs.ErrNotExist):
			return &usageError{msg: err.Error()}
		case err != nil:
			return &usageError{msg: err.Error(), hint: "format: see 'home-network key file' in docs/attestation.md"}
		}
	} else if s.Scheme != attest.SchemeNull {
		return &usageError{msg: "suci decode: --hn-key is required for Profiles A and B"}
	}
	imsi, err := attest.Decode(priv, s)
	if err != nil {
		if errors.Is(err, attest.ErrSUCIMAC) {
			return withHint(&usageError{msg: err.Error()}, "the SUCI was altered, or concealed for another home-network key")
		}
		return &usageError{msg: err.Error()}
	}
	// Disclosure is the point of this command: the SIDF's output.
	_, err = fmt.Fprintf(env.stdout, "imsi-%s\n", imsi.Reveal())
	return err
}

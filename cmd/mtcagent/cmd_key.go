package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	app.Register(&cli.Command{
		Name:    "key",
		Summary: "the device key",
		Subs: []*cli.Command{{
			Name:    "public",
			Args:    "[--state-dir DIR]",
			Summary: "print the device's public key (PEM SubjectPublicKeyInfo); creates the key on first use",
			Run:     runKeyPublic,
		}},
	})
}

func runKeyPublic(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "key public")
	stateDir := stateDirFlag(fs, env)
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	key, created, err := attest.LoadOrCreateDeviceKey(*stateDir)
	if err != nil {
		return keyHint(err, *stateDir)
	}
	pem, err := attest.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(env.Stderr, "mtcagent: created a new device key in %s\n", filepath.Join(*stateDir, attest.DeviceKeyFile))
	}
	_, err = env.Stdout.Write(pem)
	return err
}

// keyHint explains refused key and secret files.
func keyHint(err error, stateDir string) error {
	var pe *attest.PermissionError
	switch {
	case errors.As(err, &pe) && pe.Dir:
		return stateHint(err, stateDir)
	case errors.As(err, &pe):
		return cli.WithHint(fmt.Errorf("UNPROTECTED PRIVATE KEY FILE: %w", err), pe.Hint())
	case errors.Is(err, attest.ErrBadKey):
		return cli.WithHint(err, "the file is not an Ed25519 PKCS#8 PEM key; restore it from backup, or move it away to create a new key (then re-provision)")
	}
	return cli.WithHint(err, fmt.Sprintf("the state directory is %s; choose another with --state-dir or $MTCAGENT_STATE_DIR", stateDir))
}

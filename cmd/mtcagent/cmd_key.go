package main

import (
	"crypto"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mtcagent/mtcagent/attest"
)

func init() {
	register(&command{
		name:    "key",
		args:    "public [--state-dir DIR]",
		summary: "print the device's public key (PEM SubjectPublicKeyInfo); creates the key on first use",
		run:     runKey,
	})
}

func runKey(env *cmdEnv, args []string) error {
	if len(args) == 0 || args[0] != "public" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(env.stderr, "usage: mtcagent key public [--state-dir DIR]")
			return nil
		}
		return &usageError{msg: "key: want a subcommand", hint: "usage: mtcagent key public [--state-dir DIR]"}
	}
	fs := newFlags(env, "key public")
	stateDir := stateDirFlag(fs, env)
	if err := parseFlags(fs, args[1:], 0); err != nil {
		return err
	}
	key, created, err := loadDeviceKey(*stateDir)
	if err != nil {
		return err
	}
	pem, err := attest.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(env.stderr, "mtcagent: created a new device key in %s\n", filepath.Join(*stateDir, attest.DeviceKeyFile))
	}
	_, err = env.stdout.Write(pem)
	return err
}

// loadDeviceKey opens (or creates) the device key with operator hints for
// the usual failures.
func loadDeviceKey(stateDir string) (crypto.Signer, bool, error) {
	k, created, err := attest.LoadOrCreateDeviceKey(stateDir)
	if err != nil {
		return nil, false, keyHint(err, stateDir)
	}
	return k, created, nil
}

// keyHint explains refused key and secret files.
func keyHint(err error, stateDir string) error {
	var pe *attest.PermissionError
	switch {
	case errors.As(err, &pe):
		return withHint(fmt.Errorf("UNPROTECTED PRIVATE KEY FILE: %w", err),
			fmt.Sprintf("chmod 600 %s\nif anyone else could have read it, treat it as compromised: remove it and re-provision the device", pe.Path))
	case errors.Is(err, attest.ErrBadKey):
		return withHint(err, "the file is not an Ed25519 PKCS#8 PEM key; restore it from backup, or move it away to create a new key (then re-provision)")
	}
	return withHint(err, fmt.Sprintf("the state directory is %s; choose another with --state-dir or $MTCAGENT_STATE_DIR", stateDir))
}

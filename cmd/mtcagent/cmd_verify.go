package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	app.Register(&cli.Command{
		Name:    "verify",
		Args:    "--key PUBKEY.pem [--nonce HEX] [--last-seq N] [--max-age DURATION] [--any-age] [--json] TOKENFILE|-",
		Summary: "verify a token (binding, event, heartbeat) and print its claims; exit 1 if it is refused",
		Run:     runVerify,
	})
}

func runVerify(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "verify")
	keyPath := fs.String("key", "", "the device's public key (PEM, from 'mtcagent key public')")
	nonceHex := fs.String("nonce", "", "the challenge sent to the device, in hex: the token must carry it")
	lastSeq := fs.Uint64("last-seq", 0, "the last sequence number seen from this device: the token's must be greater")
	maxAge := fs.Duration("max-age", 5*time.Minute, "freshness window for tokens from a synchronised clock")
	anyAge := fs.Bool("any-age", false, "accept a token whose freshness cannot be judged (unsynchronised clock, no --nonce, no --last-seq)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := cli.ParseFlags(fs, args, 1); err != nil {
		return err
	}
	if *keyPath == "" {
		return &cli.UsageError{Msg: "verify: --key is required", Hint: "get the device's key with 'mtcagent key public > device.pem' on the device"}
	}
	if fs.NArg() != 1 {
		return &cli.UsageError{Msg: "verify: want one token file (or - for stdin)"}
	}
	pemBytes, err := os.ReadFile(*keyPath)
	if err != nil {
		return &cli.UsageError{Msg: fmt.Sprintf("verify: read key: %v", err)}
	}
	pub, err := attest.ParsePublicKeyPEM(pemBytes)
	if err != nil {
		return &cli.UsageError{Msg: fmt.Sprintf("verify: %s: %v", *keyPath, err)}
	}
	v := &attest.Verifier{Key: pub, LastSeq: *lastSeq, MaxAge: *maxAge, SkipFreshness: *anyAge}
	if v.Nonce, err = attest.ParseNonce(*nonceHex); err != nil {
		return cli.Usagef("verify: --nonce must be 8 to 64 bytes in hex")
	}
	var raw []byte
	if name := fs.Arg(0); name == "-" {
		raw, err = io.ReadAll(io.LimitReader(env.Stdin, 4*attest.MaxTokenSize))
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return &cli.UsageError{Msg: fmt.Sprintf("verify: read token: %v", err)}
	}
	tok := attest.DecodeTokenText(raw)
	res, err := v.Verify(tok)
	if err != nil {
		if *asJSON {
			cli.WriteJSON(env.Stdout, map[string]any{"valid": false, "reason": err.Error()})
		}
		if errors.Is(err, attest.ErrMalformed) {
			return &cli.UsageError{Msg: err.Error(), Hint: "a token is a COSE_Sign1 as written by 'mtcagent attest' (raw CBOR, hex or base64)"}
		}
		switch {
		case errors.Is(err, attest.ErrStale) && *nonceHex == "" && *lastSeq == 0:
			return cli.WithHint(err, "give the challenge (--nonce) or the last sequence number seen (--last-seq); --any-age accepts it without a freshness check")
		case errors.Is(err, attest.ErrStale):
			return cli.WithHint(err, "--max-age widens the window for devices with a synchronised clock")
		case errors.Is(err, attest.ErrSignature):
			return cli.WithHint(err, "is --key this device's key ('mtcagent key public' on the device)?")
		}
		return err
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, res.JSON())
	}
	res.WriteText(env.Stdout)
	return nil
}

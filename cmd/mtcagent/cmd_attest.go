package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	app.Register(&cli.Command{
		Name:    "attest",
		Args:    "[--nonce HEX] [--recipient NAME] [--out FILE] [--imei-ueid] [--suci-hn-key FILE] [--modem SPEC] [--state-dir DIR]",
		Summary: "make a fresh signed UICC–IMEI binding token (COSE_Sign1, EdDSA) from one reading of the modem",
		Run:     runAttest,
	})
}

// attestDefaultRecipient names the receiver of tokens made on the command line:
// UEIDs and pseudonyms are derived per recipient.
const attestDefaultRecipient = "collector"

func runAttest(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "attest")
	nonceHex := fs.String("nonce", "", "the verifier's challenge in hex (8 to 64 bytes)")
	recipient := fs.String("recipient", attestDefaultRecipient, "who the token is for: selects the per-recipient UEID and pseudonyms")
	out := fs.String("out", "", "write the raw token (CBOR) to FILE, or - for stdout; default: hex on stdout")
	imeiUEID := fs.Bool("imei-ueid", false, "use the IMEI-type UEID (0x03): only where the recipient may learn the IMEI")
	suciKeyPath := fs.String("suci-hn-key", "", "also carry the SUCI for this home-network public key file")
	modem := modemFlag(fs, env)
	stateDir := stateDirFlag(fs, env)
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	var nonce []byte
	if *nonceHex != "" {
		var err error
		if nonce, err = hex.DecodeString(*nonceHex); err != nil || len(nonce) < 8 || len(nonce) > 64 {
			return cli.Usagef("attest: --nonce must be 8 to 64 bytes in hex")
		}
	}
	if *recipient == "" {
		return cli.Usagef("attest: --recipient must not be empty")
	}
	var hn *attest.HNPublicKey
	if *suciKeyPath != "" {
		var err error
		if hn, err = suciKey(*suciKeyPath, ""); err != nil {
			return err
		}
	}
	// Keys and counters first: a refused key file should not cost a modem session.
	sg, err := attest.OpenSigning(*stateDir, attest.SigningOptions{})
	var ce *attest.CounterError
	switch {
	case errors.As(err, &ce):
		return cli.WithHint(err, "the counter file is damaged; the agent refuses to restart counters on its own")
	case err != nil:
		return keyHint(err, *stateDir)
	}
	defer sg.Close()
	if sg.KeyCreated {
		fmt.Fprintf(env.Stderr, "mtcagent: created a new device key; give verifiers 'mtcagent key public'\n")
	}

	ctx, cancel := context.WithTimeout(context.Background(), modemTimeout)
	defer cancel()
	st, err := readStatus(ctx, env, *modem)
	if err != nil {
		return err
	}
	if !st.SIM.Known() || st.Unknown(atmodem.ReadModel|atmodem.ReadRevision) {
		// An unknown reading never enters a signed claim as a value:
		// an empty IMSI would attest a device without SIM.
		return cli.WithHint(errors.New("the modem did not answer every identity read (SIM state, IMSI, ICCID, model, revision)"),
			"try again; a modem that keeps failing them may need a reset")
	}
	suci, err := attest.ConcealString(hn, st.SIM.IMSI, nil)
	if err != nil {
		return err
	}
	if st.SIM.IMSI.IsZero() && st.SIM.ICCID.IsZero() {
		fmt.Fprintf(env.Stderr, "mtcagent: warning: no SIM identity read (state %q): the token attests a device without SIM\n", st.SIM.State)
	}
	tok, err := sg.Issuer.SignBinding(sg.Deriver, attest.Binding{
		Recipient: *recipient, Nonce: nonce,
		IMEI: st.Modem.IMEI, IMSI: st.SIM.IMSI, ICCID: st.SIM.ICCID,
		Model: st.Modem.Model, Revision: st.Modem.Revision,
		AllowIMEI: *imeiUEID, SUCI: suci,
	})
	if err != nil {
		if *imeiUEID && st.Modem.IMEI.IsZero() {
			return cli.WithHint(err, "the modem did not report an IMEI; drop --imei-ueid")
		}
		return err
	}
	switch *out {
	case "":
		_, err = fmt.Fprintln(env.Stdout, hex.EncodeToString(tok))
	case "-":
		_, err = env.Stdout.Write(tok)
	default:
		err = os.WriteFile(*out, tok, 0o644)
	}
	return err
}

package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/mtcagent/mtcagent/agent"
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
	nonce, err := attest.ParseNonce(*nonceHex)
	if err != nil {
		return cli.Usagef("attest: --nonce must be 8 to 64 bytes in hex")
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
	defer sg.Counter.Close()
	if sg.KeyCreated {
		fmt.Fprintf(env.Stderr, "mtcagent: created a new device key; give verifiers 'mtcagent key public'\n")
	}

	st, err := readStatus(*modem)
	if err != nil {
		return err
	}
	b, err := agent.BindingFromStatus(st, *recipient, nonce)
	if err != nil {
		return cli.WithHint(err, "try again; a modem that keeps failing them may need a reset")
	}
	suci, err := attest.ConcealString(hn, st.SIM.IMSI, nil)
	if err != nil {
		return err
	}
	if st.SIM.IMSI.IsZero() && st.SIM.ICCID.IsZero() {
		fmt.Fprintf(env.Stderr, "mtcagent: warning: no SIM identity read (state %q): the token attests a device without SIM\n", st.SIM.State)
	}
	b.AllowIMEI, b.SUCI = *imeiUEID, suci
	tok, err := sg.Issuer.SignBinding(sg.Deriver, b)
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

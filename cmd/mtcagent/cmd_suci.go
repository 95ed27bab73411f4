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
		Args:    "--hn-key FILE [--profile A|B|null] [--mnc-digits 2|3] [--json] [--modem SPEC]",
		Summary: "print the SUCI (TS 33.501 concealed IMSI) the device would present, for the operator's home-network key",
		Run:     runSUCI,
	})
}

func runSUCI(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "suci")
	keyPath := fs.String("hn-key", "", "the operator's home-network public key file (see docs/attestation.md)")
	profile := fs.String("profile", "", "protection scheme: A (X25519), B (P-256) or null; default: the key file's")
	mncDigits := fs.Int("mnc-digits", 0, "digits of the MNC in the IMSI (2 or 3); default: the key file's, else 2")
	asJSON := fs.Bool("json", false, "print the SUCI and its parts as JSON")
	modem := modemFlag(fs, env)
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	hn, err := suciKey(*keyPath, *profile)
	if err != nil {
		return err
	}
	if *mncDigits != 0 {
		if *mncDigits != 2 && *mncDigits != 3 {
			return cli.Usagef("suci: --mnc-digits must be 2 or 3")
		}
		hn.MNCDigits = *mncDigits
	}
	st, err := readStatus(*modem)
	if err != nil {
		return err
	}
	if st.SIM.IMSI.IsZero() {
		return cli.WithHint(errors.New("suci: the modem reports no IMSI"), "check the SIM: 'mtcagent status' shows its state")
	}
	s, err := attest.Conceal(hn, st.SIM.IMSI, nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, s.JSON())
	}
	_, err = fmt.Fprintln(env.Stdout, s.String())
	return err
}

// suciKey loads the home-network public key, or makes the null-scheme
// parameters when --profile null is given without a key.
func suciKey(path, profile string) (*attest.HNPublicKey, error) {
	var want *attest.Scheme
	if profile != "" {
		s, err := attest.ParseScheme(profile)
		if err != nil {
			return nil, &cli.UsageError{Msg: err.Error()}
		}
		want = &s
	}
	if path == "" {
		if want != nil && *want == attest.SchemeNull {
			return &attest.HNPublicKey{Scheme: attest.SchemeNull, RoutingIndicator: "0", MNCDigits: 2}, nil
		}
		return nil, &cli.UsageError{Msg: "suci: --hn-key is required for Profiles A and B", Hint: "the operator provides the home-network public key file; see docs/attestation.md"}
	}
	hn, err := attest.LoadHNPublicKey(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &cli.UsageError{Msg: err.Error()}
		}
		return nil, &cli.UsageError{Msg: "suci: " + err.Error(), Hint: "format: see 'home-network key file' in docs/attestation.md"}
	}
	if want != nil && *want != hn.Scheme {
		if *want == attest.SchemeNull {
			return &attest.HNPublicKey{Scheme: attest.SchemeNull, RoutingIndicator: hn.RoutingIndicator, MNCDigits: hn.MNCDigits}, nil
		}
		return nil, cli.Usagef("suci: --profile %s but the key file is for profile %s", *want, hn.Scheme)
	}
	return hn, nil
}

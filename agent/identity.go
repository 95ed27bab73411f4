package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/privacy"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// HNKeyFile is where the operator's home-network public key for SUCI
// concealment lives in the state directory (format: docs/attestation.md).
const HNKeyFile = "hn.pub"

// ErrNoHNKey: SUCI needs the operator's home-network public key.
var ErrNoHNKey = errors.New("no home-network public key: put the operator's key in " + HNKeyFile + " in the state directory")

// Identity is the privacy.IdentitySource of one SIM: per-recipient keyed
// pseudonyms (never the IMSI itself) and a fresh SUCI for the operator.
type Identity struct {
	D        *attest.Deriver
	IMSI     ident.IMSI
	ICCID    ident.ICCID
	StateDir string
}

// Pseudonym is the recipient's pseudonym of the IMSI, in hex; empty
// without a SIM.
func (id Identity) Pseudonym(recipient string) (string, error) {
	if id.IMSI.IsZero() {
		return "", nil // no SIM: nothing to disclose
	}
	return hex.EncodeToString(id.D.Pseudonyms(recipient, id.IMSI, id.ICCID).IMSI), nil
}

// SUCI conceals the IMSI for the operator (TS 33.501 Annex C).
func (id Identity) SUCI() (string, error) {
	if id.IMSI.IsZero() {
		return "", nil
	}
	path := filepath.Join(id.StateDir, HNKeyFile)
	if _, err := os.Stat(path); err != nil {
		return "", ErrNoHNKey
	}
	hn, err := attest.LoadHNPublicKey(path)
	if err != nil {
		return "", err
	}
	s, err := attest.Conceal(hn, id.IMSI, rand.Reader)
	if err != nil {
		return "", err
	}
	return s.String(), nil
}

// OpenIdentity is the identity source of the SIM in s with the deriver of
// stateDir: what the daemon would disclose (report preview shows it).
func OpenIdentity(stateDir string, s privacy.Snapshot) (Identity, error) {
	d, err := attest.LoadOrCreateDeriver(stateDir)
	if err != nil {
		return Identity{}, err
	}
	return Identity{D: d, IMSI: s.IMSI, ICCID: s.ICCID, StateDir: stateDir}, nil
}

// PreviewError is a state file Preview could not open: the masking secret,
// or (Identity) the deriver of the SIM's identity source.
type PreviewError struct {
	Identity bool
	Err      error
}

func (e *PreviewError) Error() string {
	if e.Identity {
		return "identity: " + e.Err.Error()
	}
	return e.Err.Error()
}

func (e *PreviewError) Unwrap() error { return e.Err }

// Preview is what recipient would receive in the next count schedule slots
// (mtcagent report preview), from the same policy, masking secret and
// identity source as the daemon's. The snapshot is read (read) only for a
// recipient the policy knows, after the masking secret is loaded; an
// unknown recipient's preview says it receives nothing.
func Preview(pol *privacy.Policy, stateDir, recipient string, count int, read func() (privacy.Snapshot, error)) (privacy.RecipientPreview, error) {
	v := pol.PreviewFor(recipient)
	if !v.Known {
		return v, nil
	}
	if v.Grants.Location == privacy.LocationRegion {
		key, err := privacy.LoadSecret(stateDir)
		if err != nil {
			return v, &PreviewError{Err: err}
		}
		if err := pol.SetSecret(key); err != nil {
			return v, err
		}
	}
	s, err := read()
	if err != nil {
		return v, err
	}
	if v.Grants.Identity > privacy.LevelNone && s.Identity == nil {
		src, err := OpenIdentity(stateDir, s)
		if err != nil {
			return v, &PreviewError{Identity: true, Err: err}
		}
		s.Identity = src
	}
	v.Reports, err = pol.Previews(recipient, s, count)
	return v, err
}

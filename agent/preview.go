package agent

import "github.com/mtcagent/mtcagent/privacy"

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

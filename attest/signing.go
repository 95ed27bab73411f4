package attest

import "crypto"

// Signing is what signs a state directory's tokens: the device key, the
// deriver of UEIDs and pseudonyms, the sequence counter and the boot
// count, and an Issuer over them. The daemon opens it once at start;
// `mtcagent attest` opens it for one token.
type Signing struct {
	Key        crypto.Signer
	KeyCreated bool // the key file was created just now
	Deriver    *Deriver
	Counter    *Counter
	Boot       uint64
	Issuer     *Issuer
}

// SigningOptions say how OpenSigning opens the signing state.
type SigningOptions struct {
	// Signer is the device key (a TPM, a secure element); nil: the key
	// file of the state directory (LoadOrCreateDeviceKey).
	Signer crypto.Signer
	Clock  Clock // nil: SystemClock
	// CountBoot counts a start of the daemon (IncrementBootCount); else
	// tokens carry the current count (BootCount).
	CountBoot bool
}

// OpenSigning opens the signing state of stateDir: key, deriver, counter
// and boot count, in that order. A damaged counter or boot count file
// fails with a *CounterError. Counter.Close gives the counter's unused
// block back.
func OpenSigning(stateDir string, o SigningOptions) (Signing, error) {
	s := Signing{Key: o.Signer}
	var err error
	if s.Key == nil {
		if s.Key, s.KeyCreated, err = LoadOrCreateDeviceKey(stateDir); err != nil {
			return Signing{}, err
		}
	}
	if s.Deriver, err = LoadOrCreateDeriver(stateDir); err != nil {
		return Signing{}, err
	}
	if s.Counter, err = OpenCounter(stateDir, 0); err != nil {
		return Signing{}, err
	}
	if o.CountBoot {
		s.Boot, err = IncrementBootCount(stateDir)
	} else {
		s.Boot, err = BootCount(stateDir)
	}
	if err == nil {
		s.Issuer, err = NewIssuer(s.Key, s.Counter, o.Clock, s.Boot)
	}
	if err != nil {
		s.Counter.Close()
		return Signing{}, err
	}
	return s, nil
}

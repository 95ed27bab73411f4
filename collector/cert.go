package collector

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mtcagent/mtcagent/internal/coapx"
	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// KeyFile is the collector's own Ed25519 key (certificate mode), in the
// state directory, mode 0600.
const KeyFile = "collector.key"

// LoadOrCreateCert returns the collector's self-signed certificate over
// the key in stateDir (created on first use) and the key's pin, which
// devices configure as their server pin.
func LoadOrCreateCert(stateDir string) (*tls.Certificate, []byte, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("collector: state dir: %w", err)
	}
	path := filepath.Join(stateDir, KeyFile)
	b, err := fsutil.ReadPrivateFile(path, 1<<16) // owner, mode 0600 or stricter
	var key ed25519.PrivateKey
	switch {
	case errors.Is(err, os.ErrNotExist):
		_, key, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		if err := fsutil.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, nil, fmt.Errorf("collector: write key: %w", err)
		}
	case err != nil:
		var pe *fsutil.PermissionError
		if errors.As(err, &pe) {
			return nil, nil, fmt.Errorf("collector: key %w; %s", err, pe.Hint())
		}
		return nil, nil, fmt.Errorf("collector: read key: %w", err)
	default:
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "PRIVATE KEY" {
			return nil, nil, fmt.Errorf("collector: key %s: not a PEM private key", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("collector: key %s: unreadable", path)
		}
		var ok bool
		if key, ok = k.(ed25519.PrivateKey); !ok {
			return nil, nil, fmt.Errorf("collector: key %s: not Ed25519", path)
		}
	}
	cert, err := coapx.SelfSigned(key, "mtccollector")
	if err != nil {
		return nil, nil, err
	}
	return cert, coapx.Pin(cert.Leaf), nil
}

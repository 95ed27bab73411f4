package uplink_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"testing"

	"github.com/mtcagent/mtcagent/internal/coapx"
)

type collectorCert struct {
	tls *tls.Certificate
	pin []byte
}

func newCollectorCert(t testing.TB) *collectorCert {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	c, err := coapx.SelfSigned(k, "collector")
	if err != nil {
		t.Fatal(err)
	}
	return &collectorCert{tls: c, pin: coapx.Pin(c.Leaf)}
}

// Command canary is the known-vulnerable program of `make vulncheck`'s
// self-test (scripts/vulncheck.sh --selftest): a DTLS client on
// pion/dtls v3.1.2, which GO-2026-6165 affects. It is never built into
// anything; the scan must report it, or the check itself is broken.
package main

import (
	"context"
	"net"

	"github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
)

func main() {
	raw, err := net.Dial("udp", "127.0.0.1:5684")
	if err != nil {
		return
	}
	c, err := dtls.Client(dtlsnet.PacketConnFromConn(raw), raw.RemoteAddr(), &dtls.Config{
		PSK:             func([]byte) ([]byte, error) { return make([]byte, 16), nil },
		PSKIdentityHint: []byte("canary"),
		CipherSuites:    []dtls.CipherSuiteID{dtls.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256},
	})
	if err != nil {
		return
	}
	_ = c.HandshakeContext(context.Background())
}

//go:build mtc_omit_coap

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/internal/cli"
)

// startUplink in a build without the CoAP/DTLS uplink: the agent signs
// and keeps everything in its outbox; a config that asks for an uplink is
// refused rather than silently never delivered.
func startUplink(_ context.Context, cfg agent.Config, _ *agent.Agent, _ agent.DurableQueue, log *slog.Logger) (func(), error) {
	if cfg.Uplink != nil {
		return nil, cli.WithHint(errors.New("config: [uplink]: this build has no CoAP/DTLS uplink (built with mtc_omit_coap)"), "use a build without the mtc_omit_coap tag, or remove the [uplink] section")
	}
	log.Info("this build has no uplink (mtc_omit_coap): events are signed and kept in the outbox only")
	return func() {}, nil
}

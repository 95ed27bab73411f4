package main

import (
	"context"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/privacy"
)

func init() {
	previewIdentity = func(ctx context.Context, env *cli.Env, stateDir string, s privacy.Snapshot) (privacy.IdentitySource, error) {
		d, err := attest.LoadOrCreateDeriver(stateDir)
		if err != nil {
			return nil, err
		}
		return agent.Identity{D: d, IMSI: s.IMSI, ICCID: s.ICCID, StateDir: stateDir}, nil
	}
}

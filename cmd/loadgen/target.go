package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/consensusbench/consensusbench/bench"
)

// errNoClient is what the production opener says until the cluster client adapter exists.
var errNoClient = errors.New("no cluster client is built into this loadgen yet (the client adapter arrives with cmd/node)")

// openTarget is the production bench.Opener: it connects to the cluster that spec names
// (--targets, --cluster) or spawns one (--local). The cluster client adapter replaces this
// body; see .coord/bench-api.md. Nothing else in cmd/loadgen changes when it does.
func openTarget(ctx context.Context, spec bench.Spec) (bench.Target, error) {
	return nil, fmt.Errorf("%s cluster: %w", spec.Protocol, errNoClient)
}

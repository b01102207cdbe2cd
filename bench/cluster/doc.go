// Package cluster runs a cluster of cmd/node processes on loopback for a benchmark or a test:
// it writes a cluster spec with free ports, starts one `node` process per replica (each with
// its own data directory and log file), waits until every client port accepts and a
// caller-supplied probe succeeds (a write through the real client, so a leader or primary is
// in place), reports each process's CPU time, and tears everything down: SIGTERM, a bounded
// wait, SIGKILL for stragglers. The run directory is removed unless the caller says the run
// failed, in which case the node logs stay for inspection.
//
// It also finds the node binary (FindNode): beside the running executable, else on PATH
// (checked to be consensusbench's node, not another program of that name), else built with
// `go build` when the working directory is inside the consensusbench module.
//
// It must not: know protocol rules or speak the wire protocol itself (the readiness probe is
// the caller's, so this package stays independent of client/), leave processes behind
// (children also get SIGKILL when the harness's process dies, on Linux), or wait without a
// bound.
package cluster

// Command netns-bench runs a benchmark under faults on an emulated multi-host network: one
// network namespace per node, the load generator in its own, joined by a bridge with
// optional tc tbf rate limits, partitions made by taking links down (see bench/netns and
// docs/FAULTS.md). It needs root. Everything it creates is removed when it ends, also on
// failure or SIGINT/SIGTERM.
//
//	netns-bench --nodes 3 --link-rate 1gbit --rate 2000 --nemesis partition-leader@5s:3s --check-linearizability
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/consensusbench/consensusbench/bench/cluster"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/bench/netns"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Re-executed inside the client namespace by the outer run.
	if path := os.Getenv(netns.EnvScenario); path != "" {
		if err := netns.RunInner(ctx, path, stdout); err != nil {
			fmt.Fprintln(stderr, "netns-bench:", err)
			return 1
		}
		return 0
	}
	sc := netns.Scenario{Load: load.DefaultConfig()}
	fs := pflag.NewFlagSet("netns-bench", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVar(&sc.Protocol, "protocol", "raft", "raft or pbft")
	fs.IntVar(&sc.Nodes, "nodes", 3, "node namespaces (one node each)")
	fs.StringVar(&sc.Sync, "sync", "always", "WAL policy: always or none")
	fs.StringVar(&sc.Rate, "link-rate", "", "tc tbf bandwidth limit on every link, both directions (e.g. 1gbit, 10gbit; empty: none)")
	fs.StringVar(&sc.Nemesis, "nemesis", "partition-leader@5s:3s", "fault schedule: "+nemesis.Grammar)
	fs.StringVar(&sc.Byzantine, "byzantine", "", "PBFT: start --byzantine-nodes with node --byzantine MODE (silent, equivocate, bad-digest, bad-mac)")
	fs.IntSliceVar(&sc.ByzantineNodes, "byzantine-nodes", []int{1}, "node IDs that run Byzantine (at most f)")
	fs.BoolVar(&sc.Linearizability, "check-linearizability", true, "record the history and check it with porcupine")
	fs.BoolVar(&sc.Durability, "check-durability", false, "after the run kill -9 every node, restart, read every acknowledged write back")
	rate := fs.String("rate", "2000", "offered ops/s (open loop), as loadgen's --rate; the links' bandwidth is --link-rate")
	mode := fs.String("mode", "open", "open (constant rate, latency from intended send times) or closed (each client keeps --pipeline batches in flight)")
	fs.IntVar(&sc.Load.Clients, "clients", 16, "client sessions")
	fs.IntVar(&sc.Load.Pipeline, "pipeline", 1, "batches in flight per client")
	fs.IntVar(&sc.Load.Batch, "batch", 1, "ops per request")
	fs.DurationVar(&sc.Load.Duration, "duration", 15*time.Second, "measured window")
	fs.DurationVar(&sc.Load.Warmup, "warmup", 2*time.Second, "warmup before the window (not recorded)")
	workload := fs.String("workload", "ycsb-a", "write-only, read-only, ycsb-a, ycsb-b or ycsb-c")
	keys := fs.Int("keys", 1000, "key space (small enough that reads see other clients' writes)")
	valueSize := fs.Int("value-size", 128, "bytes per written value")
	fs.BoolVar(&sc.Quiet, "quiet", false, "no per-second lines")
	out := fs.String("out", "results/netns", "directory for the result, node logs and, on failure, the visualization")
	nodeBin := fs.String("node", "", "node binary (default: beside this one, on PATH, or built)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "netns-bench:", err)
		return 2
	}
	var err error
	if sc.Load.Rate, err = strconv.ParseFloat(*rate, 64); err != nil {
		// --rate was the links' bandwidth before; say where that went.
		fmt.Fprintf(stderr, "netns-bench: --rate %q: want offered ops/s (a number); a link bandwidth such as 10gbit is --link-rate\n", *rate)
		return 2
	}
	switch *mode {
	case "open":
		sc.Load.Mode = load.OpenLoop
	case "closed":
		sc.Load.Mode = load.ClosedLoop
	default:
		fmt.Fprintf(stderr, "netns-bench: --mode %q: want open or closed\n", *mode)
		return 2
	}
	if sc.Load.Workload, err = load.NewWorkload(*workload); err != nil {
		fmt.Fprintln(stderr, "netns-bench:", err)
		return 2
	}
	sc.Load.Workload.Keys, sc.Load.Workload.ValueSize = *keys, *valueSize
	if err := sc.Load.Validate(); err != nil {
		fmt.Fprintln(stderr, "netns-bench:", err)
		return 2
	}
	if err := netns.Check(); err != nil {
		fmt.Fprintln(stderr, "netns-bench:", err)
		return 1
	}
	sc.Dir, err = filepath.Abs(filepath.Join(*out, time.Now().UTC().Format("20060102T150405Z")))
	if err == nil {
		err = os.MkdirAll(sc.Dir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(stderr, "netns-bench:", err)
		return 1
	}
	if sc.NodeBin = *nodeBin; sc.NodeBin == "" {
		if sc.NodeBin, err = cluster.FindNode(ctx, filepath.Join(sc.Dir, "bin")); err != nil {
			fmt.Fprintln(stderr, "netns-bench:", err)
			return 1
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "netns-bench:", err)
		return 1
	}
	r, err := netns.Run(ctx, sc, []string{self}, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "netns-bench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "result: %s (%d events)\n", filepath.Join(sc.Dir, "result.json"), len(r.Events))
	return 0
}

package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/internal/version"
	"github.com/consensusbench/consensusbench/server"
)

// usageError marks a mistake on the command line; main exits 2 for it.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// app is one invocation's collaborators. run fills in the real ones; tests substitute a fake
// target, a simulated clock and a fixed environment, so the output is reproducible.
type app struct {
	stdout, stderr io.Writer
	open           bench.Opener
	newClock       func() bench.Clock
	env            func() report.Env
	now            func() time.Time
	cpu            func() float64 // this process's CPU seconds
	hostSample     func() report.HostSample
	status         func(ctx context.Context, adminAddr string) (server.ReplicaStatus, error) // a remote node's /admin/status
	abBuild        abBuilder                                                                 // nil: build revisions from git
	tty            bool
}

func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdout: stdout, stderr: stderr, open: openTarget, newClock: bench.NewRealClock,
		env: func() report.Env { return report.CaptureEnv(".") }, now: time.Now,
		cpu: report.ProcessCPUSeconds, hostSample: report.ReadHostSample, status: fetchStatus, tty: report.IsTerminal(stdout)}
	return a.main(ctx, args)
}

const commands = `Commands:
  loadgen [run] [flags]                     drive a cluster and measure it (the default)
  loadgen sweep [flags]                     step the open-loop rate up to saturation
  loadgen compare [flags] OLD... -- NEW...  compare results across commits (benchstat statistics)
  loadgen ab [flags] OLD NEW -- RUN_FLAGS   build two revisions and run them alternately (A/B)
  loadgen merge --out PREFIX FILE...        add up results from several load hosts
  loadgen plot [flags] FILE...              percentile spectrum, time series, sweep curve
  loadgen clean [--yes]                     list (remove) the run directories failed local runs kept
  loadgen version                           the build: module version and commit (also --version)

Run "loadgen COMMAND --help" for a command's flags.
`

// examples end each command's --help.
var examples = map[string]string{
	"run": `  loadgen --local 3 --sync none --mode closed --clients 32 --pipeline 2 --batch 16 --duration 20s
  loadgen --local 3 --mode open --rate 50000 --duration 60s          # latency free of coordinated omission
  loadgen --local 3 --sync always --nemesis kill-leader@10s,restart@15s --check-linearizability --check-durability
  loadgen --protocol raft --cluster cluster.json --mode closed --clients 64 --conns 8   # a cluster started elsewhere
  loadgen --cluster cluster.json --admin-token-file admin.token --rate 20000 --nemesis kill-leader@10s,restart@15s,pause-random@25s:3s   # nodes under systemd
`,
	"sweep": `  loadgen sweep --local 3 --start-rate 10000 --factor 1.5 --duration 10s
`,
	"compare": `  loadgen compare results/runs/old-*.json -- results/runs/new-*.json
`,
	"ab": `  loadgen ab --rounds 6 HEAD~1 . -- --local 3 --mode closed --clients 32 --pipeline 2 --batch 16 --duration 10s
`,
}

const topUsage = "usage: loadgen COMMAND [flags]\n\n" + commands

func (a *app) main(ctx context.Context, args []string) error {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) == 1 && args[0] == "--version" {
		cmd = "version"
	}
	switch cmd {
	case "run":
		return a.runCmd(ctx, args)
	case "sweep":
		return a.sweepCmd(ctx, args)
	case "compare":
		return a.compareCmd(args)
	case "ab":
		return a.abCmd(ctx, args)
	case "merge":
		return a.mergeCmd(args)
	case "plot":
		return a.plotCmd(args)
	case "help":
		fmt.Fprint(a.stdout, topUsage)
		return nil
	case "clean":
		return a.cleanCmd(args)
	case "version":
		fmt.Fprintln(a.stdout, version.String("loadgen"))
		return nil
	}
	return usagef("unknown command %q\n%s", cmd, topUsage)
}

// group is a titled set of flags, printed together in --help.
type group struct {
	title string
	fs    *pflag.FlagSet
}

func newGroup(title string) group {
	return group{title: title, fs: pflag.NewFlagSet(title, pflag.ContinueOnError)}
}

// parse parses args against the groups' flags. It returns help=true after printing the
// usage when --help was given.
func (a *app) parse(cmd, synopsis string, groups []group, args []string) (fs *pflag.FlagSet, help bool, err error) {
	fs = pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	for _, g := range groups {
		g.fs.SortFlags = false
		fs.AddFlagSet(g.fs)
	}
	helpFlag := fs.BoolP("help", "h", false, "print this help")
	if err := fs.Parse(args); err != nil {
		return nil, false, usagef("%s: %v (see loadgen %s --help)", cmd, err, cmd)
	}
	if *helpFlag {
		fmt.Fprintf(a.stdout, "usage: %s\n", synopsis)
		for _, g := range groups {
			fmt.Fprintf(a.stdout, "\n%s:\n%s", g.title, g.fs.FlagUsages())
		}
		if ex := examples[cmd]; ex != "" {
			fmt.Fprintf(a.stdout, "\nExamples:\n%s", ex)
		}
		if cmd == "run" {
			fmt.Fprintf(a.stdout, "\n%s", commands)
		}
		return fs, true, nil
	}
	return fs, false, nil
}

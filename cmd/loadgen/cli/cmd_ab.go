package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"

	"github.com/consensusbench/consensusbench/bench/report"
)

// ab limits.
const (
	abRoundsMax     = 200
	abDefaultRounds = 6
	abBuildTimeout  = 10 * time.Minute
)

// abUnits are the figures ab compares, in order.
var abUnits = []string{report.UnitThroughput, report.UnitPerCore, report.UnitP50, report.UnitP99, report.UnitP999}

// abSide is one revision ready to run: it runs the scenario once and returns the result
// (written under prefix), and cleans up after itself.
type abSide interface {
	Label() string
	Run(ctx context.Context, runArgs []string, prefix string) (*report.Result, error)
	Close() error
}

// abBuilder prepares a revision; the production one builds it from git.
type abBuilder func(ctx context.Context, rev, workDir string) (abSide, error)

const abSynopsis = "loadgen ab [flags] OLD_REV NEW_REV -- RUN_FLAGS..."

func (a *app) abCmd(ctx context.Context, args []string) error {
	g := newGroup("A/B (builds OLD_REV and NEW_REV from git, each in its own worktree, \".\" is the working tree as it is; runs `loadgen run RUN_FLAGS` with each side's own binaries, alternating in rounds whose order is drawn at random, each run on a fresh local cluster; compares every figure with benchstat's statistics)")
	var cf compareFlags
	cf.add(g)
	rounds := g.fs.Int("rounds", abDefaultRounds, "rounds: each runs OLD and NEW once, in random order")
	seed := g.fs.Uint64("order-seed", 1, "seed of the order within each round")
	out := g.fs.String("out", "", "directory for every run's result files (default "+defaultResultsDir+"/ab-<time>-<old>-<new>)")
	fs, help, err := a.parse("ab", abSynopsis, []group{g}, args)
	if err != nil || help {
		return err
	}
	if err := cf.validate("ab"); err != nil {
		return err
	}
	dash := fs.ArgsLenAtDash()
	if dash != 2 {
		return usagef("ab: want OLD_REV NEW_REV -- RUN_FLAGS (e.g. loadgen ab HEAD~1 HEAD -- --local 3 --mode closed --duration 10s)")
	}
	revs, runArgs := fs.Args()[:2], fs.Args()[2:]
	if *rounds < 1 || *rounds > abRoundsMax {
		return usagef("ab: --rounds %d outside [1, %d]", *rounds, abRoundsMax)
	}
	if err := checkABRunArgs(runArgs); err != nil {
		return err
	}
	if *rounds < report.MinRunsForAlpha(cf.alpha) {
		fmt.Fprintf(a.stdout, "WARNING: %d rounds can never show a significant difference at p < %g; use --rounds %d or more\n\n",
			*rounds, cf.alpha, report.MinRunsForAlpha(cf.alpha))
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(defaultResultsDir, fmt.Sprintf("ab-%s-%s-%s", a.now().UTC().Format("20060102T150405Z"),
			safeName(revs[0]), safeName(revs[1])))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "consensusbench-ab-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	build := a.abBuild
	if build == nil {
		build = gitBuild
	}
	began := a.now()
	var sides [2]abSide
	for i, rev := range revs {
		fmt.Fprintf(a.stdout, "building %s ...\n", rev)
		s, err := build(ctx, rev, filepath.Join(work, []string{"old", "new"}[i]))
		if err != nil {
			return fmt.Errorf("ab: build %s: %w", rev, err)
		}
		defer s.Close()
		sides[i] = s
	}
	fmt.Fprintf(a.stdout, "old: %s\nnew: %s\nruns: loadgen run %s\n\n", sides[0].Label(), sides[1].Label(), strings.Join(runArgs, " "))

	rng := rand.New(rand.NewPCG(*seed, 0xab))
	var results [2][]*report.Result
	for round := 1; round <= *rounds; round++ {
		order := []int{0, 1}
		if rng.IntN(2) == 1 {
			order = []int{1, 0}
		}
		var line []string
		for _, i := range order {
			name := []string{"old", "new"}[i]
			r, err := sides[i].Run(ctx, runArgs, filepath.Join(dir, fmt.Sprintf("%s-%d", name, round)))
			if r == nil {
				return fmt.Errorf("ab: round %d, %s: %w", round, name, err)
			}
			results[i] = append(results[i], r)
			note := ""
			switch {
			case r.Partial():
				note = " (failed: " + strings.Join(r.Failures, "; ") + ")"
			case r.Host != nil && r.Host.Noisy:
				note = " (noisy host)"
			}
			line = append(line, fmt.Sprintf("%s %.0f ops/s, %.0f ops/core-s, p99 %s%s", name, r.Summary.Throughput,
				r.OpsPerCoreSecond, report.FormatLatency(r.Summary.Latency.P99), note))
		}
		fmt.Fprintf(a.stdout, "round %d/%d: %s\n", round, *rounds, strings.Join(line, "; "))
	}
	fmt.Fprintf(a.stdout, "\n%d rounds in %v; results in %s\n\n", *rounds, a.now().Sub(began).Round(time.Second), dir)
	old, skippedOld := abRecords(results[0], cf.keepPartial)
	new, skippedNew := abRecords(results[1], cf.keepPartial)
	if skippedOld+skippedNew > 0 {
		fmt.Fprintf(a.stderr, "loadgen: left out %d OLD and %d NEW runs that failed their checks (--keep-partial keeps them)\n", skippedOld, skippedNew)
	}
	if len(old) == 0 || len(new) == 0 {
		return fmt.Errorf("ab: no run left on a side (%d OLD, %d NEW)", len(old), len(new))
	}
	cs, err := report.Compare(old, new, benchfmt.UnitMetadataMap{}, cf.alpha)
	if err != nil {
		return err
	}
	cs = slices.DeleteFunc(cs, func(c report.Comparison) bool { return !slices.Contains(abUnits, c.Unit) })
	report.SetNoise(cs, old, new)
	return a.judge(cs, cf, "")
}

// checkABRunArgs refuses run flags that ab sets itself or that cannot repeat.
func checkABRunArgs(args []string) error {
	if len(args) == 0 {
		return usagef("ab: give the run flags after --, e.g. -- --local 3 --mode closed --duration 10s")
	}
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !strings.HasPrefix(a, "-"):
		case name == "out" || name == "count" || name == "quiet":
			return usagef("ab: --%s is set by ab itself; leave it out of the run flags", name)
		case name == "check-durability":
			return usagef("ab: --check-durability kills the cluster; run it on its own")
		}
	}
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--local" || strings.HasPrefix(a, "--local=") }) {
		return usagef("ab: each run needs a fresh local cluster: give --local N in the run flags")
	}
	return nil
}

// abRecords turns results into benchmark records, leaving out failed ones unless keep.
func abRecords(rs []*report.Result, keep bool) (out []*benchfmt.Result, skipped int) {
	for _, r := range rs {
		if r.Partial() && !keep {
			skipped++
			continue
		}
		rec := report.Records(r)
		if r.Host != nil && r.Host.Noisy {
			report.MarkNoisy(rec)
		}
		out = append(out, rec)
	}
	return out, skipped
}

func safeName(rev string) string {
	if rev == "." {
		return "worktree"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '~' || r == '^' || r == ':' || r == ' ' {
			return '_'
		}
		return r
	}, rev)
}

// gitSide is a revision built into its own directory.
type gitSide struct {
	label    string
	bin      string // directory holding loadgen and node
	repo     string
	worktree string // "" for the working tree itself
}

func (s *gitSide) Label() string { return s.label }

// Run runs the side's own loadgen once; a run that failed its checks still returns its
// result (read from the file it wrote).
func (s *gitSide) Run(ctx context.Context, runArgs []string, prefix string) (*report.Result, error) {
	args := append([]string{"run"}, runArgs...)
	args = append(args, "--quiet", "--out", prefix)
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "loadgen"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	if err := os.WriteFile(prefix+".log", out.Bytes(), 0o644); err != nil {
		return nil, err
	}
	r, err := report.ReadFile(prefix + ".json")
	if err != nil {
		return nil, fmt.Errorf("%v (loadgen: %v; its output is in %s.log)", err, runErr, prefix)
	}
	return r, runErr
}

func (s *gitSide) Close() error {
	if s.worktree == "" {
		return nil
	}
	return exec.Command("git", "-C", s.repo, "worktree", "remove", "--force", s.worktree).Run()
}

// gitBuild checks rev out into its own worktree under workDir and builds loadgen and node
// there ("." builds the working tree as it is).
func gitBuild(ctx context.Context, rev, workDir string) (abSide, error) {
	ctx, cancel := context.WithTimeout(ctx, abBuildTimeout)
	defer cancel()
	top, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return nil, errors.New("not inside a git checkout of consensusbench")
	}
	repo := strings.TrimSpace(string(top))
	s := &gitSide{repo: repo, bin: filepath.Join(workDir, "bin")}
	src := repo
	if rev == "." {
		s.label = "the working tree (" + describeRev(ctx, repo, "HEAD") + ", with uncommitted changes if any)"
	} else {
		hash, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--verify", rev+"^{commit}").Output()
		if err != nil {
			return nil, fmt.Errorf("unknown revision %q", rev)
		}
		s.worktree = filepath.Join(workDir, "src")
		if out, err := exec.CommandContext(ctx, "git", "-C", repo, "worktree", "add", "--detach", s.worktree,
			strings.TrimSpace(string(hash))).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("git worktree add: %v: %s", err, out)
		}
		src = s.worktree
		s.label = rev + " = " + describeRev(ctx, repo, rev)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", s.bin+string(filepath.Separator), "./cmd/node", "./cmd/loadgen")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("go build: %v: %s", err, out)
	}
	return s, nil
}

func describeRev(ctx context.Context, repo, rev string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "log", "-1", "--format=%h %s", rev).Output()
	if err != nil {
		return rev
	}
	return strings.TrimSpace(string(out))
}

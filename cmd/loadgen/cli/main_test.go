package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/benchtest"
	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/internal/textdiff"

	"golang.org/x/sys/unix"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden transcripts in testdata/")

// testApp returns an app wired to a fake target on a simulated clock, with a fixed
// environment and start time, so its output is the same on every machine.
// fakeSpec configures the fake target each command opens.
type fakeSpec struct {
	service  time.Duration
	capacity float64
	stalls   []benchtest.Window
	errors   []benchtest.Window
	// otherCores is the CPU other processes use on the fake host (host context).
	otherCores float64
}

// fakeHost returns host samples 10 s apart in which other processes keep otherCores of the
// 2 cores busy.
func fakeHost(otherCores float64) func() report.HostSample {
	n := 0
	return func() report.HostSample {
		const jiffiesPerCoreSecond, secs, cores = 100, 10, 2
		at := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC).Add(time.Duration(n) * secs * time.Second)
		busy := uint64(float64(n) * otherCores * jiffiesPerCoreSecond * secs)
		total := uint64(n * cores * jiffiesPerCoreSecond * secs)
		s := report.HostSample{At: at, Load: [3]float64{0.5 + float64(n), 0.4, 0.3}, Busy: busy, Idle: total - busy,
			PressureSomeUs: uint64(n) * 1_000_000, HasPressure: true}
		n++
		return s
	}
}

func testApp(stdout *bytes.Buffer, fake fakeSpec) *app {
	var clock *benchtest.Clock
	return &app{
		stdout: stdout, stderr: stdout,
		newClock: func() bench.Clock { return clock },
		open: func(ctx context.Context, spec bench.Spec) (bench.Target, error) {
			clock = benchtest.NewClock()
			return &benchtest.Target{Clock: clock, Service: fake.service, Capacity: fake.capacity,
				Stalls: fake.stalls, Errors: fake.errors}, nil
		},
		env: func() report.Env {
			return report.Env{Commit: "0123456789ab", Go: "go1.26.8", OS: "linux", Arch: "amd64",
				CPU: "Test CPU @ 2.0GHz", Cores: 2, Host: "testhost"}
		},
		now:        func() time.Time { return time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC) },
		cpu:        func() float64 { return 0 },
		hostSample: fakeHost(fake.otherCores),
		abBuild:    fakeBuild,
	}
}

// parseFake reads "fake: service=100us stall=2s-3s errors=1s-2s capacity=3000 others=0.8".
func parseFake(t *testing.T, line string) fakeSpec {
	var f fakeSpec
	window := func(v string) benchtest.Window {
		a, b, _ := strings.Cut(v, "-")
		from, err1 := time.ParseDuration(a)
		to, err2 := time.ParseDuration(b)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad window %q", v)
		}
		return benchtest.Window{From: from, To: to}
	}
	for _, kv := range strings.Fields(strings.TrimPrefix(line, "fake:")) {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "service":
			f.service, err = time.ParseDuration(v)
		case "stall":
			f.stalls = append(f.stalls, window(v))
		case "errors":
			f.errors = append(f.errors, window(v))
		case "capacity":
			_, err = fmt.Sscan(v, &f.capacity)
		case "others":
			_, err = fmt.Sscan(v, &f.otherCores)
		default:
			t.Fatalf("unknown fake setting %q", k)
		}
		if err != nil {
			t.Fatalf("fake %s: %v", kv, err)
		}
	}
	return f
}

// exitCode is what main would exit with.
func exitCode(err error) int { return exitStatus(err) }

// TestGolden replays the transcripts in testdata/*.txt. A transcript has comment lines (#),
// an optional "fake:" line configuring the fake target, and commands ("$ loadgen ARGS"), each
// followed by its expected output; $OUT stands for a temporary directory shared by the file's
// commands. go test -run Golden -rewrite regenerates the expected output.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			var fake fakeSpec
			var got, head strings.Builder
			inHead := true
			for _, line := range strings.SplitAfter(string(b), "\n") {
				text := strings.TrimRight(line, "\n")
				switch {
				case strings.HasPrefix(text, "$ loadgen"):
					inHead = false
					got.WriteString(text + "\n")
					args := strings.Fields(strings.ReplaceAll(strings.TrimPrefix(text, "$ loadgen"), "$OUT", out))
					var stdout bytes.Buffer
					err := testApp(&stdout, fake).main(context.Background(), args)
					res := strings.ReplaceAll(stdout.String(), out, "$OUT")
					if err != nil {
						res += fmt.Sprintf("error (exit %d): %s\n", exitCode(err), strings.ReplaceAll(err.Error(), out, "$OUT"))
					}
					got.WriteString(res)
				case inHead:
					head.WriteString(line)
					if strings.HasPrefix(text, "fake:") {
						fake = parseFake(t, text)
					}
				}
			}
			want := string(b)
			full := head.String() + got.String()
			if *rewrite {
				if err := os.WriteFile(file, []byte(full), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if full != want {
				t.Errorf("output differs from %s (go test -run Golden -rewrite to accept):\n%s", file, textdiff.FirstLine(want, full))
			}
		})
	}
}

// runs makes n closed-loop results on the fake target with service times base, base+step, ...
func runs(t *testing.T, dir, name string, base, step time.Duration, n int) []string {
	t.Helper()
	var paths []string
	for i := 0; i < n; i++ {
		var buf bytes.Buffer
		a := testApp(&buf, fakeSpec{service: base + time.Duration(i)*step})
		p := filepath.Join(dir, fmt.Sprintf("%s%d", name, i))
		err := a.main(context.Background(), []string{"--targets", "fake:1", "--mode", "closed", "--clients", "1",
			"--duration", "2s", "--warmup", "0s", "--quiet", "--out", p})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p+".json")
	}
	return paths
}

func TestCompareFailsOnRegression(t *testing.T) {
	dir := t.TempDir()
	old := runs(t, dir, "old", 100*time.Microsecond, time.Microsecond, 8)
	slow := runs(t, dir, "slow", 130*time.Microsecond, time.Microsecond, 8)
	same := runs(t, dir, "same", 100*time.Microsecond+500*time.Nanosecond, time.Microsecond, 8)
	compare := func(newer []string, pct string) error {
		var buf bytes.Buffer
		args := append(append(append([]string{"compare", "--fail-on-regression", pct}, old...), "--"), newer...)
		return testApp(&buf, fakeSpec{}).main(context.Background(), args)
	}
	err := compare(slow, "10")
	if err == nil || !strings.Contains(err.Error(), "ops/s") || exitCode(err) != 1 {
		t.Errorf("a 23%% slowdown with --fail-on-regression 10: %v, want a throughput regression (exit 1)", err)
	}
	if err := compare(slow, "40"); err != nil {
		t.Errorf("a 23%% slowdown with --fail-on-regression 40: %v, want success", err)
	}
	if err := compare(same, "5"); err != nil {
		t.Errorf("runs from the same distribution: %v, want no regression", err)
	}
}

// fakeSide is an ab revision named "fake:SERVICE[:JITTER][:noisy]": each run drives the fake
// target with that service time, plus JITTER x (run number mod 3), in-process.
type fakeSide struct {
	rev     string
	service time.Duration
	jitter  time.Duration
	noisy   bool
	runs    int
}

func fakeBuild(_ context.Context, rev, _ string) (abSide, error) {
	parts := strings.Split(strings.TrimPrefix(rev, "fake:"), ":")
	if !strings.HasPrefix(rev, "fake:") || len(parts) == 0 {
		return nil, fmt.Errorf("unknown revision %q", rev)
	}
	d, err := time.ParseDuration(parts[0])
	if err != nil {
		return nil, err
	}
	s := &fakeSide{rev: rev, service: d}
	for _, p := range parts[1:] {
		if p == "noisy" {
			s.noisy = true
		} else if s.jitter, err = time.ParseDuration(p); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *fakeSide) Label() string { return s.rev + " (fake)" }
func (s *fakeSide) Close() error  { return nil }

func (s *fakeSide) Run(ctx context.Context, runArgs []string, prefix string) (*report.Result, error) {
	s.runs++
	fake := fakeSpec{service: s.service + time.Duration(s.runs%3)*s.jitter}
	if s.noisy {
		fake.otherCores = 1
	}
	var buf bytes.Buffer
	args := append(append([]string{"run"}, runArgs...), "--quiet", "--out", prefix)
	err := testApp(&buf, fake).main(ctx, args)
	r, rerr := report.ReadFile(prefix + ".json")
	if rerr != nil {
		return nil, fmt.Errorf("%v (run: %v)", rerr, err)
	}
	return r, err
}

// --version and the version command name the tool and the build, on stdout.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "loadgen ") || !strings.Contains(out.String(), "commit") {
			t.Errorf("%v: %v, %q %q", args, err, out.String(), errOut.String())
		}
	}
}

// Every example in the help parses: its flags exist and take the values shown.
func TestHelpExamplesParse(t *testing.T) {
	for cmd, ex := range examples {
		for _, line := range strings.Split(strings.TrimSpace(ex), "\n") {
			line, _, _ = strings.Cut(line, "#")
			args := strings.Fields(line)[1:] // drop "loadgen"
			if args[0] == "ab" {
				_, rest, _ := strings.Cut(line, " -- ")
				args = append([]string{"run"}, strings.Fields(rest)...) // what ab runs
			}
			// --help before any "--" (flags stop there); after the command word, if any.
			at := 0
			if !strings.HasPrefix(args[0], "-") {
				at = 1
			}
			args = append(args[:at], append([]string{"--help"}, args[at:]...)...)
			var out bytes.Buffer
			if err := run(args, &out, &out); err != nil {
				t.Errorf("%s example %q: %v", cmd, line, err)
			}
		}
	}
}

// clean lists kept run directories, removes them with --yes, and never touches one whose
// node still holds its data directory's lock.
func TestClean(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	mk := func(name string) string {
		d := filepath.Join(tmp, name, "node-1")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "LOCK"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return filepath.Dir(d)
	}
	idle, busy, other := mk("consensusbench-local-1"), mk("consensusbench-local-2"), mk("unrelated")
	lock, err := os.Open(filepath.Join(busy, "node-1", "LOCK"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"clean"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), idle) || !strings.Contains(out.String(), "in use, kept: "+busy) {
		t.Errorf("clean listed:\n%s", out.String())
	}
	if _, err := os.Stat(idle); err != nil {
		t.Fatal("clean without --yes removed a directory")
	}
	out.Reset()
	if err := run([]string{"clean", "--yes"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]bool{idle: false, busy: true, other: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("after clean --yes, %s exists %v, want %v\n%s", dir, err == nil, want, out.String())
		}
	}
}

// Without --protocol, a --cluster spec decides it; an explicit --protocol still has to
// agree with the spec (TestRemoteCluster), and without a spec it is raft.
func TestProtocolFromClusterSpec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.json")
	spec := `{"cluster_id": 1, "protocol": "pbft", "nodes": [
		{"id": 1, "peer_addr": "127.0.0.1:1", "client_addr": "127.0.0.1:2"},
		{"id": 2, "peer_addr": "127.0.0.1:3", "client_addr": "127.0.0.1:4"},
		{"id": 3, "peer_addr": "127.0.0.1:5", "client_addr": "127.0.0.1:6"},
		{"id": 4, "peer_addr": "127.0.0.1:7", "client_addr": "127.0.0.1:8"}]}`
	if err := os.WriteFile(path, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster", path}, "pbft"},
		{[]string{"--targets", "127.0.0.1:2"}, "raft"},
		{[]string{"--cluster", path, "--protocol", "raft"}, "raft"}, // refused later, by name
	} {
		var c clusterFlags
		g := c.group()
		if err := g.fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		s, err := c.spec()
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if s.Protocol != tc.want {
			t.Errorf("%v: protocol %q, want %q", tc.args, s.Protocol, tc.want)
		}
	}
	var c clusterFlags
	g := c.group()
	if err := g.fs.Parse([]string{"--cluster", filepath.Join(t.TempDir(), "missing.json")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.spec(); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing spec file: %v, want an error naming it", err)
	}
}

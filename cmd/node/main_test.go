package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// Bad flags and configs fail with a message that names the problem (and run returns, so
// main exits 1).
func TestRunRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "c.json")
	if err := os.WriteFile(spec, []byte(`{"protocol":"raft","nodes":[{"id":1,"peer_addr":"127.0.0.1:1","client_addr":"127.0.0.1:2"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"protocol":"raft","nodes":[{"id":1,"peer_addr":"x","client_addr":"127.0.0.1:2"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(dir, "remote.json")
	if err := os.WriteFile(remote, []byte(`{"protocol":"raft","nodes":[{"id":1,"peer_addr":"10.0.0.1:7000","client_addr":"10.0.0.1:7001"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.secret")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"remote peers without secret", []string{"--id", "1", "--data-dir", dir, "--cluster", remote}, "give --peer-secret-file"},
		{"short secret", []string{"--id", "1", "--data-dir", dir, "--cluster", spec, "--peer-secret-file", short}, "at least 16 bytes"},
		{"missing secret", []string{"--id", "1", "--data-dir", dir, "--cluster", spec, "--peer-secret-file", filepath.Join(dir, "none")}, "--peer-secret-file: open"},
		{"secret and insecure", []string{"--id", "1", "--data-dir", dir, "--cluster", spec, "--peer-secret-file", short, "--insecure-peers"}, "contradict"},
		{"unknown flag", []string{"--bogus"}, "unknown flag: --bogus"},
		{"no id", []string{"--cluster", spec, "--data-dir", dir}, "--id is required"},
		{"no data dir", []string{"--id", "1", "--cluster", spec}, "--data-dir is required"},
		{"no cluster", []string{"--id", "1", "--data-dir", dir}, "--cluster FILE or --peers LIST is required"},
		{"both", []string{"--id", "1", "--data-dir", dir, "--cluster", spec, "--peers", "1=a:1/a:2"}, "not both"},
		{"sync", []string{"--id", "1", "--data-dir", dir, "--cluster", spec, "--sync", "sometimes"}, "--sync"},
		{"log level", []string{"--id", "1", "--data-dir", dir, "--cluster", spec, "--log-level", "loud"}, `--log-level "loud"`},
		{"id not in spec", []string{"--id", "9", "--data-dir", dir, "--cluster", spec}, "--id 9 is not a node"},
		{"protocol mismatch", []string{"--id", "1", "--data-dir", dir, "--cluster", spec, "--protocol", "pbft"}, "the cluster spec says raft"},
		{"bad spec", []string{"--id", "1", "--data-dir", dir, "--cluster", bad}, `peer_addr "x"`},
		{"missing spec", []string{"--id", "1", "--data-dir", dir, "--cluster", filepath.Join(dir, "none.json")}, "no such file"},
		{"bad peers", []string{"--id", "1", "--data-dir", dir, "--peers", "1=nope", "--protocol", "raft"}, `--peers entry "1=nope"`},
		{"peers protocol", []string{"--id", "1", "--data-dir", dir, "--peers", "1=127.0.0.1:1/127.0.0.1:2"}, `protocol ""`},
		{"extra args", []string{"--id", "1", "stray"}, "unexpected arguments"},
		{"tick with cluster", []string{"--id", "1", "--data-dir", dir, "--cluster", spec, "--tick", "5ms"}, "--tick and --cluster-id go with --peers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), c.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error()+errOut.String(), c.want) {
				t.Fatalf("err = %v (stderr %q), want it to mention %q", err, errOut.String(), c.want)
			}
		})
	}
}

func TestHelpIsGrouped(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &out, &errOut)
	if !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String() // asked for: stdout
	if errOut.Len() != 0 {
		t.Errorf("--help wrote to stderr: %q", errOut.String())
	}
	for _, want := range []string{"Example", "--version", "Cluster:", "Storage:", "Observability:", "--cluster", "--peers", "--data-dir", "--sync", "--metrics-addr", "--log-level", "--id"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, help)
		}
	}
}

// --version names the tool and the build, on stdout, and starts nothing.
func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--version"}, &out, &errOut)
	if !errors.Is(err, pflag.ErrHelp) || !strings.HasPrefix(out.String(), "node ") || !strings.Contains(out.String(), "commit") {
		t.Fatalf("--version: %v, %q", err, out.String())
	}
}

// A single-node cluster from --peers starts, serves, and stops cleanly when its context ends
// (SIGTERM in main).
func TestRunStartsAndStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	peer, cli := freePort(t), freePort(t)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--id", "1", "--protocol", "raft", "--peers", "1=" + peer + "/" + cli,
			"--data-dir", t.TempDir(), "--init", "--sync", "none", "--metrics-addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after its context ended")
	}
	if !strings.Contains(errOut.String(), "node ready") || !strings.Contains(errOut.String(), "stopping") {
		t.Fatalf("log lacks ready/stopping lines:\n%s", errOut.String())
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

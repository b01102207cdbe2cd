package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The shipped systemd unit (deploy/) starts the node with flags it has, never with --init
// (a restarted node must not accept an empty directory), and restarts it soon after any
// exit: loadgen's restart against a remote cluster waits for exactly that.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../deploy/consensusbench-node@.service")
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = v
		}
	}
	if settings["Restart"] != "always" {
		t.Errorf("Restart=%q, want always (a crash through /admin/crash exits by SIGKILL)", settings["Restart"])
	}
	if d, err := time.ParseDuration(settings["RestartSec"]); err != nil || d > time.Second {
		t.Errorf("RestartSec=%q: want a short Go-style duration (at most 1s): %v", settings["RestartSec"], err)
	}
	args := strings.Fields(strings.ReplaceAll(settings["ExecStart"], "%i", "2"))
	if len(args) == 0 || !strings.HasSuffix(args[0], "/node") {
		t.Fatalf("ExecStart=%q does not run node", settings["ExecStart"])
	}
	var o options
	fs := newFlags(&o, io.Discard)
	if err := fs.Parse(args[1:]); err != nil {
		t.Fatalf("ExecStart's flags: %v", err)
	}
	if o.id != 2 || o.init || o.sync != "always" || o.clusterFile == "" || o.adminToken == "" || o.peerSecret == "" {
		t.Errorf("ExecStart: id %d, init %v, sync %s, cluster %q, admin token %q, peer secret %q", o.id, o.init, o.sync, o.clusterFile, o.adminToken, o.peerSecret)
	}
}

// systemd itself accepts the unit: systemd-analyze verify reports nothing but the binary
// this host has not installed. Skipped where systemd-analyze is not on PATH.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze on PATH")
	}
	b, err := os.ReadFile("../../deploy/consensusbench-node@.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "consensusbench-node@.service"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("consensusbench-node@.service", filepath.Join(dir, "consensusbench-node@2.service")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", "--man=no", "./consensusbench-node@2.service")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "/usr/local/bin/node is not executable") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

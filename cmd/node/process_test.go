package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/adapter"
	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/server"
)

// nodeMainEnv makes the test binary run as the node command (TestMain), so that the crash
// and pause tests act on a process of their own and not on the test.
const nodeMainEnv = "CONSENSUSBENCH_NODE_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(nodeMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The process endpoints check their input and answer before they act, through whatever
// processControl the node has (recorders here).
func TestAdminProcessEndpoints(t *testing.T) {
	var crashed int
	var paused []time.Duration
	proc := processControl{
		crash: func() { crashed++ },
		pause: func(d time.Duration) (func(), error) { return func() { paused = append(paused, d) }, nil },
	}
	mux := http.NewServeMux()
	addAdmin(mux, fakeAdmin{}, false, proc)
	h := guardAdmin(mux, "0123456789abcdef")
	do := func(method, path, auth string) (int, string) {
		req := httptest.NewRequest(method, "http://10.0.0.1:7301"+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	const tok = "0123456789abcdef"
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/admin/crash", "", http.StatusUnauthorized},
		{"/admin/pause?for=1s", "wrong-token-0123456", http.StatusUnauthorized},
		{"/admin/pause", tok, http.StatusBadRequest},
		{"/admin/pause?for=soon", tok, http.StatusBadRequest},
		{"/admin/pause?for=0s", tok, http.StatusBadRequest},
		{"/admin/pause?for=-1s", tok, http.StatusBadRequest},
		{"/admin/pause?for=" + (server.MaxAdminPause + time.Millisecond).String(), tok, http.StatusBadRequest},
	} {
		if code, body := do("POST", c.path, c.auth); code != c.want {
			t.Errorf("POST %s: %d %q, want %d", c.path, code, body, c.want)
		}
	}
	if crashed != 0 || len(paused) != 0 {
		t.Fatalf("refused requests acted: %d crashes, pauses %v", crashed, paused)
	}
	if code, body := do("POST", "/admin/pause?for=1500ms", tok); code != http.StatusAccepted || !strings.Contains(body, "pausing for 1.5s") {
		t.Errorf("pause: %d %q", code, body)
	}
	if code, body := do("POST", "/admin/pause?for="+server.MaxAdminPause.String(), tok); code != http.StatusAccepted {
		t.Errorf("pause at the limit: %d %q", code, body)
	}
	if code, body := do("POST", "/admin/crash", tok); code != http.StatusAccepted || !strings.Contains(body, "crashing") {
		t.Errorf("crash: %d %q", code, body)
	}
	if crashed != 1 || len(paused) != 2 || paused[0] != 1500*time.Millisecond || paused[1] != server.MaxAdminPause {
		t.Errorf("%d crashes, pauses %v; want 1 and [1.5s %v]", crashed, paused, server.MaxAdminPause)
	}
	if code, body := do("GET", "/admin/", ""); !strings.Contains(body, "POST /admin/crash") || !strings.Contains(body, "POST /admin/pause?for=") {
		t.Errorf("the index (%d) does not list crash and pause:\n%s", code, body)
	}
	mux = http.NewServeMux()
	addAdmin(mux, fakeAdmin{}, false, processControl{crash: proc.crash})
	req := httptest.NewRequest("POST", "/admin/pause?for=1s", nil)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotImplemented {
		t.Errorf("pause without support: %d, want 501", rec.Code)
	}
}

// fakeAdmin is a replica with the admin interface and nothing behind it.
type fakeAdmin struct{ server.Replica }

func (fakeAdmin) Status() server.ReplicaStatus {
	return server.ReplicaStatus{ID: 1, Role: "leader", Leader: 1}
}
func (fakeAdmin) SetPartition([]uint64) {}

// nodeProc is a node process started from the test binary.
type nodeProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startNodeProc(t *testing.T, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), nodeMainEnv+"=1")
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("node log:\n%s", log.String())
		}
	})
	return p
}

// status asks the node for /admin/status within timeout.
func nodeStatus(addr string, timeout time.Duration) (server.ReplicaStatus, error) {
	var st server.ReplicaStatus
	c := http.Client{Timeout: timeout}
	resp, err := c.Get("http://" + addr + "/admin/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func waitStatus(t *testing.T, addr string) server.ReplicaStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := nodeStatus(addr, time.Second)
		if err == nil && st.Leader != 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("node at %s not ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func post(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

// On a real node process: a pause stops the whole replica (no write commits, the admin
// endpoint answers nothing) for the time asked and it resumes by itself; a crash ends the
// process by SIGKILL, and the node started again from its data directory is a new process
// that kept every acknowledged write (sync always).
func TestAdminPauseAndCrashActOnTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	peer, cli, admin := freePort(t), freePort(t), freePort(t)
	data := t.TempDir()
	args := []string{"--id", "1", "--protocol", "raft", "--peers", "1=" + peer + "/" + cli,
		"--data-dir", data, "--sync", "always", "--metrics-addr", admin}
	p := startNodeProc(t, append(args, "--init")...)
	waitStatus(t, admin)
	cfg := adapter.Config{Protocol: "raft", Nodes: []client.Node{{ID: 1, Addr: cli}}}
	// do runs ops as one request through a fresh client (a crash ends the old one's
	// connections), bounded by within, and says how long it took.
	do := func(within time.Duration, ops ...bench.Op) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		start := time.Now()
		tg, err := adapter.Open(cfg)
		if err != nil {
			return 0, err
		}
		defer tg.Close()
		s, err := tg.Open(ctx, 0)
		if err != nil {
			return 0, err
		}
		defer s.Close()
		err = s.Do(ctx, ops)
		return time.Since(start), err
	}
	write := func(within time.Duration, value string) (time.Duration, error) {
		return do(within, bench.Op{Kind: bench.OpWrite, Key: []byte("k"), Value: []byte(value)})
	}
	if _, err := write(5*time.Second, "before the pause"); err != nil {
		t.Fatalf("a write before the pause: %v", err)
	}

	const pause = time.Second
	start := time.Now()
	post(t, "http://"+admin+"/admin/pause?for="+pause.String())
	// The node answers, then stops: give it a moment (its goroutines may still be serving).
	time.Sleep(100 * time.Millisecond)
	if _, err := nodeStatus(admin, 200*time.Millisecond); err == nil {
		t.Fatal("the paused node answered /admin/status")
	}
	took, err := write(5*time.Second, "during the pause")
	if err != nil {
		t.Fatalf("a write issued during the pause never committed: %v", err)
	}
	if done := time.Since(start); done < pause-50*time.Millisecond {
		t.Errorf("a write issued during a %v pause committed %v after it began (took %v)", pause, done, took)
	}
	before := waitStatus(t, admin)
	if time.Since(start) > pause+3*time.Second {
		t.Errorf("the node resumed %v after a %v pause", time.Since(start), pause)
	}
	const last = "the last before the crash"
	if _, err := write(5*time.Second, last); err != nil {
		t.Fatalf("a write after the pause: %v", err)
	}

	post(t, "http://"+admin+"/admin/crash")
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the node did not exit within 5s of /admin/crash")
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the crashed node ended with %v, want SIGKILL", p.cmd.ProcessState)
	}
	startNodeProc(t, args...) // its supervisor, played by the test
	after := waitStatus(t, admin)
	if after.Incarnation == "" || after.Incarnation == before.Incarnation {
		t.Errorf("incarnation %q after the restart, %q before: want a new, non-empty one", after.Incarnation, before.Incarnation)
	}
	ops := []bench.Op{{Kind: bench.OpRead, Key: []byte("k")}}
	if _, err := do(5*time.Second, ops...); err != nil {
		t.Fatalf("reading back after the crash: %v", err)
	}
	if read := ops[0]; !read.Found || string(read.Out) != last {
		t.Errorf("read back %q (found %v) after the crash, want the last acknowledged write %q", read.Out, read.Found, last)
	}
}

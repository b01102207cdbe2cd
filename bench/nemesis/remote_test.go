package nemesis

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/server"
)

// fakeNode is a node's admin endpoint as a remote Procs sees it: /admin/crash makes it
// unreachable (503) until its "supervisor" brings it back as a new process after restartIn
// (never when restartIn is 0); /admin/pause records the duration asked.
type fakeNode struct {
	restartIn time.Duration

	mu          sync.Mutex
	incarnation string
	downSince   time.Time
	paused      []string
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.downSince.IsZero() {
		if f.restartIn == 0 || time.Since(f.downSince) < f.restartIn {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		f.downSince, f.incarnation = time.Time{}, f.incarnation+"'"
	}
	switch r.URL.Path {
	case "/admin/status":
		_ = json.NewEncoder(w).Encode(server.ReplicaStatus{ID: 1, Role: "leader", Leader: 1, Incarnation: f.incarnation})
	case "/ready":
	case "/admin/crash":
		f.downSince = time.Now()
		w.WriteHeader(http.StatusAccepted)
	case "/admin/pause":
		f.paused = append(f.paused, r.URL.Query().Get("for"))
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

func remoteProcs(t *testing.T, f *fakeNode) *Procs {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p := &Procs{Procs: []Proc{{ID: 1, AdminURL: srv.URL}}}
	t.Cleanup(p.Close)
	return p
}

// A remote kill crashes the node through its admin endpoint and counts it down until the
// restart, which waits for its supervisor and records how long the node was gone.
func TestRemoteCrashAndSupervisedRestart(t *testing.T) {
	ctx := context.Background()
	f := &fakeNode{incarnation: "pid 1", restartIn: 150 * time.Millisecond}
	p := remoteProcs(t, f)
	if err := p.Restart(ctx, 1); err == nil || !strings.Contains(err.Error(), "was not crashed") {
		t.Fatalf("restart of a running node: %v", err)
	}
	if err := p.Kill(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if p.Running(1) {
		t.Fatal("a crashed node counts as running")
	}
	if err := p.Kill(ctx, 1); err == nil {
		t.Fatal("a second kill of a crashed node was accepted")
	}
	if err := p.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if !p.Running(1) {
		t.Fatal("the restarted node does not count as running")
	}
	if d, ok := p.BackAfter(1); !ok || d < f.restartIn || d > f.restartIn+2*time.Second {
		t.Errorf("back after %v (%v), want about %v", d, ok, f.restartIn)
	}

	// Without a supervisor the node never comes back: the restart fails (here at its
	// context's end) instead of pretending.
	f2 := &fakeNode{incarnation: "pid 2"}
	p2 := remoteProcs(t, f2)
	if err := p2.Kill(ctx, 1); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := p2.Restart(sctx, 1); err == nil || !strings.Contains(err.Error(), "waiting for node 1") {
		t.Errorf("restart without a supervisor: %v", err)
	}
}

// A node that refuses the crash (no such endpoint, or a wrong token) fails the kill at once.
func TestRemoteCrashRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/admin/status" {
			_ = json.NewEncoder(w).Encode(server.ReplicaStatus{ID: 1, Incarnation: "pid 1"})
			return
		}
		http.Error(w, "this endpoint needs Authorization", http.StatusUnauthorized)
	}))
	defer srv.Close()
	p := &Procs{Procs: []Proc{{ID: 1, AdminURL: srv.URL}}}
	err := p.Kill(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("kill refused by the node: %v", err)
	}
	if !p.Running(1) {
		t.Error("a node whose crash was refused counts as down")
	}
}

// A remote pause tells the node how long, within server.MaxAdminPause; the executor uses it.
func TestRemotePause(t *testing.T) {
	f := &fakeNode{incarnation: "pid 1"}
	p := remoteProcs(t, f)
	ctx := context.Background()
	if err := p.PauseFor(ctx, 1, server.MaxAdminPause+time.Second); err == nil {
		t.Error("a pause beyond MaxAdminPause was sent")
	}
	sched, err := Parse("pause-leader@0s:300ms")
	if err != nil {
		t.Fatal(err)
	}
	n := New(p, sched, 1)
	n.Run(ctx, time.Now())
	if err := n.Err(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.paused) != 1 || f.paused[0] != "300ms" {
		t.Errorf("pauses asked of the node: %q, want [300ms]", f.paused)
	}
	if ev := n.Events(); len(ev) != 1 || ev[0].End-ev[0].At < 250*time.Millisecond {
		t.Errorf("events %+v", ev)
	}
}

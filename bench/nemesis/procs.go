package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/consensusbench/consensusbench/server"
)

// Proc is one node process as Procs drives it.
type Proc struct {
	ID uint64
	// AdminURL is the node's --metrics-addr as a base URL ("http://198.18.0.1:7301"), where
	// cmd/node serves /admin/status and /admin/partition.
	AdminURL string
	// PID returns the running process's ID, or 0 when it is down.
	PID func() int
	// Kill sends SIGKILL and reaps the process; Start starts it again with the same flags.
	Kill  func() error
	Start func(ctx context.Context) error
}

// remote says p is a node on another host (a cluster loadgen did not start): no PID, Kill or
// Start. Procs reaches it through its admin endpoints only: a kill is POST /admin/crash, a
// restart waits for the node's supervisor to start it again, a pause is POST /admin/pause
// (remote.go).
func (p *Proc) remote() bool { return p.PID == nil }

// Procs adapts node processes to Cluster: kill -9, SIGSTOP/SIGCONT, and partitions through
// each node's /admin/partition (traffic dropped in the transport); for remote nodes, the
// process faults through /admin/crash and /admin/pause. A harness with real links
// (bench/netns) overrides Isolate and Heal to take links down instead.
type Procs struct {
	Procs  []Proc
	Client *http.Client // nil: http.DefaultClient
	// AdminToken is sent as "Authorization: Bearer TOKEN" (the nodes' --admin-token-file);
	// empty for nodes on loopback, which need none.
	AdminToken string

	remote remoteState
}

func (p *Procs) proc(id uint64) (*Proc, error) {
	for i := range p.Procs {
		if p.Procs[i].ID == id {
			return &p.Procs[i], nil
		}
	}
	return nil, fmt.Errorf("nemesis: no node %d", id)
}

func (p *Procs) http() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return http.DefaultClient
}

// Nodes implements Cluster.
func (p *Procs) Nodes() []uint64 {
	ids := make([]uint64, len(p.Procs))
	for i, n := range p.Procs {
		ids[i] = n.ID
	}
	return ids
}

// Running implements Cluster. A remote node crashed through /admin/crash is down until the
// nemesis restarts it (waits for it), even if its supervisor brought it back sooner.
func (p *Procs) Running(id uint64) bool {
	n, err := p.proc(id)
	if err != nil {
		return false
	}
	if n.remote() {
		return p.crashedNode(id) == nil
	}
	return n.PID() != 0
}

// Status implements Cluster: GET /admin/status.
func (p *Procs) Status(ctx context.Context, id uint64) (server.ReplicaStatus, error) {
	var st server.ReplicaStatus
	n, err := p.proc(id)
	if err != nil {
		return st, err
	}
	b, err := p.call(ctx, http.MethodGet, n.AdminURL+"/admin/status")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("nemesis: node %d status: %w", id, err)
	}
	return st, nil
}

func (p *Procs) call(ctx context.Context, method, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if p.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	}
	resp, err := p.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &statusError{fmt.Sprintf("nemesis: %s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(b)))}
	}
	return b, nil
}

// statusError is an admin endpoint's refusal (an HTTP status other than 2xx), as opposed
// to a request that got no answer.
type statusError struct{ msg string }

func (e *statusError) Error() string { return e.msg }

// Kill implements Cluster: SIGKILL, or for a remote node POST /admin/crash (the node sends
// itself SIGKILL) and a wait until it is gone.
func (p *Procs) Kill(ctx context.Context, id uint64) error {
	n, err := p.proc(id)
	if err != nil {
		return err
	}
	if n.remote() {
		return p.crashRemote(ctx, n)
	}
	return n.Kill()
}

// Restart implements Cluster: start the process again, or for a remote node wait until its
// supervisor has (bounded by SupervisorRestartWait).
func (p *Procs) Restart(ctx context.Context, id uint64) error {
	n, err := p.proc(id)
	if err != nil {
		return err
	}
	if n.remote() {
		return p.restartRemote(ctx, n)
	}
	return n.Start(ctx)
}

func (p *Procs) signal(id uint64, sig syscall.Signal) error {
	n, err := p.proc(id)
	if err != nil {
		return err
	}
	if n.remote() {
		return fmt.Errorf("nemesis: node %d runs elsewhere: %v needs its process", id, sig)
	}
	pid := n.PID()
	if pid == 0 {
		return fmt.Errorf("nemesis: node %d is down", id)
	}
	return syscall.Kill(pid, sig)
}

// Pause implements Cluster (SIGSTOP). A remote node is paused with PauseFor, which tells it
// how long.
func (p *Procs) Pause(_ context.Context, id uint64) error { return p.signal(id, syscall.SIGSTOP) }

// PauseFor implements TimedPauser: SIGSTOP (Resume sends SIGCONT), or for a remote node POST
// /admin/pause?for=d (it resumes by itself; Resume waits until it answers again).
func (p *Procs) PauseFor(ctx context.Context, id uint64, d time.Duration) error {
	n, err := p.proc(id)
	if err != nil {
		return err
	}
	if n.remote() {
		return p.pauseRemote(ctx, n, d)
	}
	return p.Pause(ctx, id)
}

// Resume implements Cluster (SIGCONT; for a remote node, a wait until it answers).
func (p *Procs) Resume(ctx context.Context, id uint64) error {
	n, err := p.proc(id)
	if err != nil {
		return err
	}
	if n.remote() {
		return p.resumeRemote(ctx, n)
	}
	return p.signal(id, syscall.SIGCONT)
}

// Isolate implements Cluster with /admin/partition on the node and on each peer.
func (p *Procs) Isolate(ctx context.Context, id uint64) error { return p.partition(ctx, id, true) }

// Heal implements Cluster.
func (p *Procs) Heal(ctx context.Context, id uint64) error { return p.partition(ctx, id, false) }

func (p *Procs) partition(ctx context.Context, id uint64, cut bool) error {
	var errs []error
	post := func(node uint64, peers []uint64) {
		if !p.Running(node) {
			return
		}
		n, _ := p.proc(node)
		var s []string
		if cut {
			for _, x := range peers {
				s = append(s, fmt.Sprint(x))
			}
		}
		_, err := p.call(ctx, http.MethodPost, n.AdminURL+"/admin/partition?peers="+url.QueryEscape(strings.Join(s, ",")))
		errs = append(errs, err)
	}
	var others []uint64
	for _, o := range p.Nodes() {
		if o != id {
			others = append(others, o)
		}
	}
	post(id, others)
	for _, o := range others {
		post(o, []uint64{id})
	}
	return errors.Join(errs...)
}

// TransferLeader implements Cluster: POST /admin/transfer-leader on the leader.
func (p *Procs) TransferLeader(ctx context.Context, from, to uint64) error {
	n, err := p.proc(from)
	if err != nil {
		return err
	}
	_, err = p.call(ctx, http.MethodPost, fmt.Sprintf("%s/admin/transfer-leader?to=%d", n.AdminURL, to))
	return err
}

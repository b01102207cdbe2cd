package nemesis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/consensusbench/consensusbench/server"
)

// Limits of the process faults on nodes loadgen did not start (through /admin/crash and
// /admin/pause; their supervisor restarts a crashed node).
const (
	// CrashWait bounds how long a kill waits for the node to go after /admin/crash
	// accepted it: its admin endpoint stops answering, or answers as a new process.
	CrashWait = 10 * time.Second
	// SupervisorRestartWait bounds how long a restart waits for a crashed node to answer
	// /ready as a new process (its supervisor started it again; docs/CLUSTER.md).
	SupervisorRestartWait = 20 * time.Second
	// remotePoll is how often a crashed or paused node is asked meanwhile, and
	// remoteCallTimeout bounds one such question (a stopped process holds it unanswered).
	remotePoll        = 20 * time.Millisecond
	remoteCallTimeout = time.Second
)

// crashed is a remote node crashed through /admin/crash and not yet restarted by the
// nemesis: the watcher started at the crash closes back when the node answers /ready as a
// process other than the one crashed.
type crashed struct {
	at     time.Time
	back   chan struct{}
	backAt time.Time // valid once back is closed
	cancel context.CancelFunc
}

// remoteState is Procs' record of its remote nodes' process faults.
type remoteState struct {
	mu      sync.Mutex
	down    map[uint64]*crashed
	backFor map[uint64]time.Duration // the last restart: from the crash to /ready
}

func (p *Procs) crashedNode(id uint64) *crashed {
	p.remote.mu.Lock()
	defer p.remote.mu.Unlock()
	return p.remote.down[id]
}

// crashRemote crashes node n through POST /admin/crash and returns once the process is
// gone (bounded by CrashWait). A watcher then waits for its supervisor to bring it back.
func (p *Procs) crashRemote(ctx context.Context, n *Proc) error {
	if p.crashedNode(n.ID) != nil {
		return fmt.Errorf("nemesis: node %d is down (crashed and not restarted)", n.ID)
	}
	sctx, cancel := context.WithTimeout(ctx, remoteCallTimeout)
	old, err := p.Status(sctx, n.ID)
	cancel()
	if err != nil {
		return fmt.Errorf("nemesis: node %d before its crash: %w", n.ID, err)
	}
	if old.Incarnation == "" {
		return fmt.Errorf("nemesis: node %d does not name its process in /admin/status (a node without /admin/crash?)", n.ID)
	}
	at := time.Now()
	if _, err := p.call(ctx, http.MethodPost, n.AdminURL+"/admin/crash"); err != nil {
		// The answer may be lost with the process; only the node's going says it crashed.
		var se *statusError
		if errors.As(err, &se) {
			return err
		}
	}
	isNew := func(st server.ReplicaStatus) bool { return st.Incarnation != old.Incarnation }
	gctx, cancel := context.WithTimeout(ctx, CrashWait)
	defer cancel()
	for {
		st, err := p.statusOnce(gctx, n)
		if err != nil || isNew(st) {
			break
		}
		select {
		case <-gctx.Done():
			return fmt.Errorf("nemesis: node %d still runs as %q %v after /admin/crash", n.ID, old.Incarnation, CrashWait)
		case <-time.After(remotePoll):
		}
	}
	wctx, wcancel := context.WithCancel(context.Background())
	c := &crashed{at: at, back: make(chan struct{}), cancel: wcancel}
	p.remote.mu.Lock()
	if p.remote.down == nil {
		p.remote.down = map[uint64]*crashed{}
	}
	p.remote.down[n.ID] = c
	p.remote.mu.Unlock()
	go func() {
		for {
			if st, err := p.statusOnce(wctx, n); err == nil && isNew(st) && p.ready(wctx, n) {
				c.backAt = time.Now()
				close(c.back)
				return
			}
			select {
			case <-wctx.Done():
				return
			case <-time.After(remotePoll):
			}
		}
	}()
	return nil
}

// restartRemote waits, bounded by SupervisorRestartWait, until the crashed node answers
// /ready as a new process: against a cluster loadgen did not start, the node's supervisor
// restarts it (a systemd unit with Restart=always), and the nemesis can only wait.
func (p *Procs) restartRemote(ctx context.Context, n *Proc) error {
	c := p.crashedNode(n.ID)
	if c == nil {
		return fmt.Errorf("nemesis: node %d was not crashed", n.ID)
	}
	t := time.NewTimer(SupervisorRestartWait)
	defer t.Stop()
	select {
	case <-c.back:
	case <-t.C:
		return fmt.Errorf("nemesis: node %d did not answer /ready as a new process within %v of the restart (%v after its crash): is it run by a supervisor that restarts it (docs/CLUSTER.md)?",
			n.ID, SupervisorRestartWait, time.Since(c.at).Round(time.Millisecond))
	case <-ctx.Done():
		return fmt.Errorf("nemesis: waiting for node %d to come back: %w", n.ID, ctx.Err())
	}
	c.cancel()
	p.remote.mu.Lock()
	delete(p.remote.down, n.ID)
	if p.remote.backFor == nil {
		p.remote.backFor = map[uint64]time.Duration{}
	}
	p.remote.backFor[n.ID] = c.backAt.Sub(c.at)
	p.remote.mu.Unlock()
	return nil
}

// BackAfter implements Supervised: how long after its crash node id answered /ready again,
// for the node's last restart.
func (p *Procs) BackAfter(id uint64) (time.Duration, bool) {
	p.remote.mu.Lock()
	defer p.remote.mu.Unlock()
	d, ok := p.remote.backFor[id]
	return d, ok
}

// Close stops watching for crashed nodes that were not restarted.
func (p *Procs) Close() {
	p.remote.mu.Lock()
	defer p.remote.mu.Unlock()
	for _, c := range p.remote.down {
		c.cancel()
	}
}

// pauseRemote stops node n for d through POST /admin/pause?for=d: the node stops its whole
// process and a kernel timer continues it, so it resumes by itself even if the nemesis does
// not come back.
func (p *Procs) pauseRemote(ctx context.Context, n *Proc, d time.Duration) error {
	if d > server.MaxAdminPause {
		return fmt.Errorf("nemesis: a pause through /admin/pause lasts at most %v, not %v", server.MaxAdminPause, d)
	}
	_, err := p.call(ctx, http.MethodPost, fmt.Sprintf("%s/admin/pause?for=%v", n.AdminURL, d))
	return err
}

// resumeRemote waits until the paused node answers again (it resumes by itself).
func (p *Procs) resumeRemote(ctx context.Context, n *Proc) error {
	for {
		if _, err := p.statusOnce(ctx, n); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nemesis: node %d did not answer after its pause: %w", n.ID, ctx.Err())
		case <-time.After(remotePoll):
		}
	}
}

// statusOnce asks n for /admin/status within remoteCallTimeout.
func (p *Procs) statusOnce(ctx context.Context, n *Proc) (server.ReplicaStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteCallTimeout)
	defer cancel()
	return p.Status(ctx, n.ID)
}

// ready reports whether n answers GET /ready with 200.
func (p *Procs) ready(ctx context.Context, n *Proc) bool {
	ctx, cancel := context.WithTimeout(ctx, remoteCallTimeout)
	defer cancel()
	_, err := p.call(ctx, http.MethodGet, n.AdminURL+"/ready")
	return err == nil
}

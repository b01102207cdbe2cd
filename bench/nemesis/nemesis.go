package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/server"
)

// ErrUnsupported is returned by a Cluster that cannot apply a fault (an in-process cluster
// cannot SIGSTOP one replica).
var ErrUnsupported = errors.New("nemesis: fault not supported by this cluster")

// Cluster is what the executor needs from the system under test. Node IDs are the cluster
// spec's. Methods may be called from one goroutine at a time.
type Cluster interface {
	// Nodes lists every node ID, running or not.
	Nodes() []uint64
	// Running reports whether node id is up (not killed; a paused node is running).
	Running(id uint64) bool
	// Status asks a running node for its view of the cluster (GET /admin/status).
	Status(ctx context.Context, id uint64) (server.ReplicaStatus, error)
	// Kill ends node id at once, without a chance to flush (SIGKILL where the node is a
	// process).
	Kill(ctx context.Context, id uint64) error
	// Restart starts a killed node again from its data directory, at its old addresses.
	Restart(ctx context.Context, id uint64) error
	// Pause and Resume stop and continue node id (SIGSTOP, SIGCONT).
	Pause(ctx context.Context, id uint64) error
	Resume(ctx context.Context, id uint64) error
	// Isolate cuts node id off from every peer; Heal undoes it.
	Isolate(ctx context.Context, id uint64) error
	Heal(ctx context.Context, id uint64) error
	// TransferLeader asks leader `from` to hand leadership to `to`.
	TransferLeader(ctx context.Context, from, to uint64) error
}

// TimedPauser is a Cluster that pauses a node for a known time (a remote node told through
// /admin/pause how long to stop, which resumes by itself); the executor uses it instead of
// Pause when the cluster has it, and still calls Resume when the time is up.
type TimedPauser interface {
	PauseFor(ctx context.Context, id uint64, d time.Duration) error
}

// Supervised is a Cluster some of whose nodes are restarted by their own supervisor (Procs
// with remote nodes): Restart waits for them, and BackAfter says how long after its crash
// node id answered again, which the restart's event records.
type Supervised interface {
	BackAfter(id uint64) (time.Duration, bool)
}

// Limits of the executor.
const (
	// LeaderWait bounds how long a -leader step waits for the running nodes to agree on a
	// leader (an election may be in progress from an earlier step).
	LeaderWait = 10 * time.Second
	// leaderPoll is how often it asks again meanwhile.
	leaderPoll = 20 * time.Millisecond
	// StepTimeout bounds one action (an /admin call, a restart).
	StepTimeout = 30 * time.Second
)

// Nemesis runs a Schedule against a Cluster and records what it did as report.Events.
type Nemesis struct {
	c     Cluster
	sched Schedule
	rng   *rand.Rand

	mu     sync.Mutex
	events []report.Event
	errs   []error
	killed []uint64 // killed and not yet restarted, in kill order
	// killEvent maps a killed node to its event's index, so its restart closes the window.
	killEvent map[uint64]int
}

// New returns a Nemesis for sched. seed makes "-random" choices reproducible.
func New(c Cluster, sched Schedule, seed uint64) *Nemesis {
	return &Nemesis{c: c, sched: sched, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		killEvent: map[uint64]int{}}
}

// Run applies the schedule, each step at windowStart+Step.At, and returns when the last one
// is done or ctx ends; windowed faults still in force when ctx ends are undone before it
// returns. A step that fails is recorded (Errors) and the schedule goes on: a benchmark
// under faults must not stop at the first fault that could not be injected.
func (n *Nemesis) Run(ctx context.Context, windowStart time.Time) {
	type undo struct {
		at   time.Time
		do   func(context.Context) error
		ev   int
		what string
	}
	var pending []undo
	runUndo := func(u undo) {
		sctx, cancel := context.WithTimeout(context.Background(), StepTimeout)
		err := u.do(sctx)
		cancel()
		n.mu.Lock()
		n.events[u.ev].End = time.Since(windowStart)
		if err != nil {
			n.errs = append(n.errs, fmt.Errorf("nemesis: undoing %s: %w", u.what, err))
		}
		n.mu.Unlock()
	}
	next := 0
	for next < len(n.sched) || len(pending) > 0 {
		// The earliest thing to do: the next step or the earliest undo.
		wake := time.Time{}
		if next < len(n.sched) {
			wake = windowStart.Add(n.sched[next].At)
		}
		sort.SliceStable(pending, func(i, j int) bool { return pending[i].at.Before(pending[j].at) })
		undoFirst := len(pending) > 0 && (next >= len(n.sched) || !pending[0].at.After(wake))
		if undoFirst {
			wake = pending[0].at
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			t.Stop()
			for _, u := range pending {
				runUndo(u)
			}
			return
		case <-t.C:
		}
		if undoFirst {
			runUndo(pending[0])
			pending = pending[1:]
			continue
		}
		st := n.sched[next]
		next++
		sctx, cancel := context.WithTimeout(ctx, StepTimeout)
		ev, undoFn, err := n.apply(sctx, st)
		cancel()
		ev.At = time.Since(windowStart)
		n.mu.Lock()
		if err != nil {
			ev.Detail = "failed: " + err.Error()
			n.errs = append(n.errs, fmt.Errorf("nemesis: %s: %w", st, err))
		}
		n.events = append(n.events, ev)
		idx := len(n.events) - 1
		switch st.Action {
		case KillLeader, KillRandom, KillAll:
			if err == nil {
				for _, id := range n.killed {
					if _, ok := n.killEvent[id]; !ok {
						n.killEvent[id] = idx
					}
				}
			}
		case Restart:
			for id, k := range n.killEvent {
				if !slices.Contains(n.killed, id) {
					n.events[k].End = ev.At
					delete(n.killEvent, id)
				}
			}
		}
		n.mu.Unlock()
		if undoFn != nil {
			pending = append(pending, undo{at: windowStart.Add(st.At + st.For), do: undoFn, ev: idx, what: st.String()})
		}
	}
}

// apply performs one step and returns its event (At filled by the caller) and, for
// windowed faults, the function that undoes it.
func (n *Nemesis) apply(ctx context.Context, st Step) (report.Event, func(context.Context) error, error) {
	ev := report.Event{Kind: string(st.Action)}
	pick := func() (uint64, error) {
		switch st.Action {
		case KillRandom, PartitionRandom, PauseRandom:
			return n.random()
		}
		return n.leader(ctx)
	}
	switch st.Action {
	case KillLeader, KillRandom:
		id, err := pick()
		if err != nil {
			return ev, nil, err
		}
		ev.Target = name(id)
		if err := n.c.Kill(ctx, id); err != nil {
			return ev, nil, err
		}
		n.mu.Lock()
		n.killed = append(n.killed, id)
		n.mu.Unlock()
		return ev, nil, nil
	case KillAll:
		var errs []error
		for _, id := range n.c.Nodes() {
			if !n.c.Running(id) {
				continue
			}
			if err := n.c.Kill(ctx, id); err != nil {
				errs = append(errs, err)
				continue
			}
			n.mu.Lock()
			n.killed = append(n.killed, id)
			n.mu.Unlock()
		}
		ev.Target = "all"
		return ev, nil, errors.Join(errs...)
	case Restart:
		n.mu.Lock()
		killed := n.killed
		n.killed = nil
		n.mu.Unlock()
		var errs []error
		var names, back []string
		sv, supervised := n.c.(Supervised)
		for _, id := range killed {
			names = append(names, name(id))
			if err := n.c.Restart(ctx, id); err != nil {
				errs = append(errs, err)
				continue
			}
			if !supervised {
				continue
			}
			if d, ok := sv.BackAfter(id); ok {
				back = append(back, fmt.Sprintf("%s back %v after its crash", name(id), d.Round(time.Millisecond)))
			}
		}
		ev.Target = fmt.Sprint(names)
		if len(back) > 0 {
			ev.Detail = "restarted by their supervisors: " + strings.Join(back, ", ")
		}
		return ev, nil, errors.Join(errs...)
	case PartitionLeader, PartitionRandom:
		id, err := pick()
		if err != nil {
			return ev, nil, err
		}
		ev.Target = name(id)
		if err := n.c.Isolate(ctx, id); err != nil {
			return ev, nil, err
		}
		return ev, func(ctx context.Context) error { return n.c.Heal(ctx, id) }, nil
	case Pause, PauseLeader, PauseRandom:
		id, err := pick()
		if err != nil {
			return ev, nil, err
		}
		ev.Target = name(id)
		pause := func() error { return n.c.Pause(ctx, id) }
		if tp, ok := n.c.(TimedPauser); ok {
			pause = func() error { return tp.PauseFor(ctx, id, st.For) }
		}
		if err := pause(); err != nil {
			return ev, nil, err
		}
		return ev, func(ctx context.Context) error { return n.c.Resume(ctx, id) }, nil
	case TransferLeader:
		id, err := n.leader(ctx)
		if err != nil {
			return ev, nil, err
		}
		var to uint64
		for _, o := range n.c.Nodes() {
			if o != id && n.c.Running(o) {
				to = o
				break
			}
		}
		if to == 0 {
			return ev, nil, errors.New("no running follower to transfer to")
		}
		ev.Target, ev.Detail = name(id), "to "+name(to)
		return ev, nil, n.c.TransferLeader(ctx, id, to)
	}
	return ev, nil, fmt.Errorf("unknown action %q", st.Action)
}

func name(id uint64) string { return fmt.Sprintf("n%d", id) }

// random picks a running node.
func (n *Nemesis) random() (uint64, error) {
	var up []uint64
	for _, id := range n.c.Nodes() {
		if n.c.Running(id) {
			up = append(up, id)
		}
	}
	if len(up) == 0 {
		return 0, errors.New("no running node")
	}
	return up[n.rng.IntN(len(up))], nil
}

// leader waits until a running node says it leads and a majority of the running nodes that
// answer agree, then returns it. Agreement matters: a deposed leader that has not heard of
// its successor still says "leader" for a while.
func (n *Nemesis) leader(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, LeaderWait)
	defer cancel()
	var last error
	for {
		id, err := FindLeader(ctx, n.c)
		if err == nil {
			return id, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no leader within %v: %w", LeaderWait, last)
		case <-time.After(leaderPoll):
		}
	}
}

// FindLeader asks every running node for its status once and returns the node that says it
// leads (Raft "leader", PBFT "primary") with the highest term, provided more than half of
// the nodes that answered name it as leader.
func FindLeader(ctx context.Context, c Cluster) (uint64, error) {
	var best server.ReplicaStatus
	votes := map[uint64]int{}
	answered := 0
	var errs []error
	for _, id := range c.Nodes() {
		if !c.Running(id) {
			continue
		}
		st, err := c.Status(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answered++
		if st.Leader != 0 {
			votes[st.Leader]++
		}
		if (st.Role == "leader" || st.Role == "primary") && st.Term >= best.Term {
			best = st
		}
	}
	if best.ID == 0 {
		return 0, fmt.Errorf("no node says it leads (%d answered) %w", answered, errors.Join(errs...))
	}
	if votes[best.ID]*2 <= answered {
		return 0, fmt.Errorf("n%d says it leads but only %d of %d answering nodes agree", best.ID, votes[best.ID], answered)
	}
	return best.ID, nil
}

// Events returns what the nemesis did so far, in order, with offsets from the window start.
func (n *Nemesis) Events() []report.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.events)
}

// Err returns every step that could not be applied or undone, or nil.
func (n *Nemesis) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return errors.Join(n.errs...)
}

// Killed returns the nodes killed and not restarted.
func (n *Nemesis) Killed() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.killed)
}

// RestartKilled restarts every node still down (the end of a durability run).
func (n *Nemesis) RestartKilled(ctx context.Context) error {
	n.mu.Lock()
	killed := n.killed
	n.killed = nil
	n.mu.Unlock()
	var errs []error
	for _, id := range killed {
		errs = append(errs, n.c.Restart(ctx, id))
	}
	return errors.Join(errs...)
}

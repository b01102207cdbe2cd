package nemesis

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is one kind of fault or repair.
type Action string

// The actions the grammar knows. A "-leader" action targets the node every running replica
// agrees leads (Raft) or is primary (PBFT); "-random" picks a running node at random. On a
// cluster loadgen did not start, a kill is the node's own SIGKILL (/admin/crash), a restart
// waits for its supervisor, and a pause is the node's own SIGSTOP with a timer that
// continues it (/admin/pause); see Procs.
const (
	KillLeader      Action = "kill-leader"      // SIGKILL (kill -9) the leader
	KillRandom      Action = "kill-random"      // SIGKILL a random running node
	KillAll         Action = "kill-all"         // SIGKILL every node (durability runs)
	Restart         Action = "restart"          // restart every killed node from its data
	PartitionLeader Action = "partition-leader" // isolate the leader from its peers for a while
	PartitionRandom Action = "partition-random" // isolate a random node for a while
	Pause           Action = "pause"            // SIGSTOP the leader for a while, then SIGCONT
	PauseLeader     Action = "pause-leader"     // the same as pause
	PauseRandom     Action = "pause-random"     // SIGSTOP a random node for a while
	TransferLeader  Action = "transfer-leader"  // ask the leader to hand over to a follower
)

// actions lists every Action with whether it takes a duration (":5s").
var actions = []struct {
	a        Action
	duration bool
}{
	{KillLeader, false}, {KillRandom, false}, {KillAll, false}, {Restart, false},
	{PartitionLeader, true}, {PartitionRandom, true},
	{Pause, true}, {PauseLeader, true}, {PauseRandom, true},
	{TransferLeader, false},
}

// Limits of a schedule.
const (
	// MaxSteps bounds a schedule's length (a typo like a pasted list must not run forever).
	MaxSteps = 1000
	// MaxOffset bounds when a step may start and how long a fault may last (the load
	// generator's longest run).
	MaxOffset = 24 * time.Hour
)

// Step is one scheduled fault: at At (an offset from the measured window's start) apply
// Action; faults with a duration are undone at At+For.
type Step struct {
	Action Action
	At     time.Duration
	For    time.Duration // 0 for instant actions
}

// String renders the step in the grammar Parse reads.
func (s Step) String() string {
	if s.For > 0 {
		return fmt.Sprintf("%s@%v:%v", s.Action, s.At, s.For)
	}
	return fmt.Sprintf("%s@%v", s.Action, s.At)
}

// Schedule is a parsed --nemesis value, sorted by At (stable: steps at the same time run in
// the order written).
type Schedule []Step

// String renders the schedule in the grammar Parse reads.
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, st := range s {
		parts[i] = st.String()
	}
	return strings.Join(parts, ",")
}

// Grammar documents the --nemesis syntax for help texts and errors.
const Grammar = `STEP[,STEP...] where STEP is ACTION@AT or ACTION@AT:FOR (Go durations, AT from the measured window's start);
ACTION is kill-leader, kill-random, kill-all, restart, transfer-leader (instant) or
partition-leader, partition-random, pause, pause-leader, pause-random (need :FOR)`

// Parse reads a --nemesis schedule such as "kill-leader@10s,restart@15s" or
// "partition-leader@10s:5s". Errors name the offending step and what was expected. An empty
// string is an empty schedule.
func Parse(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	items := strings.Split(s, ",")
	if len(items) > MaxSteps {
		return nil, fmt.Errorf("nemesis: %d steps exceed MaxSteps=%d", len(items), MaxSteps)
	}
	var sched Schedule
	var errs []error
	for i, it := range items {
		st, err := parseStep(strings.TrimSpace(it))
		if err != nil {
			errs = append(errs, fmt.Errorf("nemesis: step %d %q: %w", i+1, it, err))
			continue
		}
		sched = append(sched, st)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w\n  syntax: %s", errors.Join(errs...), Grammar)
	}
	slices.SortStableFunc(sched, func(a, b Step) int { return cmp.Compare(a.At, b.At) })
	if err := sched.check(); err != nil {
		return nil, err
	}
	return sched, nil
}

func parseStep(s string) (Step, error) {
	if s == "" {
		return Step{}, errors.New("empty step")
	}
	name, when, ok := strings.Cut(s, "@")
	if !ok {
		return Step{}, errors.New("missing @TIME (e.g. kill-leader@10s)")
	}
	var st Step
	st.Action = Action(strings.TrimSpace(name))
	needsFor, known := false, false
	for _, a := range actions {
		if a.a == st.Action {
			known, needsFor = true, a.duration
		}
	}
	if !known {
		return Step{}, fmt.Errorf("unknown action %q", name)
	}
	at, dur, hasFor := strings.Cut(when, ":")
	var err error
	if st.At, err = parseOffset(at, "time"); err != nil {
		return Step{}, err
	}
	switch {
	case needsFor && !hasFor:
		return Step{}, fmt.Errorf("%s needs a duration: %s@%s:5s", st.Action, st.Action, at)
	case !needsFor && hasFor:
		return Step{}, fmt.Errorf("%s is instant and takes no duration (drop %q)", st.Action, ":"+dur)
	case hasFor:
		if st.For, err = parseOffset(dur, "duration"); err != nil {
			return Step{}, err
		}
		if st.For == 0 {
			return Step{}, errors.New("duration must be positive")
		}
	}
	return st, nil
}

func parseOffset(s, what string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("bad %s %q: want a Go duration such as 10s or 1.5s", what, s)
	}
	if d < 0 || d > MaxOffset {
		return 0, fmt.Errorf("%s %v outside [0, %v]", what, d, MaxOffset)
	}
	return d, nil
}

// check rejects schedules that cannot do what they say: a restart with nothing killed
// before it.
func (s Schedule) check() error {
	killed := false
	for _, st := range s {
		switch st.Action {
		case KillLeader, KillRandom, KillAll:
			killed = true
		case Restart:
			if !killed {
				return fmt.Errorf("nemesis: %s has no kill before it (restart restarts every killed node)", st)
			}
			killed = false
		}
	}
	return nil
}

// End returns when the schedule's last fault is over.
func (s Schedule) End() time.Duration {
	var end time.Duration
	for _, st := range s {
		end = max(end, st.At+st.For)
	}
	return end
}

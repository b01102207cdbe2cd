package sim

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime/debug"
	"strings"
)

// Options are the run's settings that do not come from the seed.
type Options struct {
	// Trace, when non-nil, receives one line per fault, op and (through Logf) adapter event.
	Trace io.Writer
	// TuneParams, when set, adjusts the drawn parameters before the run (measurements that
	// need a fixed shape: no faults, a long safety phase).
	TuneParams func(*Params)
	// ExtraDelay, when set, adds its result (units) to each message's drawn delay, from the
	// run's network stream: a delay profile beyond the drawn parameters (for example long
	// delays on replies only). The network never delays a message by more than
	// ExtraDelayUnitsMax in all.
	ExtraDelay func(from, to NodeID, msg any, r *rand.Rand) int64
}

// ExtraDelayUnitsMax bounds Options.ExtraDelay's result.
const ExtraDelayUnitsMax = 100_000

type eventKind uint8

const (
	evGlobalTick eventKind = iota // workload, fault schedule, phases
	evNodeTick                    // one host's Tick
	evDeliver                     // a message arrives
	evDisk                        // a host's oldest pending write completes
	evResume                      // a stalled host's process runs again
)

type event struct {
	at   int64
	seq  uint64 // tie-break: equal times run in scheduling order
	kind eventKind
	from NodeID
	to   NodeID
	inc  uint64 // host incarnation the event belongs to (node ticks, disk)
	msg  any
}

// eventQueue is a binary min-heap on (at, seq); seq makes the order total, so the run is
// deterministic.
type eventQueue []event

func (q eventQueue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q *eventQueue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *eventQueue) pop() event {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = event{}
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// Stats counts what happened in a run.
type Stats struct {
	Events, Sent, Delivered, Dropped, Duplicated  int
	Crashes, Restarts, Partitions, ProtocolFaults int
	DiskWrites, DiskLost, DiskTorn, DiskStalls    int
	Stalls                                        int
	OpsDone, OpsUnknown                           int
	Ticks                                         int
	HealTick, LiveTick                            int
}

// Cluster is one simulated run: clock, network, disks, hosts, clients, fault schedule and
// checkers. Create it with NewCluster, print Describe, then Run.
type Cluster struct {
	seed   uint64
	params Params
	opts   Options
	proto  Protocol

	netRand   *rand.Rand // network delays, drops, duplicates
	faultRand *rand.Rand // fault schedule and nemesis
	workRand  *rand.Rand // workload ops
	protoRand *rand.Rand // the protocol's parameter draws

	now    int64
	tick   int // global ticks elapsed
	seq    uint64
	events eventQueue
	hosts  []*Host
	cut    [][]bool // cut[from-1][to-1]: messages from->to are dropped
	down   int

	clients []*clientState
	history []Record
	nextVal int64

	healed       bool
	workloadOff  bool
	stopAt       int // tick by which every pending op must have completed
	quiesceAt    int // tick at which the run ends (set once the workload is done)
	stats        Stats
	onHeal       func()         // tests: runs as the safety phase ends
	onTick       func(tick int) // tests: runs at each global tick of the safety phase
	failure      error
	livenessDone int // ops started after heal that completed
	// livenessGrace: ticks added to the liveness window at the heal (LivenessGracer).
	livenessGrace int
}

// NewCluster draws the run's parameters from seed and builds the protocol with factory.
func NewCluster(seed uint64, factory Factory, opts Options) *Cluster {
	root := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	c := &Cluster{seed: seed, opts: opts}
	c.params = drawParams(root)
	if opts.TuneParams != nil {
		opts.TuneParams(&c.params)
	}
	c.netRand = rand.New(rand.NewPCG(root.Uint64(), root.Uint64()))
	c.faultRand = rand.New(rand.NewPCG(root.Uint64(), root.Uint64()))
	c.workRand = rand.New(rand.NewPCG(root.Uint64(), root.Uint64()))
	c.protoRand = rand.New(rand.NewPCG(root.Uint64(), root.Uint64()))
	hostSeed := root.Uint64()
	c.proto = factory(c)
	n := c.proto.Hosts()
	c.cut = make([][]bool, n)
	for i := range n {
		c.cut[i] = make([]bool, n)
		h := &Host{c: c, id: NodeID(i + 1)}
		h.rng = rand.New(rand.NewPCG(hostSeed, uint64(i+1)))
		drift := int64(0)
		if c.params.ClockDriftPct > 0 {
			span := int64(TickUnits * c.params.ClockDriftPct / 100)
			drift = c.faultRand.Int64N(2*span+1) - span
		}
		h.tickPeriod = TickUnits + drift
		h.tickPhase = c.faultRand.Int64N(TickUnits)
		h.disk.host = h
		c.hosts = append(c.hosts, h)
	}
	for i := range c.params.Clients {
		cs := &clientState{cur: -1}
		cs.host = &ClientHost{c: c, id: ClientIDBase + NodeID(i), state: cs}
		cs.host.rng = rand.New(rand.NewPCG(hostSeed, uint64(ClientIDBase)+uint64(i)))
		c.clients = append(c.clients, cs)
	}
	return c
}

// StateDump is the protocol's description of every replica, if it implements StateDumper.
func (c *Cluster) StateDump() string {
	if d, ok := c.proto.(StateDumper); ok {
		return d.StateDump()
	}
	return ""
}

// Counters are the protocol's counters, if it implements CounterReporter.
func (c *Cluster) Counters() []Counter {
	if r, ok := c.proto.(CounterReporter); ok {
		return r.Counters()
	}
	return nil
}

// Seed is the run's seed.
func (c *Cluster) Seed() uint64 { return c.seed }

// Params are the run's drawn simulator parameters.
func (c *Cluster) Params() Params { return c.params }

// ProtoRand is the stream a Factory draws the protocol's parameters from.
func (c *Cluster) ProtoRand() *rand.Rand { return c.protoRand }

// Now is the simulated time in units.
func (c *Cluster) Now() int64 { return c.now }

// Tick is the number of global ticks elapsed.
func (c *Cluster) Tick() int { return c.tick }

// Healed reports whether the safety phase is over.
func (c *Cluster) Healed() bool { return c.healed }

// Host returns host id (1..Hosts()).
func (c *Cluster) Host(id NodeID) *Host { return c.hosts[id-1] }

// Hosts returns all hosts in ID order.
func (c *Cluster) Hosts() []*Host { return c.hosts }

// Stats returns the run's counters so far.
func (c *Cluster) Stats() Stats { return c.stats }

// History returns the client history recorded so far.
func (c *Cluster) History() []Record { return c.history }

// Describe is the line printed before the run: seed and every drawn parameter.
func (c *Cluster) Describe() string {
	return fmt.Sprintf("seed=%d hosts=%d %s | %s", c.seed, len(c.hosts), c.params, c.proto.Describe())
}

// Tracing reports whether Logf output goes anywhere; adapters check it before building
// expensive trace lines.
func (c *Cluster) Tracing() bool { return c.opts.Trace != nil }

// Logf writes one trace line stamped with the simulated time.
func (c *Cluster) Logf(format string, args ...any) {
	if c.opts.Trace == nil {
		return
	}
	fmt.Fprintf(c.opts.Trace, "%7d t%-5d %s\n", c.now, c.tick, fmt.Sprintf(format, args...))
}

// Fail records a failure detected outside Check (for example by a client); the run stops
// after the current event.
func (c *Cluster) Fail(err error) {
	if c.failure == nil {
		c.failure = err
	}
}

func (c *Cluster) schedule(e event) {
	c.seq++
	e.seq = c.seq
	c.events.push(e)
}

// ErrLiveness reports that the cluster did not make progress after the faults healed.
var ErrLiveness = errors.New("sim: no progress after heal")

// Run executes the run to the end and returns the first failure: a protocol Check error, an
// invariant panic inside the core or adapter, a liveness failure, or a non-linearizable
// history.
func (c *Cluster) Run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic at t=%d tick %d: %v\n%s", c.now, c.tick, r, trimStack(debug.Stack()))
		}
	}()
	for _, h := range c.hosts {
		h.start(false)
	}
	for _, cs := range c.clients {
		cs.client = c.proto.NewClient(cs.host)
	}
	c.schedule(event{at: 0, kind: evGlobalTick})
	for len(c.events) > 0 {
		e := c.events.pop()
		c.now = e.at
		c.stats.Events++
		if c.stats.Events > EventsMax {
			return fmt.Errorf("run exceeded %d events (livelock in the adapter?)", EventsMax)
		}
		done := c.step(e)
		if c.failure != nil {
			return fmt.Errorf("at t=%d tick %d: %w", c.now, c.tick, c.failure)
		}
		if err := c.proto.Check(); err != nil {
			return fmt.Errorf("check at t=%d tick %d: %w", c.now, c.tick, err)
		}
		if done {
			break
		}
	}
	for i := range c.history {
		if c.history[i].Status == OpPending {
			c.history[i].Status = OpUnknown
			c.stats.OpsUnknown++
		}
	}
	if err := c.proto.Final(); err != nil {
		return fmt.Errorf("final check: %w", err)
	}
	if err := CheckLinearizable(c.history); err != nil {
		return err
	}
	return nil
}

// step runs one event; it reports true when the run is over.
func (c *Cluster) step(e event) bool {
	switch e.kind {
	case evGlobalTick:
		return c.globalTick()
	case evNodeTick:
		h := c.hosts[e.to-1]
		if !h.up || h.inc != e.inc {
			return false
		}
		c.schedule(event{at: c.now + h.tickPeriod, kind: evNodeTick, to: h.id, inc: h.inc})
		h.ticks++
		if h.Stalled() {
			h.stallTicks++
			return false
		}
		h.replica.Tick()
	case evDeliver:
		if e.to.IsClient() {
			cs := c.clients[e.to-ClientIDBase]
			cs.client.Deliver(e.from, e.msg)
			return false
		}
		if !e.from.IsClient() && c.cut[e.from-1][e.to-1] {
			c.stats.Dropped++
			return false
		}
		h := c.hosts[e.to-1]
		if !h.up {
			c.stats.Dropped++
			return false
		}
		if h.Stalled() {
			h.stallMsgs = append(h.stallMsgs, stalledMsg{from: e.from, msg: e.msg})
			return false
		}
		c.stats.Delivered++
		h.replica.Deliver(e.from, e.msg)
	case evDisk:
		h := c.hosts[e.to-1]
		if h.inc != e.inc {
			return false
		}
		h.disk.complete()
	case evResume:
		h := c.hosts[e.to-1]
		if h.up && h.inc == e.inc && h.stallUntil == c.now {
			c.resume(h)
		}
	}
	return false
}

// StallHostsMax bounds the hosts stalled at once.
const StallHostsMax = 1

// Stall stops host id's process for units of simulated time, as SIGSTOP or a long GC pause
// would: its replica runs nothing, while the network keeps delivering to it (messages queue)
// and its disk keeps completing writes (acknowledgements queue), and its clock keeps
// ticking. On resume the queued inputs reach the replica before its missed ticks (see
// Replica). It reports whether the host was stalled: it must be up and not stalled, with
// fewer than StallHostsMax hosts stalled, in the safety phase.
func (c *Cluster) Stall(id NodeID, units int64) bool {
	h := c.hosts[id-1]
	stalled := 0
	for _, o := range c.hosts {
		if o.Stalled() {
			stalled++
		}
	}
	if !h.up || h.Stalled() || units < 1 || stalled >= StallHostsMax || c.healed {
		return false
	}
	h.stallUntil = c.now + units
	c.stats.Stalls++
	c.Logf("FAULT stall host %d until t=%d", id, h.stallUntil)
	c.schedule(event{at: h.stallUntil, kind: evResume, to: id, inc: h.inc})
	return true
}

// resume hands a stalled replica what it missed, in the adversarial order of Replica's doc:
// client messages, then peer messages, then disk acknowledgements, then the missed ticks. A
// crash or a failure in the middle stops the hand-over.
func (c *Cluster) resume(h *Host) {
	msgs, acks, ticks := h.stallMsgs, h.stallAcks, h.stallTicks
	h.stallUntil, h.stallMsgs, h.stallAcks, h.stallTicks = 0, nil, nil, 0
	c.Logf("resume host %d: %d messages, %d disk acks, %d missed ticks", h.id, len(msgs), len(acks), ticks)
	inc := h.inc
	alive := func() bool { return h.up && h.inc == inc && c.failure == nil }
	h.resuming = true
	defer func() { h.resuming = false }()
	for _, clients := range []bool{true, false} {
		for _, m := range msgs {
			if m.from.IsClient() == clients && alive() {
				c.stats.Delivered++
				h.replica.Deliver(m.from, m.msg)
			}
		}
	}
	for _, ack := range acks {
		if alive() {
			ack()
		}
	}
	for range ticks {
		if alive() {
			h.replica.Tick()
		}
	}
}

// send puts msg on the network from -> to.
func (c *Cluster) send(from, to NodeID, msg any) {
	c.stats.Sent++
	if !from.IsClient() && !to.IsClient() && c.cut[from-1][to-1] {
		c.stats.Dropped++
		return
	}
	p := &c.params
	drop, dup := p.DropRate, p.DupRate
	if c.healed {
		drop, dup = 0, 0
	}
	if drop > 0 && c.netRand.Float64() < drop {
		c.stats.Dropped++
		return
	}
	copies := 1
	if dup > 0 && c.netRand.Float64() < dup {
		copies = 2
		c.stats.Duplicated++
	}
	for range copies {
		d := p.DelayMin + c.netRand.Int64N(p.DelayMax-p.DelayMin+1)
		if p.LongDelayRate > 0 && c.netRand.Float64() < p.LongDelayRate {
			d += c.netRand.Int64N(LongDelayUnitsMax)
		}
		if c.opts.ExtraDelay != nil {
			d += min(max(c.opts.ExtraDelay(from, to, msg, c.netRand), 0), ExtraDelayUnitsMax)
		}
		c.schedule(event{at: c.now + d, kind: evDeliver, from: from, to: to, msg: msg})
	}
}

func (c *Cluster) globalTick() bool {
	c.stats.Ticks = c.tick
	p := &c.params
	if !c.healed {
		if c.tick >= p.SafetyTicks {
			c.heal()
		} else if c.faultRand.IntN(p.FaultEvery) == 0 {
			c.fault()
		}
		if !c.healed && c.onTick != nil {
			c.onTick(c.tick)
		}
	}
	if c.healed && c.stats.LiveTick == 0 {
		if c.livenessDone >= LivenessOps {
			c.stats.LiveTick = c.tick
			c.Logf("liveness shown: %d ops completed %d ticks after heal", c.livenessDone, c.tick-c.stats.HealTick)
		} else if c.tick-c.stats.HealTick > LivenessTicksMax+c.livenessGrace {
			c.Fail(fmt.Errorf("%w: only %d of %d ops started after the heal at tick %d completed within %d ticks (%d of them the protocol's timers)",
				ErrLiveness, c.livenessDone, LivenessOps, c.stats.HealTick, LivenessTicksMax+c.livenessGrace, c.livenessGrace))
			return true
		}
	}
	if c.stats.LiveTick > 0 && !c.workloadOff && c.tick >= c.stats.LiveTick+DrainTicks {
		c.workloadOff = true
		c.stopAt = c.tick + FinishTicksMax
	}
	c.workload()
	if c.workloadOff {
		idle := true
		for _, cs := range c.clients {
			if cs.cur >= 0 {
				idle = false
			}
		}
		q, quiesces := c.proto.(Quiescer)
		if idle && !quiesces {
			return true
		}
		if idle && c.quiesceAt == 0 {
			c.quiesceAt = c.tick + QuiesceTicksMax
			c.Logf("workload done; quiescing until converged")
		}
		if c.quiesceAt > 0 && (q.Converged() || c.tick >= c.quiesceAt) {
			return true
		}
		if !idle && c.tick >= c.stopAt {
			for _, cs := range c.clients {
				if cs.cur >= 0 {
					r := c.history[cs.cur]
					c.Fail(fmt.Errorf("%w: client %d op #%d (%s k%d) started at t=%d still pending %d ticks after the workload stopped",
						ErrLiveness, r.Op.Client, r.Op.Seq, r.Op.Kind, r.Op.Key, r.Call, FinishTicksMax))
					return true
				}
			}
		}
	}
	c.tick++
	c.schedule(event{at: int64(c.tick) * TickUnits, kind: evGlobalTick})
	return false
}

func (c *Cluster) heal() {
	if c.onHeal != nil {
		c.onHeal()
	}
	c.healed = true
	c.stats.HealTick = c.tick
	for i := range c.cut {
		clear(c.cut[i])
	}
	for _, h := range c.hosts {
		if !h.up {
			c.restart(h)
		}
	}
	for _, h := range c.hosts {
		if h.Stalled() && c.failure == nil {
			c.resume(h)
		}
	}
	c.Logf("HEAL: network healed, all hosts up and running, drops and duplicates off")
	c.proto.Heal()
	if g, ok := c.proto.(LivenessGracer); ok {
		c.livenessGrace = g.LivenessGrace()
		if c.livenessGrace > 0 {
			c.Logf("liveness window: %d ticks plus %d the protocol's timers may take", LivenessTicksMax, c.livenessGrace)
		}
	}
}

func (c *Cluster) fault() {
	p := &c.params
	total := 0
	for _, w := range p.FaultWeights {
		total += w
	}
	if total == 0 {
		return
	}
	pick := c.faultRand.IntN(total)
	kind := FaultKind(0)
	for k, w := range p.FaultWeights {
		if pick < w {
			kind = FaultKind(k)
			break
		}
		pick -= w
	}
	n := len(c.hosts)
	r := c.faultRand
	switch kind {
	case FaultPartition:
		side := make([]bool, n)
		for i := range side {
			side[i] = r.IntN(2) == 0
		}
		if n > 1 {
			side[1+r.IntN(n-1)] = !side[0] // both sides non-empty
		}
		for i := range n {
			for j := range n {
				if side[i] != side[j] {
					c.cut[i][j] = true
				}
			}
		}
		c.stats.Partitions++
		c.Logf("FAULT partition %v", side)
	case FaultAsymPartition:
		x := r.IntN(n)
		outbound := r.IntN(2) == 0
		var cutTo []int
		for j := range n {
			if j == x || r.IntN(2) == 0 {
				continue
			}
			if outbound {
				c.cut[x][j] = true
			} else {
				c.cut[j][x] = true
			}
			cutTo = append(cutTo, j+1)
		}
		c.stats.Partitions++
		c.Logf("FAULT asym host %d outbound=%v peers %v", x+1, outbound, cutTo)
	case FaultIsolate:
		x := r.IntN(n)
		for j := range n {
			if j != x {
				c.cut[x][j] = true
				c.cut[j][x] = true
			}
		}
		c.stats.Partitions++
		c.Logf("FAULT isolate host %d", x+1)
	case FaultHeal:
		for i := range c.cut {
			clear(c.cut[i])
		}
		c.Logf("FAULT heal network")
	case FaultCrash:
		if c.down >= c.proto.MaxDown() {
			return
		}
		h := c.hosts[r.IntN(n)]
		if h.up {
			c.crash(h)
		}
	case FaultRestart:
		h := c.hosts[r.IntN(n)]
		if !h.up {
			c.restart(h)
		}
	case FaultDiskStall:
		h := c.hosts[r.IntN(n)]
		if h.up {
			h.disk.stallUntil = c.now + 1 + r.Int64N(DiskStallUnitsMax)
			c.stats.DiskStalls++
			c.Logf("FAULT disk stall host %d until t=%d", h.id, h.disk.stallUntil)
		}
	case FaultStall:
		c.Stall(c.hosts[r.IntN(n)].id, 1+r.Int64N(StallUnitsMax))
	case FaultProtocol:
		if d := c.proto.Nemesis(r); d != "" {
			c.stats.ProtocolFaults++
			c.Logf("FAULT protocol: %s", d)
		}
	}
}

func (c *Cluster) crash(h *Host) {
	h.up = false
	h.stallUntil, h.stallMsgs, h.stallAcks, h.stallTicks = 0, nil, nil, 0
	h.inc++
	h.replica = nil
	c.down++
	c.stats.Crashes++
	lost, torn := h.disk.crash(c.params.TornCrash, c.faultRand)
	c.stats.DiskLost += lost
	c.stats.DiskTorn += torn
	c.Logf("FAULT crash host %d (disk: %d writes lost, %d landed unacked)", h.id, lost, torn)
	c.proto.Crashed(h.id)
}

// PowerCut crashes every running host and restarts it at once, for a protocol whose replicas
// restart from durable state as correct ones (its Nemesis may call it). It returns the
// number of hosts restarted.
func (c *Cluster) PowerCut() int {
	n := 0
	for _, h := range c.hosts {
		if h.up {
			c.crash(h)
			c.restart(h)
			n++
		}
	}
	return n
}

func (c *Cluster) restart(h *Host) {
	c.down--
	c.stats.Restarts++
	c.Logf("restart host %d", h.id)
	h.start(true)
}

// trimStack keeps a panic's stack readable in a test log.
func trimStack(s []byte) string {
	lines := strings.Split(string(s), "\n")
	const keep = 40
	if len(lines) > keep {
		lines = lines[:keep]
	}
	return strings.Join(lines, "\n")
}

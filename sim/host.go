package sim

import (
	"fmt"
	"math/rand/v2"
)

// Host is one simulated machine: a network endpoint, a disk, a clock and the Replica running
// on it. A protocol adapter holds its Host and uses it for all I/O.
type Host struct {
	c          *Cluster
	id         NodeID
	up         bool
	inc        uint64 // incarnation: bumped on every crash so stale events are ignored
	rng        *rand.Rand
	tickPeriod int64
	tickPhase  int64
	ticks      int64 // ticks of the host's clock in this incarnation, stalled or not
	disk       Disk
	replica    Replica

	// A process stall (Cluster.Stall): until stallUntil the replica is not called; what
	// would have reached it waits here and is handed over on resume.
	stallUntil int64
	stallMsgs  []stalledMsg
	stallAcks  []func()
	stallTicks int  // ticks the replica missed
	resuming   bool // the queued inputs are being handed over
}

type stalledMsg struct {
	from NodeID
	msg  any
}

// ID is the host's NodeID.
func (h *Host) ID() NodeID { return h.id }

// Up reports whether the host is running (not crashed).
func (h *Host) Up() bool { return h.up }

// Rand is the host's own deterministic RNG stream (seed it into the core's Config). It
// survives restarts, so a restarted core draws fresh timeouts.
func (h *Host) Rand() *rand.Rand { return h.rng }

// Cluster is the run the host belongs to.
func (h *Host) Cluster() *Cluster { return h.c }

// Now is the simulated time in units.
func (h *Host) Now() int64 { return h.c.now }

// Ticks is the host's clock: the ticks that have passed since the replica started (this
// incarnation), counting those it missed while stalled. A replica catches its core up to it
// before acting on any input (see Replica).
func (h *Host) Ticks() int64 { return h.ticks }

// Stalled reports whether the host's process is stalled (see Cluster.Stall).
func (h *Host) Stalled() bool { return h.stallUntil > 0 }

// Resuming reports whether the host is being handed what queued during a stall (adapters
// count the inputs that reach them this way).
func (h *Host) Resuming() bool { return h.resuming }

// Disk is the host's simulated disk.
func (h *Host) Disk() *Disk { return &h.disk }

// Replica is the replica running on the host, nil while crashed.
func (h *Host) Replica() Replica { return h.replica }

// Send puts msg on the network to another host or a client. Only a running host sends.
func (h *Host) Send(to NodeID, msg any) {
	if !h.up {
		panic(fmt.Sprintf("sim: crashed host %d sent a message", h.id))
	}
	h.c.send(h.id, to, msg)
}

// Logf writes a trace line tagged with the host.
func (h *Host) Logf(format string, args ...any) {
	if h.c.opts.Trace == nil {
		return
	}
	h.c.Logf("n%d %s", h.id, fmt.Sprintf(format, args...))
}

func (h *Host) start(restart bool) {
	h.up = true
	h.ticks = 0
	h.replica = h.c.proto.StartReplica(h, restart)
	first := h.c.now + h.tickPhase
	if restart {
		first = h.c.now + h.tickPeriod
	}
	h.c.schedule(event{at: first, kind: evNodeTick, to: h.id, inc: h.inc})
}

// Disk is a host's simulated disk with group commit. A write joins the flush that has not
// started yet, if there is one (it waits behind the flush in progress); otherwise it starts a
// new flush, at once if the disk is idle. Each flush takes a latency drawn from the run's
// parameters. Writes complete in the order they were issued. Land runs when a write reaches
// stable storage: it must only change Image, the adapter's durable state, which is all a
// restart sees. Ack runs right after Land on a live host, telling the replica the write is
// durable. A crash drops the writes still pending (with torn crashes, a random prefix of them
// lands first, but is never acked).
type Disk struct {
	host       *Host
	Image      any // the adapter's durable state; survives crashes
	pending    []diskWrite
	flushStart int64 // start of the newest flush
	flushEnd   int64 // its completion time
	stallUntil int64 // no flush starts before this (FaultDiskStall)
}

type diskWrite struct {
	land func()
	ack  func()
}

// DiskPendingMax bounds the writes in flight on one disk; an adapter that exceeds it is
// not honouring backpressure from acks.
const DiskPendingMax = 100_000

// Write queues a write; see Disk. ack may be nil.
func (d *Disk) Write(land, ack func()) {
	h := d.host
	if !h.up {
		panic(fmt.Sprintf("sim: crashed host %d wrote to disk", h.id))
	}
	if len(d.pending) >= DiskPendingMax {
		panic(fmt.Sprintf("sim: host %d has %d disk writes pending", h.id, len(d.pending)))
	}
	c := h.c
	if c.now >= d.flushStart || len(d.pending) == 0 {
		d.flushStart = max(c.now, d.flushEnd, d.stallUntil)
		d.flushEnd = d.flushStart + c.params.DiskMin + c.netRand.Int64N(c.params.DiskMax-c.params.DiskMin+1)
	}
	at := d.flushEnd
	d.pending = append(d.pending, diskWrite{land: land, ack: ack})
	c.stats.DiskWrites++
	c.schedule(event{at: at, kind: evDisk, to: h.id, inc: h.inc})
}

// Pending is the number of writes not yet durable.
func (d *Disk) Pending() int { return len(d.pending) }

func (d *Disk) complete() {
	w := d.pending[0]
	d.pending[0] = diskWrite{}
	d.pending = d.pending[1:]
	w.land()
	switch h := d.host; {
	case w.ack == nil || !h.up:
	case h.Stalled():
		h.stallAcks = append(h.stallAcks, w.ack) // the driver learns of it on resume
	default:
		w.ack()
	}
}

func (d *Disk) crash(torn bool, r *rand.Rand) (lost, landed int) {
	n := 0
	if torn && len(d.pending) > 0 {
		n = r.IntN(len(d.pending) + 1)
	}
	for i := range n {
		d.pending[i].land()
	}
	lost = len(d.pending) - n
	clear(d.pending)
	d.pending = d.pending[:0]
	d.flushStart, d.flushEnd, d.stallUntil = 0, 0, 0
	return lost, n
}

// ClientHost is a workload client's endpoint: the protocol's Client sends through it and
// reports completed ops to it.
type ClientHost struct {
	c     *Cluster
	id    NodeID
	rng   *rand.Rand
	state *clientState
}

// ID is the client's NodeID (ClientIDBase + index).
func (ch *ClientHost) ID() NodeID { return ch.id }

// Index is the client's index, which is Op.Client of its ops.
func (ch *ClientHost) Index() uint32 { return uint32(ch.id - ClientIDBase) }

// Rand is the client's deterministic RNG stream.
func (ch *ClientHost) Rand() *rand.Rand { return ch.rng }

// Cluster is the run the client belongs to.
func (ch *ClientHost) Cluster() *Cluster { return ch.c }

// Send puts msg on the network to a replica host.
func (ch *ClientHost) Send(to NodeID, msg any) { ch.c.send(ch.id, to, msg) }

// Logf writes a trace line tagged with the client.
func (ch *ClientHost) Logf(format string, args ...any) {
	if ch.c.opts.Trace == nil {
		return
	}
	ch.c.Logf("c%d %s", ch.Index(), fmt.Sprintf(format, args...))
}

// Complete reports the output of the client's op seq. A report for an op the workload
// already gave up on is ignored.
func (ch *ClientHost) Complete(seq uint64, out Output) {
	ch.c.complete(ch.state, seq, out)
}

type clientState struct {
	host      *ClientHost
	client    Client
	cur       int // index into history of the outstanding op, -1 when idle
	seq       uint64
	nextStart int // global tick at which to start the next op
	lastSeen  [KeysMax]int64
}

func (c *Cluster) complete(cs *clientState, seq uint64, out Output) {
	if cs.cur < 0 {
		return
	}
	r := &c.history[cs.cur]
	if r.Op.Seq != seq {
		return
	}
	r.Out = out
	r.Return = c.now
	r.Status = OpDone
	c.stats.OpsDone++
	if c.healed && r.Call >= int64(c.stats.HealTick)*TickUnits {
		c.livenessDone++
	}
	switch r.Op.Kind {
	case OpGet:
		cs.lastSeen[r.Op.Key] = out.Value
	case OpPut:
		cs.lastSeen[r.Op.Key] = r.Op.Value
	case OpCAS:
		if out.OK {
			cs.lastSeen[r.Op.Key] = r.Op.Value
		}
	}
	c.Logf("c%d done #%d %s k%d -> %+v", cs.host.Index(), seq, r.Op.Kind, r.Op.Key, out)
	cs.cur = -1
	cs.nextStart = c.tick + c.workRand.IntN(c.params.ThinkTicks+1)
}

// workload ticks every client and starts the next op of each idle one. A client never gives
// up on an op: its Client retransmits (sessions make that safe) until the op completes, so
// every op in the history has a known outcome unless the run ends first. That keeps
// porcupine's search small (concurrency is at most the number of clients), where ops of
// unknown outcome, which stay open forever, make it exponential.
func (c *Cluster) workload() {
	for _, cs := range c.clients {
		if cs.cur < 0 && !c.workloadOff && c.tick >= cs.nextStart && (c.healed || len(c.history) < HistoryOpsMax) {
			c.startOp(cs)
		}
		cs.client.Tick()
	}
}

func (c *Cluster) startOp(cs *clientState) {
	r := c.workRand
	cs.seq++
	op := Op{Client: cs.host.Index(), Seq: cs.seq, Key: uint8(r.IntN(c.params.Keys))}
	switch k := r.IntN(100); {
	case k < 35:
		op.Kind = OpGet
	case k < 70:
		op.Kind = OpPut
		c.nextVal++
		op.Value = c.nextVal
	default:
		op.Kind = OpCAS
		c.nextVal++
		op.Value = c.nextVal
		op.Expect = cs.lastSeen[op.Key]
		if r.IntN(4) == 0 && c.nextVal > 1 {
			op.Expect = 1 + r.Int64N(c.nextVal-1)
		}
	}
	cs.cur = len(c.history)
	c.history = append(c.history, Record{Op: op, Call: c.now, Return: -1})
	c.Logf("c%d start #%d %s k%d val=%d exp=%d", op.Client, op.Seq, op.Kind, op.Key, op.Value, op.Expect)
	cs.client.Start(op)
}

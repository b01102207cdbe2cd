package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// toyProtocol is a minimal single-primary protocol used to test the simulator itself: host 1
// executes each client op after the op's record is durable on its disk, then replies. It is
// linearizable (one serial executor, durable before reply) but not fault tolerant: while host
// 1 is down nothing completes. With skipPersist it replies before the write is durable, the
// bug the linearizability checker must catch after a crash loses acknowledged writes.
type toyProtocol struct {
	c           *Cluster
	hosts       int
	skipPersist bool
	checkErr    error // injected Check failure, to test that Check errors stop a run
	deafOnHeal  bool  // the primary ignores requests once the faults heal (a liveness bug)
	deaf        bool
	replicas    []*toyReplica
}

type toyRequest struct{ op Op }
type toyReply struct {
	seq uint64
	out Output
}

func newToy(skipPersist bool) Factory {
	return func(c *Cluster) Protocol {
		return &toyProtocol{c: c, hosts: 1 + c.ProtoRand().IntN(3), skipPersist: skipPersist}
	}
}

func (p *toyProtocol) Describe() string {
	return fmt.Sprintf("toy primary-on-disk hosts=%d skipPersist=%v", p.hosts, p.skipPersist)
}
func (p *toyProtocol) Hosts() int   { return p.hosts }
func (p *toyProtocol) MaxDown() int { return p.hosts }

func (p *toyProtocol) StartReplica(h *Host, restart bool) Replica {
	img, _ := h.Disk().Image.(*KV)
	if img == nil {
		img = &KV{}
		h.Disk().Image = img
	}
	r := &toyReplica{p: p, h: h, kv: *img}
	for len(p.replicas) < int(h.ID()) {
		p.replicas = append(p.replicas, nil)
	}
	p.replicas[h.ID()-1] = r
	return r
}

func (p *toyProtocol) Crashed(id NodeID)              { p.replicas[id-1] = nil }
func (p *toyProtocol) NewClient(h *ClientHost) Client { return &toyClient{h: h} }
func (p *toyProtocol) Nemesis(rng *rand.Rand) string  { return "" }
func (p *toyProtocol) Heal()                          { p.deaf = p.deafOnHeal }
func (p *toyProtocol) Final() error                   { return nil }
func (p *toyProtocol) Check() error                   { return p.checkErr }

type toyReplica struct {
	p  *toyProtocol
	h  *Host
	kv KV // volatile copy; equals the image except for ops not yet durable (skipPersist)
}

func (r *toyReplica) Tick() {}

func (r *toyReplica) Deliver(from NodeID, msg any) {
	req, ok := msg.(toyRequest)
	if !ok || r.h.ID() != 1 || r.p.deaf {
		return
	}
	op := req.op
	img := r.h.Disk().Image.(*KV)
	if r.p.skipPersist {
		out, _ := r.kv.Apply(op)
		r.h.Send(from, toyReply{seq: op.Seq, out: out})
		r.h.Disk().Write(func() { img.Apply(op) }, nil)
		return
	}
	var out Output
	r.h.Disk().Write(func() { out, _ = img.Apply(op) }, func() {
		r.kv = *img
		r.h.Send(from, toyReply{seq: op.Seq, out: out})
	})
}

type toyClient struct {
	h     *ClientHost
	op    Op
	busy  bool
	ticks int
}

// toyRetryTicks is how long the toy client waits before retransmitting.
const toyRetryTicks = 5

func (c *toyClient) Start(op Op) {
	c.op, c.busy, c.ticks = op, true, 0
	c.h.Send(1, toyRequest{op: op})
}

func (c *toyClient) Deliver(from NodeID, msg any) {
	rep, ok := msg.(toyReply)
	if ok && c.busy && rep.seq == c.op.Seq {
		c.busy = false
		c.h.Complete(rep.seq, rep.out)
	}
}

func (c *toyClient) Tick() {
	if !c.busy {
		return
	}
	c.ticks++
	if c.ticks%toyRetryTicks == 0 {
		c.h.Send(1, toyRequest{op: c.op})
	}
}

var errToyCheck = errors.New("toy: injected invariant violation")

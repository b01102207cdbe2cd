package pbftcore

import (
	"slices"

	"github.com/consensusbench/consensusbench/internal/assert"
)

var nullDigest = BatchDigest(nil)

// viewChangeState is the replica's view-change bookkeeping (OSDI '99 §4.4; TOCS 2002 §4.5).
type viewChangeState struct {
	latest       []Message // per replica: its VIEW-CHANGE for the highest view seen (owned)
	timer        int
	timerStarted bool
	newView      Message // the NEW-VIEW of the current view, kept by its primary to resend
	hasNewView   bool
	// sharedOwn: replicas sent this replica's own VIEW-CHANGE for the current (active) view
	// in this retransmission period (see shareOwn).
	sharedOwn uint64
}

// canShareOwn reports whether this replica, active in its view, holds its own VIEW-CHANGE
// for that view and has not sent it to replica to in this retransmission period.
func (v *viewChangeState) canShareOwn(nd *Node, to int) bool {
	own := &v.latest[nd.id]
	return nd.viewActive && own.Type == MsgViewChange && own.View == nd.view && v.sharedOwn&(1<<to) == 0
}

// shareOwn sends this replica's own VIEW-CHANGE for its current view to a replica that is
// still changing to that view. A replica that restarted (a power cut) while changing views
// has lost the VIEW-CHANGEs it had collected, and the ones it lacks come from replicas that
// have since entered the view and stopped retransmitting theirs; without them it never sees
// 2f+1 replicas changing, so its view-change timer never starts and it waits forever for a
// NEW-VIEW whose primary may have moved on (OSDI '99 §4.5.2; Castro's thesis retransmits
// view-change messages on request for the same reason).
func (v *viewChangeState) shareOwn(nd *Node, to int) {
	c := CloneMessage(&v.latest[nd.id])
	c.To = to
	nd.msgs = append(nd.msgs, c)
	v.sharedOwn |= 1 << to
}

func (v *viewChangeState) init(n int) { v.latest = make([]Message, n) }

// resendOwn re-multicasts this replica's VIEW-CHANGE while the view change is unfinished.
func (v *viewChangeState) resendOwn(nd *Node) {
	if own := &v.latest[nd.id]; own.Type == MsgViewChange && own.View == nd.view {
		nd.msgs = append(nd.msgs, *own)
	}
}

// CloneMessage deep-copies m so the copy owns all its bytes (the simulator keeps delayed
// messages; a Byzantine replica keeps old ones to replay).
func CloneMessage(m *Message) Message {
	c := *m
	c.Requests = cloneRequests(m.Requests)
	c.Result = slices.Clone(m.Result)
	c.Data = slices.Clone(m.Data)
	c.Auth = slices.Clone(m.Auth)
	c.Checkpoints = cloneMessages(m.Checkpoints)
	c.ViewChanges = cloneMessages(m.ViewChanges)
	c.PrePrepares = cloneMessages(m.PrePrepares)
	c.PrePrepared = slices.Clone(m.PrePrepared)
	c.Prepared = slices.Clone(m.Prepared)
	return c
}

func cloneMessages(ms []Message) []Message {
	if ms == nil {
		return nil
	}
	out := make([]Message, len(ms))
	for i := range ms {
		out[i] = CloneMessage(&ms[i])
	}
	return out
}

func cloneRequests(rs []Request) []Request {
	if rs == nil {
		return nil
	}
	out := make([]Request, len(rs))
	for i, r := range rs {
		r.Op = slices.Clone(r.Op)
		r.Auth = slices.Clone(r.Auth)
		out[i] = r
	}
	return out
}

// startViewChange moves to view v and multicasts ⟨VIEW-CHANGE, v, h, C, P, Q, i⟩ (OSDI '99
// §4.4; P and Q as in TOCS 2002 §4.5 so that MAC-authenticated prepares need not be
// transferable). The replica stops accepting normal-case messages until NEW-VIEW.
func (nd *Node) startViewChange(v uint64) {
	if v <= nd.view && !(v == nd.view && nd.viewActive) {
		return
	}
	nd.view = v
	nd.viewActive = false
	nd.logRecord(Record{Kind: RecView, View: v})
	nd.sendViewChange()
}

// sendViewChange multicasts this replica's VIEW-CHANGE for its current view, built from its
// stable checkpoint and its P and Q sets.
func (nd *Node) sendViewChange() {
	v := nd.view
	nd.reqTimer = 0
	nd.vc.timer, nd.vc.timerStarted = 0, false
	nd.vc.hasNewView = false
	nd.qHead, nd.qLen, nd.qBytes, nd.batchWait = 0, 0, 0, 0
	m := Message{Type: MsgViewChange, From: nd.id, To: ToAll, View: v, Seq: nd.h, Digest: nd.stableDigest,
		Checkpoints: nd.stableProof}
	for seq := nd.h + 1; seq <= nd.h+nd.cfg.WindowSize; seq++ {
		s := nd.existingSlot(seq)
		if s == nil {
			continue
		}
		if s.hasP {
			assert.True(s.bufs[s.pBuf].valid && s.bufs[s.pBuf].batch == s.pDigest, "pbftcore: the P entry's batch is held")
			m.Prepared = append(m.Prepared, PreparedEntry{Seq: seq, View: s.pView, Digest: s.pDigest})
		}
		// Q lists only the pre-prepared batches this replica holds and can serve (PBFT TOCS
		// 2002 §4.5, rule A2; see takeEntry).
		for i := range s.nq {
			if s.bufs[i].valid {
				m.PrePrepared = append(m.PrePrepared, s.q[i])
			}
		}
	}
	m.Auth = nd.auth.Seal(&m, nil)
	own := CloneMessage(&m)
	nd.vc.latest[nd.id] = own
	nd.msgs = append(nd.msgs, own)
	nd.checkViewChangeQuorum()
}

// validViewChange checks a VIEW-CHANGE's structure and proofs: the checkpoint certificate
// C, and P and Q entries inside the sender's window, P in increasing sequence order. Lies
// that are well formed (claims of prepared certificates the sender cannot prove) are defused
// by the decision procedure. Its size is bounded: C by n, P by L, Q by L*MaxPrePreparedPerSeq.
func (nd *Node) validViewChange(m *Message) bool {
	if m.Type != MsgViewChange || m.View == 0 || m.From < 0 || m.From >= nd.n {
		return false
	}
	d, ok := nd.validCheckpointProof(m.Seq, m.Checkpoints)
	if !ok || (m.Seq > 0 && d != m.Digest) {
		return false
	}
	L := nd.cfg.WindowSize
	lastSeq := m.Seq
	for i := range m.Prepared {
		p := &m.Prepared[i]
		if p.Seq <= lastSeq || p.Seq > m.Seq+L || p.View >= m.View {
			return false
		}
		lastSeq = p.Seq
	}
	if len(m.PrePrepared) > int(L)*MaxPrePreparedPerSeq {
		return false
	}
	for _, q := range m.PrePrepared {
		if q.Seq <= m.Seq || q.Seq > m.Seq+L || q.View >= m.View {
			return false
		}
	}
	return true
}

// stepViewChange: OSDI '99 §4.4 and §4.5.2 (liveness: join once f+1 replicas are in higher
// views).
func (nd *Node) stepViewChange(m *Message) error {
	if m.View < nd.view || (m.View == nd.view && nd.viewActive) {
		// A replica still changing to our view lost the NEW-VIEW: its primary resends it. A
		// primary restored from its log without the NEW-VIEW it sent (it is not logged) moves
		// on to the next view instead, once, so the laggards are not left waiting for a timer.
		switch {
		case m.View == nd.view && nd.vc.hasNewView:
			nv := nd.vc.newView
			nv.To = m.From
			nd.msgs = append(nd.msgs, nv)
		case m.View == nd.view && nd.lostNewView && nd.viewActive && nd.validViewChange(m):
			nd.lostNewView = false
			nd.startViewChange(nd.view + 1)
			return nil
		case m.View == nd.view && nd.vc.canShareOwn(nd, m.From):
			nd.vc.shareOwn(nd, m.From)
		}
		return ErrStale
	}
	if !nd.validViewChange(m) {
		return ErrBadProof
	}
	if prev := &nd.vc.latest[m.From]; prev.Type == MsgViewChange && prev.View >= m.View {
		return nil
	}
	nd.vc.latest[m.From] = CloneMessage(m)
	// Join rule: f+1 other replicas in views above ours.
	cur := nd.view
	var above []uint64
	for i := range nd.vc.latest {
		l := &nd.vc.latest[i]
		if i != nd.id && l.Type == MsgViewChange && l.View > cur {
			above = append(above, l.View)
		}
	}
	if len(above) >= nd.f+1 {
		nd.startViewChange(slices.Min(above))
		return nil
	}
	nd.checkViewChangeQuorum()
	return nil
}

// viewChangesFor returns the latest VIEW-CHANGE of every replica that is for view v.
func (nd *Node) viewChangesFor(v uint64) []*Message {
	var s []*Message
	for i := range nd.vc.latest {
		if l := &nd.vc.latest[i]; l.Type == MsgViewChange && l.View == v {
			s = append(s, l)
		}
	}
	return s
}

// checkViewChangeQuorum starts the view-change timer once 2f+1 replicas are changing to this
// view (OSDI '99 §4.5.2), and lets the new primary try to build NEW-VIEW.
func (nd *Node) checkViewChangeQuorum() {
	if nd.viewActive {
		return
	}
	// The timer starts once 2f+1 replicas are changing to this view or beyond it: a replica
	// that already moved further still abandoned our view, and counting it keeps replicas
	// split across two views (with a faulty one silent) from waiting on each other forever.
	moved := 0
	for i := range nd.vc.latest {
		if l := &nd.vc.latest[i]; l.Type == MsgViewChange && l.View >= nd.view {
			moved++
		}
	}
	if moved >= nd.quorum() && !nd.vc.timerStarted {
		nd.vc.timerStarted = true
		nd.vc.timer = nd.timeout()
	}
	s := nd.viewChangesFor(nd.view)
	if len(s) < nd.quorum() {
		return
	}
	if nd.primaryOf(nd.view) != nd.id {
		return
	}
	dec, ok := nd.decide(s)
	if !ok {
		return // wait for more VIEW-CHANGEs
	}
	nv := Message{Type: MsgNewView, From: nd.id, To: ToAll, View: nd.view, Seq: dec.minS, Digest: dec.ckptDigest}
	for _, v := range s {
		nv.ViewChanges = append(nv.ViewChanges, *v)
	}
	for _, o := range dec.o {
		nv.PrePrepares = append(nv.PrePrepares, Message{Type: MsgPrePrepare, From: nd.id, View: nd.view,
			Seq: o.seq, Digest: o.digest})
	}
	nv.Auth = nd.auth.Seal(&nv, nil)
	nd.vc.newView = CloneMessage(&nv)
	nd.vc.hasNewView = true
	nd.msgs = append(nd.msgs, nd.vc.newView)
	nd.enterView(&dec)
}

type oEntry struct {
	seq    uint64
	digest Digest // nullDigest for a null request
}

type decision struct {
	minS       uint64
	ckptDigest Digest
	ckptProof  []Message
	o          []oEntry
}

// decide runs the new primary's decision procedure over the view-change set S (TOCS 2002
// §4.5, Fig. 4, with checkpoint certificates in C): min-s is the highest stable checkpoint
// proven in S; for each n in (min-s, max-s] choose a request with digest d prepared in view
// v if (A1) 2f+1 messages have no P entry for n with a higher view or the same view and
// another digest, and (A2) f+1 messages pre-prepared d for n in a view >= v; or a null
// request if (B) 2f+1 messages have no P entry for n. ok is false if some n is undecided.
func (nd *Node) decide(S []*Message) (decision, bool) {
	var dec decision
	for _, m := range S {
		if m.Seq >= dec.minS {
			if m.Seq > dec.minS || dec.ckptProof == nil {
				dec.minS, dec.ckptDigest, dec.ckptProof = m.Seq, m.Digest, m.Checkpoints
			}
		}
	}
	maxS := dec.minS
	for _, m := range S {
		for _, p := range m.Prepared {
			maxS = max(maxS, p.Seq)
		}
	}
	for n := dec.minS + 1; n <= maxS; n++ {
		e, ok := nd.decideSeq(S, n)
		if !ok {
			return dec, false
		}
		dec.o = append(dec.o, e)
	}
	return dec, true
}

func findP(m *Message, n uint64) *PreparedEntry {
	for i := range m.Prepared {
		if m.Prepared[i].Seq == n {
			return &m.Prepared[i]
		}
	}
	return nil
}

func (nd *Node) decideSeq(S []*Message, n uint64) (oEntry, bool) {
	for _, cand := range S {
		p := findP(cand, n)
		if p == nil {
			continue
		}
		if nd.ruleA(S, n, p.View, p.Digest) {
			return oEntry{seq: n, digest: p.Digest}, true
		}
	}
	if nd.ruleB(S, n) {
		return oEntry{seq: n, digest: nullDigest}, true
	}
	return oEntry{}, false
}

func (nd *Node) ruleA(S []*Message, n, v uint64, d Digest) bool {
	a1, a2 := 0, 0
	for _, m := range S {
		if m.Seq < n {
			if p := findP(m, n); p == nil || p.View < v || (p.View == v && p.Digest == d) {
				a1++
			}
		}
		for _, q := range m.PrePrepared {
			if q.Seq == n && q.Digest == d && q.View >= v {
				a2++
				break
			}
		}
	}
	return a1 >= nd.quorum() && a2 >= nd.f+1
}

func (nd *Node) ruleB(S []*Message, n uint64) bool {
	c := 0
	for _, m := range S {
		if m.Seq < n && findP(m, n) == nil {
			c++
		}
	}
	return c >= nd.quorum()
}

// stepNewView: OSDI '99 §4.4. A backup accepts NEW-VIEW for a view at least its own if it is
// signed by that view's primary, carries 2f+1 valid VIEW-CHANGEs from distinct replicas for
// the view, and O is what the decision procedure yields on them (recomputed here).
func (nd *Node) stepNewView(m *Message) error {
	if m.View < nd.view || (m.View == nd.view && nd.viewActive) {
		return ErrStale
	}
	if m.From != nd.primaryOf(m.View) {
		return ErrNotPrimary
	}
	if len(m.ViewChanges) < nd.quorum() || len(m.ViewChanges) > nd.n {
		return ErrBadNewView
	}
	var seen uint64
	S := make([]*Message, 0, len(m.ViewChanges))
	for i := range m.ViewChanges {
		vc := &m.ViewChanges[i]
		if vc.View != m.View || !nd.validViewChange(vc) || seen&(1<<vc.From) != 0 || !nd.auth.verifySigned(vc) {
			return ErrBadNewView
		}
		seen |= 1 << vc.From
		S = append(S, vc)
	}
	// Recompute: min-s, then check each O entry satisfies rule A or B.
	dec, ok := nd.decide(S)
	if !ok || dec.minS != m.Seq || dec.ckptDigest != m.Digest || len(dec.o) != len(m.PrePrepares) {
		return ErrBadNewView
	}
	for i := range m.PrePrepares {
		pp := &m.PrePrepares[i]
		want := dec.minS + uint64(i) + 1
		if pp.Type != MsgPrePrepare || pp.View != m.View || pp.Seq != want || len(pp.Requests) != 0 {
			return ErrBadNewView
		}
		// Rule A (a prepared batch, possibly a null request prepared in an earlier view) or
		// rule B (a null request for a gap).
		ruleA := nd.validChoice(S, want, pp.Digest)
		ruleB := pp.Digest == nullDigest && nd.ruleB(S, want)
		if !ruleA && !ruleB {
			return ErrBadNewView
		}
		dec.o[i] = oEntry{seq: want, digest: pp.Digest}
	}
	dec.ckptProof = cloneMessages(dec.ckptProof)
	nd.view = m.View
	nd.enterView(&dec)
	return nil
}

// validChoice reports whether some P entry in S for n with digest d satisfies rule A.
func (nd *Node) validChoice(S []*Message, n uint64, d Digest) bool {
	for _, m := range S {
		if p := findP(m, n); p != nil && p.Digest == d && nd.ruleA(S, n, p.View, d) {
			return true
		}
	}
	return false
}

// enterView installs the new view's checkpoint and O set: every replica pre-prepares the
// O entries in the new view and backups multicast PREPAREs for them (OSDI '99 §4.4); batches
// this replica does not hold are fetched (fetch.go).
func (nd *Node) enterView(dec *decision) {
	nd.viewActive = true
	nd.logRecord(Record{Kind: RecView, View: nd.view, Active: true})
	nd.vc.timer, nd.vc.timerStarted = 0, false
	if dec.minS > nd.h {
		nd.installStable(dec.minS, dec.ckptDigest, dec.ckptProof)
	}
	for i := range nd.log {
		if s := &nd.log[i]; s.seq > nd.h {
			s.resetView()
		}
	}
	primary := nd.isPrimary()
	for _, o := range dec.o {
		if !nd.inWindow(o.seq) {
			continue
		}
		s := nd.slotFor(o.seq)
		nd.acceptDigest(s, nd.view, o.digest)
		if !primary && !s.missing {
			nd.sendOwnPrepare(s)
		}
	}
	last := dec.minS
	if len(dec.o) > 0 {
		last = dec.o[len(dec.o)-1].seq
	}
	nd.nextSeq = max(last, nd.h)
	for i := range nd.clients {
		nd.clients[i].queuedTs = nd.clients[i].lastTs
		nd.clients[i].claimQueued = Digest{}
	}
	// The O set's requests are proposed in this view already: neither a client's
	// retransmission nor takeOverHeld orders them a second time.
	for _, o := range dec.o {
		if s := nd.existingSlot(o.seq); s != nil && !s.missing {
			for _, r := range s.batch().reqs {
				cs := &nd.clients[r.Client]
				cs.queuedTs = max(cs.queuedTs, r.Timestamp)
			}
		}
	}
	if nd.waiting > 0 {
		nd.reqTimer = nd.timeout()
	}
	for _, o := range dec.o {
		if s := nd.existingSlot(o.seq); s != nil {
			nd.checkPrepared(s)
		}
	}
	nd.takeOverHeld()
}

// takeOverHeld hands the new view the requests that clients retransmitted to this replica
// and that have not executed (clientState.held): the primary queues them, the backups relay
// them to it (OSDI '99 §4.4: a backup that receives a request relays it to the primary).
// The clients retransmitted because the old primary did not answer, so these are the
// requests the view change is for: ordering them now completes them one view change after
// their first retransmission, not at the client's next one. The relays cover a new primary
// that missed the retransmission. Requests in the NEW-VIEW's O set are skipped (queuedTs),
// unless their batch is still being fetched here; one ordered twice executes once
// (clientState.lastTs), as a client's retransmission does. A held claim (timestamp 0) is
// taken over the same way while this replica still waits for one of its principal's claims;
// the primary orders one copy per principal (claimQueued), and a claim ordered twice is
// answered twice with the same grant (it is idempotent per nonce).
func (nd *Node) takeOverHeld() {
	primary := nd.isPrimary()
	for i := range nd.clients {
		cs := &nd.clients[i]
		if c := &cs.heldClaim; cs.claimWaiting && len(c.req.Op) > 0 && !(primary && cs.claimQueued == c.digest) {
			if nd.handOver(c, primary) {
				cs.claimQueued = c.digest
			}
		}
		h := &cs.held
		if h.req.Timestamp <= cs.lastTs || !nd.acceptsTimestamp(cs, h.req.Timestamp) {
			continue // executed (or never held), or its holder's grant has expired since
		}
		if h.req.Timestamp <= cs.queuedTs {
			continue // in the O set
		}
		if nd.handOver(h, primary) {
			cs.queuedTs = h.req.Timestamp
			nd.waitFor(cs, h.req.Timestamp)
		}
	}
	if primary {
		nd.maybeCutBatches(false) // a partial batch goes at the next flush tick, as any other
	}
}

// handOver gives the new view a held request: a backup relays it to the primary and
// reports false; the primary queues it and reports true, unless its queue is full (the
// client's next retransmission brings it again).
func (nd *Node) handOver(h *queued, primary bool) bool {
	if !primary {
		nd.relayToPrimary([]Request{h.req})
		return false
	}
	if nd.qLen == len(nd.queue) {
		return false
	}
	nd.enqueue(&h.req, h.digest)
	return true
}

// Package byz implements the Byzantine replica behaviours that pbftcore's transcript tests
// and the simulator inject: a faulty replica runs the correct core and byz rewrites what it
// sends, using only that replica's own keys (so every lie is as well authenticated as a
// real faulty replica could make it). It must not be used outside tests and the simulator.
package byz

import (
	"fmt"
	"slices"

	"github.com/consensusbench/consensusbench/pbftcore"
)

// Behaviour names one kind of Byzantine replica.
type Behaviour int

// Behaviours.
const (
	Honest          Behaviour = iota
	Silent                    // sends nothing
	Equivocate                // primary: different pre-prepares for one seq to different backups
	WrongDigest               // pre-prepares, prepares and commits carry a wrong digest
	ForgeMAC                  // authenticators are corrupted
	MissingMAC                // authenticators are stripped
	Replay                    // replays its messages from older views alongside new ones
	SlowPrimary               // holds its pre-prepares back past the view-change timeout
	LyingViewChange           // VIEW-CHANGEs claim prepared certificates it cannot prove
	BadNewView                // as new primary, NEW-VIEW's O drops a prepared request
	BadState                  // serves corrupted state-transfer chunks and fetched batches
	// PartialPrePrepare: as primary, sends each pre-prepare (with its real, authentic batch)
	// and NEW-VIEW to its Targets only (one correct replica), serves no batch, sends no
	// PREPARE or COMMIT in the next view where it hid a batch, and in every VIEW-CHANGE for a
	// view at least two above a hidden pre-prepare's claims that batch prepared (in P and Q)
	// at its sequence number.
	PartialPrePrepare
	// ForgeRequest: as primary, alters a client request in each pre-prepare (its operation's
	// last byte) under a batch digest recomputed to match. The client's MACs no longer hold at
	// any backup: backups may accept such a pre-prepare, but none may prepare it.
	ForgeRequest
	numBehaviours
)

var names = [...]string{"honest", "silent", "equivocate", "wrong-digest", "forge-mac", "missing-mac",
	"replay", "slow-primary", "lying-view-change", "bad-new-view", "bad-state", "partial-pre-prepare",
	"forge-request"}

func (b Behaviour) String() string {
	if b >= 0 && b < numBehaviours {
		return names[b]
	}
	return fmt.Sprintf("Behaviour(%d)", int(b))
}

// Parse returns the behaviour named s.
func Parse(s string) (Behaviour, error) {
	for i, n := range names {
		if n == s {
			return Behaviour(i), nil
		}
	}
	return 0, fmt.Errorf("byz: unknown behaviour %q", s)
}

// All lists every faulty behaviour (not Honest).
func All() []Behaviour {
	out := make([]Behaviour, 0, numBehaviours-1)
	for b := Silent; b < numBehaviours; b++ {
		out = append(out, b)
	}
	return out
}

// MaxReplayKept bounds the messages a replaying replica remembers.
const MaxReplayKept = 64

// MaxHiddenKept bounds the hidden pre-prepares a PartialPrePrepare replica remembers to
// claim.
const MaxHiddenKept = 64

// hidden is a pre-prepare a PartialPrePrepare primary sent to its targets only.
type hidden struct {
	view, seq uint64
	digest    pbftcore.Digest
}

type held struct {
	due int
	m   pbftcore.Message
}

// Replica rewrites the output of one faulty replica.
type Replica struct {
	B          Behaviour
	ID, N      int
	DelayTicks int // SlowPrimary: how long pre-prepares are held
	auth       *pbftcore.Authenticator
	now        int
	old        []pbftcore.Message
	maxView    uint64
	maxSeq     uint64
	held       []held
	// Targets are the replicas a PartialPrePrepare primary sends its pre-prepares to: by
	// default the next replica (the primary of the next view); the simulator names one
	// correct replica, plus the other faulty ones.
	Targets []int
	hidden  []hidden
	// Claims counts the VIEW-CHANGEs a PartialPrePrepare replica sent claiming a hidden
	// batch prepared.
	Claims int
}

// New returns the rewriter for replica keys.ID of n with behaviour b.
func New(b Behaviour, keys *pbftcore.Keys, n int, signAll bool, delayTicks int) *Replica {
	return &Replica{B: b, ID: keys.ID, N: n, DelayTicks: delayTicks, auth: pbftcore.NewAuthenticator(keys, signAll),
		Targets: []int{(keys.ID + 1) % n}}
}

func (r *Replica) seal(m *pbftcore.Message) {
	m.Auth = r.auth.Seal(m, nil)
}

// Transform returns what the faulty replica sends in place of m (owned copies).
func (r *Replica) Transform(m *pbftcore.Message) []pbftcore.Message {
	switch r.B {
	case Silent:
		return nil
	case Equivocate:
		if m.Type == pbftcore.MsgPrePrepare && m.To == pbftcore.ToAll {
			return r.equivocate(m)
		}
	case WrongDigest:
		if m.Type == pbftcore.MsgPrePrepare || m.Type == pbftcore.MsgPrepare || m.Type == pbftcore.MsgCommit {
			c := pbftcore.CloneMessage(m)
			c.Digest[0] ^= 0xff
			r.seal(&c)
			return []pbftcore.Message{c}
		}
	case ForgeMAC:
		if m.Type != pbftcore.MsgRequest && len(m.Auth) > 0 {
			c := pbftcore.CloneMessage(m)
			for i := range c.Auth {
				c.Auth[i] ^= 0x5a
			}
			return []pbftcore.Message{c}
		}
	case MissingMAC:
		if m.Type != pbftcore.MsgRequest {
			c := pbftcore.CloneMessage(m)
			c.Auth = nil
			return []pbftcore.Message{c}
		}
	case Replay:
		return r.replay(m)
	case SlowPrimary:
		if m.Type == pbftcore.MsgPrePrepare || m.Type == pbftcore.MsgNewView {
			r.held = append(r.held, held{due: r.now + r.DelayTicks, m: pbftcore.CloneMessage(m)})
			return nil
		}
	case LyingViewChange:
		if m.Type == pbftcore.MsgViewChange {
			return []pbftcore.Message{r.lie(m)}
		}
	case BadNewView:
		if m.Type == pbftcore.MsgNewView {
			return []pbftcore.Message{r.badNewView(m)}
		}
	case BadState:
		if m.Type == pbftcore.MsgStateChunk {
			c := pbftcore.CloneMessage(m)
			c.Data = append(c.Data, 'X')
			r.seal(&c)
			return []pbftcore.Message{c}
		}
		if m.Type == pbftcore.MsgBatch {
			// A forged batch under the requested digest: the asker's hash check rejects it.
			c := pbftcore.CloneMessage(m)
			if len(c.Requests) > 0 {
				c.Requests[0].Op = append(c.Requests[0].Op, "forged"...)
			}
			r.seal(&c)
			return []pbftcore.Message{c}
		}
	case ForgeRequest:
		if m.Type == pbftcore.MsgPrePrepare && len(m.Requests) > 0 {
			c := pbftcore.CloneMessage(m)
			last := &c.Requests[len(c.Requests)-1]
			if len(last.Op) > 0 {
				last.Op[len(last.Op)-1] ^= 1
			}
			c.Digest = pbftcore.BatchDigest(c.Requests)
			r.seal(&c)
			return []pbftcore.Message{c}
		}
	case PartialPrePrepare:
		switch m.Type {
		case pbftcore.MsgPrePrepare, pbftcore.MsgNewView:
			return r.hide(m)
		case pbftcore.MsgBatch:
			return nil // nobody gets a hidden batch from here
		case pbftcore.MsgViewChange:
			return []pbftcore.Message{r.claimHidden(m)}
		case pbftcore.MsgPrepare, pbftcore.MsgCommit:
			if r.hides(m.Seq, m.View) {
				return nil // no help for the next view's batch where a hidden one will be claimed
			}
		}
	}
	return []pbftcore.Message{pbftcore.CloneMessage(m)}
}

// Tick advances the rewriter's clock and returns held messages now due.
func (r *Replica) Tick() []pbftcore.Message {
	r.now++
	var out []pbftcore.Message
	kept := r.held[:0]
	for _, h := range r.held {
		if h.due <= r.now {
			out = append(out, h.m)
		} else {
			kept = append(kept, h)
		}
	}
	r.held = kept
	if r.B == Replay && r.now%ReplayEveryTicks == 0 {
		out = append(out, r.staleReplays()...)
	}
	return out
}

// equivocate sends the real batch to even backups and a different (shorter) batch for the
// same (view, seq) to odd ones, each validly authenticated point to point.
func (r *Replica) equivocate(m *pbftcore.Message) []pbftcore.Message {
	var out []pbftcore.Message
	for j := range r.N {
		if j == r.ID {
			continue
		}
		c := pbftcore.CloneMessage(m)
		c.To = j
		if j%2 == 1 {
			if len(c.Requests) > 0 {
				c.Requests = c.Requests[:len(c.Requests)-1]
			} else {
				c.Requests = nil
			}
			c.Digest = pbftcore.BatchDigest(c.Requests)
			if c.Digest == m.Digest {
				c.Digest[0] ^= 1 // empty batch both ways: still differ
			}
		}
		r.seal(&c)
		out = append(out, c)
	}
	return out
}

// replay remembers normal-case messages; Tick re-sends the stale ones (older views, older
// checkpoints) every ReplayEveryTicks. Replaying from Tick rather than per message keeps two
// replaying replicas from amplifying each other's answers without bound.
func (r *Replica) replay(m *pbftcore.Message) []pbftcore.Message {
	switch m.Type {
	case pbftcore.MsgPrePrepare, pbftcore.MsgPrepare, pbftcore.MsgCommit, pbftcore.MsgCheckpoint:
		if len(r.old) < MaxReplayKept {
			r.old = append(r.old, pbftcore.CloneMessage(m))
		}
		if m.Type == pbftcore.MsgCheckpoint {
			r.maxSeq = max(r.maxSeq, m.Seq)
		} else {
			r.maxView = max(r.maxView, m.View)
		}
	case pbftcore.MsgViewChange:
		r.maxView = max(r.maxView, m.View)
	}
	return []pbftcore.Message{pbftcore.CloneMessage(m)}
}

// ReplayEveryTicks is how often a replaying replica re-sends its stale messages.
const ReplayEveryTicks = 5

func (r *Replica) staleReplays() []pbftcore.Message {
	var out []pbftcore.Message
	for i := range r.old {
		o := &r.old[i]
		if (o.Type == pbftcore.MsgCheckpoint && o.Seq < r.maxSeq) || (o.Type != pbftcore.MsgCheckpoint && o.View < r.maxView) {
			out = append(out, *o)
		}
	}
	return out
}

// lie adds to a VIEW-CHANGE a prepared entry (and matching Q entry) for a batch that never
// prepared, in the highest view it may claim, for the first sequence number above h, and
// re-signs it with the replica's own key.
func (r *Replica) lie(m *pbftcore.Message) pbftcore.Message {
	c := pbftcore.CloneMessage(m)
	fake := []pbftcore.Request{{Client: 0, Timestamp: 1 << 40, Op: []byte("forged"), Auth: make([]byte, pbftcore.MACSize*r.N)}}
	d := pbftcore.BatchDigest(fake)
	seq := c.Seq + 1
	entry := pbftcore.PreparedEntry{Seq: seq, View: c.View - 1, Digest: d}
	if len(c.Prepared) > 0 && c.Prepared[0].Seq == seq {
		c.Prepared[0] = entry
	} else {
		c.Prepared = append([]pbftcore.PreparedEntry{entry}, c.Prepared...)
	}
	c.PrePrepared = append(c.PrePrepared, pbftcore.PrePreparedEntry{Seq: seq, View: c.View - 1, Digest: d})
	r.seal(&c)
	return c
}

// badNewView replaces the first request batch in NEW-VIEW's O set with a null request (the
// new primary "forgets" a prepared request), or appends a null request past max-s, and
// re-signs it.
func (r *Replica) badNewView(m *pbftcore.Message) pbftcore.Message {
	c := pbftcore.CloneMessage(m)
	null := pbftcore.BatchDigest(nil)
	for i := range c.PrePrepares {
		if c.PrePrepares[i].Digest != null {
			c.PrePrepares[i].Digest = null
			r.seal(&c)
			return c
		}
	}
	next := c.Seq + uint64(len(c.PrePrepares)) + 1
	c.PrePrepares = append(c.PrePrepares, pbftcore.Message{Type: pbftcore.MsgPrePrepare, From: r.ID, View: c.View,
		Seq: next, Digest: null})
	r.seal(&c)
	return c
}

// hide sends a pre-prepare of this replica's own view (it is the primary) to its targets
// only, each point to point with a valid authenticator, and remembers the first batch it hid
// at each sequence number to claim later (a later one would only make the claim weaker). The
// batch is the real one: the targets accept it and record it in their Q sets. A NEW-VIEW
// (its O set pre-prepares too) also goes to the targets only.
func (r *Replica) hide(m *pbftcore.Message) []pbftcore.Message {
	known := m.Type != pbftcore.MsgPrePrepare || len(m.Requests) == 0
	for _, h := range r.hidden {
		known = known || h.seq == m.Seq
	}
	if !known {
		if len(r.hidden) == MaxHiddenKept {
			r.hidden = r.hidden[1:]
		}
		r.hidden = append(r.hidden, hidden{view: m.View, seq: m.Seq, digest: m.Digest})
	}
	var out []pbftcore.Message
	for _, t := range r.Targets {
		if t == r.ID || (m.To != pbftcore.ToAll && m.To != t) {
			continue
		}
		c := pbftcore.CloneMessage(m)
		c.To = t
		r.seal(&c)
		out = append(out, c)
	}
	return out
}

// hides reports whether a batch was hidden at seq in the view before view (the claims start
// in the view after that).
func (r *Replica) hides(seq, view uint64) bool {
	for _, h := range r.hidden {
		if h.seq == seq && h.view+1 == view {
			return true
		}
	}
	return false
}

// Hid reports whether this replica (as a PartialPrePrepare primary) hid batch d at seq and
// still means to claim it.
func (r *Replica) Hid(seq uint64, d pbftcore.Digest) bool {
	for _, h := range r.hidden {
		if h.seq == seq && h.digest == d {
			return true
		}
	}
	return false
}

// claimHidden rewrites a VIEW-CHANGE for view v so that it claims every hidden pre-prepare
// of a view below v-1 above the checkpoint as prepared: a P entry (replacing the replica's
// own for that number) and a Q entry for its digest in the view it was pre-prepared in. The
// view change right after the pre-prepare goes out unchanged, so the next primary may assign
// that number to another batch first.
func (r *Replica) claimHidden(m *pbftcore.Message) pbftcore.Message {
	c := pbftcore.CloneMessage(m)
	kept := r.hidden[:0]
	claimed := false
	for _, h := range r.hidden {
		if h.seq <= c.Seq {
			continue // below the checkpoint: forgotten
		}
		kept = append(kept, h)
		if h.view+1 >= c.View {
			continue
		}
		claimed = true
		entry := pbftcore.PreparedEntry{Seq: h.seq, View: h.view, Digest: h.digest}
		at := len(c.Prepared)
		for i, p := range c.Prepared {
			if p.Seq >= h.seq {
				at = i
				break
			}
		}
		if at < len(c.Prepared) && c.Prepared[at].Seq == h.seq {
			c.Prepared[at] = entry
		} else {
			c.Prepared = slices.Insert(c.Prepared, at, entry)
		}
		listed := false
		for i, q := range c.PrePrepared {
			if q.Seq == h.seq && q.Digest == h.digest {
				c.PrePrepared[i].View = max(q.View, h.view)
				listed = true
			}
		}
		if !listed {
			c.PrePrepared = append(c.PrePrepared, pbftcore.PrePreparedEntry{Seq: h.seq, View: h.view, Digest: h.digest})
		}
	}
	r.hidden = kept
	if !claimed {
		return c
	}
	r.Claims++
	r.seal(&c)
	return c
}

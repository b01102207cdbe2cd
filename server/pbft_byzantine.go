package server

import (
	"fmt"

	"github.com/consensusbench/consensusbench/pbftcore"
)

// ByzantineMode makes a PBFT replica misbehave on purpose, so that benchmarks can show what
// up to f faulty replicas cost and that clients still get correct, linearizable results
// (Castro and Liskov §4: safety with at most f = (n-1)/3 faulty replicas). The modes act on
// what the replica sends; it still receives, orders and executes like an honest one, so it
// keeps lying in every view.
type ByzantineMode int32

// The modes (`node --byzantine MODE`).
const (
	ByzantineNone ByzantineMode = iota
	// ByzantineSilent sends nothing: no protocol message and no client reply (a replica that
	// looks alive on the network but never helps, worse than a crash for timeouts).
	ByzantineSilent
	// ByzantineEquivocate tells different replicas different things. As primary it sends
	// odd-numbered peers the true PRE-PREPARE and the others a PRE-PREPARE for the same
	// (view, seq) with another valid batch (the same authenticated client requests in
	// reverse order, or without the last one) under that batch's correct digest: two
	// conflicting proposals that each pass every check a backup can make alone (§4.2). Its
	// PREPARE and COMMIT messages carry the true digest to odd-numbered peers and another,
	// validly authenticated, digest to the others; its client replies carry wrong results.
	ByzantineEquivocate
	// ByzantineBadDigest sends PRE-PREPARE, PREPARE and COMMIT with a wrong (but validly
	// authenticated) digest, and client replies with wrong results.
	ByzantineBadDigest
	// ByzantineBadMAC corrupts the authenticator of everything it sends, so receivers
	// discard it (§4.1: messages whose authenticator does not check are dropped).
	ByzantineBadMAC
)

var byzantineNames = []string{"none", "silent", "equivocate", "bad-digest", "bad-mac"}

// String names the mode as the node flag spells it.
func (m ByzantineMode) String() string {
	if m >= 0 && int(m) < len(byzantineNames) {
		return byzantineNames[m]
	}
	return fmt.Sprintf("ByzantineMode(%d)", int32(m))
}

// ParseByzantineMode reads a --byzantine value ("" and "none" are honest).
func ParseByzantineMode(s string) (ByzantineMode, error) {
	if s == "" {
		return ByzantineNone, nil
	}
	for i, n := range byzantineNames {
		if s == n {
			return ByzantineMode(i), nil
		}
	}
	return 0, fmt.Errorf("byzantine mode %q: want silent, equivocate, bad-digest or bad-mac", s)
}

// SetByzantine switches the replica's Byzantine behaviour (ByzantineNone: honest). Safe to
// call at any time from any goroutine; the driver applies it to the next message it sends.
func (r *PBFTReplica) SetByzantine(m ByzantineMode) {
	r.byz.Store(int32(m))
}

// byzantineSend sends m the way the Byzantine mode dictates and reports whether it did (or
// dropped it); false means m goes out unchanged. Runs on the driver goroutine only.
func (r *PBFTReplica) byzantineSend(m *pbftcore.Message) bool {
	mode := ByzantineMode(r.byz.Load())
	switch mode {
	case ByzantineNone:
		return false
	case ByzantineSilent:
		return true
	case ByzantineBadMAC:
		cp := *m
		cp.Auth = append(r.byzBuf[:0], m.Auth...)
		for i := range cp.Auth {
			cp.Auth[i] ^= 0x5a
		}
		r.byzBuf = cp.Auth
		r.rawSend(&cp, -1)
		return true
	}
	// bad-digest and equivocate.
	if m.To == pbftcore.ToClient {
		cp := *m
		cp.Result = append([]byte(nil), m.Result...)
		if len(cp.Result) > 0 {
			cp.Result[len(cp.Result)-1] ^= 0xff // a wrong answer, validly authenticated
		} else {
			cp.Result = []byte{0xff}
		}
		cp.Auth = r.byzAuth().Seal(&cp, nil)
		r.rawSend(&cp, -1)
		return true
	}
	switch m.Type {
	case pbftcore.MsgPrePrepare, pbftcore.MsgPrepare, pbftcore.MsgCommit:
	default:
		return false
	}
	lie := *m
	if mode == ByzantineEquivocate && m.Type == pbftcore.MsgPrePrepare && len(m.Requests) > 0 {
		lie.Requests = make([]pbftcore.Request, 0, len(m.Requests))
		if len(m.Requests) >= 2 {
			for i := len(m.Requests) - 1; i >= 0; i-- {
				lie.Requests = append(lie.Requests, m.Requests[i])
			}
		} else {
			lie.Requests = lie.Requests[:0] // the null request: also a valid batch
		}
		lie.Digest = pbftcore.BatchDigest(lie.Requests)
	} else {
		lie.Digest[0] ^= 0xff
		lie.Digest[31] ^= 0x01
	}
	lie.Auth = r.byzAuth().Seal(&lie, nil)
	if mode == ByzantineBadDigest || m.To != pbftcore.ToAll {
		r.rawSend(&lie, -1)
		return true
	}
	for _, p := range r.peers {
		if p%2 == 1 {
			r.rawSend(m, int(p))
		} else {
			r.rawSend(&lie, int(p))
		}
	}
	return true
}

// byzAuth is the replica's own authenticator, built on first use, so that its lies carry
// valid MACs (a Byzantine replica holds its own keys).
func (r *PBFTReplica) byzAuth() *pbftcore.Authenticator {
	if r.byzA == nil {
		r.byzA = pbftcore.NewAuthenticator(r.byzKeys, r.byzSignAll)
	}
	return r.byzA
}

// rawSend encodes m and sends it to its destination, or only to peer `only` (a node ID)
// when it is not -1.
func (r *PBFTReplica) rawSend(m *pbftcore.Message, only int) {
	r.out = r.codec.appendFrame(r.out[:0], m)
	switch {
	case only >= 0:
		r.sendFrame(&heldFrame{peer: uint64(only)}, r.out)
	case m.To == pbftcore.ToAll:
		r.sendFrame(&heldFrame{toAll: true}, r.out)
	case m.To == pbftcore.ToClient:
		r.sendClient(m.Client, r.out)
	case m.To >= 0 && m.To < r.n && m.To != r.self:
		r.sendFrame(&heldFrame{peer: uint64(m.To + 1)}, r.out)
	}
}

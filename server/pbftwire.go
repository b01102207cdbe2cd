package server

import (
	"crypto/ed25519"
	"errors"
	"math"

	"github.com/consensusbench/consensusbench/internal/assert"
	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/wire"
)

// pbftCodec maps pbftcore's flat Message union to wire's PBFT messages and back, carrying
// every field pbftcore authenticates (its canonical form) byte for byte, so MACs and
// signatures verify on the far side.
//
// Field mapping (pbftcore -> wire):
//   - every message: From -> Replica (requests relayed by a replica: the transport's peer ID;
//     client requests: FromClient); Auth -> Authenticator (a 64-byte signature for the
//     always-signed types or in sign mode, else a vector of 16-byte MACs, AuthShortMACs).
//   - To is routing, not content: it is not on the wire. Decode sets the top-level To to
//     the receiver the caller names; nested proofs (C of a VIEW-CHANGE, V of a NEW-VIEW)
//     decode with To = ToAll because they were multicast, and O entries with To = 0, as the
//     core builds them.
//   - FETCH-STATE and STATE-CHUNK number chunks: Chunk -> Offset, Chunks -> Chunks.
//
// The normal case (requests, pre-prepares, prepares, commits, replies) allocates nothing in
// steady state: encoding fills scratch wire structs and decoding fills a scratch Message
// whose byte fields alias the frame body (pbftcore's Step copies what it keeps). Not safe
// for concurrent use: the driver goroutine owns it.
type pbftCodec struct {
	signAll bool

	req  wire.Request
	pp   wire.PrePrepare
	prep wire.Prepare
	com  wire.Commit
	rep  wire.PBFTReply
	ck   wire.Checkpoint
	vc   wire.ViewChange
	nv   wire.NewView
	fs   wire.FetchState
	sc   wire.StateChunk
	fb   wire.FetchBatch
	bt   wire.Batch
}

// signedType mirrors pbftcore's rule: CHECKPOINT, VIEW-CHANGE and NEW-VIEW are signed so
// their proofs transfer (OSDI '99 §4.3-4.4).
func (c *pbftCodec) signed(t pbftcore.MsgType) bool {
	return c.signAll || t == pbftcore.MsgCheckpoint || t == pbftcore.MsgViewChange || t == pbftcore.MsgNewView
}

// toAuth wraps pbftcore authenticator bytes. Both kinds carry the bytes unchanged; the kind
// only documents what they are.
func toAuth(b []byte, signed bool) wire.Authenticator {
	switch {
	case len(b) == 0:
		return wire.Authenticator{}
	case signed && len(b) == ed25519.SignatureSize:
		return wire.Authenticator{Kind: wire.AuthSignature, Signature: b}
	case len(b)%wire.ShortMACSize == 0:
		return wire.Authenticator{Kind: wire.AuthShortMACs, MACs: b}
	}
	assert.Failf("server: pbft authenticator of %d bytes is neither a signature nor a MAC vector", len(b))
	return wire.Authenticator{}
}

// maxAuthBytes is the largest authenticator pbftcore ever produces: a MAC per replica, or a
// signature.
const maxAuthBytes = max(pbftcore.MaxReplicas*pbftcore.MACSize, ed25519.SignatureSize)

// fromAuth unwraps an authenticator. One larger than any pbftcore produces is dropped (the
// message then fails verification wherever it is checked): authenticators of requests nested
// in VIEW-CHANGE and NEW-VIEW batches are carried without being verified, and an oversized
// one would otherwise reach the encoder, which refuses it, on every correct replica.
func fromAuth(a *wire.Authenticator) []byte {
	var b []byte
	switch a.Kind {
	case wire.AuthSignature:
		b = a.Signature
	case wire.AuthMACs, wire.AuthShortMACs:
		b = a.MACs
	}
	if len(b) > maxAuthBytes || len(b)%wire.ShortMACSize != 0 {
		return nil
	}
	return b
}

func (c *pbftCodec) wireRequest(r *pbftcore.Request) wire.Request {
	return wire.Request{ClientID: r.Client, Timestamp: r.Timestamp, ReadOnly: r.ReadOnly, Op: r.Op,
		Auth: toAuth(r.Auth, c.signAll)}
}

func wireRequests(c *pbftCodec, dst []wire.Request, rs []pbftcore.Request) []wire.Request {
	dst = dst[:0]
	for i := range rs {
		dst = append(dst, c.wireRequest(&rs[i]))
	}
	return dst
}

func coreRequest(r *wire.Request) pbftcore.Request {
	return pbftcore.Request{Client: r.ClientID, Timestamp: r.Timestamp, ReadOnly: r.ReadOnly, Op: r.Op, Auth: fromAuth(&r.Auth)}
}

func coreRequests(dst []pbftcore.Request, rs []wire.Request) []pbftcore.Request {
	dst = dst[:0]
	for i := range rs {
		dst = append(dst, coreRequest(&rs[i]))
	}
	return dst
}

func replicaOf(from int) uint64 {
	assert.True(from >= 0, "server: pbft message from a replica")
	return uint64(from)
}

// message returns m as a wire message backed by the codec's scratch structs (valid until
// the next call).
func (c *pbftCodec) message(m *pbftcore.Message) wire.Message {
	auth := toAuth(m.Auth, c.signed(m.Type))
	switch m.Type {
	case pbftcore.MsgRequest:
		assert.True(len(m.Requests) == 1, "server: a pbft request message carries one request")
		c.req = c.wireRequest(&m.Requests[0])
		return &c.req
	case pbftcore.MsgPrePrepare:
		c.pp.PrePrepareHeader = wire.PrePrepareHeader{View: m.View, Seq: m.Seq, Replica: replicaOf(m.From), Digest: m.Digest, Auth: auth}
		c.pp.Requests = wireRequests(c, c.pp.Requests, m.Requests)
		return &c.pp
	case pbftcore.MsgPrepare:
		c.prep = wire.Prepare{View: m.View, Seq: m.Seq, Replica: replicaOf(m.From), Digest: m.Digest, Auth: auth}
		return &c.prep
	case pbftcore.MsgCommit:
		c.com = wire.Commit{View: m.View, Seq: m.Seq, Replica: replicaOf(m.From), Digest: m.Digest, Auth: auth}
		return &c.com
	case pbftcore.MsgReply:
		c.rep = wire.PBFTReply{View: m.View, Timestamp: m.Timestamp, ClientID: m.Client, Replica: replicaOf(m.From),
			ReadOnly: m.ReadOnly, Refused: m.Refused, Result: m.Result, Auth: auth}
		return &c.rep
	case pbftcore.MsgCheckpoint:
		c.ck = wireCheckpoint(m)
		return &c.ck
	case pbftcore.MsgViewChange:
		c.fillViewChange(&c.vc, m)
		return &c.vc
	case pbftcore.MsgNewView:
		nv := &c.nv
		nv.View, nv.Replica, nv.StableSeq, nv.StableDigest, nv.Auth = m.View, replicaOf(m.From), m.Seq, m.Digest, auth
		nv.V = resize(nv.V, len(m.ViewChanges))
		for i := range m.ViewChanges {
			c.fillViewChange(&nv.V[i], &m.ViewChanges[i])
		}
		nv.O = nv.O[:0]
		for i := range m.PrePrepares {
			o := &m.PrePrepares[i]
			assert.True(len(o.Requests) == 0, "server: NEW-VIEW names batches by digest only")
			nv.O = append(nv.O, wire.PrePrepareHeader{View: o.View, Seq: o.Seq, Replica: replicaOf(o.From), Digest: o.Digest,
				Auth: toAuth(o.Auth, c.signAll)})
		}
		return nv
	case pbftcore.MsgFetchState:
		c.fs = wire.FetchState{Replica: replicaOf(m.From), Seq: m.Seq, Digest: m.Digest, Offset: uint64(m.Chunk), Auth: auth}
		return &c.fs
	case pbftcore.MsgStateChunk:
		c.sc = wire.StateChunk{Replica: replicaOf(m.From), Seq: m.Seq, Digest: m.Digest, Offset: uint64(m.Chunk),
			Chunks: uint64(m.Chunks), Done: m.Chunk+1 == m.Chunks, Data: m.Data, Auth: auth}
		return &c.sc
	case pbftcore.MsgFetchBatch:
		c.fb = wire.FetchBatch{Seq: m.Seq, Replica: replicaOf(m.From), Digest: m.Digest, Auth: auth}
		return &c.fb
	case pbftcore.MsgBatch:
		c.bt.PrePrepareHeader = wire.PrePrepareHeader{Seq: m.Seq, Replica: replicaOf(m.From), Digest: m.Digest, Auth: auth}
		c.bt.Requests = wireRequests(c, c.bt.Requests, m.Requests)
		return &c.bt
	}
	assert.Failf("server: pbft message type %v has no wire form", m.Type)
	return nil
}

func wireCheckpoint(m *pbftcore.Message) wire.Checkpoint {
	return wire.Checkpoint{Seq: m.Seq, Replica: replicaOf(m.From), Digest: m.Digest, Auth: toAuth(m.Auth, true)}
}

func (c *pbftCodec) fillViewChange(vc *wire.ViewChange, m *pbftcore.Message) {
	vc.NewView, vc.StableSeq, vc.Replica, vc.StableDigest = m.View, m.Seq, replicaOf(m.From), m.Digest
	vc.Auth = toAuth(m.Auth, true)
	vc.C = vc.C[:0]
	for i := range m.Checkpoints {
		vc.C = append(vc.C, wireCheckpoint(&m.Checkpoints[i]))
	}
	vc.P = resize(vc.P, len(m.Prepared))
	for i := range m.Prepared {
		p := &m.Prepared[i]
		pc := &vc.P[i]
		pc.PrePrepare = wire.PrePrepareHeader{View: p.View, Seq: p.Seq, Digest: p.Digest}
		pc.Prepares = pc.Prepares[:0]
	}
	vc.Q = vc.Q[:0]
	for _, q := range m.PrePrepared {
		vc.Q = append(vc.Q, wire.PrePrepared{Seq: q.Seq, View: q.View, Digest: q.Digest})
	}
}

// appendFrame appends m as one whole frame to dst.
func (c *pbftCodec) appendFrame(dst []byte, m *pbftcore.Message) []byte {
	return wire.AppendMessageFrame(dst, 0, c.message(m))
}

// isPBFTPeerType reports whether t is a PBFT message a replica accepts from a peer.
func isPBFTPeerType(t wire.Type) bool {
	return t >= wire.TypePBFTRequest && t <= wire.TypeBatch && t != wire.TypePBFTReply
}

// decode fills m from a frame body of type t. from is the sender (a replica index, or
// pbftcore.FromClient) and to the receiver recorded in m.To. Byte fields alias body;
// m's slices are reused.
func (c *pbftCodec) decode(t wire.Type, body []byte, from, to int, m *pbftcore.Message) error {
	reqs, ckpts, prepared, prePrepared, vcs, pps := m.Requests, m.Checkpoints, m.Prepared, m.PrePrepared, m.ViewChanges, m.PrePrepares
	// Requests keeps its capacity across every type (an empty slice is what the core sees
	// for a message without requests), so the pre-prepare path does not allocate.
	*m = pbftcore.Message{From: from, To: to, Requests: reqs[:0]}
	switch t {
	case wire.TypePBFTRequest:
		if err := wire.DecodeRequest(body, &c.req); err != nil {
			return err
		}
		m.Type = pbftcore.MsgRequest
		m.Requests = append(reqs[:0], coreRequest(&c.req))
		return nil
	case wire.TypePrePrepare:
		if err := wire.DecodePrePrepare(body, &c.pp); err != nil {
			return err
		}
		h := &c.pp.PrePrepareHeader
		m.Type, m.View, m.Seq, m.Digest, m.Auth = pbftcore.MsgPrePrepare, h.View, h.Seq, h.Digest, fromAuth(&h.Auth)
		m.Requests = coreRequests(reqs, c.pp.Requests)
		return checkSender(h.Replica, from)
	case wire.TypePrepare, wire.TypeCommit:
		p := &c.prep
		m.Type = pbftcore.MsgPrepare
		if t == wire.TypeCommit {
			p = (*wire.Prepare)(&c.com)
			m.Type = pbftcore.MsgCommit
		}
		if err := wire.DecodePrepare(body, p); err != nil {
			return err
		}
		m.View, m.Seq, m.Digest, m.Auth = p.View, p.Seq, p.Digest, fromAuth(&p.Auth)
		return checkSender(p.Replica, from)
	case wire.TypePBFTReply:
		if err := wire.DecodePBFTReply(body, &c.rep); err != nil {
			return err
		}
		r := &c.rep
		m.Type, m.View, m.Timestamp, m.Client, m.ReadOnly, m.Result, m.Auth = pbftcore.MsgReply, r.View, r.Timestamp, r.ClientID, r.ReadOnly, r.Result, fromAuth(&r.Auth)
		m.Refused = r.Refused
		return checkSender(r.Replica, from)
	case wire.TypeCheckpoint:
		if err := wire.DecodeCheckpoint(body, &c.ck); err != nil {
			return err
		}
		coreCheckpoint(&c.ck, m)
		m.From, m.To = from, to
		return checkSender(c.ck.Replica, from)
	case wire.TypeViewChange:
		if err := wire.DecodeViewChange(body, &c.vc); err != nil {
			return err
		}
		m.Checkpoints, m.Prepared, m.PrePrepared = ckpts, prepared, prePrepared
		if err := coreViewChange(&c.vc, m); err != nil {
			return err
		}
		m.To = to
		return checkSender(c.vc.Replica, from)
	case wire.TypeNewView:
		if err := wire.DecodeNewView(body, &c.nv); err != nil {
			return err
		}
		nv := &c.nv
		if nv.Replica > math.MaxInt32 {
			return wire.ErrMalformed
		}
		m.Type, m.View, m.Seq, m.Digest, m.Auth = pbftcore.MsgNewView, nv.View, nv.StableSeq, nv.StableDigest, fromAuth(&nv.Auth)
		m.ViewChanges = resize(vcs, len(nv.V))
		for i := range nv.V {
			if err := coreViewChange(&nv.V[i], &m.ViewChanges[i]); err != nil {
				return err
			}
		}
		if len(nv.O) > 0 {
			m.PrePrepares = resize(pps, len(nv.O))
			for i := range nv.O {
				o := &nv.O[i]
				if o.Replica > math.MaxInt32 {
					return wire.ErrMalformed
				}
				p := &m.PrePrepares[i]
				*p = pbftcore.Message{Type: pbftcore.MsgPrePrepare, From: int(o.Replica), View: o.View, Seq: o.Seq,
					Digest: o.Digest, Auth: fromAuth(&o.Auth), Requests: p.Requests[:0]}
			}
		}
		return checkSender(nv.Replica, from)
	case wire.TypeFetchState:
		if err := wire.DecodeFetchState(body, &c.fs); err != nil {
			return err
		}
		f := &c.fs
		if f.Offset > math.MaxUint32 {
			return wire.ErrMalformed
		}
		m.Type, m.Seq, m.Digest, m.Chunk, m.Auth = pbftcore.MsgFetchState, f.Seq, f.Digest, uint32(f.Offset), fromAuth(&f.Auth)
		return checkSender(f.Replica, from)
	case wire.TypeStateChunk:
		if err := wire.DecodeStateChunk(body, &c.sc); err != nil {
			return err
		}
		s := &c.sc
		if s.Offset > math.MaxUint32 || s.Chunks > math.MaxUint32 {
			return wire.ErrMalformed
		}
		m.Type, m.Seq, m.Digest, m.Chunk, m.Chunks, m.Data, m.Auth = pbftcore.MsgStateChunk, s.Seq, s.Digest, uint32(s.Offset), uint32(s.Chunks), s.Data, fromAuth(&s.Auth)
		return checkSender(s.Replica, from)
	case wire.TypeFetchBatch:
		if err := wire.DecodePrepare(body, (*wire.Prepare)(&c.fb)); err != nil {
			return err
		}
		m.Type, m.Seq, m.Digest, m.Auth = pbftcore.MsgFetchBatch, c.fb.Seq, c.fb.Digest, fromAuth(&c.fb.Auth)
		return checkSender(c.fb.Replica, from)
	case wire.TypeBatch:
		if err := wire.DecodePrePrepare(body, (*wire.PrePrepare)(&c.bt)); err != nil {
			return err
		}
		h := &c.bt.PrePrepareHeader
		m.Type, m.Seq, m.Digest, m.Auth = pbftcore.MsgBatch, h.Seq, h.Digest, fromAuth(&h.Auth)
		m.Requests = coreRequests(reqs, c.bt.Requests)
		return checkSender(h.Replica, from)
	}
	return wire.ErrUnknownType
}

// resize returns s with length n, reusing its capacity (elements are overwritten).
func resize[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	ns := make([]T, n)
	copy(ns, s[:cap(s)])
	return ns
}

// errMisattributed rejects a message whose claimed sender is not the connection's peer: the
// transport authenticated the connection by its hello, and a replica must not be able to
// speak for another.
var errMisattributed = errors.New("server: pbft message claims another sender than its connection")

func checkSender(replica uint64, from int) error {
	if from >= 0 && replica != uint64(from) {
		return errMisattributed
	}
	return nil
}

func coreCheckpoint(ck *wire.Checkpoint, m *pbftcore.Message) {
	*m = pbftcore.Message{Type: pbftcore.MsgCheckpoint, From: int(min(ck.Replica, math.MaxInt32)), To: pbftcore.ToAll,
		Seq: ck.Seq, Digest: ck.Digest, Auth: fromAuth(&ck.Auth)}
}

// coreViewChange fills m from vc, reusing m's slices. Nested proofs decode with To = ToAll.
func coreViewChange(vc *wire.ViewChange, m *pbftcore.Message) error {
	if vc.Replica > math.MaxInt32 {
		return wire.ErrMalformed
	}
	ckpts, prepared, prePrepared := m.Checkpoints, m.Prepared, m.PrePrepared
	*m = pbftcore.Message{Type: pbftcore.MsgViewChange, From: int(vc.Replica), To: pbftcore.ToAll, View: vc.NewView,
		Seq: vc.StableSeq, Digest: vc.StableDigest, Auth: fromAuth(&vc.Auth)}
	if len(vc.C) > 0 {
		m.Checkpoints = resize(ckpts, len(vc.C))
		for i := range vc.C {
			coreCheckpoint(&vc.C[i], &m.Checkpoints[i])
		}
	}
	if len(vc.P) > 0 {
		m.Prepared = resize(prepared, len(vc.P))
		for i := range vc.P {
			p := &vc.P[i]
			if len(p.Prepares) != 0 {
				return wire.ErrMalformed // pbftcore's view change (TOCS 2002 §4.5) carries no prepares
			}
			m.Prepared[i] = pbftcore.PreparedEntry{Seq: p.PrePrepare.Seq, View: p.PrePrepare.View, Digest: p.PrePrepare.Digest}
		}
	}
	if len(vc.Q) > 0 {
		m.PrePrepared = resize(prePrepared, len(vc.Q))
		for i, q := range vc.Q {
			m.PrePrepared[i] = pbftcore.PrePreparedEntry{Seq: q.Seq, View: q.View, Digest: q.Digest}
		}
	}
	return nil
}

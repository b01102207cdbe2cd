package pbftcore

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
)

// alwaysSigned reports whether a message type carries an ed25519 signature even in MAC mode:
// the proofs that must be transferable to third parties (OSDI '99 §4.3-4.4).
func alwaysSigned(t MsgType) bool {
	return t == MsgCheckpoint || t == MsgViewChange || t == MsgNewView
}

// macer is one keyed HMAC-SHA256 hasher, created once per directional session key and
// reset per message: hmac.New per message costs 4x and six allocations.
type macer struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newMacer(key []byte) *macer { return &macer{h: hmac.New(sha256.New, key)} }

// mac returns the truncated MAC of data (valid until the next call).
func (m *macer) mac(data []byte) []byte {
	m.h.Reset()
	m.h.Write(data)
	return m.h.Sum(m.sum[:0])[:MACSize]
}

// requestDigest is the digest the client authenticates and the batch digest is built from.
func requestDigest(r *Request) Digest {
	var hdr [17]byte
	binary.LittleEndian.PutUint64(hdr[0:], r.Client)
	binary.LittleEndian.PutUint64(hdr[8:], r.Timestamp)
	if r.ReadOnly {
		hdr[16] = 1
	}
	h := sha256.New()
	h.Write(hdr[:])
	h.Write(r.Op)
	var d Digest
	h.Sum(d[:0])
	return d
}

// batchHasher computes batch digests without allocating: SHA-256 over the request digests.
type batchHasher struct {
	h   hash.Hash
	hdr [17]byte
	out Digest // Sum target inside the heap object: a local would escape through hash.Hash
}

func newBatchHasher() *batchHasher { return &batchHasher{h: sha256.New()} }

func (b *batchHasher) request(r *Request) Digest {
	binary.LittleEndian.PutUint64(b.hdr[0:], r.Client)
	binary.LittleEndian.PutUint64(b.hdr[8:], r.Timestamp)
	b.hdr[16] = 0
	if r.ReadOnly {
		b.hdr[16] = 1
	}
	b.h.Reset()
	b.h.Write(b.hdr[:])
	b.h.Write(r.Op)
	b.h.Sum(b.out[:0])
	return b.out
}

// batch returns the digest of a batch given its request digests. A null request (empty
// batch) has the digest of the empty string.
func (b *batchHasher) batch(reqDigests []Digest) Digest {
	b.h.Reset()
	for i := range reqDigests {
		b.h.Write(reqDigests[i][:])
	}
	b.h.Sum(b.out[:0])
	return b.out
}

// BatchDigest computes the digest a PRE-PREPARE carries for reqs (exported for tests, the
// simulator's Byzantine replicas and servers).
func BatchDigest(reqs []Request) Digest {
	b := newBatchHasher()
	ds := make([]Digest, len(reqs))
	for i := range reqs {
		ds[i] = b.request(&reqs[i])
	}
	return b.batch(ds)
}

// appendCanonical encodes the authenticated content of m: every field but Auth, with a
// batch represented by its digest (the request travels outside the authenticated part,
// OSDI '99 §4.2) and nested proofs by their own canonical form and authenticators.
//
// Normal-case messages encode only the fields their type uses, so that the MAC input of a
// PREPARE, COMMIT or REPLY fits one SHA-256 block (two compressions per HMAC).
func appendCanonical(dst []byte, m *Message) []byte {
	dst = append(dst, byte(m.Type))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(int32(m.From)))
	switch m.Type {
	case MsgPrePrepare, MsgPrepare, MsgCommit:
		dst = binary.LittleEndian.AppendUint64(dst, m.View)
		dst = binary.LittleEndian.AppendUint64(dst, m.Seq)
		return append(dst, m.Digest[:]...)
	case MsgReply:
		dst = binary.LittleEndian.AppendUint64(dst, m.View)
		dst = binary.LittleEndian.AppendUint64(dst, m.Client)
		dst = binary.LittleEndian.AppendUint64(dst, m.Timestamp)
		// One flags byte: bit 0 read-only, bit 1 refused (an ordinary reply keeps the byte
		// it always had). The MAC covers the refusal, so a Byzantine replica cannot turn
		// another replica's answer into a refusal or a refusal into an answer.
		var flags byte
		if m.ReadOnly {
			flags |= 1
		}
		if m.Refused {
			flags |= 2
		}
		dst = append(dst, flags)
		return appendBytes(dst, m.Result)
	case MsgCheckpoint:
		dst = binary.LittleEndian.AppendUint64(dst, m.Seq)
		return append(dst, m.Digest[:]...)
	}
	dst = binary.LittleEndian.AppendUint64(dst, m.View)
	dst = binary.LittleEndian.AppendUint64(dst, m.Seq)
	dst = append(dst, m.Digest[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, m.Client)
	dst = binary.LittleEndian.AppendUint64(dst, m.Timestamp)
	ro := byte(0)
	if m.ReadOnly {
		ro = 1
	}
	dst = append(dst, ro)
	dst = binary.LittleEndian.AppendUint32(dst, m.Chunk)
	dst = binary.LittleEndian.AppendUint32(dst, m.Chunks)
	dst = appendBytes(dst, m.Result)
	dst = appendBytes(dst, m.Data)
	if m.Type != MsgViewChange && m.Type != MsgNewView {
		return dst
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.Checkpoints)))
	for i := range m.Checkpoints {
		dst = appendCanonical(dst, &m.Checkpoints[i])
		dst = appendBytes(dst, m.Checkpoints[i].Auth)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.Prepared)))
	for _, p := range m.Prepared {
		dst = binary.LittleEndian.AppendUint64(dst, p.Seq)
		dst = binary.LittleEndian.AppendUint64(dst, p.View)
		dst = append(dst, p.Digest[:]...)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.PrePrepared)))
	for _, q := range m.PrePrepared {
		dst = binary.LittleEndian.AppendUint64(dst, q.Seq)
		dst = binary.LittleEndian.AppendUint64(dst, q.View)
		dst = append(dst, q.Digest[:]...)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.ViewChanges)))
	for i := range m.ViewChanges {
		dst = appendCanonical(dst, &m.ViewChanges[i])
		dst = appendBytes(dst, m.ViewChanges[i].Auth)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.PrePrepares)))
	for i := range m.PrePrepares {
		dst = appendCanonical(dst, &m.PrePrepares[i])
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// Authenticator creates and checks one replica's authenticators. Exported so that the
// simulator's Byzantine replicas can produce validly authenticated lies with their own keys.
// Not safe for concurrent use.
type Authenticator struct {
	self    int
	n       int
	signAll bool
	priv    ed25519.PrivateKey
	pubs    []ed25519.PublicKey
	cpubs   []ed25519.PublicKey
	out     []*macer // to replica j
	in      []*macer // from replica j
	cout    []*macer // to client c
	cin     []*macer // from client c
	buf     []byte
	scratch Digest // MAC input copied here: a caller's local would escape through hash.Hash
	// verified caches digests of signed messages already verified: retransmitted VIEW-CHANGEs
	// and the proofs nested in VIEW-CHANGE and NEW-VIEW repeat the same signatures, and an
	// ed25519 verification costs ~50 µs against ~1 µs for the digest.
	verified map[Digest]struct{}
}

// MaxVerifiedSignatures bounds the verified-signature cache; it is emptied when full.
const MaxVerifiedSignatures = 4096

// verifySig checks sig by replica from over a.buf, through the cache.
func (a *Authenticator) verifySig(from int, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	h := sha256.New()
	h.Write(a.buf)
	h.Write(sig)
	var key Digest
	h.Sum(key[:0])
	if _, ok := a.verified[key]; ok {
		return true
	}
	if !ed25519.Verify(a.pubs[from], a.buf, sig) {
		return false
	}
	if a.verified == nil || len(a.verified) >= MaxVerifiedSignatures {
		a.verified = make(map[Digest]struct{}, MaxVerifiedSignatures)
	}
	a.verified[key] = struct{}{}
	return true
}

// NewAuthenticator builds the keyed hashers of replica keys.ID once.
func NewAuthenticator(keys *Keys, signAll bool) *Authenticator {
	n := len(keys.PeerSecrets)
	a := &Authenticator{self: keys.ID, n: n, signAll: signAll, priv: keys.Private,
		pubs: keys.ReplicaPublic, cpubs: keys.ClientPublic,
		out: make([]*macer, n), in: make([]*macer, n)}
	me := replicaName(keys.ID)
	for j := range n {
		if j == keys.ID {
			continue
		}
		a.out[j] = newMacer(sessionKey(keys.PeerSecrets[j], me, replicaName(j)))
		a.in[j] = newMacer(sessionKey(keys.PeerSecrets[j], replicaName(j), me))
	}
	for c, s := range keys.ClientSecrets {
		a.cout = append(a.cout, newMacer(sessionKey(s, me, clientName(uint64(c)))))
		a.cin = append(a.cin, newMacer(sessionKey(s, clientName(uint64(c)), me)))
	}
	return a
}

// Seal appends m's authenticator to dst and returns it: a signature for always-signed types
// or in SignAll mode; otherwise a MAC vector for ToAll, one MAC for a replica or a client.
func (a *Authenticator) Seal(m *Message, dst []byte) []byte {
	a.buf = appendCanonical(a.buf[:0], m)
	if a.signAll || alwaysSigned(m.Type) {
		return append(dst, ed25519.Sign(a.priv, a.buf)...)
	}
	switch m.To {
	case ToAll:
		for j := range a.n {
			if j == a.self {
				dst = append(dst, make([]byte, MACSize)...)
				continue
			}
			dst = append(dst, a.out[j].mac(a.buf)...)
		}
	case ToClient:
		if m.Client < uint64(len(a.cout)) {
			dst = append(dst, a.cout[m.Client].mac(a.buf)...)
		}
	default:
		if m.To >= 0 && m.To < a.n && m.To != a.self {
			dst = append(dst, a.out[m.To].mac(a.buf)...)
		}
	}
	return dst
}

// Verify checks m's authenticator as received by this replica: the signature of m.From, or
// the MAC entry for this replica (a vector entry or a point-to-point MAC).
func (a *Authenticator) Verify(m *Message) bool {
	if m.From < 0 || m.From >= a.n || m.From == a.self {
		return false
	}
	a.buf = appendCanonical(a.buf[:0], m)
	if alwaysSigned(m.Type) {
		return a.verifySig(m.From, m.Auth)
	}
	if a.signAll {
		// Normal-case messages are not repeated often enough to be worth caching.
		return len(m.Auth) == ed25519.SignatureSize && ed25519.Verify(a.pubs[m.From], a.buf, m.Auth)
	}
	var got []byte
	switch len(m.Auth) {
	case MACSize:
		got = m.Auth
	case a.n * MACSize:
		got = m.Auth[a.self*MACSize : (a.self+1)*MACSize]
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, a.in[m.From].mac(a.buf)) == 1
}

// verifySigned checks a signed message embedded as a proof (a CHECKPOINT inside a
// VIEW-CHANGE, a VIEW-CHANGE inside a NEW-VIEW): any replica can check it, including the
// one that signed it.
func (a *Authenticator) verifySigned(m *Message) bool {
	if m.From < 0 || m.From >= a.n || len(m.Auth) != ed25519.SignatureSize {
		return false
	}
	a.buf = appendCanonical(a.buf[:0], m)
	return a.verifySig(m.From, m.Auth)
}

// verifyRequest checks this replica's entry of a client request's authenticator over the
// request digest d.
func (a *Authenticator) verifyRequest(r *Request, d *Digest) bool {
	if a.signAll {
		return r.Client < uint64(len(a.cpubs)) && len(r.Auth) == ed25519.SignatureSize &&
			ed25519.Verify(a.cpubs[r.Client], d[:], r.Auth)
	}
	if r.Client >= uint64(len(a.cin)) || len(r.Auth) != a.n*MACSize {
		return false
	}
	got := r.Auth[a.self*MACSize : (a.self+1)*MACSize]
	a.scratch = *d
	return subtle.ConstantTimeCompare(got, a.cin[r.Client].mac(a.scratch[:])) == 1
}

// clientAuth is a client's side: MACs for requests, checks of replies.
type clientAuth struct {
	n       int
	signAll bool
	priv    ed25519.PrivateKey
	pubs    []ed25519.PublicKey
	out     []*macer // to replica j
	in      []*macer // from replica j
	buf     []byte
}

func newClientAuth(keys *ClientKeys, signAll bool) *clientAuth {
	n := len(keys.ReplicaSecrets)
	a := &clientAuth{n: n, signAll: signAll, priv: keys.Private, pubs: keys.ReplicaPublic}
	me := clientName(keys.ID)
	for j, s := range keys.ReplicaSecrets {
		a.out = append(a.out, newMacer(sessionKey(s, me, replicaName(j))))
		a.in = append(a.in, newMacer(sessionKey(s, replicaName(j), me)))
	}
	return a
}

// sealRequest sets r.Auth (appending to dst) for request digest d.
func (a *clientAuth) sealRequest(d *Digest, dst []byte) []byte {
	if a.signAll {
		return append(dst, ed25519.Sign(a.priv, d[:])...)
	}
	for j := range a.n {
		dst = append(dst, a.out[j].mac(d[:])...)
	}
	return dst
}

func (a *clientAuth) verifyReply(m *Message) bool {
	if m.From < 0 || m.From >= a.n {
		return false
	}
	a.buf = appendCanonical(a.buf[:0], m)
	if a.signAll {
		return len(m.Auth) == ed25519.SignatureSize && ed25519.Verify(a.pubs[m.From], a.buf, m.Auth)
	}
	return len(m.Auth) == MACSize && subtle.ConstantTimeCompare(m.Auth, a.in[m.From].mac(a.buf)) == 1
}

package wire

import (
	"math"

	"github.com/consensusbench/consensusbench/internal/assert"
)

// PBFT messages (Castro and Liskov, OSDI '99 §4, TOCS 2002). Replica IDs are indices
// 0..n-1; wire does not check them against n (pbftcore does).

// Sizes of the PBFT cryptographic fields.
const (
	// DigestSize is the size of a SHA-256 digest.
	DigestSize = 32
	// MACSize is the size of one HMAC-SHA256 tag.
	MACSize = 32
	// SignatureSize is the size of an ed25519 signature (crypto/ed25519.SignatureSize).
	SignatureSize = 64
	// ShortMACSize is the size of one HMAC-SHA256 tag truncated to 128 bits (AuthShortMACs),
	// the tag pbftcore uses.
	ShortMACSize = 16
	// MaxMACs bounds the MAC vector of an authenticator (its count is 16 bits).
	MaxMACs = math.MaxUint16
)

// Digest is a SHA-256 digest (of a request batch or of a checkpointed state).
type Digest [DigestSize]byte

// AuthKind says what an Authenticator holds.
type AuthKind uint8

// Authenticator kinds.
const (
	AuthNone      AuthKind = 0 // unauthenticated (tests, or a channel that authenticates)
	AuthMACs      AuthKind = 1 // a vector of MACs, one per replica (PBFT §4.1 authenticators)
	AuthSignature AuthKind = 2 // one ed25519 signature (transferable proofs: view change)
	// AuthShortMACs is a vector of ShortMACSize tags (HMAC-SHA256 truncated to 128 bits, as
	// pbftcore computes them): one per replica for a multicast, or a single tag for a
	// point-to-point message. Held in MACs.
	AuthShortMACs AuthKind = 3

	authKindMax = AuthShortMACs
)

// Authenticator holds either a vector of MACs or a signature, as the kind byte says.
// Decoded MACs and Signature alias the body.
type Authenticator struct {
	Kind AuthKind
	// MACs holds NumMACs() tags of MACSize bytes, concatenated, with AuthMACs; or tags of
	// ShortMACSize bytes with AuthShortMACs.
	MACs []byte
	// Signature holds SignatureSize bytes; only with AuthSignature.
	Signature []byte
}

// tagSize is the size of one tag of the vector.
func (a *Authenticator) tagSize() int {
	if a.Kind == AuthShortMACs {
		return ShortMACSize
	}
	return MACSize
}

// NumMACs returns the number of MACs in the vector.
func (a *Authenticator) NumMACs() int { return len(a.MACs) / a.tagSize() }

// MAC returns the i-th MAC of the vector (aliasing it).
func (a *Authenticator) MAC(i int) []byte {
	n := a.tagSize()
	return a.MACs[i*n : (i+1)*n : (i+1)*n]
}

func (a *Authenticator) size() int {
	switch a.Kind {
	case AuthMACs, AuthShortMACs:
		return sizeU8 + sizeU16 + len(a.MACs)
	case AuthSignature:
		return sizeU8 + SignatureSize
	}
	return sizeU8
}

const minAuthSize = sizeU8

// appendAuth encodes a. An authenticator inconsistent with its kind is a bug of the
// sender, not an input error, so it panics.
func appendAuth(dst []byte, a *Authenticator) []byte {
	dst = appendU8(dst, uint8(a.Kind))
	switch a.Kind {
	case AuthNone:
		if len(a.MACs) != 0 || len(a.Signature) != 0 {
			assert.Failf("wire: AuthNone authenticator carries %d MAC bytes and %d signature bytes", len(a.MACs), len(a.Signature))
		}
	case AuthMACs, AuthShortMACs:
		n := a.tagSize()
		if len(a.MACs)%n != 0 || len(a.MACs)/n > MaxMACs || len(a.Signature) != 0 {
			assert.Failf("wire: MAC vector of %d bytes (signature %d bytes) is not 0..MaxMACs MACs of %d bytes", len(a.MACs), len(a.Signature), n)
		}
		dst = appendU16(dst, uint16(len(a.MACs)/n))
		dst = append(dst, a.MACs...)
	case AuthSignature:
		if len(a.Signature) != SignatureSize || len(a.MACs) != 0 {
			assert.Failf("wire: signature of %d bytes (MACs %d bytes), want SignatureSize", len(a.Signature), len(a.MACs))
		}
		dst = append(dst, a.Signature...)
	default:
		assert.Failf("wire: unknown authenticator kind %d", a.Kind)
	}
	return dst
}

func (d *decoder) auth(a *Authenticator) {
	a.Kind = AuthKind(d.u8())
	a.MACs, a.Signature = nil, nil
	switch a.Kind {
	case AuthNone:
	case AuthMACs, AuthShortMACs:
		n := int(d.u16())
		if n == 0 {
			return
		}
		a.MACs = d.fixed(n * a.tagSize())
	case AuthSignature:
		a.Signature = d.fixed(SignatureSize)
	default:
		d.fail()
	}
}

// Request is a client request (PBFT §4.1 ⟨REQUEST, o, t, c⟩), framed as TypePBFTRequest
// on its own and embedded in PrePrepare batches. Timestamp orders a client's
// requests for exactly-once execution. ReadOnly marks the read-only optimization (§5.1.3).
type Request struct {
	ClientID  uint64
	Timestamp uint64
	ReadOnly  bool
	Op        []byte
	Auth      Authenticator
}

const requestMinSize = 2*sizeU64 + sizeBool + sizeLen + minAuthSize

func (m *Request) size() int { return requestMinSize - minAuthSize + len(m.Op) + m.Auth.size() }

func appendRequest(dst []byte, m *Request) []byte {
	dst = appendU64(dst, m.ClientID)
	dst = appendU64(dst, m.Timestamp)
	dst = appendBool(dst, m.ReadOnly)
	dst = appendBytes(dst, m.Op)
	return appendAuth(dst, &m.Auth)
}

func (d *decoder) request(m *Request) {
	m.ClientID = d.u64()
	m.Timestamp = d.u64()
	m.ReadOnly = d.boolean()
	m.Op = d.bytes()
	d.auth(&m.Auth)
}

// Type implements Message.
func (*Request) Type() Type { return TypePBFTRequest }

// Size implements Message.
func (m *Request) Size() int { return m.size() }

// AppendBody implements Message.
func (m *Request) AppendBody(dst []byte) []byte { return AppendRequest(dst, m) }

// Decode implements Message.
func (m *Request) Decode(body []byte) error { return DecodeRequest(body, m) }

// AppendRequest appends the encoded body of m to dst.
func AppendRequest(dst []byte, m *Request) []byte {
	dst = grow(dst, m.size())
	return appendRequest(dst, m)
}

// DecodeRequest fills m from body; Op and the authenticator alias body.
func DecodeRequest(body []byte, m *Request) error {
	d := decoder{b: body}
	d.request(m)
	return d.finish()
}

// Prepare is ⟨PREPARE, v, n, d, i⟩ (PBFT §4.2). Commit and PrePrepareHeader have the same
// fields and encoding.
type Prepare struct {
	View    uint64
	Seq     uint64
	Replica uint64
	Digest  Digest
	Auth    Authenticator
}

const phaseMinSize = 3*sizeU64 + DigestSize + minAuthSize

func (m *Prepare) size() int { return phaseMinSize - minAuthSize + m.Auth.size() }

func appendPhase(dst []byte, m *Prepare) []byte {
	dst = appendU64(dst, m.View)
	dst = appendU64(dst, m.Seq)
	dst = appendU64(dst, m.Replica)
	dst = append(dst, m.Digest[:]...)
	return appendAuth(dst, &m.Auth)
}

func (d *decoder) phase(m *Prepare) {
	m.View = d.u64()
	m.Seq = d.u64()
	m.Replica = d.u64()
	d.digest(&m.Digest)
	d.auth(&m.Auth)
}

// Type implements Message.
func (*Prepare) Type() Type { return TypePrepare }

// Size implements Message.
func (m *Prepare) Size() int { return m.size() }

// AppendBody implements Message.
func (m *Prepare) AppendBody(dst []byte) []byte { return AppendPrepare(dst, m) }

// Decode implements Message.
func (m *Prepare) Decode(body []byte) error { return DecodePrepare(body, m) }

// AppendPrepare appends the encoded body of m to dst.
func AppendPrepare(dst []byte, m *Prepare) []byte {
	dst = grow(dst, m.size())
	return appendPhase(dst, m)
}

// DecodePrepare fills m from body.
func DecodePrepare(body []byte, m *Prepare) error {
	d := decoder{b: body}
	d.phase(m)
	return d.finish()
}

// Commit is ⟨COMMIT, v, n, d, i⟩ (PBFT §4.2).
type Commit struct {
	View    uint64
	Seq     uint64
	Replica uint64
	Digest  Digest
	Auth    Authenticator
}

// Type implements Message.
func (*Commit) Type() Type { return TypeCommit }

// Size implements Message.
func (m *Commit) Size() int { return (*Prepare)(m).size() }

// AppendBody implements Message.
func (m *Commit) AppendBody(dst []byte) []byte { return AppendCommit(dst, m) }

// Decode implements Message.
func (m *Commit) Decode(body []byte) error { return DecodeCommit(body, m) }

// AppendCommit appends the encoded body of m to dst.
func AppendCommit(dst []byte, m *Commit) []byte { return AppendPrepare(dst, (*Prepare)(m)) }

// DecodeCommit fills m from body.
func DecodeCommit(body []byte, m *Commit) error { return DecodePrepare(body, (*Prepare)(m)) }

// PrePrepareHeader is the authenticated part ⟨PRE-PREPARE, v, n, d⟩ of a pre-prepare, sent
// by primary Replica. The request batch travels outside it (PBFT §4.2), so proofs in view
// changes stay small. An all-zero Digest denotes the null request of a new view (§4.4).
type PrePrepareHeader struct {
	View    uint64
	Seq     uint64
	Replica uint64
	Digest  Digest
	Auth    Authenticator
}

func (m *PrePrepareHeader) size() int { return (*Prepare)(m).size() }

// PrePrepare is a pre-prepare with the batch of requests whose digest is Digest.
type PrePrepare struct {
	PrePrepareHeader
	Requests []Request
}

// Type implements Message.
func (*PrePrepare) Type() Type { return TypePrePrepare }

// Size implements Message.
func (m *PrePrepare) Size() int {
	n := m.PrePrepareHeader.size() + sizeCount
	for i := range m.Requests {
		n += m.Requests[i].size()
	}
	return n
}

// AppendBody implements Message.
func (m *PrePrepare) AppendBody(dst []byte) []byte { return AppendPrePrepare(dst, m) }

// Decode implements Message.
func (m *PrePrepare) Decode(body []byte) error { return DecodePrePrepare(body, m) }

// AppendPrePrepare appends the encoded body of m to dst.
func AppendPrePrepare(dst []byte, m *PrePrepare) []byte {
	dst = grow(dst, m.Size())
	dst = appendPhase(dst, (*Prepare)(&m.PrePrepareHeader))
	dst = appendCount(dst, len(m.Requests))
	for i := range m.Requests {
		dst = appendRequest(dst, &m.Requests[i])
	}
	return dst
}

// DecodePrePrepare fills m from body; m.Requests reuses its capacity and the requests'
// byte fields alias body.
func DecodePrePrepare(body []byte, m *PrePrepare) error {
	d := decoder{b: body}
	d.phase((*Prepare)(&m.PrePrepareHeader))
	m.Requests = resize(m.Requests, d.count(requestMinSize))
	for i := range m.Requests {
		d.request(&m.Requests[i])
	}
	return d.finish()
}

// PBFTReply is ⟨REPLY, v, t, c, i, r⟩ (PBFT §4.1): the result of the request with
// Timestamp from ClientID, executed by Replica in View. ReadOnly marks a reply of the
// read-only optimization (§5.1.3), answered from the replica's state without ordering; the
// client needs 2f+1 of those instead of f+1. Refused marks a read-only reply in which the
// replica declines to answer (it has a prepared request not yet executed, is changing view
// or transferring state); once f+1 replicas refused, the client orders the read at once.
// Auth is the MAC for the client.
//
// ReadOnly and Refused travel in one flags byte (bit 0, bit 1; a reply without a refusal
// encodes as the bool byte it used to be); any other bit is ErrMalformed.
type PBFTReply struct {
	View      uint64
	Timestamp uint64
	ClientID  uint64
	Replica   uint64
	ReadOnly  bool
	Refused   bool
	Result    []byte
	Auth      Authenticator
}

// Bits of PBFTReply's flags byte.
const (
	pbftReplyFlagReadOnly = 1 << 0
	pbftReplyFlagRefused  = 1 << 1
)

const pbftReplyMinSize = 4*sizeU64 + sizeU8 + sizeLen + minAuthSize

// Type implements Message.
func (*PBFTReply) Type() Type { return TypePBFTReply }

// Size implements Message.
func (m *PBFTReply) Size() int { return pbftReplyMinSize - minAuthSize + len(m.Result) + m.Auth.size() }

// AppendBody implements Message.
func (m *PBFTReply) AppendBody(dst []byte) []byte { return AppendPBFTReply(dst, m) }

// Decode implements Message.
func (m *PBFTReply) Decode(body []byte) error { return DecodePBFTReply(body, m) }

// AppendPBFTReply appends the encoded body of m to dst.
func AppendPBFTReply(dst []byte, m *PBFTReply) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.View)
	dst = appendU64(dst, m.Timestamp)
	dst = appendU64(dst, m.ClientID)
	dst = appendU64(dst, m.Replica)
	var f uint8
	if m.ReadOnly {
		f |= pbftReplyFlagReadOnly
	}
	if m.Refused {
		f |= pbftReplyFlagRefused
	}
	dst = appendU8(dst, f)
	dst = appendBytes(dst, m.Result)
	return appendAuth(dst, &m.Auth)
}

// DecodePBFTReply fills m from body; Result and Auth alias body.
func DecodePBFTReply(body []byte, m *PBFTReply) error {
	d := decoder{b: body}
	m.View = d.u64()
	m.Timestamp = d.u64()
	m.ClientID = d.u64()
	m.Replica = d.u64()
	f := d.flags(pbftReplyFlagReadOnly | pbftReplyFlagRefused)
	m.ReadOnly = f&pbftReplyFlagReadOnly != 0
	m.Refused = f&pbftReplyFlagRefused != 0
	m.Result = d.bytes()
	d.auth(&m.Auth)
	return d.finish()
}

// Checkpoint is ⟨CHECKPOINT, n, d, i⟩ (PBFT §4.3): Replica's state digest after executing
// sequence number Seq.
type Checkpoint struct {
	Seq     uint64
	Replica uint64
	Digest  Digest
	Auth    Authenticator
}

const checkpointMinSize = 2*sizeU64 + DigestSize + minAuthSize

func (m *Checkpoint) size() int { return checkpointMinSize - minAuthSize + m.Auth.size() }

func appendCheckpoint(dst []byte, m *Checkpoint) []byte {
	dst = appendU64(dst, m.Seq)
	dst = appendU64(dst, m.Replica)
	dst = append(dst, m.Digest[:]...)
	return appendAuth(dst, &m.Auth)
}

func (d *decoder) checkpoint(m *Checkpoint) {
	m.Seq = d.u64()
	m.Replica = d.u64()
	d.digest(&m.Digest)
	d.auth(&m.Auth)
}

// Type implements Message.
func (*Checkpoint) Type() Type { return TypeCheckpoint }

// Size implements Message.
func (m *Checkpoint) Size() int { return m.size() }

// AppendBody implements Message.
func (m *Checkpoint) AppendBody(dst []byte) []byte { return AppendCheckpoint(dst, m) }

// Decode implements Message.
func (m *Checkpoint) Decode(body []byte) error { return DecodeCheckpoint(body, m) }

// AppendCheckpoint appends the encoded body of m to dst.
func AppendCheckpoint(dst []byte, m *Checkpoint) []byte {
	dst = grow(dst, m.size())
	return appendCheckpoint(dst, m)
}

// DecodeCheckpoint fills m from body.
func DecodeCheckpoint(body []byte, m *Checkpoint) error {
	d := decoder{b: body}
	d.checkpoint(m)
	return d.finish()
}

// PreparedCert proves that a request prepared (PBFT §4.4): the pre-prepare header and 2f
// matching prepares from distinct backups. A view change in the TOCS 2002 §4.5 form (P and
// Q sets without prepares, as pbftcore sends it) leaves Prepares empty. Batches never travel
// in view changes (TOCS 2002 §5.2): a replica missing one fetches it (FetchBatch, Batch).
type PreparedCert struct {
	PrePrepare PrePrepareHeader
	Prepares   []Prepare
}

const preparedCertMinSize = phaseMinSize + sizeCount

func (c *PreparedCert) size() int {
	n := c.PrePrepare.size() + sizeCount
	for i := range c.Prepares {
		n += c.Prepares[i].size()
	}
	return n
}

func appendPreparedCert(dst []byte, c *PreparedCert) []byte {
	dst = appendPhase(dst, (*Prepare)(&c.PrePrepare))
	dst = appendCount(dst, len(c.Prepares))
	for i := range c.Prepares {
		dst = appendPhase(dst, &c.Prepares[i])
	}
	return dst
}

func (d *decoder) preparedCert(c *PreparedCert) {
	d.phase((*Prepare)(&c.PrePrepare))
	c.Prepares = resize(c.Prepares, d.count(phaseMinSize))
	for i := range c.Prepares {
		d.phase(&c.Prepares[i])
	}
}

// PrePrepared is one element of a view change's Q set (TOCS 2002 §4.5): Digest
// pre-prepared at the sender for Seq in View, the latest view it did so.
type PrePrepared struct {
	Seq    uint64
	View   uint64
	Digest Digest
}

const prePreparedSize = 2*sizeU64 + DigestSize

// ViewChange is ⟨VIEW-CHANGE, v+1, n, C, P, Q, i⟩ (PBFT §4.4; Q from TOCS 2002 §4.5):
// NewView is v+1, StableSeq is n, the sequence number of Replica's last stable checkpoint,
// StableDigest its state digest, C its 2f+1 checkpoint proofs, P one prepared certificate
// per request prepared above n, and Q the requests pre-prepared above n.
type ViewChange struct {
	NewView      uint64
	StableSeq    uint64
	Replica      uint64
	StableDigest Digest
	C            []Checkpoint
	P            []PreparedCert
	Q            []PrePrepared
	Auth         Authenticator
}

const viewChangeMinSize = 3*sizeU64 + DigestSize + 3*sizeCount + minAuthSize

func (m *ViewChange) size() int {
	n := viewChangeMinSize - minAuthSize + m.Auth.size() + len(m.Q)*prePreparedSize
	for i := range m.C {
		n += m.C[i].size()
	}
	for i := range m.P {
		n += m.P[i].size()
	}
	return n
}

func appendViewChange(dst []byte, m *ViewChange) []byte {
	dst = appendU64(dst, m.NewView)
	dst = appendU64(dst, m.StableSeq)
	dst = appendU64(dst, m.Replica)
	dst = append(dst, m.StableDigest[:]...)
	dst = appendCount(dst, len(m.C))
	for i := range m.C {
		dst = appendCheckpoint(dst, &m.C[i])
	}
	dst = appendCount(dst, len(m.P))
	for i := range m.P {
		dst = appendPreparedCert(dst, &m.P[i])
	}
	dst = appendCount(dst, len(m.Q))
	for i := range m.Q {
		q := &m.Q[i]
		dst = appendU64(dst, q.Seq)
		dst = appendU64(dst, q.View)
		dst = append(dst, q.Digest[:]...)
	}
	return appendAuth(dst, &m.Auth)
}

func (d *decoder) viewChange(m *ViewChange) {
	m.NewView = d.u64()
	m.StableSeq = d.u64()
	m.Replica = d.u64()
	d.digest(&m.StableDigest)
	m.C = resize(m.C, d.count(checkpointMinSize))
	for i := range m.C {
		d.checkpoint(&m.C[i])
	}
	m.P = resize(m.P, d.count(preparedCertMinSize))
	for i := range m.P {
		d.preparedCert(&m.P[i])
	}
	m.Q = resize(m.Q, d.count(prePreparedSize))
	for i := range m.Q {
		q := &m.Q[i]
		q.Seq = d.u64()
		q.View = d.u64()
		d.digest(&q.Digest)
	}
	d.auth(&m.Auth)
}

// Type implements Message.
func (*ViewChange) Type() Type { return TypeViewChange }

// Size implements Message.
func (m *ViewChange) Size() int { return m.size() }

// AppendBody implements Message.
func (m *ViewChange) AppendBody(dst []byte) []byte { return AppendViewChange(dst, m) }

// Decode implements Message.
func (m *ViewChange) Decode(body []byte) error { return DecodeViewChange(body, m) }

// AppendViewChange appends the encoded body of m to dst.
func AppendViewChange(dst []byte, m *ViewChange) []byte {
	dst = grow(dst, m.size())
	return appendViewChange(dst, m)
}

// DecodeViewChange fills m from body; all nested slices reuse their capacity.
func DecodeViewChange(body []byte, m *ViewChange) error {
	d := decoder{b: body}
	d.viewChange(m)
	return d.finish()
}

// NewView is ⟨NEW-VIEW, v+1, V, O⟩ (PBFT §4.4), sent by the new primary Replica: V holds
// the 2f+1 view-change messages it received (its own included), O the pre-prepares for the
// sequence numbers between min-s and max-s (null requests have a zero digest, or the digest
// of the empty batch in pbftcore). StableSeq is min-s and StableDigest the state digest of
// that checkpoint. O names batches by digest only (TOCS 2002 §5.2), so a NEW-VIEW's size
// depends on n and the window, never on the batches.
type NewView struct {
	View         uint64
	Replica      uint64
	StableSeq    uint64
	StableDigest Digest
	V            []ViewChange
	O            []PrePrepareHeader
	Auth         Authenticator
}

const newViewMinSize = 3*sizeU64 + DigestSize + 2*sizeCount + minAuthSize

// Type implements Message.
func (*NewView) Type() Type { return TypeNewView }

// Size implements Message.
func (m *NewView) Size() int {
	n := newViewMinSize - minAuthSize + m.Auth.size()
	for i := range m.V {
		n += m.V[i].size()
	}
	for i := range m.O {
		n += m.O[i].size()
	}
	return n
}

// AppendBody implements Message.
func (m *NewView) AppendBody(dst []byte) []byte { return AppendNewView(dst, m) }

// Decode implements Message.
func (m *NewView) Decode(body []byte) error { return DecodeNewView(body, m) }

// AppendNewView appends the encoded body of m to dst.
func AppendNewView(dst []byte, m *NewView) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.View)
	dst = appendU64(dst, m.Replica)
	dst = appendU64(dst, m.StableSeq)
	dst = append(dst, m.StableDigest[:]...)
	dst = appendCount(dst, len(m.V))
	for i := range m.V {
		dst = appendViewChange(dst, &m.V[i])
	}
	dst = appendCount(dst, len(m.O))
	for i := range m.O {
		dst = appendPhase(dst, (*Prepare)(&m.O[i]))
	}
	return appendAuth(dst, &m.Auth)
}

// DecodeNewView fills m from body; all nested slices reuse their capacity.
func DecodeNewView(body []byte, m *NewView) error {
	d := decoder{b: body}
	m.View = d.u64()
	m.Replica = d.u64()
	m.StableSeq = d.u64()
	d.digest(&m.StableDigest)
	m.V = resize(m.V, d.count(viewChangeMinSize))
	for i := range m.V {
		d.viewChange(&m.V[i])
	}
	m.O = resize(m.O, d.count(phaseMinSize))
	for i := range m.O {
		d.phase((*Prepare)(&m.O[i]))
	}
	d.auth(&m.Auth)
	return d.finish()
}

// FetchState asks for the state at stable checkpoint Seq (whose digest is Digest), from
// byte Offset on: state transfer for a replica that fell behind (PBFT TOCS §6.2).
type FetchState struct {
	Replica uint64
	Seq     uint64
	Digest  Digest
	Offset  uint64
	Auth    Authenticator
}

const fetchStateMinSize = 3*sizeU64 + DigestSize + minAuthSize

// Type implements Message.
func (*FetchState) Type() Type { return TypeFetchState }

// Size implements Message.
func (m *FetchState) Size() int { return fetchStateMinSize - minAuthSize + m.Auth.size() }

// AppendBody implements Message.
func (m *FetchState) AppendBody(dst []byte) []byte { return AppendFetchState(dst, m) }

// Decode implements Message.
func (m *FetchState) Decode(body []byte) error { return DecodeFetchState(body, m) }

// AppendFetchState appends the encoded body of m to dst.
func AppendFetchState(dst []byte, m *FetchState) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.Replica)
	dst = appendU64(dst, m.Seq)
	dst = append(dst, m.Digest[:]...)
	dst = appendU64(dst, m.Offset)
	return appendAuth(dst, &m.Auth)
}

// DecodeFetchState fills m from body.
func DecodeFetchState(body []byte, m *FetchState) error {
	d := decoder{b: body}
	m.Replica = d.u64()
	m.Seq = d.u64()
	d.digest(&m.Digest)
	m.Offset = d.u64()
	d.auth(&m.Auth)
	return d.finish()
}

// StateChunk carries bytes [Offset, Offset+len(Data)) of the state at checkpoint Seq from
// Replica; Done marks the last chunk. The receiver checks the assembled state against
// Digest, which 2f+1 checkpoint proofs vouch for, so chunks need no authenticator of their
// own (Auth is there for deployments that want one). A state transferred in numbered
// chunks (pbftcore) sets Chunks to their number and Offset to this chunk's index; FetchState
// then asks for a chunk index in Offset too.
type StateChunk struct {
	Replica uint64
	Seq     uint64
	Digest  Digest
	Offset  uint64
	Chunks  uint64
	Done    bool
	Data    []byte
	Auth    Authenticator
}

const stateChunkMinSize = 4*sizeU64 + DigestSize + sizeBool + sizeLen + minAuthSize

// Type implements Message.
func (*StateChunk) Type() Type { return TypeStateChunk }

// Size implements Message.
func (m *StateChunk) Size() int {
	return stateChunkMinSize - minAuthSize + len(m.Data) + m.Auth.size()
}

// AppendBody implements Message.
func (m *StateChunk) AppendBody(dst []byte) []byte { return AppendStateChunk(dst, m) }

// Decode implements Message.
func (m *StateChunk) Decode(body []byte) error { return DecodeStateChunk(body, m) }

// AppendStateChunk appends the encoded body of m to dst.
func AppendStateChunk(dst []byte, m *StateChunk) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.Replica)
	dst = appendU64(dst, m.Seq)
	dst = append(dst, m.Digest[:]...)
	dst = appendU64(dst, m.Offset)
	dst = appendU64(dst, m.Chunks)
	dst = appendBool(dst, m.Done)
	dst = appendBytes(dst, m.Data)
	return appendAuth(dst, &m.Auth)
}

// DecodeStateChunk fills m from body; Data aliases body.
func DecodeStateChunk(body []byte, m *StateChunk) error {
	d := decoder{b: body}
	m.Replica = d.u64()
	m.Seq = d.u64()
	d.digest(&m.Digest)
	m.Offset = d.u64()
	m.Chunks = d.u64()
	m.Done = d.boolean()
	m.Data = d.bytes()
	d.auth(&m.Auth)
	return d.finish()
}

// FetchBatch asks the other replicas for the batch with digest Digest that a NEW-VIEW chose
// for sequence number Seq, when the asker (Replica) does not hold it (TOCS 2002 §5.2). The
// layout is a Prepare's, with View unused (zero).
type FetchBatch Prepare

// Type implements Message.
func (*FetchBatch) Type() Type { return TypeFetchBatch }

// Size implements Message.
func (m *FetchBatch) Size() int { return (*Prepare)(m).size() }

// AppendBody implements Message.
func (m *FetchBatch) AppendBody(dst []byte) []byte { return AppendPrepare(dst, (*Prepare)(m)) }

// Decode implements Message.
func (m *FetchBatch) Decode(body []byte) error { return DecodePrepare(body, (*Prepare)(m)) }

// Batch answers FetchBatch: the requests of the batch with digest Digest for Seq, from
// Replica. The receiver checks them against the digest it asked for; the layout is a
// PrePrepare's, with View unused (zero).
type Batch PrePrepare

// Type implements Message.
func (*Batch) Type() Type { return TypeBatch }

// Size implements Message.
func (m *Batch) Size() int { return (*PrePrepare)(m).Size() }

// AppendBody implements Message.
func (m *Batch) AppendBody(dst []byte) []byte { return AppendPrePrepare(dst, (*PrePrepare)(m)) }

// Decode implements Message.
func (m *Batch) Decode(body []byte) error { return DecodePrePrepare(body, (*PrePrepare)(m)) }

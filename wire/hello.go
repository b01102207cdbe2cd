package wire

// Protocol names the consensus protocol a node speaks.
type Protocol uint8

// Protocols. Zero is invalid so that a forgotten field fails the decode on the other side.
const (
	ProtocolRaft Protocol = 1
	ProtocolPBFT Protocol = 2

	protocolMax = ProtocolPBFT
)

// String returns "raft", "pbft" or "Protocol(n)".
func (p Protocol) String() string {
	switch p {
	case ProtocolRaft:
		return "raft"
	case ProtocolPBFT:
		return "pbft"
	}
	return "Protocol(" + itoa(int(p)) + ")"
}

// PeerHello is the first frame on a connection between replicas: it names the cluster and
// the sender, so a node refuses a peer from another cluster, another protocol, or an
// incompatible protocol version before any protocol message is read.
type PeerHello struct {
	ClusterID       uint64
	NodeID          uint64
	Protocol        Protocol
	ProtocolVersion uint16
}

const peerHelloSize = 2*sizeU64 + sizeU8 + sizeU16

// Type implements Message.
func (*PeerHello) Type() Type { return TypePeerHello }

// Size implements Message.
func (*PeerHello) Size() int { return peerHelloSize }

// AppendBody implements Message.
func (m *PeerHello) AppendBody(dst []byte) []byte { return AppendPeerHello(dst, m) }

// Decode implements Message.
func (m *PeerHello) Decode(body []byte) error { return DecodePeerHello(body, m) }

// AppendPeerHello appends the encoded body of m to dst.
func AppendPeerHello(dst []byte, m *PeerHello) []byte {
	dst = grow(dst, peerHelloSize)
	dst = appendU64(dst, m.ClusterID)
	dst = appendU64(dst, m.NodeID)
	dst = appendU8(dst, uint8(m.Protocol))
	return appendU16(dst, m.ProtocolVersion)
}

// DecodePeerHello fills m from body. An unknown protocol is ErrMalformed.
func DecodePeerHello(body []byte, m *PeerHello) error {
	d := decoder{b: body}
	m.ClusterID = d.u64()
	m.NodeID = d.u64()
	m.Protocol = Protocol(d.u8())
	if m.Protocol == 0 || m.Protocol > protocolMax {
		d.fail()
	}
	m.ProtocolVersion = d.u16()
	return d.finish()
}

// PeerAuthNonceSize and PeerAuthProofSize are the sizes of a PeerAuth's fields.
const (
	PeerAuthNonceSize = 16
	PeerAuthProofSize = 32
)

// PeerAuth carries the challenge-response that proves a peer holds the cluster secret
// (transport's peer authentication). Each side sends a fresh Nonce; Proof is an HMAC, under
// a key derived from the secret, over both node IDs and both nonces: the dialer's first
// PeerAuth has a zero Proof (it has not seen the acceptor's nonce yet), the acceptor's
// answer proves the acceptor, and the dialer's second proves the dialer.
type PeerAuth struct {
	Nonce [PeerAuthNonceSize]byte
	Proof [PeerAuthProofSize]byte
}

const peerAuthSize = PeerAuthNonceSize + PeerAuthProofSize

// Type implements Message.
func (*PeerAuth) Type() Type { return TypePeerAuth }

// Size implements Message.
func (*PeerAuth) Size() int { return peerAuthSize }

// AppendBody implements Message.
func (m *PeerAuth) AppendBody(dst []byte) []byte { return AppendPeerAuth(dst, m) }

// Decode implements Message.
func (m *PeerAuth) Decode(body []byte) error { return DecodePeerAuth(body, m) }

// AppendPeerAuth appends the encoded body of m to dst.
func AppendPeerAuth(dst []byte, m *PeerAuth) []byte {
	dst = append(dst, m.Nonce[:]...)
	return append(dst, m.Proof[:]...)
}

// DecodePeerAuth fills m from body.
func DecodePeerAuth(body []byte, m *PeerAuth) error {
	d := decoder{b: body}
	copy(m.Nonce[:], d.fixed(PeerAuthNonceSize))
	copy(m.Proof[:], d.fixed(PeerAuthProofSize))
	return d.finish()
}

package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/consensusbench/consensusbench/wire"
)

// Peer authentication with a cluster secret.
//
// Without it, the peer hello is a claim: anyone who can reach the peer port can say it is
// node 2 and speak the protocol as node 2. With Config.PeerSecret set, a peer connection is
// accepted only after both ends prove they hold the secret, bound to both node IDs and to
// fresh nonces from both ends:
//
//	dialer   -> PeerHello, PeerAuth{Nonce: nd}
//	acceptor -> PeerHello (answered before it reads on), then
//	            PeerAuth{Nonce: na, Proof: MAC(k, "accept", dialer, acceptor, nd, na)}
//	dialer   -> PeerAuth{Proof: MAC(k, "dial", dialer, acceptor, nd, na)}, then its frames
//
// where k = HMAC-SHA256(secret, label, cluster ID, protocol) and MAC is HMAC-SHA256 under k.
// A recorded handshake does not replay (the other side's nonce is fresh), a proof does not
// reflect (the roles differ), and a node cannot claim another's ID without the secret.
//
// What it does not do: frames after the handshake are not authenticated, so an attacker on
// the path (who can inject into the TCP stream) is not stopped, and traffic is not
// encrypted. Every holder of the secret is trusted as any member. docs/ARCHITECTURE.md
// states the trust model.

// PeerSecretMinBytes is the shortest cluster secret accepted.
const PeerSecretMinBytes = 16

const peerAuthLabel = "consensusbench peer auth v1"

var (
	errAuthRequired = errors.New("the peer did not authenticate: this node requires the cluster secret (the peer runs without one?)")
	errAuthOffered  = errors.New("the peer authenticates with a cluster secret, this node has none")
	errAuthProof    = errors.New("wrong peer authentication proof: the peer does not hold this cluster's secret")
	errAuthNonce    = errors.New("malformed peer authentication: the first PeerAuth must carry a nonce and no proof")
)

// peerKey is the MAC key derived from the cluster secret; nil when peers are not
// authenticated.
type peerKey [sha256.Size]byte

func derivePeerKey(secret []byte, cluster uint64, proto wire.Protocol) *peerKey {
	if secret == nil {
		return nil
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(peerAuthLabel))
	var b [9]byte
	binary.LittleEndian.PutUint64(b[:], cluster)
	b[8] = byte(proto)
	m.Write(b[:])
	var k peerKey
	m.Sum(k[:0])
	return &k
}

// proof is the MAC a side sends: role is "accept" or "dial".
func (k *peerKey) proof(role string, dialer, acceptor uint64, nd, na *[wire.PeerAuthNonceSize]byte) [wire.PeerAuthProofSize]byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(role))
	var ids [16]byte
	binary.LittleEndian.PutUint64(ids[:8], dialer)
	binary.LittleEndian.PutUint64(ids[8:], acceptor)
	m.Write(ids[:])
	m.Write(nd[:])
	m.Write(na[:])
	var p [wire.PeerAuthProofSize]byte
	m.Sum(p[:0])
	return p
}

func (k *peerKey) check(role string, dialer, acceptor uint64, nd, na *[wire.PeerAuthNonceSize]byte, got *[wire.PeerAuthProofSize]byte) bool {
	want := k.proof(role, dialer, acceptor, nd, na)
	return hmac.Equal(want[:], got[:])
}

func newNonce() [wire.PeerAuthNonceSize]byte {
	var n [wire.PeerAuthNonceSize]byte
	if _, err := rand.Read(n[:]); err != nil {
		panic(fmt.Sprintf("transport: no randomness for a nonce: %v", err)) // crypto/rand never fails on Linux
	}
	return n
}

// handshake stages of an inbound peer connection.
const (
	stageHello     uint8 = iota // waiting for the PeerHello
	stageChallenge              // authenticated: waiting for the dialer's nonce
	stageProof                  // authenticated: answered, waiting for the dialer's proof
)

// acceptHandshake processes one frame of an inbound peer connection that is not ready yet.
// It returns the bytes to answer with (nil: none yet).
func (h *handler) acceptHandshake(ic *inConn, f wire.Frame) ([]byte, error) {
	t := h.t
	switch ic.stage {
	case stageHello:
		if err := h.acceptHello(ic, f); err != nil {
			return nil, err
		}
		if t.peerKey == nil {
			if err := h.accepted(ic, false); err != nil {
				return nil, err
			}
		} else {
			ic.stage = stageChallenge
		}
		// The hello is answered at once either way: a dialer without the secret then sends
		// protocol frames, and is refused here with a reason, rather than timing out.
		return t.helloFrame, nil
	case stageChallenge:
		var a wire.PeerAuth
		if f.Type != wire.TypePeerAuth {
			return nil, errAuthRequired
		}
		if err := wire.DecodePeerAuth(f.Body, &a); err != nil {
			return nil, err
		}
		if a.Proof != ([wire.PeerAuthProofSize]byte{}) || a.Nonce == ([wire.PeerAuthNonceSize]byte{}) {
			return nil, errAuthNonce
		}
		ic.nonceD, ic.nonceA = a.Nonce, newNonce()
		ans := wire.PeerAuth{Nonce: ic.nonceA, Proof: t.peerKey.proof("accept", ic.peerID, t.cfg.NodeID, &ic.nonceD, &ic.nonceA)}
		ic.stage = stageProof
		return wire.AppendMessageFrame(nil, 0, &ans), nil
	default: // stageProof
		var a wire.PeerAuth
		if f.Type != wire.TypePeerAuth {
			return nil, errAuthRequired
		}
		if err := wire.DecodePeerAuth(f.Body, &a); err != nil {
			return nil, err
		}
		if !t.peerKey.check("dial", ic.peerID, t.cfg.NodeID, &ic.nonceD, &ic.nonceA, &a.Proof) {
			return nil, errAuthProof
		}
		return nil, h.accepted(ic, true)
	}
}

// accepted marks an inbound peer connection ready for protocol frames, unless MaxPeerConns
// established connections are open already.
func (h *handler) accepted(ic *inConn, authenticated bool) error {
	if !h.t.established(ic) {
		return errPeerConnCap
	}
	ic.ready.Store(true)
	h.t.log.Info("inbound peer connection accepted", "peer", ic.peerID, "remote", ic.remote, "authenticated", authenticated)
	return nil
}

var errPeerConnCap = errors.New("MaxPeerConns established peer connections are open")

// dialAuthenticate runs the dialer's side after its hello was answered: it reads the
// acceptor's PeerAuth from r, checks its proof, and returns the dialer's proof frame.
func (p *peer) dialAuthenticate(r *wire.Reader, nd *[wire.PeerAuthNonceSize]byte) ([]byte, error) {
	f, err := r.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("reading the peer's authentication: %w (does the peer run without the cluster secret?)", err)
	}
	if f.Type != wire.TypePeerAuth {
		return nil, &refusedError{fmt.Errorf("peer answered with %v, want PeerAuth: it runs without the cluster secret", f.Type)}
	}
	var a wire.PeerAuth
	if err := wire.DecodePeerAuth(f.Body, &a); err != nil {
		return nil, &refusedError{err}
	}
	k := p.t.peerKey
	if !k.check("accept", p.t.cfg.NodeID, p.id, nd, &a.Nonce, &a.Proof) {
		return nil, &refusedError{errAuthProof}
	}
	proof := wire.PeerAuth{Proof: k.proof("dial", p.t.cfg.NodeID, p.id, nd, &a.Nonce)}
	return wire.AppendMessageFrame(nil, 0, &proof), nil
}

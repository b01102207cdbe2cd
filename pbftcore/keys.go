package pbftcore

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Keys is one replica's key material. PeerSecrets[j] is the secret it shares with replica j
// and ClientSecrets[c] the one it shares with client c (from a key exchange or a
// configuration file); directional MAC session keys are derived from them with HKDF, so a
// replica never holds the material to forge another pair's MACs (OSDI '99 §4.1 assumes
// pairwise keys). Private signs CHECKPOINT, VIEW-CHANGE and NEW-VIEW (and everything in
// SignAll mode); ReplicaPublic and ClientPublic verify.
type Keys struct {
	ID            int
	PeerSecrets   [][]byte
	ClientSecrets [][]byte
	Private       ed25519.PrivateKey
	ReplicaPublic []ed25519.PublicKey
	ClientPublic  []ed25519.PublicKey
}

// ClientKeys is one client's key material: ReplicaSecrets[j] is shared with replica j.
type ClientKeys struct {
	ID             uint64
	ReplicaSecrets [][]byte
	Private        ed25519.PrivateKey
	ReplicaPublic  []ed25519.PublicKey
}

// Keyring deterministically derives the key material of a whole deployment from one master
// secret. It is for tests, the simulator and benchmarks, where one process plays every
// principal; each principal is handed only its own Keys.
type Keyring struct {
	n       int
	clients int
	master  []byte
}

// NewKeyring returns the keyring of n replicas and clients clients.
func NewKeyring(master []byte, n, clients int) *Keyring {
	return &Keyring{n: n, clients: clients, master: append([]byte(nil), master...)}
}

// principal numbering inside the keyring: replicas 0..n-1, then clients.
func (k *Keyring) derive(label string, a, b int) []byte {
	var info [8]byte
	binary.LittleEndian.PutUint32(info[0:], uint32(a))
	binary.LittleEndian.PutUint32(info[4:], uint32(b))
	key, err := hkdf.Key(sha256.New, k.master, info[:], label, 32)
	if err != nil {
		panic(fmt.Sprintf("pbftcore: hkdf: %v", err))
	}
	return key
}

func (k *Keyring) pairSecret(a, b int) []byte {
	if a > b {
		a, b = b, a
	}
	return k.derive("pbft pair secret", a, b)
}

func (k *Keyring) signingKey(p int) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(k.derive("pbft signing seed", p, p))
}

// Replica returns replica i's keys.
func (k *Keyring) Replica(i int) *Keys {
	keys := &Keys{ID: i, Private: k.signingKey(i)}
	for j := range k.n {
		var s []byte
		if j != i {
			s = k.pairSecret(i, j)
		}
		keys.PeerSecrets = append(keys.PeerSecrets, s)
		keys.ReplicaPublic = append(keys.ReplicaPublic, k.signingKey(j).Public().(ed25519.PublicKey))
	}
	for c := range k.clients {
		keys.ClientSecrets = append(keys.ClientSecrets, k.pairSecret(i, k.n+c))
		keys.ClientPublic = append(keys.ClientPublic, k.signingKey(k.n+c).Public().(ed25519.PublicKey))
	}
	return keys
}

// Client returns client c's keys.
func (k *Keyring) Client(c uint64) *ClientKeys {
	keys := &ClientKeys{ID: c, Private: k.signingKey(k.n + int(c))}
	for j := range k.n {
		keys.ReplicaSecrets = append(keys.ReplicaSecrets, k.pairSecret(j, k.n+int(c)))
		keys.ReplicaPublic = append(keys.ReplicaPublic, k.signingKey(j).Public().(ed25519.PublicKey))
	}
	return keys
}

// sessionKey derives the directional MAC key for messages from -> to out of their shared
// secret (HKDF-SHA256, RFC 5869).
func sessionKey(secret []byte, from, to string) []byte {
	key, err := hkdf.Key(sha256.New, secret, nil, "pbft mac "+from+"->"+to, 32)
	if err != nil {
		panic(fmt.Sprintf("pbftcore: hkdf: %v", err))
	}
	return key
}

func replicaName(i int) string   { return fmt.Sprintf("r%d", i) }
func clientName(c uint64) string { return fmt.Sprintf("c%d", c) }

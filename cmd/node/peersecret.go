package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/consensusbench/consensusbench/server"
	"github.com/consensusbench/consensusbench/transport"
)

// loadPeerSecret reads --peer-secret-file. Peers are authenticated with it (transport's
// challenge-response hello); a cluster whose peer addresses are not all loopback refuses to
// start without one unless --insecure-peers says the network is trusted.
func loadPeerSecret(path string, insecure bool, spec *server.ClusterSpec) ([]byte, error) {
	if path != "" {
		if insecure {
			return nil, fmt.Errorf("--peer-secret-file and --insecure-peers contradict each other")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--peer-secret-file: %w", err)
		}
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < transport.PeerSecretMinBytes {
			return nil, fmt.Errorf("--peer-secret-file %s: the secret must be at least %d bytes (openssl rand -hex 32 makes one)", path, transport.PeerSecretMinBytes)
		}
		return secret, nil
	}
	if insecure {
		return nil, nil
	}
	for _, n := range spec.Nodes {
		host, _, err := net.SplitHostPort(n.PeerAddr)
		if err != nil || !isLoopbackHost(host) {
			return nil, fmt.Errorf("node %d's peer address %s is not loopback: give --peer-secret-file (the same secret on every node; openssl rand -hex 32 > FILE), or --insecure-peers if nobody else can reach the peer ports", n.ID, n.PeerAddr)
		}
	}
	return nil, nil
}

package clusterspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// ClusterSpec is the cluster description shared by cmd/node and cmd/loadgen: who the
// replicas are, where they listen, and the protocol settings every replica must agree on.
//
// The file format is JSON (see docs/CLUSTER.md for an annotated example):
//
//	{
//	  "cluster_id": 1,
//	  "protocol": "raft",
//	  "tick": "10ms",
//	  "nodes": [
//	    {"id": 1, "peer_addr": "127.0.0.1:7101", "client_addr": "127.0.0.1:7201"},
//	    {"id": 2, "peer_addr": "127.0.0.1:7102", "client_addr": "127.0.0.1:7202"},
//	    {"id": 3, "peer_addr": "127.0.0.1:7103", "client_addr": "127.0.0.1:7203"}
//	  ],
//	  "raft": {"election_tick": 30, "heartbeat_tick": 1},
//	  "pbft": {"checkpoint_interval": 128, "auth": "mac", "key_seed": "bench"}
//	}
//
// Unknown fields are rejected so that a typo cannot silently leave a default in place.
type ClusterSpec struct {
	ClusterID uint64     `json:"cluster_id"`
	Protocol  string     `json:"protocol"`
	Tick      Duration   `json:"tick,omitempty"`
	Nodes     []NodeSpec `json:"nodes"`
	Raft      RaftSpec   `json:"raft,omitzero"`
	PBFT      PBFTSpec   `json:"pbft,omitzero"`
}

// NodeSpec is one replica. IDs are 1..N for Raft; PBFT replica i is the node with ID i+1
// (PBFT numbers replicas from 0, so the primary of view v is the node with ID v mod N + 1).
type NodeSpec struct {
	ID         uint64 `json:"id"`
	PeerAddr   string `json:"peer_addr"`
	ClientAddr string `json:"client_addr"`
	// MetricsAddr is the node's admin address (Prometheus /metrics, /ready, /admin/): the
	// node serves there when --metrics-addr is not given, and loadgen --cluster reaches it
	// for remote faults and leader-change counters.
	MetricsAddr string `json:"metrics_addr,omitempty"`
}

// RaftSpec holds the Raft settings. Zero fields take raftcore's defaults.
type RaftSpec struct {
	ElectionTick       int    `json:"election_tick,omitempty"`
	HeartbeatTick      int    `json:"heartbeat_tick,omitempty"`
	DisablePreVote     bool   `json:"disable_pre_vote,omitempty"`
	DisableCheckQuorum bool   `json:"disable_check_quorum,omitempty"`
	Reads              string `json:"reads,omitempty"` // "safe" (ReadIndex round, default) or "lease"
	MaxInflightMsgs    int    `json:"max_inflight_msgs,omitempty"`
	MaxInflightBytes   uint64 `json:"max_inflight_bytes,omitempty"`
	MaxSizePerMsg      uint64 `json:"max_size_per_msg,omitempty"`
	SnapshotThreshold  uint64 `json:"snapshot_threshold,omitempty"`
	// SnapshotThresholdBytes: also snapshot once this many payload bytes were applied since
	// the last one (default 64 MiB; it bounds the log a replica holds in memory).
	SnapshotThresholdBytes uint64 `json:"snapshot_threshold_bytes,omitempty"`
	// SnapshotRetainEntries: entries kept below a snapshot (default 5000).
	SnapshotRetainEntries uint64 `json:"snapshot_retain_entries,omitempty"`
	// SnapshotRetainBytes: at most this many payload bytes kept below a snapshot (default
	// 8 MiB).
	SnapshotRetainBytes uint64 `json:"snapshot_retain_bytes,omitempty"`
}

// PBFTSpec holds the PBFT settings. Zero fields take pbftcore's defaults.
type PBFTSpec struct {
	CheckpointInterval uint64 `json:"checkpoint_interval,omitempty"`
	WindowSize         uint64 `json:"window_size,omitempty"`
	// SnapshotThresholdBytes: write a stable checkpoint's state to disk (and compact the WAL
	// below it) once this many bytes of protocol records were logged since the last such
	// file (default 64 MiB). Every checkpoint is still digested and kept in memory for
	// state transfer; this bounds the WAL a restart replays, not the protocol's log.
	SnapshotThresholdBytes uint64 `json:"snapshot_threshold_bytes,omitempty"`
	MaxBatchRequests       int    `json:"max_batch_requests,omitempty"`
	BatchFlushTicks        int    `json:"batch_flush_ticks,omitempty"`
	Auth                   string `json:"auth,omitempty"` // "mac" (default) or "sign"
	// KeySeed derives every replica's and client's key material deterministically, so a
	// benchmark cluster needs no key distribution. It is a benchmarking convenience, not a
	// way to run a cluster that must resist a real adversary.
	KeySeed        string `json:"key_seed,omitempty"`
	RequestTimeout int    `json:"request_timeout_ticks,omitempty"`
	MaxClients     int    `json:"max_clients,omitempty"`
}

// Duration is a time.Duration that reads and writes as a Go duration string ("10ms").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"10ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Limits on a cluster spec.
const (
	// MaxNodes bounds the replicas of one cluster (raftcore and pbftcore both allow 64).
	MaxNodes = 64
	// DefaultTick is the logical tick when the spec names none.
	DefaultTick = 10 * time.Millisecond
	// MinTick and MaxTick bound the tick: below 1 ms the driver would spin on timers, above
	// 1 s elections take minutes.
	MinTick = time.Millisecond
	MaxTick = time.Second
)

// LoadClusterSpec reads and validates a cluster spec file.
func LoadClusterSpec(path string) (*ClusterSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster spec: %w", err)
	}
	s, err := ParseClusterSpec(b)
	if err != nil {
		return nil, fmt.Errorf("cluster spec %s: %w", path, err)
	}
	return s, nil
}

// ParseClusterSpec decodes and validates a cluster spec.
func ParseClusterSpec(b []byte) (*ClusterSpec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s ClusterSpec
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Marshal encodes the spec as indented JSON.
func (s *ClusterSpec) Marshal() ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// TickInterval is the spec's tick or DefaultTick.
func (s *ClusterSpec) TickInterval() time.Duration {
	if s.Tick == 0 {
		return DefaultTick
	}
	return time.Duration(s.Tick)
}

// Node returns the node with the given ID.
func (s *ClusterSpec) Node(id uint64) (NodeSpec, bool) {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return NodeSpec{}, false
}

// Validate names every problem in one error.
func (s *ClusterSpec) Validate() error {
	var bad []string
	add := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	switch s.Protocol {
	case "raft":
		if len(s.Nodes) < 1 {
			add("raft needs at least 1 node")
		}
	case "pbft":
		if len(s.Nodes) < 4 {
			add("pbft needs at least 4 nodes (n = 3f+1, f >= 1), got %d", len(s.Nodes))
		}
	default:
		add("protocol %q: want raft or pbft", s.Protocol)
	}
	if len(s.Nodes) > MaxNodes {
		add("%d nodes exceed MaxNodes=%d", len(s.Nodes), MaxNodes)
	}
	if t := time.Duration(s.Tick); t != 0 && (t < MinTick || t > MaxTick) {
		add("tick %v outside [%v, %v]", t, MinTick, MaxTick)
	}
	ids := map[uint64]bool{}
	addrs := map[string]bool{}
	for i, n := range s.Nodes {
		if n.ID == 0 {
			add("nodes[%d]: id must be nonzero", i)
		}
		if s.Protocol == "pbft" && n.ID != uint64(i+1) {
			add("nodes[%d]: pbft replicas must have ids 1..N in order, got %d", i, n.ID)
		}
		if ids[n.ID] {
			add("nodes[%d]: id %d repeated", i, n.ID)
		}
		ids[n.ID] = true
		for _, a := range []struct{ name, addr string }{{"peer_addr", n.PeerAddr}, {"client_addr", n.ClientAddr}, {"metrics_addr", n.MetricsAddr}} {
			if a.name == "metrics_addr" && a.addr == "" {
				continue // optional
			}
			if _, _, err := net.SplitHostPort(a.addr); err != nil {
				add("nodes[%d].%s %q: %v", i, a.name, a.addr, err)
				continue
			}
			if addrs[a.addr] {
				add("nodes[%d].%s %q used twice", i, a.name, a.addr)
			}
			addrs[a.addr] = true
		}
	}
	switch s.Raft.Reads {
	case "", "safe", "lease":
	default:
		add("raft.reads %q: want safe or lease", s.Raft.Reads)
	}
	switch s.PBFT.Auth {
	case "", "mac", "sign":
	default:
		add("pbft.auth %q: want mac or sign", s.PBFT.Auth)
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// LocalClusterSpec returns a spec for n nodes on loopback, using consecutive ports from
// basePort (peer ports first, then client ports).
func LocalClusterSpec(protocol string, n int, basePort int) *ClusterSpec {
	s := &ClusterSpec{ClusterID: 1, Protocol: protocol}
	for i := 0; i < n; i++ {
		s.Nodes = append(s.Nodes, NodeSpec{
			ID:         uint64(i + 1),
			PeerAddr:   fmt.Sprintf("127.0.0.1:%d", basePort+i),
			ClientAddr: fmt.Sprintf("127.0.0.1:%d", basePort+n+i),
		})
	}
	return s
}

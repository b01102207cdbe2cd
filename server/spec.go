package server

import "github.com/consensusbench/consensusbench/clusterspec"

// The cluster spec lives in package clusterspec, which clients import too; these names keep
// the server's API whole.
type (
	// ClusterSpec is clusterspec.ClusterSpec.
	ClusterSpec = clusterspec.ClusterSpec
	// NodeSpec is clusterspec.NodeSpec.
	NodeSpec = clusterspec.NodeSpec
	// RaftSpec is clusterspec.RaftSpec.
	RaftSpec = clusterspec.RaftSpec
	// PBFTSpec is clusterspec.PBFTSpec.
	PBFTSpec = clusterspec.PBFTSpec
	// Duration is clusterspec.Duration.
	Duration = clusterspec.Duration
)

// Limits on a cluster spec (clusterspec's).
const (
	MaxNodes    = clusterspec.MaxNodes
	DefaultTick = clusterspec.DefaultTick
	MinTick     = clusterspec.MinTick
	MaxTick     = clusterspec.MaxTick
)

// LoadClusterSpec reads and validates a cluster spec file (clusterspec.LoadClusterSpec).
func LoadClusterSpec(path string) (*ClusterSpec, error) { return clusterspec.LoadClusterSpec(path) }

// ParseClusterSpec decodes and validates a cluster spec (clusterspec.ParseClusterSpec).
func ParseClusterSpec(b []byte) (*ClusterSpec, error) { return clusterspec.ParseClusterSpec(b) }

// LocalClusterSpec returns a spec for n nodes on loopback (clusterspec.LocalClusterSpec).
func LocalClusterSpec(protocol string, n int, basePort int) *ClusterSpec {
	return clusterspec.LocalClusterSpec(protocol, n, basePort)
}

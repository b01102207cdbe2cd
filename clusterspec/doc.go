// Package clusterspec is the cluster spec file: who the replicas are, where they listen, and
// the protocol settings every replica and client must agree on (docs/CLUSTER.md). It
// depends on the standard library only, so that a client (client.NewFromSpec) can read the
// same file the replicas start from without linking the server.
package clusterspec

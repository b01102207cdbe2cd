// Package netns emulates several hosts on one Linux machine with network namespaces, for
// benchmarks under faults with real links: one namespace per node and one for the load
// generator, each joined by a veth pair to a bridge that lives in a namespace of its own
// (nothing is added to the caller's namespace), addresses in the benchmarking range
// 198.18.0.0/15 (RFC 2544), an optional `tc tbf` rate limit on both ends of every link, and
// partitions made by taking a node's link down.
//
// Every name carries the creating process's ID (cb<pid>-...), so concurrent runs do not
// collide, and Teardown removes everything a Net created: it kills the processes left in
// its namespaces and deletes the namespaces, which deletes their links and the bridge.
// Callers defer Teardown and also call it on SIGINT/SIGTERM (cmd/netns-bench does).
//
// This kernel has no sch_netem, so there is no delay or loss emulation: links are as fast
// as the host (optionally rate-limited) and a partition drops everything.
//
// It needs root and iproute2 (`ip`, `tc`). It owns no load generation or checking; Scenario
// runs bench/history's fault run inside the client namespace.
package netns

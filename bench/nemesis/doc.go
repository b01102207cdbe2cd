// Package nemesis injects faults into a running cluster on a schedule and measures what they
// did to the load: the `--nemesis` grammar (Parse), the executor that applies a Schedule to a
// Cluster relative to the measured window's start (Run), and the figures computed afterwards
// from the per-second series and the per-request completion times (Analyze): unavailability
// window, throughput dip, time to recover to 90% of the pre-fault rate, and latency
// percentiles inside and outside fault windows.
//
// It owns no process or network management: a Cluster implementation does the killing,
// pausing and partitioning (InProcess for server.LocalCluster, Procs for node processes found
// through their /admin/ endpoints, bench/netns for network namespaces). Procs also drives
// nodes on other hosts through those endpoints alone: a kill is the node's /admin/crash, a
// restart waits for the node's supervisor to start it again, a pause is /admin/pause. It never decides
// whether a run was correct; bench/history does.
package nemesis

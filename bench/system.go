package bench

import (
	"fmt"
	"slices"
	"sort"
	"sync"
)

// SystemOurs names consensusbench's own replicas (cmd/node) in Spec.System and in result
// identities. A result written before Spec.System existed measured them.
const SystemOurs = "consensusbench"

// System is a consensus system other than consensusbench's own that loadgen can drive with
// the same workloads, drivers, verdicts and result files: a peer such as etcd. Its binding
// lives outside the core module (peers/), so that the core never depends on the peer's
// code; a loadgen built with the binding linked in registers it from an init function, the
// way database/sql drivers register themselves:
//
//	func init() { bench.RegisterSystem(bench.System{Name: "etcd", ...}) }
//
// and loadgen --system NAME then finds it with LookupSystem.
type System struct {
	// Name is the --system value and the identity's system (with Version): lower case,
	// never SystemOurs.
	Name string
	// Version is the peer's release ("v3.7.3"), recorded as Spec.SystemVersion.
	Version string
	// About is one line for loadgen's --help ("etcd v3.7.3 (go.etcd.io/etcd), Raft").
	About string
	// Protocol is the consensus protocol the system runs, one of Protocols: its results pair
	// with ours of the same protocol.
	Protocol string
	// Sync is the durability of its local clusters ("always" or "none"), recorded as
	// Spec.Sync; loadgen refuses --sync values it cannot honour.
	Sync string
	// Reads lists the Spec.Reads values it offers (--raft-reads), its default first.
	Reads []string
	// MaxBatch bounds ops per request (--batch) where the system has a limit (0: none).
	MaxBatch int
	// NoFaults lists the fault actions (bench/nemesis names: "partition-leader", ...) its
	// local clusters cannot apply; loadgen refuses a --nemesis schedule that uses them.
	NoFaults []string
	// Open opens the cluster spec names: Spec.Local processes started on loopback, or the
	// running cluster at Spec.Targets. spec.System, SystemVersion, Sync and Reads are
	// resolved before Open is called. A local Target should implement CPUReporter,
	// DataDirReporter and, for faults, what loadgen's fault injection asks of local clusters
	// (Nemesis and ReadBack; see cmd/loadgen/cli).
	Open Opener
}

var (
	systemsMu sync.RWMutex
	systems   = map[string]System{}
)

// RegisterSystem makes s available to loadgen --system s.Name. It panics, like
// database/sql.Register, when s is incomplete or its name is taken: both are programming
// errors in the binding, found the first time the binary starts.
func RegisterSystem(s System) {
	switch {
	case s.Name == "" || s.Name == SystemOurs:
		panic(fmt.Sprintf("bench: RegisterSystem: invalid name %q", s.Name))
	case s.Version == "" || s.Open == nil:
		panic(fmt.Sprintf("bench: RegisterSystem(%q): Version and Open are required", s.Name))
	case !slices.Contains(Protocols, s.Protocol):
		panic(fmt.Sprintf("bench: RegisterSystem(%q): protocol %q is not one of %v", s.Name, s.Protocol, Protocols))
	case s.Sync != "always" && s.Sync != "none":
		panic(fmt.Sprintf("bench: RegisterSystem(%q): sync %q: want always or none", s.Name, s.Sync))
	case len(s.Reads) == 0:
		panic(fmt.Sprintf("bench: RegisterSystem(%q): Reads needs at least the default read mode", s.Name))
	case s.MaxBatch < 0:
		panic(fmt.Sprintf("bench: RegisterSystem(%q): MaxBatch %d", s.Name, s.MaxBatch))
	}
	systemsMu.Lock()
	defer systemsMu.Unlock()
	if _, dup := systems[s.Name]; dup {
		panic(fmt.Sprintf("bench: RegisterSystem called twice for %q", s.Name))
	}
	systems[s.Name] = s
}

// LookupSystem returns the registered system called name.
func LookupSystem(name string) (System, bool) {
	systemsMu.RLock()
	defer systemsMu.RUnlock()
	s, ok := systems[name]
	return s, ok
}

// SystemNames lists the registered systems, sorted, after SystemOurs (always available).
func SystemNames() []string {
	systemsMu.RLock()
	defer systemsMu.RUnlock()
	names := make([]string, 0, len(systems))
	for n := range systems {
		names = append(names, n)
	}
	sort.Strings(names)
	return append([]string{SystemOurs}, names...)
}

// SystemID is the identity's name for the system a Spec measured: SystemOurs for our
// replicas (also when System is empty, as in results written before the field existed),
// otherwise the peer's name and version ("etcd-v3.7.3"), so that runs of different
// systems, or of different releases of one, are never pooled.
func (s Spec) SystemID() string {
	switch {
	case s.System == "" || s.System == SystemOurs:
		return SystemOurs
	case s.SystemVersion == "":
		return s.System
	}
	return s.System + "-" + s.SystemVersion
}

// VersionReporter is implemented by a Target that learns the release of the cluster it
// reached (a remote peer cluster may run another release than the binding was built
// against); loadgen records it as Spec.SystemVersion.
type VersionReporter interface {
	SystemVersion() string
}

package sim

import (
	"fmt"
	"math/rand/v2"
)

// TickUnits is the length of one tick in simulated time units. Message and disk latencies
// are drawn in units, so a message can arrive well within a tick or several ticks late.
const TickUnits = 100

// Bounds of the drawn parameters. Each run draws its own values within these.
const (
	SafetyTicksMin     = 300
	SafetyTicksMax     = 900
	LivenessTicksMax   = 400 // after heal, the cluster must complete LivenessOps ops within this
	LivenessOps        = 6   // ops started after heal that must complete
	DrainTicks         = 30  // workload keeps running this long after liveness is shown
	ClientsMin         = 2
	ClientsMaxRun      = 5
	KeysMin            = 1
	KeysMaxRun         = 4
	FinishTicksMax     = 300  // after the workload stops, every pending op must complete within this
	QuiesceTicksMax    = 1500 // then the cluster idles until Converged (or this long) before Final
	ThinkTicksMax      = 4
	DelayUnitsMax      = 60  // ordinary one-way message delay upper bound (< 1 tick)
	LongDelayUnitsMax  = 500 // a delayed ("reordered") message arrives up to 5 ticks late
	DropRateMax        = 0.15
	DupRateMax         = 0.10
	LongDelayRateMax   = 0.10
	DiskUnitsMax       = 150 // one write's latency upper bound (1.5 ticks)
	FaultEveryTicksMin = 2   // mean ticks between faults, drawn between these
	FaultEveryTicksMax = 60
	ClockDriftPctMax   = 1          // per-host tick period within ±1% of TickUnits
	DiskStallUnitsMax  = 3000       // a stalled disk starts no flush for up to 30 ticks
	StallUnitsMax      = 6000       // a stalled process runs nothing for up to 60 ticks
	HistoryOpsMax      = 4000       // ops started in the safety phase; the heal phase is bounded by ticks
	EventsMax          = 20_000_000 // a run that processes this many events is stuck
)

// FaultKind is one fault the schedule can inject.
type FaultKind uint8

// Faults in the schedule. Each run draws a weight per kind, so some runs are crash-heavy,
// others partition-heavy, others quiet.
const (
	FaultPartition     FaultKind = iota // split the hosts into two sides, both ways cut
	FaultAsymPartition                  // cut one direction between a host and some others
	FaultIsolate                        // cut one host off both ways
	FaultHeal                           // remove every cut
	FaultCrash                          // crash a host (pending disk writes lost)
	FaultRestart                        // restart a crashed host from its disk image
	FaultProtocol                       // Protocol.Nemesis: membership change, transfer, ...
	FaultDiskStall                      // a host's disk stalls: its next flush starts late
	FaultStall                          // a host's process stalls (SIGSTOP, GC pause): see Cluster.Stall
	faultKinds
)

var faultNames = [faultKinds]string{"partition", "asym", "isolate", "heal", "crash", "restart", "protocol", "diskstall", "stall"}

func (f FaultKind) String() string { return faultNames[f] }

// Params are the simulator's parameters of one run, all drawn from the seed.
type Params struct {
	Clients       int
	Keys          int
	SafetyTicks   int
	ThinkTicks    int     // max ticks a client waits between ops
	DelayMin      int64   // units
	DelayMax      int64   // units
	LongDelayRate float64 // share of messages delayed up to LongDelayUnitsMax (reordering)
	DropRate      float64
	DupRate       float64
	DiskMin       int64 // units
	DiskMax       int64 // units
	TornCrash     bool  // a crash may land a prefix of the pending writes without acking them
	FaultEvery    int   // mean ticks between faults
	FaultWeights  [faultKinds]int
	ClockDriftPct int
}

func drawParams(r *rand.Rand) Params {
	p := Params{
		Clients:       ClientsMin + r.IntN(ClientsMaxRun-ClientsMin+1),
		Keys:          KeysMin + r.IntN(KeysMaxRun-KeysMin+1),
		SafetyTicks:   SafetyTicksMin + r.IntN(SafetyTicksMax-SafetyTicksMin+1),
		ThinkTicks:    r.IntN(ThinkTicksMax + 1),
		DelayMin:      1 + r.Int64N(10),
		DiskMin:       1 + r.Int64N(20),
		TornCrash:     r.IntN(2) == 0,
		FaultEvery:    FaultEveryTicksMin + r.IntN(FaultEveryTicksMax-FaultEveryTicksMin+1),
		ClockDriftPct: r.IntN(ClockDriftPctMax + 1),
	}
	p.DelayMax = p.DelayMin + r.Int64N(DelayUnitsMax-p.DelayMin+1)
	p.DiskMax = p.DiskMin + r.Int64N(DiskUnitsMax-p.DiskMin+1)
	// A third of runs have a clean network apart from partitions, so that partition and crash
	// interleavings get explored without message loss masking them.
	if r.IntN(3) != 0 {
		p.DropRate = r.Float64() * DropRateMax
		p.DupRate = r.Float64() * DupRateMax
		p.LongDelayRate = r.Float64() * LongDelayRateMax
	}
	for i := range p.FaultWeights {
		p.FaultWeights[i] = r.IntN(4) // 0 switches a kind off for this run
	}
	// Restarts must be able to follow crashes, and heals partitions, or the safety phase
	// degenerates into a dead cluster for most of its length.
	if p.FaultWeights[FaultCrash] > 0 && p.FaultWeights[FaultRestart] == 0 {
		p.FaultWeights[FaultRestart] = 1
	}
	if p.FaultWeights[FaultHeal] == 0 {
		p.FaultWeights[FaultHeal] = 1
	}
	return p
}

func (p Params) String() string {
	w := ""
	for k, v := range p.FaultWeights {
		if v > 0 {
			w += fmt.Sprintf("%s:%d,", FaultKind(k), v)
		}
	}
	torn := 0
	if p.TornCrash {
		torn = 1
	}
	return fmt.Sprintf("clients=%d keys=%d safety=%dt think=%dt delay=%d-%du long=%.3f drop=%.3f dup=%.3f disk=%d-%du torn=%d faultevery=%dt faults=[%s] drift=%d%%",
		p.Clients, p.Keys, p.SafetyTicks, p.ThinkTicks, p.DelayMin, p.DelayMax,
		p.LongDelayRate, p.DropRate, p.DupRate, p.DiskMin, p.DiskMax, torn, p.FaultEvery, w, p.ClockDriftPct)
}

package sim

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// Flags shared by every seed campaign (TestRaftSeeds, TestPBFTSeeds):
//
//	go test ./sim/ -run TestRaftSeeds -seeds=5000      a campaign of seeds seedstart..seedstart+N-1
//	go test ./sim/ -run TestRaftSeeds -seed=12345 -v   replay one seed exactly
//	... -seed=12345 -simtrace                             and print its event trace
var (
	seedsFlag     = flag.Int("seeds", 0, "number of seeds per campaign (0: the test's default)")
	seedFlag      = flag.Uint64("seed", 0, "replay this one seed (0: run a campaign)")
	seedStartFlag = flag.Uint64("seedstart", 1, "first seed of a campaign")
	traceFlag     = flag.Bool("simtrace", false, "print the event trace of a -seed replay to stdout")
	keepGoingFlag = flag.Bool("keepgoing", false, "run the whole campaign past failures and list every failing seed")
)

// keepGoingReportsMax bounds the failures a -keepgoing campaign reports in full.
const keepGoingReportsMax = 20

// runSeeds runs the campaign for one protocol. testName must be the calling test's name, so
// the replay command it prints is exact. Each run prints its seed and drawn parameters first;
// a failure prints the one command that replays it, and the campaign stops at the first
// failure.
func runSeeds(t *testing.T, testName string, factory Factory, defaultSeeds int) {
	t.Helper()
	if *seedFlag != 0 {
		opts := Options{}
		if *traceFlag {
			opts.Trace = os.Stdout
		}
		_, counters, _ := runOne(t, testName, *seedFlag, factory, opts, true)
		if len(counters) > 0 {
			t.Logf("protocol counters: %v", counters)
		}
		return
	}
	n := *seedsFlag
	if n == 0 {
		n = defaultSeeds
	}
	var total Stats
	var sums []Counter
	var failed []uint64
	start := time.Now() // reporting only; never affects a run
	for i := range n {
		seed := *seedStartFlag + uint64(i)
		st, counters, ok := runOne(t, testName, seed, factory, Options{}, len(failed) < keepGoingReportsMax)
		if !ok {
			failed = append(failed, seed)
			if !*keepGoingFlag {
				return
			}
			continue
		}
		if sums == nil {
			sums = make([]Counter, len(counters))
			for i := range counters {
				sums[i].Name = counters[i].Name
			}
		}
		for i := range counters {
			sums[i].N += counters[i].N
		}
		total.Events += st.Events
		total.Sent += st.Sent
		total.Dropped += st.Dropped
		total.Duplicated += st.Duplicated
		total.Crashes += st.Crashes
		total.Restarts += st.Restarts
		total.Partitions += st.Partitions
		total.ProtocolFaults += st.ProtocolFaults
		total.DiskTorn += st.DiskTorn
		total.DiskLost += st.DiskLost
		total.DiskStalls += st.DiskStalls
		total.Stalls += st.Stalls
		total.OpsDone += st.OpsDone
		total.OpsUnknown += st.OpsUnknown
		total.Ticks += st.Ticks
	}
	if len(failed) > 0 {
		t.Errorf("%s: %d of %d seeds failed: %v", testName, len(failed), n, failed)
	}
	t.Logf("%s: %d seeds (%d..%d) run in %v: ticks=%d events=%d msgs=%d dropped=%d dup=%d crashes=%d partitions=%d protocol-faults=%d disk-lost=%d disk-torn=%d disk-stalls=%d stalls=%d ops=%d unknown=%d",
		testName, n, *seedStartFlag, *seedStartFlag+uint64(n)-1, time.Since(start).Round(time.Millisecond),
		total.Ticks, total.Events, total.Sent, total.Dropped, total.Duplicated, total.Crashes, total.Partitions,
		total.ProtocolFaults, total.DiskLost, total.DiskTorn, total.DiskStalls, total.Stalls, total.OpsDone, total.OpsUnknown)
	if len(sums) > 0 {
		line := ""
		for _, s := range sums {
			line += fmt.Sprintf(" %s=%d", s.Name, s.N)
		}
		t.Logf("%s protocol counters:%s", testName, line)
	}
}

func replayCommand(testName string, seed uint64) string {
	return fmt.Sprintf("go test ./sim/ -run '^%s$' -seed=%d -v", testName, seed)
}

func runOne(t *testing.T, testName string, seed uint64, factory Factory, opts Options, report bool) (Stats, []Counter, bool) {
	t.Helper()
	c := NewCluster(seed, factory, opts)
	desc := c.Describe() // as drawn, before the run changes anything
	if testing.Verbose() {
		t.Log(desc)
	}
	err := c.Run()
	st := c.Stats()
	if err != nil && !report {
		t.Errorf("seed %d FAILED: %.200v", seed, err)
		return st, nil, false
	}
	if err != nil {
		t.Errorf("%s\nseed %d FAILED: %v\nstate at the end:\n%s\nreplay: %s\n(add -simtrace for the event trace)", desc, seed, err, c.StateDump(), replayCommand(testName, seed))
		return st, nil, false
	}
	if *seedFlag != 0 {
		t.Logf("seed %d ok: ticks=%d heal=%d live=%d events=%d msgs=%d ops=%d unknown=%d crashes=%d partitions=%d protocol-faults=%d",
			seed, st.Ticks, st.HealTick, st.LiveTick, st.Events, st.Sent, st.OpsDone, st.OpsUnknown, st.Crashes, st.Partitions, st.ProtocolFaults)
	}
	return st, c.Counters(), true
}

package sim

import (
	"errors"
	"strings"
	"testing"
)

// The toy protocol is correct, so every seed must pass: this exercises the network, disk,
// crash/restart, fault schedule, workload, liveness and linearizability machinery.
func TestToyProtocol(t *testing.T) {
	runSeeds(t, "TestToyProtocol", newToy(false), 100)
}

// A run is a pure function of its seed: same seed, same trace and counters.
func TestDeterministicReplay(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		var a, b strings.Builder
		ca := NewCluster(seed, newToy(false), Options{Trace: &a})
		cb := NewCluster(seed, newToy(false), Options{Trace: &b})
		errA, errB := ca.Run(), cb.Run()
		if (errA == nil) != (errB == nil) || a.String() != b.String() || ca.Stats() != cb.Stats() {
			t.Fatalf("seed %d: two runs differ (errors %v / %v, stats %+v / %+v)", seed, errA, errB, ca.Stats(), cb.Stats())
		}
		if a.Len() == 0 {
			t.Fatalf("seed %d: empty trace", seed)
		}
	}
}

// A replica that acknowledges before its write is durable loses acknowledged writes on a
// crash; the linearizability checker must catch that on some seed.
func TestCheckerCatchesAckBeforePersist(t *testing.T) {
	const tries = 300
	for seed := uint64(1); seed <= tries; seed++ {
		c := NewCluster(seed, newToy(true), Options{})
		err := c.Run()
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "not linearizable") {
			t.Fatalf("seed %d: failed, but not by the linearizability checker: %v", seed, err)
		}
		t.Logf("seed %d caught: %.200s", seed, err)
		return
	}
	t.Fatalf("no seed in 1..%d caught a replica that acks before persisting", tries)
}

// A protocol Check error stops the run and is reported.
func TestCheckErrorStopsRun(t *testing.T) {
	c := NewCluster(1, func(c *Cluster) Protocol {
		p := newToy(false)(c).(*toyProtocol)
		p.checkErr = errToyCheck
		return p
	}, Options{})
	if err := c.Run(); !errors.Is(err, errToyCheck) {
		t.Fatalf("Run = %v, want the injected check error", err)
	}
}

// The porcupine model rejects a stale read and accepts a concurrent one.
func TestLinearizabilityModel(t *testing.T) {
	put := Record{Op: Op{Client: 0, Seq: 1, Kind: OpPut, Key: 0, Value: 7}, Call: 0, Return: 10, Out: Output{OK: true}, Status: OpDone}
	staleGet := Record{Op: Op{Client: 1, Seq: 1, Kind: OpGet, Key: 0}, Call: 20, Return: 30, Out: Output{Value: 0, OK: true}, Status: OpDone}
	if err := CheckLinearizable([]Record{put, staleGet}); err == nil {
		t.Fatal("stale read after a completed put was accepted")
	}
	concurrent := staleGet
	concurrent.Call = 5
	if err := CheckLinearizable([]Record{put, concurrent}); err != nil {
		t.Fatalf("concurrent read rejected: %v", err)
	}
	unknownCAS := Record{Op: Op{Client: 2, Seq: 1, Kind: OpCAS, Key: 0, Value: 9, Expect: 7}, Call: 12, Status: OpUnknown}
	get9 := Record{Op: Op{Client: 1, Seq: 2, Kind: OpGet, Key: 0}, Call: 40, Return: 50, Out: Output{Value: 9, OK: true}, Status: OpDone}
	if err := CheckLinearizable([]Record{put, unknownCAS, get9}); err != nil {
		t.Fatalf("read of an unknown cas's value rejected: %v", err)
	}
}

func TestOpRoundTrip(t *testing.T) {
	op := Op{Client: 3, Seq: 99, Kind: OpCAS, Key: 2, Value: -5, Expect: 1 << 40}
	got, err := DecodeOp(AppendOp(nil, op))
	if err != nil || got != op {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := DecodeOp(make([]byte, OpEncodedSize)); !errors.Is(err, ErrBadOp) {
		t.Fatalf("zero op decoded: %v", err)
	}
}

// KV sessions execute each (client, seq) once.
func TestKVSessionsDedup(t *testing.T) {
	var kv KV
	op := Op{Client: 1, Seq: 1, Kind: OpCAS, Key: 0, Value: 5, Expect: 0}
	out, dup := kv.Apply(op)
	if !out.OK || dup {
		t.Fatalf("first apply: %+v dup=%v", out, dup)
	}
	out, dup = kv.Apply(op)
	if !out.OK || !dup || kv.Get(0) != 5 || kv.Applied() != 1 {
		t.Fatalf("duplicate apply: %+v dup=%v value=%d applied=%d", out, dup, kv.Get(0), kv.Applied())
	}
}

// A cluster that stops serving once the faults heal fails the liveness check.
func TestLivenessCheckerCatchesStall(t *testing.T) {
	c := NewCluster(1, func(c *Cluster) Protocol {
		p := newToy(false)(c).(*toyProtocol)
		p.deafOnHeal = true
		return p
	}, Options{})
	if err := c.Run(); !errors.Is(err, ErrLiveness) {
		t.Fatalf("Run = %v, want ErrLiveness", err)
	}
}

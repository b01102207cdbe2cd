package report

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/consensusbench/consensusbench/bench/load"
)

// MergeStartTolerance bounds how far apart the merged results' start times may be: the load
// hosts must have measured the same window of the same cluster.
const MergeStartTolerance = 5 * time.Second

// mergeScenario is a result's identity without what each load host chooses for itself (its
// share of the rate and of the clients).
func mergeScenario(r *Result) string {
	var parts []string
	for _, kv := range Identity(r) {
		if kv[0] != "rate" && kv[0] != "clients" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, "/")
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Merge combines the results of several load-generator hosts that drove the same cluster at
// the same time. Histograms are added, as are the per-second intervals (aligned by second
// since each host's window began) and the counts; percentiles are read from the sums, never
// averaged. Offered rate and clients add up. Verdicts do not merge (each host saw only its own
// history) and are dropped; events are combined.
func Merge(rs []*Result) (*Result, error) {
	if len(rs) == 0 {
		return nil, errors.New("merge: no results")
	}
	first := rs[0]
	for i, r := range rs {
		if r.Interrupted {
			return nil, fmt.Errorf("merge: result %d was interrupted (its window is %v of %v): a merge needs whole windows",
				i+1, time.Duration(r.Summary.DurationNs), r.Load.Duration)
		}
	}
	scenario := mergeScenario(first)
	for i, r := range rs[1:] {
		switch {
		case mergeScenario(r) != scenario:
			return nil, fmt.Errorf("merge: result %d is a different test:\n  %s\n  %s", i+2, scenario, mergeScenario(r))
		case r.Load.Duration != first.Load.Duration || r.Summary.DurationNs != first.Summary.DurationNs:
			return nil, fmt.Errorf("merge: windows differ (%v and %v): the hosts must measure the same window",
				time.Duration(first.Summary.DurationNs), time.Duration(r.Summary.DurationNs))
		case absDuration(r.Started.Sub(first.Started)) > MergeStartTolerance:
			return nil, fmt.Errorf("merge: results started %v apart (at most %v): they did not drive the cluster at the same time",
				absDuration(r.Started.Sub(first.Started)), MergeStartTolerance)
		}
	}
	m := &Result{Schema: Schema, Kind: KindRun, Env: first.Env, Started: first.Started,
		Cluster: first.Cluster, ClusterInfo: first.ClusterInfo, Load: first.Load, Fsync: first.Fsync}
	m.Load.Rate, m.Load.Clients = 0, 0
	total := load.NewHistogram()
	var dropped int64
	type sec struct {
		hist   *hdrhistogram.Histogram
		errors int64
	}
	secs := map[int]*sec{}
	var nodes []NodeCPU
	for _, r := range rs {
		m.MergedFrom = append(m.MergedFrom, r.Env)
		if len(r.MergedFrom) > 0 {
			m.MergedFrom = append(m.MergedFrom[:len(m.MergedFrom)-1], r.MergedFrom...)
		}
		if r.Started.Before(m.Started) {
			m.Started = r.Started
		}
		m.Load.Rate += r.Load.Rate
		m.Load.Clients += r.Load.Clients
		h, err := r.DecodeHistogram()
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		dropped += total.Merge(h)
		s := &m.Summary
		s.Ops += r.Summary.Ops
		s.Errors += r.Summary.Errors
		s.Unsent += r.Summary.Unsent
		s.Clamped += r.Summary.Clamped
		s.SendLagMax = max(s.SendLagMax, r.Summary.SendLagMax)
		s.LateSends += r.Summary.LateSends
		s.DurationNs = max(s.DurationNs, r.Summary.DurationNs)
		for _, x := range r.Series {
			h, err := DecodeHistogram(x.Histogram)
			if err != nil {
				return nil, fmt.Errorf("merge: second %d: %w", x.T, err)
			}
			agg := secs[x.T]
			if agg == nil {
				agg = &sec{hist: load.NewIntervalHistogram()}
				secs[x.T] = agg
			}
			dropped += agg.hist.Merge(h)
			agg.errors += x.Errors
		}
		m.Events = append(m.Events, r.Events...)
		m.LoadgenCPUSeconds += r.LoadgenCPUSeconds
		if len(nodes) == 0 {
			// Every host saw the same cluster; its CPU time is counted once.
			nodes = r.Nodes
		}
	}
	if dropped != 0 {
		return nil, fmt.Errorf("merge: histograms dropped %d counts (geometry mismatch)", dropped)
	}
	var err error
	if m.Histogram, err = EncodeHistogram(total); err != nil {
		return nil, err
	}
	m.Summary.Mode = first.Load.Mode
	m.Summary.Latency = PercentilesOf(total)
	if m.Summary.DurationNs > 0 {
		m.Summary.Throughput = float64(m.Summary.Ops) / (float64(m.Summary.DurationNs) / 1e9)
	}
	keys := make([]int, 0, len(secs))
	for t := range secs {
		keys = append(keys, t)
	}
	slices.Sort(keys)
	for _, t := range keys {
		s, err := SecondOf(t, secs[t].hist, secs[t].errors)
		if err != nil {
			return nil, err
		}
		m.Series = append(m.Series, s)
	}
	sort.SliceStable(m.Events, func(i, j int) bool { return m.Events[i].At < m.Events[j].At })
	if len(nodes) > 0 {
		m.SetNodeCPU(nodes)
	}
	return m, nil
}

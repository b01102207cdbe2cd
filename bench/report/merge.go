package report

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/consensusbench/consensusbench/bench/load"
)

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
	for _, r := range rs[1:] {
		switch {
		case r.Cluster.Protocol != first.Cluster.Protocol:
			return nil, fmt.Errorf("merge: protocols differ (%s, %s)", first.Cluster.Protocol, r.Cluster.Protocol)
		case r.Load.Mode != first.Load.Mode:
			return nil, fmt.Errorf("merge: modes differ (%s, %s)", first.Load.Mode, r.Load.Mode)
		case r.Load.Workload.Name != first.Load.Workload.Name:
			return nil, fmt.Errorf("merge: workloads differ (%s, %s)", first.Load.Workload.Name, r.Load.Workload.Name)
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

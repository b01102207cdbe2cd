package report

import (
	"fmt"
	"strings"
)

// DescribeClusterEvents says what a run's ClusterEvents counted: "2 leader changes, 3
// elections", "no view change".
func DescribeClusterEvents(e map[string]int64) string {
	var parts []string
	for _, k := range []struct{ key, one, many string }{
		{"leader_changes", "leader change", "leader changes"},
		{"elections", "election", "elections"},
		{"view_changes", "view change", "view changes"},
	} {
		n, ok := e[k.key]
		switch {
		case !ok:
		case n == 1:
			parts = append(parts, "1 "+k.one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, k.many))
		}
	}
	if len(parts) == 0 {
		if _, ok := e["view_changes"]; ok {
			return "no view change"
		}
		return "no leader change"
	}
	return strings.Join(parts, ", ")
}

// AggregateClusterEvents turns each node's counters at the start and end of the window
// (bench.EventReporter) into the run's ClusterEvents: elections add up over the nodes;
// leader and view changes are the most one node saw (every node sees each change). A node
// whose counter went down was restarted in the window and counts from zero; one missing at
// either end (down) is left out.
func AggregateClusterEvents(from, to map[string]map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for node, end := range to {
		start, ok := from[node]
		if !ok {
			start = map[string]int64{}
		}
		for k, v := range end {
			d := v - start[k]
			if d < 0 {
				d = v // restarted: its counters began again at zero
			}
			if k == "elections" {
				out[k] += d
			} else {
				out[k] = max(out[k], d)
			}
		}
	}
	return out
}

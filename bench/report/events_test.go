package report

import (
	"maps"
	"testing"
)

// Elections add up over the nodes, changes are the most one node saw, and a node restarted
// inside the window (its counters went down) counts from zero.
func TestAggregateClusterEvents(t *testing.T) {
	from := map[string]map[string]int64{
		"n1": {"elections": 1, "leader_changes": 1},
		"n2": {"elections": 0, "leader_changes": 1},
		"n3": {"elections": 0, "leader_changes": 1},
	}
	to := map[string]map[string]int64{
		"n1": {"elections": 0, "leader_changes": 1}, // killed and restarted: saw the new leader
		"n2": {"elections": 1, "leader_changes": 3}, // to none, to itself... counted as seen
		"n3": {"elections": 0, "leader_changes": 3},
	}
	got := AggregateClusterEvents(from, to)
	want := map[string]int64{"elections": 1, "leader_changes": 2}
	if !maps.Equal(got, want) {
		t.Fatalf("AggregateClusterEvents = %v, want %v", got, want)
	}
	for _, c := range []struct {
		e    map[string]int64
		want string
	}{
		{want, "2 leader changes, 1 election"},
		{map[string]int64{"elections": 0, "leader_changes": 0}, "no leader change"},
		{map[string]int64{"view_changes": 0}, "no view change"},
		{map[string]int64{"view_changes": 1}, "1 view change"},
	} {
		if got := DescribeClusterEvents(c.e); got != c.want {
			t.Errorf("DescribeClusterEvents(%v) = %q, want %q", c.e, got, c.want)
		}
	}
}

package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The counters of events that disturb a run, as each node exports them in /metrics.
const (
	metricElections     = "cb_raft_elections_total"
	metricLeaderChanges = "cb_raft_leader_changes_total"
	metricViewChanges   = "cb_pbft_view_changes_total"
	// eventsTimeout bounds one scrape of every node.
	eventsTimeout = 2 * time.Second
)

// NodeEvents reads every running node's election, leader-change and view-change
// counters, keyed by Node.Name and then by "elections", "leader_changes" and
// "view_changes" (the ones its protocol has). A node that is not running is left out; a
// restarted node's counters start again from zero. It implements bench.EventReporter.
func (c *Cluster) NodeEvents() (map[string]map[string]int64, error) {
	addrs := map[string]string{}
	for _, n := range c.Nodes {
		if done, _ := n.Exited(); !done {
			addrs[n.Name()] = n.MetricsAddr
		}
	}
	return EventsAt(c.cfg.Protocol, addrs)
}

// EventsAt is NodeEvents for any nodes: it scrapes each node's /metrics at its admin
// address (addrs: node name to host:port), for a cluster loadgen did not start too.
func EventsAt(protocol string, addrs map[string]string) (map[string]map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), eventsTimeout)
	defer cancel()
	out := map[string]map[string]int64{}
	var errs []error
	for name, addr := range addrs {
		m, err := scrapeCounters(ctx, "http://"+addr+"/metrics", metricElections, metricLeaderChanges, metricViewChanges)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster: %s: %w", name, err))
			continue
		}
		ev := map[string]int64{}
		if protocol == "pbft" {
			ev["view_changes"] = m[metricViewChanges]
		} else {
			ev["elections"], ev["leader_changes"] = m[metricElections], m[metricLeaderChanges]
		}
		out[name] = ev
	}
	return out, errors.Join(errs...)
}

// scrapeCounters returns the values of the named metrics (Prometheus text format, no
// labels) from url; a metric the page lacks reads as 0.
func scrapeCounters(ctx context.Context, url string, names ...string) (map[string]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", url, sc.Text(), err)
		}
		out[name] = int64(v)
	}
	return out, sc.Err()
}

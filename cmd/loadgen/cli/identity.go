package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/server"
)

// statusTimeout bounds one /admin/status request to a remote node.
const statusTimeout = 2 * time.Second

// resolveSpec fills in the cluster's resolved configuration (bench.Spec's identity fields),
// defaults spelled out, so that a result's name does not depend on how the flags were
// written. A local cluster is what loadgen started; a remote one says what it can through
// its nodes' /admin/status (a cluster spec's metrics_addr), and the rest is "unknown".
func (a *app) resolveSpec(ctx context.Context, spec bench.Spec, cf *clusterFlags) bench.Spec {
	if spec.System != bench.SystemOurs {
		return spec // a peer system's: clusterFlags.peerSpec resolved it
	}
	if spec.Local > 0 {
		spec.Nodes = spec.Local
		if spec.Sync == "" {
			spec.Sync = "none"
		}
		switch spec.Protocol {
		case "raft":
			spec.Reads = orDefault(cf.raftReads, "safe")
		case "pbft":
			spec.Byzantine = orDefault(cf.byz, "none")
		}
		return spec
	}
	unknown := bench.SyncUnknown
	var admins []string
	spec.Nodes = len(spec.Targets)
	if spec.ClusterFile != "" {
		if cs, err := server.LoadClusterSpec(spec.ClusterFile); err == nil {
			spec.Nodes = len(cs.Nodes)
			if spec.Protocol == "raft" {
				spec.Reads = orDefault(cs.Raft.Reads, "safe")
			}
			for _, n := range cs.Nodes {
				if n.MetricsAddr != "" {
					admins = append(admins, n.MetricsAddr)
				}
			}
		}
	}
	sync, reads, byz := unknown, unknown, unknown
	for _, addr := range admins {
		if a.status == nil {
			break
		}
		st, err := a.status(ctx, addr)
		if err != nil {
			continue
		}
		sync, reads = orDefault(st.Sync, unknown), orDefault(st.Reads, unknown)
		if st.Byzantine != "" && (byz == unknown || byz == "none") {
			byz = st.Byzantine
		}
	}
	if spec.Sync == "" {
		spec.Sync = sync
	}
	switch spec.Protocol {
	case "raft":
		if spec.Reads == "" {
			spec.Reads = reads
		}
	case "pbft":
		spec.Byzantine = byz
	}
	return spec
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// fetchStatus reads a node's /admin/status.
func fetchStatus(ctx context.Context, addr string) (server.ReplicaStatus, error) {
	var st server.ReplicaStatus
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/admin/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s/admin/status: %s", url, resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
	return st, err
}

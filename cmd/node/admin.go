package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/consensusbench/consensusbench/server"
)

// addAdmin serves the operator endpoints the load generator's fault injection uses:
//
//	GET  /admin/status                   the replica's role, leader, term, applied index (JSON)
//	POST /admin/partition?peers=2,3      drop all traffic to and from those peers (empty heals)
//	POST /admin/transfer-leader?to=N     Raft: hand leadership to node N (this node must lead)
//
// They share --metrics-addr, which must therefore only be reachable by the operator.
func addAdmin(mux *http.ServeMux, r server.Replica) {
	adm, ok := r.(server.Admin)
	if !ok {
		return
	}
	mux.HandleFunc("GET /admin/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(adm.Status())
	})
	mux.HandleFunc("POST /admin/partition", func(w http.ResponseWriter, req *http.Request) {
		var peers []uint64
		if s := req.URL.Query().Get("peers"); s != "" {
			for _, f := range strings.Split(s, ",") {
				id, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
				if err != nil {
					http.Error(w, "peers: want comma-separated node IDs: "+err.Error(), http.StatusBadRequest)
					return
				}
				peers = append(peers, id)
			}
		}
		adm.SetPartition(peers)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /admin/transfer-leader", func(w http.ResponseWriter, req *http.Request) {
		lt, ok := r.(server.LeaderTransferer)
		if !ok {
			http.Error(w, "this protocol has no leader transfer", http.StatusNotImplemented)
			return
		}
		to, err := strconv.ParseUint(req.URL.Query().Get("to"), 10, 64)
		if err != nil || to == 0 {
			http.Error(w, "to: want a node ID", http.StatusBadRequest)
			return
		}
		if err := lt.TransferLeader(to); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

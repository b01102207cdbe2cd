package main

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/consensusbench/consensusbench/server"
)

// addAdmin serves the operator endpoints the load generator's fault injection uses:
//
//	GET  /admin/status                   the replica's role, leader, term, applied index (JSON)
//	POST /admin/partition?peers=2,3      drop all traffic to and from those peers (empty heals)
//	POST /admin/transfer-leader?to=N     Raft: hand leadership to node N (this node must lead)
//	POST /admin/crash                    end the process at once, as kill -9 does (proc.crash)
//	POST /admin/pause?for=2s             stop the whole process for a while (proc.pause)
//
// GET /admin/ lists them. They share --metrics-addr; guardAdmin protects the mutating ones.
func addAdmin(mux *http.ServeMux, r server.Replica, pprof bool, proc processControl) {
	mux.HandleFunc("GET /admin/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, adminIndex)
		if pprof {
			fmt.Fprint(w, "GET  /debug/pprof/                    Go profiles (--pprof)\n")
		}
	})
	adm, ok := r.(server.Admin)
	if !ok {
		return
	}
	// /ready answers 200 once the replica can serve: a Raft node that knows a leader (a
	// request to it is answered or redirected), a PBFT replica once started (its view's
	// primary is known by arithmetic; view changes are the protocol's own business). A
	// deployment's health check or a load generator waits on it before measuring.
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		st := adm.Status()
		if st.Leader == 0 {
			http.Error(w, fmt.Sprintf("not ready: no leader known (term %d, role %s)", st.Term, st.Role), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready: %s, leader %d, term %d\n", st.Role, st.Leader, st.Term)
	})
	mux.HandleFunc("GET /admin/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st := adm.Status()
		st.Incarnation = incarnation
		_ = json.NewEncoder(w).Encode(st)
	})
	// The process faults answer before they act (a crashed or stopped process answers
	// nothing), so the caller learns the request was taken; it then watches the node
	// (/admin/status, /ready) to see it go and come back.
	mux.HandleFunc("POST /admin/crash", func(w http.ResponseWriter, _ *http.Request) {
		answerNow(w, "crashing: the process ends at once (SIGKILL to itself, as kill -9), with nothing flushed beyond what --sync already made durable; its supervisor restarts it\n")
		proc.crash()
	})
	mux.HandleFunc("POST /admin/pause", func(w http.ResponseWriter, req *http.Request) {
		d, err := time.ParseDuration(req.URL.Query().Get("for"))
		if err != nil || d <= 0 || d > server.MaxAdminPause {
			http.Error(w, fmt.Sprintf("for: want a Go duration in (0, %v], e.g. for=2s", server.MaxAdminPause), http.StatusBadRequest)
			return
		}
		if proc.pause == nil {
			http.Error(w, "pause is not supported on this operating system (it needs Linux's POSIX timers)", http.StatusNotImplemented)
			return
		}
		stop, err := proc.pause(d)
		if err != nil {
			http.Error(w, "pause: "+err.Error(), http.StatusInternalServerError)
			return
		}
		answerNow(w, fmt.Sprintf("pausing for %v: the whole process stops (SIGSTOP to itself) and a kernel timer continues it (SIGCONT)\n", d))
		stop()
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

var adminIndex = fmt.Sprintf(`GET  /metrics                         Prometheus metrics
GET  /ready                           200 once the replica can serve (Raft: a leader is known), else 503
GET  /admin/status                    role, leader, term, applied index, sync, read mode (JSON)
POST /admin/partition?peers=2,3       drop all traffic to and from those peers (empty heals)
POST /admin/transfer-leader?to=N      Raft: hand leadership to node N (this node must lead)
POST /admin/crash                     end the process at once, as kill -9 does (a supervisor restarts it)
POST /admin/pause?for=2s              stop the whole process (SIGSTOP) for at most %v, then it continues by itself
`, server.MaxAdminPause)

// answerNow sends a 202 with msg and pushes it onto the connection, so that the caller has
// it before the handler crashes or stops the process.
func answerNow(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, msg)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// adminOptions are the admin server's flags.
type adminOptions struct {
	addr      string
	tokenFile string
	pprof     bool
}

// adminTokenMin bounds a token's length from below: a short one can be guessed.
const adminTokenMin = 16

// resolve returns the address to listen on and the token. A bare :PORT binds loopback; a
// non-loopback address needs a token, since the mutating endpoints can partition the node.
func (o adminOptions) resolve() (addr, token string, err error) {
	host, port, err := net.SplitHostPort(o.addr)
	if err != nil {
		return "", "", fmt.Errorf("--metrics-addr %q: %v", o.addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", "", fmt.Errorf("--admin-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if len(token) < adminTokenMin {
			return "", "", fmt.Errorf("--admin-token-file %s: the token must be at least %d characters", o.tokenFile, adminTokenMin)
		}
	}
	if token == "" && !isLoopbackHost(host) {
		return "", "", fmt.Errorf("--metrics-addr %s is not loopback: give --admin-token-file, since /admin/ can partition this node", o.addr)
	}
	return net.JoinHostPort(host, port), token, nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guardAdmin protects the mutating endpoints (every method but GET and HEAD). With a token,
// they need "Authorization: Bearer TOKEN". Without one (loopback only), a request that
// carries an Origin header is refused, and so is one whose Host is not a loopback name or
// address: a web page an operator visits can make the browser POST to loopback without a
// preflight (a request without a body), and DNS rebinding can make that page same-origin,
// but neither can leave out Origin or forge Host. Reads stay open to what can reach the port.
func guardAdmin(next http.Handler, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet || req.Method == http.MethodHead {
			next.ServeHTTP(w, req)
			return
		}
		if token != "" {
			got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				http.Error(w, "this endpoint needs Authorization: Bearer <the --admin-token-file token>", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, req)
			return
		}
		host, _, err := net.SplitHostPort(req.Host)
		if err != nil {
			host = req.Host
		}
		if req.Header.Get("Origin") != "" || !isLoopbackHost(host) {
			http.Error(w, "refused: a request from a web page (Origin or a non-loopback Host); give the node --admin-token-file to use this endpoint remotely", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	})
}

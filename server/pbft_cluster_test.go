package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
	"github.com/consensusbench/consensusbench/wire"
)

// pbftTestSpec keeps checkpoints frequent (so state transfer and garbage collection run in
// a short test) and the view-change timer short (5 ms ticks, 40 ticks).
func pbftTestSpec() *ClusterSpec {
	return &ClusterSpec{ClusterID: 1, Protocol: "pbft", Tick: Duration(5 * time.Millisecond),
		PBFT: PBFTSpec{CheckpointInterval: 8, WindowSize: 32, MaxBatchRequests: 16, RequestTimeout: 40,
			MaxClients: 64, KeySeed: "pbft-cluster-test"}}
}

func startPBFTCluster(t *testing.T, sync storage.SyncPolicy) *LocalCluster {
	t.Helper()
	return startPBFTClusterMode(t, sync, false)
}

func startPBFTClusterMode(t *testing.T, sync storage.SyncPolicy, unsafe bool) *LocalCluster {
	t.Helper()
	return startPBFTClusterSpec(t, sync, unsafe, pbftTestSpec())
}

func startPBFTClusterSpec(t *testing.T, sync storage.SyncPolicy, unsafe bool, spec *ClusterSpec) *LocalCluster {
	t.Helper()
	c, err := StartLocalCluster(LocalClusterConfig{Protocol: "pbft", Nodes: 4, Dir: t.TempDir(), Sync: sync,
		Spec: spec, UnsafeAckBeforeCommit: unsafe,
		TuneTransport: func(tc *transport.Config) {
			tc.PartialFrameTimeout = 300 * time.Millisecond
			tc.HandshakeTimeout = 300 * time.Millisecond
			tc.EventLoops = 1
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

// clientNodes lists the cluster's client addresses, as a client's Config wants them.
func clientNodes(c *LocalCluster) []client.Node {
	var nodes []client.Node
	for _, n := range c.Spec.Nodes {
		nodes = append(nodes, client.Node{ID: n.ID, Addr: n.ClientAddr})
	}
	return nodes
}

// pbftClient returns a client using identities [first, first+inflight).
func pbftClient(t *testing.T, c *LocalCluster, first uint64, inflight int) *client.PBFTClient {
	t.Helper()
	nodes := clientNodes(c)
	cl, err := client.NewPBFT(context.Background(), client.PBFTConfig{Nodes: nodes, KeySeed: c.Spec.PBFT.KeySeed,
		MaxClients: c.Spec.PBFT.MaxClients, FixedClientIDs: true, FirstClientID: first, MaxInflight: inflight,
		AttemptTimeout: 300 * time.Millisecond, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func pdo(t *testing.T, cl *client.PBFTClient, ops ...wire.Op) *client.Results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var res client.Results
	if err := cl.Do(ctx, ops, &res); err != nil {
		t.Fatalf("Do(%d ops): %v", len(ops), err)
	}
	return &res
}

func pbftReplica(c *LocalCluster, i int) *PBFTReplica { return c.Replicas[i].(*PBFTReplica) }

// waitPBFTExecuted waits until every replica has executed sequence number seq, and fails
// the test with each replica's position if that takes longer than within.
func waitPBFTExecuted(t *testing.T, c *LocalCluster, seq uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for i := range c.Replicas {
		for pbftReplica(c, i).LastExecuted() < seq {
			if time.Now().After(deadline) {
				at := make([]uint64, len(c.Replicas))
				for j := range at {
					at[j] = pbftReplica(c, j).LastExecuted()
				}
				t.Fatalf("replica %d did not execute sequence number %d within %v; executed: %v", i, seq, within, at)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// pbftMaxExecuted returns the furthest any replica has executed.
func pbftMaxExecuted(c *LocalCluster) uint64 {
	var most uint64
	for i := range c.Replicas {
		most = max(most, pbftReplica(c, i).LastExecuted())
	}
	return most
}

// PBFT §4.2 (normal case, f+1 matching replies), §5.1.3 (read-only path, 2f+1 replies):
// writes from pipelined callers execute once and read back on every path.
func TestPBFTClusterWritesAndReads(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncAlways)
	cl := pbftClient(t, c, 0, 8)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				var res client.Results
				err := cl.Do(ctx, []wire.Op{put(fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("v%d", i)), put(fmt.Sprintf("x%d", w), "x")}, &res)
				cancel()
				if err == nil && (res.Ops[0].Status != wire.StatusOK || res.Ops[1].Status != wire.StatusOK) {
					err = fmt.Errorf("put statuses %v %v", res.Ops[0].Status, res.Ops[1].Status)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Read-only batch (all gets): served from replica state with 2f+1 matching replies.
	res := pdo(t, cl, get("w3-7"), get("w7-9"), get("missing"))
	if string(res.Ops[0].Value) != "v7" || string(res.Ops[1].Value) != "v9" || res.Ops[2].Status != wire.StatusNotFound {
		t.Fatalf("reads: %+v", res.Ops)
	}
	// An ordered batch mixing reads and CAS.
	res = pdo(t, cl, wire.Op{Kind: wire.OpCAS, Key: []byte("x1"), Expected: []byte("x"), Value: []byte("y")},
		wire.Op{Kind: wire.OpCAS, Key: []byte("x2"), Expected: []byte("nope"), Value: []byte("z")}, get("x1"))
	if res.Ops[0].Status != wire.StatusOK || res.Ops[1].Status != wire.StatusCASMismatch || string(res.Ops[1].Value) != "x" ||
		string(res.Ops[2].Value) != "y" {
		t.Fatalf("cas batch: %+v", res.Ops)
	}
	// 80 writes with K=8: checkpoints became stable everywhere and were written to disk.
	for i := range c.Replicas {
		if h := pbftReplica(c, i).StableCheckpoint(); h == 0 {
			t.Fatalf("replica %d has no stable checkpoint after %d executed", i, pbftReplica(c, i).LastExecuted())
		}
		if s, _, err := storage.OpenLatestSnapshot(nil, c.dir+fmt.Sprintf("/node-%d/snap", i+1)); err != nil {
			t.Fatalf("replica %d: no checkpoint snapshot on disk: %v", i, err)
		} else {
			s.Close()
		}
	}
}

// PBFT §4.4: the primary stops; the client's retransmissions to all replicas start the
// backups' timers, they move to view 1, and the new primary serves. Every write the client
// accepted (f+1 replies) is still there.
func TestPBFTClusterPrimaryFailover(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	cl := pbftClient(t, c, 0, 4)
	var mu sync.Mutex
	acked := map[string]string{}
	writer := func(w int, stop <-chan struct{}, wg *sync.WaitGroup) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("v%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var res client.Results
			err := cl.Do(ctx, []wire.Op{put(k, v)}, &res)
			cancel()
			if err == nil && res.Ops[0].Status == wire.StatusOK {
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go writer(w, stop, &wg)
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.StopNode(0); err != nil { // the primary of view 0
		t.Fatal(err)
	}
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= before+20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress after the primary stopped: %d acked before, %d now; views %d %d %d",
				before, n, pbftReplica(c, 1).View(), pbftReplica(c, 2).View(), pbftReplica(c, 3).View())
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for i := 1; i < 4; i++ {
		if v := pbftReplica(c, i).View(); v == 0 {
			t.Fatalf("replica %d still in view 0", i)
		}
		if v := metricValue(t, pbftReplica(c, i).Metrics(), "cb_pbft_view_changes_total"); v == "0" {
			t.Errorf("replica %d left view 0, cb_pbft_view_changes_total = %s", i, v)
		}
	}
	if cl.Primary() == 1 {
		t.Fatalf("client still targets the stopped primary")
	}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range acked {
		if got := pdo(t, cl, get(k), put("probe", k)).Ops[0]; got.Status != wire.StatusOK || string(got.Value) != v {
			t.Fatalf("acknowledged %s=%s reads back %v %q", k, v, got.Status, got.Value)
		}
	}
}

// PBFT §4.3 (state transfer): a replica stopped while the others move several checkpoints
// ahead restarts empty, fetches the 2f+1-certified state and executes what follows; with
// another replica then stopped, the cluster needs it for every quorum.
func TestPBFTClusterRestartedReplicaCatchesUp(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncAlways)
	cl := pbftClient(t, c, 0, 4)
	for i := 0; i < 5; i++ {
		pdo(t, cl, put(fmt.Sprintf("early%d", i), "e"))
	}
	if err := c.StopNode(3); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		pdo(t, cl, put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)))
	}
	if err := c.RestartNode(3); err != nil {
		t.Fatal(err)
	}
	pbftWaitCaughtUp(t, c, 3, func(ops ...wire.Op) { pdo(t, cl, ops...) })
	// Without replica 3 (index 2) every quorum of 2f+1 = 3 needs the restarted replica.
	if err := c.StopNode(2); err != nil {
		t.Fatal(err)
	}
	cl2 := pbftClient(t, c, 8, 2) // the restarted replica listens on a new port
	pdo(t, cl2, put("after", "1"))
	res := pdo(t, cl2, get("early2"), get("k59"), get("after"))
	if string(res.Ops[0].Value) != "e" || string(res.Ops[1].Value) != "v59" || string(res.Ops[2].Value) != "1" {
		t.Fatalf("reads after catch-up: %+v", res.Ops)
	}
}

// Hostile input closes only the offending connection (as for Raft); the PBFT cluster keeps
// serving.
func TestPBFTClusterSurvivesHostileConnections(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	cl := pbftClient(t, c, 0, 2)
	pdo(t, cl, put("a", "1"))
	attackConnections(t, c, wire.TypePBFTRequest, wire.ProtocolPBFT)
	if got := pdo(t, cl, get("a")).Ops[0]; string(got.Value) != "1" {
		t.Fatalf("after hostile connections a = %q", got.Value)
	}
}

// A connection that forges requests or registrations in another client's name gets none of
// that client's replies once the client has sent an authentic request to every replica (any
// read does), and the client's own requests keep completing: only an authentic request moves
// a client's replies to the connection it came on, and a registration never takes them from
// a live connection an authentic request set.
func TestPBFTForgedRequestsCannotStealReplies(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	cl := pbftClient(t, c, 0, 1) // identity 0 only
	pdo(t, cl, put("a", "0"))
	pdo(t, cl, get("a")) // sent to every replica
	// 2f+1 replies came back; let the slowest replica take the read too before the forgers
	// start, or its replies could still follow the client's unauthenticated registration.
	time.Sleep(200 * time.Millisecond)
	n := len(c.Spec.Nodes)
	forged := wire.AppendMessageFrame(nil, 0, &wire.Request{ClientID: 0, Timestamp: 1 << 40,
		Op:   wire.AppendClientRequest(nil, &wire.ClientRequest{Ops: []wire.Op{put("a", "forged")}}),
		Auth: wire.Authenticator{Kind: wire.AuthShortMACs, MACs: make([]byte, n*wire.ShortMACSize)}})
	forged = wire.AppendMessageFrame(forged, 0, &wire.ClientRequest{ClientID: 0, FirstSeq: 1}) // a registration
	stop := make(chan struct{})
	var stolen atomic.Int64
	var wg sync.WaitGroup
	for _, node := range c.Spec.Nodes {
		nc, err := net.Dial("tcp", node.ClientAddr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { // the forger: a fresh claim on client 0 every millisecond
			defer wg.Done()
			defer nc.Close()
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				if _, err := nc.Write(forged); err != nil {
					t.Errorf("forger's connection to %s closed: %v", node.ClientAddr, err)
					return
				}
			}
		}()
		go func() { // whatever the replica sends the forger, but the view notices that answer
			defer wg.Done() // its registrations (timestamp 0, no result: a replica's view is no secret)
			r := wire.NewReader(nc, PBFTMaxClientFrameBytes)
			var rep wire.PBFTReply
			for {
				f, err := r.ReadFrame()
				if err != nil {
					return
				}
				if f.Type != wire.TypePBFTReply || wire.DecodePBFTReply(f.Body, &rep) != nil || rep.Timestamp != 0 || len(rep.Result) != 0 {
					stolen.Add(int64(len(f.Body)))
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond) // the forgers' first claims are in
	for i := range 10 {
		pdo(t, cl, put("a", fmt.Sprint(i+1)))
	}
	close(stop)
	wg.Wait()
	if k := stolen.Load(); k != 0 {
		t.Fatalf("the forging connections received %d bytes of client 0's replies", k)
	}
	if got := pdo(t, cl, get("a")).Ops[0]; string(got.Value) != "10" {
		t.Fatalf("a = %q, want 10 (a forged write executed?)", got.Value)
	}
}

// PBFT §4.2: a write completes only after it committed at 2f+1 replicas, so with two of four
// replicas stopped nothing is acknowledged; the test-only UnsafeAckBeforeCommit mode
// acknowledges it anyway (the primary on receipt, the backup on the pre-prepare), which is
// what the checkers of the load generator must catch.
func TestPBFTUnsafeAckBeforeCommitAcknowledgesUncommittedWrites(t *testing.T) {
	for _, unsafe := range []bool{false, true} {
		t.Run(fmt.Sprintf("unsafe=%v", unsafe), func(t *testing.T) {
			c := startPBFTClusterMode(t, storage.SyncNone, unsafe)
			cl := pbftClient(t, c, 0, 1)
			// In unsafe mode the reply may precede execution: let the first write finish
			// everywhere before the quorum is broken, so only the second one is measured.
			// The client's identity claim is ordered before it, so the write's sequence
			// number is one past whatever the claim left executed, not 1.
			claimed := pbftMaxExecuted(c)
			waitPBFTExecuted(t, c, claimed, 5*time.Second)
			pdo(t, cl, put("a", "1"))
			waitPBFTExecuted(t, c, claimed+1, 5*time.Second)
			// Batches cut around the write (a retransmitted claim, say) may still be on
			// their way: every replica must have executed all of them first.
			pbftSettled(t, c)
			for _, i := range []int{2, 3} {
				if err := c.StopNode(i); err != nil {
					t.Fatal(err)
				}
			}
			executed := pbftReplica(c, 0).LastExecuted()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var res client.Results
			err := cl.Do(ctx, []wire.Op{put("a", "2")}, &res)
			if unsafe != (err == nil) {
				t.Fatalf("unsafe=%v: write without a quorum returned %v", unsafe, err)
			}
			if got := pbftReplica(c, 0).LastExecuted(); got != executed {
				t.Fatalf("a sequence number executed without a quorum: %d -> %d", executed, got)
			}
		})
	}
}

// BenchmarkPBFTCluster measures a 4-replica PBFT cluster in process over loopback: each
// iteration is one Do of ops puts (one PBFT request) from one of many concurrent callers
// (RunParallel, since the load is concurrent by nature). ns/op is per Do; ops/s per op is
// ops * 1e9 / (ns/op).
func BenchmarkPBFTCluster(b *testing.B) {
	type bcase struct {
		sync      storage.SyncPolicy
		size, ops int
	}
	var cases []bcase
	for _, sp := range []storage.SyncPolicy{storage.SyncNone, storage.SyncAlways} {
		for _, size := range []int{16, 128} {
			cases = append(cases, bcase{sp, size, 1})
		}
		cases = append(cases, bcase{sp, 16, 16})
	}
	for _, bc := range cases {
		b.Run(fmt.Sprintf("sync=%v/size=%d/ops=%d", bc.sync, bc.size, bc.ops), func(b *testing.B) {
			spec := &ClusterSpec{ClusterID: 1, Protocol: "pbft", Tick: Duration(2 * time.Millisecond),
				PBFT: PBFTSpec{MaxClients: 1024, KeySeed: "bench"}}
			c, err := StartLocalCluster(LocalClusterConfig{Protocol: "pbft", Nodes: 4, Dir: b.TempDir(), Sync: bc.sync, Spec: spec})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Stop()
			nodes := clientNodes(c)
			const inflight = 512
			cl, err := client.NewPBFT(context.Background(), client.PBFTConfig{Nodes: nodes, KeySeed: "bench", MaxClients: 1024, MaxInflight: inflight})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			val := make([]byte, bc.size)
			var next atomic.Uint64
			b.SetParallelism(inflight / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.SetBytes(int64(bc.size * bc.ops))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var res client.Results
				ops := make([]wire.Op, bc.ops)
				keys := make([][]byte, bc.ops)
				for pb.Next() {
					for i := range ops {
						keys[i] = fmt.Appendf(keys[i][:0], "k%d", next.Add(1)%100000)
						ops[i] = wire.Op{Kind: wire.OpPut, Key: keys[i], Value: val}
					}
					if err := cl.Do(context.Background(), ops, &res); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// durablePBFTKeys returns the keys a stopped replica's data directory holds durably: those in
// its newest checkpoint snapshot plus those written by the executed batches in its WAL.
func durablePBFTKeys(t *testing.T, dir string) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	var checkpoint uint64
	if s, _, err := storage.OpenLatestSnapshot(nil, filepath.Join(dir, "snap")); err == nil {
		checkpoint = s.Index
		store, _ := kv.New(kv.Config{NoDigest: true}) // as the replica keeps it
		var meta pbftSnapMeta
		if err := json.Unmarshal(s.Meta, &meta); err != nil {
			t.Fatalf("%s: checkpoint snapshot meta: %v", dir, err)
		}
		body := s.Body() // the client table, then the store
		if _, err := io.CopyN(io.Discard, body, int64(meta.TableBytes)); err != nil {
			t.Fatal(err)
		}
		if err := store.Restore(body); err != nil {
			t.Fatalf("%s: checkpoint snapshot: %v", dir, err)
		}
		s.Close()
		for k := range snapshotKeys(store) {
			keys[k] = true
		}
	}
	for _, b := range committedBatches(t, filepath.Join(dir, "wal"), checkpoint) {
		for _, r := range b {
			var req wire.ClientRequest
			if err := wire.DecodeClientRequest(r.Op, &req); err != nil {
				t.Fatalf("%s: logged request: %v", dir, err)
			}
			for _, op := range req.Ops {
				keys[string(op.Key)] = true
			}
		}
	}
	return keys
}

// committedBatches reads a PBFT replica's WAL of protocol records (pbftlog.go) and returns,
// per sequence number above checkpoint, the batch it logged as committed. Records at or
// below the checkpoint are skipped, as a restart skips them: compaction may have dropped a
// batch's pre-prepare record there while keeping a later-logged COMMITTED record.
func committedBatches(t *testing.T, walDir string, checkpoint uint64) map[uint64][]pbftcore.Request {
	t.Helper()
	w, _, err := storage.Open(walDir, storage.Options{})
	if err != nil {
		t.Fatalf("%s: %v", walDir, err)
	}
	defer w.Close()
	recs, _, err := readLog(w)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		seq uint64
		d   pbftcore.Digest
	}
	batches := map[key][]pbftcore.Request{}
	out := map[uint64][]pbftcore.Request{}
	for _, r := range recs {
		if r.Kind == pbftcore.RecPrePrepared && r.Requests != nil {
			batches[key{r.Seq, r.Digest}] = r.Requests // a fetched batch may follow its commit
		}
	}
	for _, r := range recs {
		switch r.Kind {
		case pbftcore.RecCommitted:
			if r.Seq <= checkpoint {
				continue
			}
			b, ok := batches[key{r.Seq, r.Digest}]
			if !ok {
				t.Fatalf("%s: committed %d without its batch in the log", walDir, r.Seq)
			}
			out[r.Seq] = b
		}
	}
	return out
}

// snapshotKeys lists a store's keys by probing the ones the durability test writes.
func snapshotKeys(s *kv.Store) map[string]bool {
	keys := map[string]bool{}
	for w := 0; w < 8; w++ {
		for i := 0; i < 10; i++ {
			if k := fmt.Sprintf("w%d-%d", w, i); s.Get([]byte(k)).Status == kv.StatusOK {
				keys[k] = true
			}
		}
	}
	return keys
}

// The durable records hold what was executed: after shutdown, every write the client
// accepted (f+1 matching replies) is in the checkpoint snapshot or among the committed
// batches of the protocol-record WAL of at least f+1 replicas.
// (TestPBFTSyncAlwaysRepliesWaitForFsync shows that the records were fsynced before the
// replies left.)
func TestPBFTClusterAcceptedWritesAreDurableAtFPlusOne(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncAlways)
	cl := pbftClient(t, c, 0, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				var res client.Results
				err := cl.Do(ctx, []wire.Op{put(fmt.Sprintf("w%d-%d", w, i), "v")}, &res)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	holders := map[string]int{}
	for i := range c.Spec.Nodes {
		for k := range durablePBFTKeys(t, filepath.Join(c.dir, fmt.Sprintf("node-%d", i+1))) {
			holders[k]++
		}
	}
	for w := 0; w < 8; w++ {
		for i := 0; i < 10; i++ {
			if k := fmt.Sprintf("w%d-%d", w, i); holders[k] < 2 {
				t.Fatalf("accepted write %s is durable at %d replicas, want f+1 = 2", k, holders[k])
			}
		}
	}
}

// gatedFS is the OS filesystem whose file Syncs wait while the gate is closed.
type gatedFS struct {
	storage.OSFS
	mu     sync.Mutex
	open   *sync.Cond
	closed bool
}

func newGatedFS() *gatedFS {
	g := &gatedFS{}
	g.open = sync.NewCond(&g.mu)
	return g
}

func (g *gatedFS) set(closed bool) {
	g.mu.Lock()
	g.closed = closed
	g.mu.Unlock()
	g.open.Broadcast()
}

type gatedFile struct {
	storage.File
	g *gatedFS
}

func (f gatedFile) Sync() error {
	f.g.mu.Lock()
	for f.g.closed {
		f.g.open.Wait()
	}
	f.g.mu.Unlock()
	return f.File.Sync()
}

func (g *gatedFS) Create(name string) (storage.File, error) {
	f, err := g.OSFS.Create(name)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g}, nil
}

func (g *gatedFS) Open(name string) (storage.File, error) {
	f, err := g.OSFS.Open(name)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g}, nil
}

// Under SyncAlways no replica sends anything that depends on an unsynced record: with every
// WAL's fsync held, a write is not acknowledged (nor even pre-prepared to the backups); once
// the disks answer, the same request completes and reads back.
func TestPBFTSyncAlwaysRepliesWaitForFsync(t *testing.T) {
	g := newGatedFS()
	pbftWALFS = g
	defer func() { pbftWALFS = nil }()
	c := startPBFTCluster(t, storage.SyncAlways)
	t.Cleanup(func() { g.set(false) }) // runs before the cluster's Stop
	cl := pbftClient(t, c, 0, 2)
	pdo(t, cl, put("before", "1"))
	g.set(true)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var res client.Results
		done <- cl.Do(ctx, []wire.Op{put("held", "1")}, &res)
	}()
	select {
	case err := <-done:
		t.Fatalf("a write completed (err %v) while no replica could fsync", err)
	case <-time.After(time.Second):
	}
	g.set(false)
	if err := <-done; err != nil {
		t.Fatalf("the held write failed once the disks answered: %v", err)
	}
	if got := pdo(t, cl, get("held"), put("after", "1")).Ops[0]; got.Status != wire.StatusOK || string(got.Value) != "1" {
		t.Fatalf("the held write reads back %v %q", got.Status, got.Value)
	}
}

// A stable checkpoint's snapshot file is written beside the driver: with every snapshot fsync
// held, writes keep completing through several checkpoints (a driver that wrote the file
// itself would stop at the first), checkpoints that stabilize meanwhile wait behind the held
// write, and once the disks answer the newest stable checkpoint reaches disk. Under -race
// this also checks that a checkpoint buffer being written is never recycled for a later one.
// A snapshot threshold of 1 byte makes every stable checkpoint want a file.
func TestPBFTSnapshotWritesDoNotStallTheReplica(t *testing.T) {
	g := newGatedFS()
	pbftSnapFS = g
	t.Cleanup(func() { pbftSnapFS = nil }) // after the cluster's Stop, which waits for its writers
	spec := pbftTestSpec()
	spec.PBFT.SnapshotThresholdBytes = 1
	c := startPBFTClusterSpec(t, storage.SyncNone, false, spec)
	t.Cleanup(func() { g.set(false) }) // runs before the cluster's Stop
	g.set(true)
	cl := pbftClient(t, c, 0, 1)
	k := int(c.Spec.PBFT.CheckpointInterval)
	for i := range 4 * k {
		pdo(t, cl, put(fmt.Sprint("k", i), "v"))
	}
	h := pbftReplica(c, 0).StableCheckpoint()
	if h < 2*uint64(k) {
		t.Fatalf("stable checkpoint %d after %d single-request batches, want >= %d", h, 4*k, 2*k)
	}
	g.set(false)
	deadline := time.Now().Add(10 * time.Second)
	for i := range c.Spec.Nodes {
		dir := filepath.Join(c.dir, fmt.Sprintf("node-%d", i+1), "snap")
		for {
			want := pbftReplica(c, i).StableCheckpoint() // a last CHECKPOINT may still arrive
			got := uint64(0)
			if s, _, err := storage.OpenLatestSnapshot(nil, dir); err == nil {
				got = s.Index
				s.Close()
			}
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d: newest snapshot on disk is %d, its stable checkpoint %d", i+1, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// PBFT replicas report their role for the operator endpoints and fault injection, and a
// partitioned backup (§4.4 needs only 2f+1) does not stop the cluster.
func TestPBFTReplicaStatusAndPartition(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	var _ Admin = pbftReplica(c, 0)
	cl := pbftClient(t, c, 0, 1)
	pdo(t, cl, put("a", "1"))
	// The client accepts after f+1 replies, which may come before the primary itself has
	// executed the request: wait for the primary's status to show it.
	st := pbftReplica(c, 0).Status()
	for deadline := time.Now().Add(5 * time.Second); st.Applied == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		st = pbftReplica(c, 0).Status()
	}
	if st.Role != "primary" || st.Leader != 1 || st.Protocol != "pbft" || st.Applied == 0 {
		t.Fatalf("primary status %+v", st)
	}
	if st := pbftReplica(c, 2).Status(); st.Role != "backup" || st.Leader != 1 {
		t.Fatalf("backup status %+v", st)
	}
	pbftReplica(c, 3).SetPartition([]uint64{1, 2, 3})
	pdo(t, cl, put("b", "2"))
	if got := pbftReplica(c, 3).Status().Partitioned; len(got) != 3 {
		t.Fatalf("partitioned %v", got)
	}
	pbftReplica(c, 3).SetPartition(nil)
}

// PBFT §4.1: a client that retransmits (here every 2 ms, so most requests are sent several
// times, to every replica, and relayed by the backups) keeps the request's (client,
// timestamp), and each request executes exactly once at every replica: the executed-batch
// log of every replica holds each Do exactly once.
func TestPBFTClusterRetransmissionsExecuteOnce(t *testing.T) {
	spec := pbftTestSpec()
	spec.PBFT.CheckpointInterval, spec.PBFT.WindowSize = 512, 1024 // no WAL compaction in this test
	c, err := StartLocalCluster(LocalClusterConfig{Protocol: "pbft", Nodes: 4, Dir: t.TempDir(), Sync: storage.SyncAlways, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	nodes := clientNodes(c)
	cl, err := client.NewPBFT(context.Background(), client.PBFTConfig{Nodes: nodes, KeySeed: spec.PBFT.KeySeed,
		MaxClients: spec.PBFT.MaxClients, MaxInflight: 8, AttemptTimeout: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const workers, perWorker = 8, 15
	var wg sync.WaitGroup
	var retried atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				var res client.Results
				err := cl.Do(ctx, []wire.Op{put(fmt.Sprintf("w%d-%d", w, i), "v")}, &res)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				if res.Tries > 1 {
					retried.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if retried.Load() == 0 {
		t.Fatal("no request was retransmitted; the test exercises nothing")
	}
	// A reply needs f+1 matching replicas (§4.1), so when the last Do returns one replica
	// may still be committing its tail; it must catch up, through retransmission, without
	// any further client traffic.
	waitPBFTExecuted(t, c, pbftMaxExecuted(c), 10*time.Second)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range c.Spec.Nodes {
		type id struct{ client, ts uint64 }
		seen := map[id]bool{}
		for _, b := range committedBatches(t, filepath.Join(c.dir, fmt.Sprintf("node-%d", i+1), "wal"), 0) {
			for _, r := range b {
				if r.Timestamp == 0 {
					continue // a claim of identities: idempotent, ordered again when retransmitted (pbftcore/claim.go)
				}
				k := id{r.Client, r.Timestamp}
				if seen[k] {
					t.Fatalf("replica %d ordered client %d timestamp %d twice", i, k.client, k.ts)
				}
				seen[k] = true
			}
		}
		// Every replica executed every request: none was lost, none skipped.
		if len(seen) != workers*perWorker {
			t.Fatalf("replica %d executed %d requests, want %d", i, len(seen), workers*perWorker)
		}
	}
}

// The signature mode (every message and request signed with ed25519, pbft.auth = "sign")
// works end to end over the wire.
func TestPBFTClusterSignMode(t *testing.T) {
	spec := pbftTestSpec()
	spec.PBFT.Auth = "sign"
	c, err := StartLocalCluster(LocalClusterConfig{Protocol: "pbft", Nodes: 4, Dir: t.TempDir(), Sync: storage.SyncNone, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	nodes := clientNodes(c)
	cl, err := client.NewPBFT(context.Background(), client.PBFTConfig{Nodes: nodes, KeySeed: spec.PBFT.KeySeed,
		MaxClients: spec.PBFT.MaxClients, MaxInflight: 2, SignAll: true, AttemptTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 10; i++ {
		pdo(t, cl, put(fmt.Sprintf("s%d", i), "v"))
	}
	if got := pdo(t, cl, get("s9")).Ops[0]; string(got.Value) != "v" {
		t.Fatalf("sign mode read %q", got.Value)
	}
	// A client in MAC mode is not understood by signing replicas: not even its claim of
	// identities.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if macCl, err := client.NewPBFT(ctx, client.PBFTConfig{Nodes: nodes, KeySeed: spec.PBFT.KeySeed,
		MaxClients: spec.PBFT.MaxClients, MaxInflight: 1, AttemptTimeout: 100 * time.Millisecond}); err == nil {
		macCl.Close()
		t.Fatal("a MAC-authenticated claim was accepted by replicas in sign mode")
	}
}

// A request whose results exceed PBFTMaxResultBytes is answered with one error result on
// every replica (deterministically), even when it has so many ops that one error per op
// would itself exceed the limit; no replica may crash on it.
func TestPBFTOversizedResultsAnswerAnError(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	cl := pbftClient(t, c, 1, 4)
	pdo(t, cl, wire.Op{Kind: wire.OpPut, Key: []byte("k"), Value: []byte("v")})
	ops := []wire.Op{{Kind: wire.OpPut, Key: []byte("w"), Value: []byte("1")}}
	for i := 0; i < 1700; i++ {
		ops = append(ops, wire.Op{Kind: wire.OpGet, Key: []byte("k")})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var res client.Results
	if err := cl.Do(ctx, ops, &res); err == nil || !strings.Contains(err.Error(), "exceeds PBFTMaxResultBytes") {
		t.Fatalf("oversized results: err %v, %d results", err, len(res.Ops))
	}
	for i := range c.Replicas {
		select {
		case <-c.Replicas[i].Done():
			t.Fatalf("replica %d stopped: %v", i+1, c.Replicas[i].Err())
		default:
		}
	}
	if got := pdo(t, cl, wire.Op{Kind: wire.OpGet, Key: []byte("k")}).Ops[0]; string(got.Value) != "v" {
		t.Fatalf("after the oversized request k = %q", got.Value)
	}
}

// PBFT §4.1: a client learns the view from f+1 replies. A new client learns it from the
// replicas' answers to its registrations, so after a view change its first request goes to
// the current primary instead of view 0's stopped one (which cost a whole attempt timeout
// before the retransmission to every replica reached the new primary).
func TestPBFTNewClientStartsAtTheCurrentPrimary(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	cl := pbftClient(t, c, 0, 1)
	pdo(t, cl, put("a", "1"))
	if err := c.StopNode(0); err != nil { // the primary of view 0
		t.Fatal(err)
	}
	pdo(t, cl, put("b", "2")) // drives the view change
	if cl.Primary() == 1 {
		t.Fatal("the first client still targets the stopped primary")
	}
	nodes := clientNodes(c)
	const attempt = 3 * time.Second
	cl2, err := client.NewPBFT(context.Background(), client.PBFTConfig{Nodes: nodes, KeySeed: c.Spec.PBFT.KeySeed,
		MaxClients: c.Spec.PBFT.MaxClients, FixedClientIDs: true, FirstClientID: 8, MaxInflight: 1, AttemptTimeout: attempt, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if p := cl2.Primary(); p != cl.Primary() {
		t.Fatalf("a new client starts at primary %d, the cluster's is %d", p, cl.Primary())
	}
	start := time.Now()
	pdo(t, cl2, put("c", "3"))
	if d := time.Since(start); d >= attempt {
		t.Fatalf("the new client's first write took %v, an attempt timeout or more", d)
	}
}

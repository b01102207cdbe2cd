package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
)

// Limits of the client side.
const (
	// RequestTimeout bounds one Do (clientv3 retries included): a batch that takes longer
	// counts as failed, and a write that failed this way may still have been applied.
	RequestTimeout = 10 * time.Second
	// dialTimeout bounds clientv3's first connection to a member.
	dialTimeout = 5 * time.Second
	// probeRetry is the pause between probe attempts while a leader is being elected.
	probeRetry = 100 * time.Millisecond
	// probeKey is the key probes write; workloads use other names.
	probeKey = "consensusbench/probe"
	// maxClients bounds the clientv3.Clients a Target creates: one per load worker (at most
	// load.ClientsMax) unless --conns shares fewer, plus the probe's and the version query's.
	// Each holds gRPC connections to every member.
	maxClients = load.ClientsMax + 2
)

// probeTimeout bounds the check that a cluster commits a write (remote clusters, and a
// restarted local one before a read-back). A variable so that tests of the failure wait less.
var probeTimeout = 30 * time.Second

// Open is the system's bench.Opener: a local cluster for spec.Local (startLocal), else the
// running cluster whose client addresses spec.Targets lists, once it has committed a probe
// write.
func Open(ctx context.Context, spec bench.Spec) (bench.Target, error) {
	if spec.Local > 0 {
		return startLocal(ctx, spec)
	}
	if len(spec.Targets) == 0 {
		return nil, errors.New("etcd: name the cluster with --targets host:port,... or --local N")
	}
	t, err := newTarget(spec.Targets, spec.Reads, map[string]string{"local": "0"})
	if err != nil {
		return nil, err
	}
	if err := t.probeOrClose(ctx); err != nil {
		return nil, unreachable(spec.Targets, err)
	}
	t.version = t.serverVersion(ctx)
	return t, nil
}

// probeOrClose waits up to probeTimeout for the cluster to commit a probe write, and closes
// the target when it does not.
func (t *Target) probeOrClose(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := t.probe(pctx); err != nil {
		t.Close()
		return err
	}
	return nil
}

// unreachable explains a failed probe: which addresses refused or did not answer a
// connection, or else what to check.
func unreachable(endpoints []string, perr error) error {
	var down []string
	for _, ep := range endpoints {
		c, err := net.DialTimeout("tcp", ep, time.Second)
		if err != nil {
			down = append(down, fmt.Sprintf("%s: %v", ep, err))
			continue
		}
		c.Close()
	}
	hint := "every address accepts connections: check that they are etcd client URLs (plain http) and that a quorum of members is up"
	if len(down) > 0 {
		hint = "not reachable: " + strings.Join(down, "; ")
	}
	return fmt.Errorf("etcd: the cluster did not commit a probe write within %v (%v); %s", probeTimeout, perr, hint)
}

// Target hands out sessions on clientv3 clients connected to every member.
type Target struct {
	endpoints    []string
	serializable bool
	info         map[string]string
	version      string // the members' release as the first one reports it ("" unknown)

	mu      sync.Mutex
	shared  []*clientv3.Client // --conns: the clients the sessions share
	clients []*clientv3.Client // every client created, closed by Close
	nConns  int

	failed   atomic.Int64
	firstErr atomic.Pointer[error]
}

func newTarget(endpoints []string, reads string, info map[string]string) (*Target, error) {
	switch reads {
	case "", ReadsLinearizable:
		reads = ReadsLinearizable
	case ReadsSerializable:
	default:
		return nil, fmt.Errorf("etcd: read mode %q: want %s (linearizable) or %s", reads, ReadsLinearizable, ReadsSerializable)
	}
	etcdReads := "linearizable" // etcd's name for the mode recorded as safe
	if reads == ReadsSerializable {
		etcdReads = "serializable"
	}
	t := &Target{endpoints: endpoints, serializable: reads == ReadsSerializable, info: map[string]string{
		"nodes": strconv.Itoa(len(endpoints)), "etcd_client": Version, "etcd_reads": etcdReads,
		"etcd_batch": "txn"}}
	for k, v := range info {
		t.info[k] = v
	}
	return t, nil
}

// newClient connects a clientv3 client to every member. clientv3's own logging is off: a
// benchmark's failed requests are counted and the first one reported (FirstError), not
// logged by each retry.
func (t *Target) newClient() (*clientv3.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.clients) >= maxClients {
		return nil, fmt.Errorf("etcd: more than %d clients", maxClients)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: t.endpoints, DialTimeout: dialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd: connecting to %v: %w", t.endpoints, err)
	}
	t.clients = append(t.clients, c)
	return c, nil
}

// SetConns makes the sessions share n clients (--conns), worker i the (i mod n)th.
func (t *Target) SetConns(n, clients int) error {
	if n < 0 || n > clients {
		return fmt.Errorf("%d shared clients for %d workers: want 1 to %d", n, clients, clients)
	}
	t.mu.Lock()
	t.nConns = n
	t.mu.Unlock()
	return nil
}

// Open implements bench.Target.
func (t *Target) Open(ctx context.Context, worker int) (bench.Session, error) {
	t.mu.Lock()
	n := t.nConns
	t.mu.Unlock()
	if n == 0 {
		c, err := t.newClient()
		if err != nil {
			return nil, err
		}
		return &session{t: t, c: c}, nil
	}
	t.mu.Lock()
	need := len(t.shared) < n
	t.mu.Unlock()
	for need {
		c, err := t.newClient()
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		t.shared = append(t.shared, c)
		need = len(t.shared) < n
		t.mu.Unlock()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return &session{t: t, c: t.shared[worker%n]}, nil
}

// Close implements bench.Target.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, c := range t.clients {
		errs = append(errs, c.Close())
	}
	t.clients, t.shared = nil, nil
	return errors.Join(errs...)
}

// Describe implements bench.Describer.
func (t *Target) Describe() map[string]string {
	m := make(map[string]string, len(t.info)+1)
	for k, v := range t.info {
		m[k] = v
	}
	if t.version != "" {
		m["etcd_server"] = t.version
	}
	return m
}

// SystemVersion implements bench.VersionReporter: the members' release ("v3.7.3"), or ""
// when no member said.
func (t *Target) SystemVersion() string { return t.version }

// FirstError reports how many batches failed and the first failure.
func (t *Target) FirstError() (int64, error) {
	if p := t.firstErr.Load(); p != nil {
		return t.failed.Load(), *p
	}
	return 0, nil
}

func (t *Target) noteError(err error) {
	t.failed.Add(1)
	t.firstErr.CompareAndSwap(nil, &err)
}

// serverVersion asks the members for their release until one answers.
func (t *Target) serverVersion(ctx context.Context) string {
	c, err := t.newClient()
	if err != nil {
		return ""
	}
	for _, ep := range t.endpoints {
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st, err := c.Status(sctx, ep)
		cancel()
		if err == nil && st.Version != "" {
			return "v" + strings.TrimPrefix(st.Version, "v")
		}
	}
	return ""
}

// probe writes probeKey until a write commits or ctx ends.
func (t *Target) probe(ctx context.Context) error {
	c, err := t.newClient()
	if err != nil {
		return err
	}
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Put(actx, probeKey, "1")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(probeRetry):
		}
	}
}

// session is one load worker's client. Do is safe for concurrent use (clientv3 multiplexes
// concurrent calls on its gRPC connections).
type session struct {
	t *Target
	c *clientv3.Client // closed with the Target, which created it (sessions may share it)
}

// Do implements bench.Session: one op is a Put or a Get; several are one Txn.
func (s *session) Do(ctx context.Context, ops []bench.Op) error {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	var err error
	if len(ops) == 1 {
		err = s.one(rctx, &ops[0])
	} else {
		err = s.txn(rctx, ops)
	}
	if err != nil && ctx.Err() == nil { // not the end of the run cancelling requests in flight
		s.t.noteError(err)
	}
	return err
}

func (s *session) getOpts() []clientv3.OpOption {
	if s.t.serializable {
		return []clientv3.OpOption{clientv3.WithSerializable()}
	}
	return nil
}

func (s *session) one(ctx context.Context, op *bench.Op) error {
	switch op.Kind {
	case bench.OpWrite:
		_, err := s.c.Put(ctx, string(op.Key), string(op.Value))
		return err
	case bench.OpRead:
		resp, err := s.c.Get(ctx, string(op.Key), s.getOpts()...)
		if err != nil {
			return err
		}
		setRead(op, resp.Kvs)
		return nil
	}
	return fmt.Errorf("etcd: unknown op kind %v", op.Kind)
}

// txn sends ops as one Txn with no condition. A key written more than once keeps only its
// last put (etcd refuses duplicate writes in one Txn; in a batch applied in order, the last
// one is all anybody can observe).
func (s *session) txn(ctx context.Context, ops []bench.Op) error {
	last := make(map[string]int, len(ops))
	for i := range ops {
		if ops[i].Kind == bench.OpWrite {
			last[string(ops[i].Key)] = i
		}
	}
	tops := make([]clientv3.Op, 0, len(ops))
	idx := make([]int, 0, len(ops)) // response index -> ops index
	for i := range ops {
		switch ops[i].Kind {
		case bench.OpWrite:
			if last[string(ops[i].Key)] != i {
				continue
			}
			tops = append(tops, clientv3.OpPut(string(ops[i].Key), string(ops[i].Value)))
		case bench.OpRead:
			tops = append(tops, clientv3.OpGet(string(ops[i].Key), s.getOpts()...))
		default:
			return fmt.Errorf("etcd: unknown op kind %v", ops[i].Kind)
		}
		idx = append(idx, i)
	}
	resp, err := s.c.Txn(ctx).Then(tops...).Commit()
	if err != nil {
		return err
	}
	if len(resp.Responses) != len(tops) {
		return fmt.Errorf("etcd: txn of %d ops answered %d", len(tops), len(resp.Responses))
	}
	for r, i := range idx {
		if ops[i].Kind != bench.OpRead {
			continue
		}
		rr := resp.Responses[r].GetResponseRange()
		if rr == nil {
			return fmt.Errorf("etcd: txn op %d: not a range response", r)
		}
		setRead(&ops[i], rr.Kvs)
	}
	return nil
}

// setRead copies a Get's result into op (Out reuses the worker's buffer).
func setRead(op *bench.Op, kvs []*mvccpb.KeyValue) {
	if len(kvs) == 0 {
		op.Found, op.Out = false, op.Out[:0]
		return
	}
	op.Found, op.Out = true, append(op.Out[:0], kvs[0].Value...)
}

// Close implements bench.Session; the client closes with the Target.
func (s *session) Close() error { return nil }

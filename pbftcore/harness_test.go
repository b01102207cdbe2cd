package pbftcore_test

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/pbftcore/byz"
	"github.com/consensusbench/consensusbench/pbftcore/kvapp"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt transcripts with the actual output")

// envelope is a message in flight to one destination (replica index, or client when toClient).
type envelope struct {
	to       int
	toClient bool
	m        pbftcore.Message
}

type dropRule struct {
	from, to, seq, view int // -1 = any
	typ                 pbftcore.MsgType
	// except, when hasExcept, is a sender whose messages the rule lets through.
	except    int
	hasExcept bool
}

func (d dropRule) match(e *envelope) bool {
	return (d.from < 0 || d.from == e.m.From) && (!d.hasExcept || d.except != e.m.From) &&
		(d.to < 0 || (!e.toClient && d.to == e.to)) &&
		(d.typ == 0 || d.typ == e.m.Type) && (d.seq < 0 || uint64(d.seq) == e.m.Seq) &&
		(d.view < 0 || uint64(d.view) == e.m.View)
}

// harness is an in-process PBFT cluster driven by transcript commands: every message is
// delivered in FIFO order, filtered by drop rules, rewritten for Byzantine replicas.
type harness struct {
	n        int
	keyring  *pbftcore.Keyring
	nodes    []*pbftcore.Node
	apps     []*kvapp.App
	clients  []*pbftcore.Client
	byz      map[int]*byz.Replica
	down     map[int]bool
	drops    []dropRule
	queue    []envelope
	executed [][]pbftcore.Executed
	signAll  bool
	trace    bool
	traceTyp string // trace only these message types ("|"-separated)
	out      *strings.Builder
	args     map[string]string
	// durable is, per replica, the last Ready.Stable with the App state at its sequence
	// number: what a driver persists to restart from (restart command).
	durable []durableCheckpoint
	// logs is, per replica, every Ready.Persist record it emitted while up, in order: the
	// durable log a restart with log=true hands back (Config.Log).
	logs [][]pbftcore.Record
	// began is, per replica, the checkpoints an async App (cluster async=true) began and
	// whose digests the digests command hands in.
	began [][]begunCheckpoint
	// spoiled is, per client, the replicas whose MAC in that client's authenticator vectors
	// the harness corrupts (spoil command): a faulty client whose request authenticates at
	// some replicas only.
	spoiled map[int][]int
}

type begunCheckpoint struct {
	seq    uint64
	digest pbftcore.Digest
}

// asyncApp is kvapp.App as a pbftcore.AsyncCheckpointer whose digests wait in h.began.
type asyncApp struct {
	*kvapp.App
	h *harness
	i int
}

func (a asyncApp) BeginCheckpoint(seq uint64) {
	a.h.began[a.i] = append(a.h.began[a.i], begunCheckpoint{seq, a.Checkpoint(seq)})
	fmt.Fprintf(a.h.out, "r%d begins checkpoint %d\n", a.i, seq)
}

type durableCheckpoint struct {
	cp    pbftcore.StableCheckpoint
	state []byte
}

// config builds replica i's config from the cluster command's arguments.
func (h *harness) config(i int, app *kvapp.App) pbftcore.Config {
	args := h.args
	app.ChunkBytes = intArg(args, "chunk", 16)
	var coreApp pbftcore.App = app
	if args["async"] == "true" {
		coreApp = asyncApp{App: app, h: h, i: i}
	}
	cfg := pbftcore.DefaultConfig(i, h.n, h.keyring.Replica(i), coreApp, rand.New(rand.NewPCG(1, uint64(i))))
	cfg.CheckpointInterval = uint64(intArg(args, "k", 4))
	cfg.WindowSize = uint64(intArg(args, "window", 2*int(cfg.CheckpointInterval)))
	cfg.MaxInflightBatches = int(cfg.WindowSize)
	cfg.MaxBatchRequests = intArg(args, "batch", 1)
	cfg.BatchFlushTicks = intArg(args, "flush", 0)
	cfg.RequestTimeoutTicks = intArg(args, "timeout", 20)
	cfg.RetransmitTicks = intArg(args, "retransmit", 5)
	cfg.SignAll = h.signAll
	return cfg
}

// restart replaces replica i by a new one started from its durable checkpoint, as a driver
// does after a crash (the App restored from the persisted state first).
func (h *harness) restart(i int, withLog bool) error {
	d := &h.durable[i]
	if d.state == nil && !withLog {
		return fmt.Errorf("r%d has no durable checkpoint", i)
	}
	app := kvapp.New()
	h.began[i] = nil // digests in flight die with the process
	cfg := h.config(i, app)
	if d.state != nil {
		app.Restore(d.cp.Seq, [][]byte{d.state})
		cfg.Start = &pbftcore.StartState{Seq: d.cp.Seq, View: d.cp.View, ViewActive: d.cp.ViewActive, Digest: d.cp.Digest, Proof: d.cp.Proof,
			ClientTable: d.cp.ClientTable}
	}
	if withLog {
		cfg.Log, cfg.LogSynced = slices.Clone(h.logs[i]), true
		if cfg.Log == nil {
			cfg.Log = []pbftcore.Record{}
		}
	} else {
		h.logs[i] = nil // an amnesiac restart: the old log is gone
	}
	nd, err := pbftcore.New(cfg)
	if err != nil {
		return err
	}
	h.nodes[i], h.apps[i] = nd, app
	// The replica's state is its checkpoint's: what it executed above is forgotten (and
	// executed again, from its log inside New or from its peers). New's output (re-executions,
	// a rebuilt VIEW-CHANGE, batch fetches) goes out with the next collect.
	h.executed[i] = slices.DeleteFunc(h.executed[i], func(e pbftcore.Executed) bool { return e.Seq > d.cp.Seq })
	if withLog {
		st := nd.Status()
		fmt.Fprintf(h.out, "r%d restarted at n=%d view=%d with %d log records: view=%d active=%v h=%d executed=%d fetching=%v\n", i, d.cp.Seq, d.cp.View,
			len(cfg.Log), st.View, st.ViewActive, st.LowWatermark, st.LastExecuted, st.Fetching)
	} else {
		fmt.Fprintf(h.out, "r%d restarted at n=%d view=%d\n", i, d.cp.Seq, d.cp.View)
	}
	return nil
}

// persist records rd.Stable of replica i with the App state at its sequence number (when
// keep is false, it only checks that the App holds that state, as Ready.Stable promises).
func (h *harness) persist(i int, st *pbftcore.StableCheckpoint, keep bool) {
	var state []byte
	for c := 0; ; c++ {
		var n int
		var ok bool
		state, n, ok = h.apps[i].StateChunk(st.Seq, c, state)
		if !ok {
			panic("harness: App lost the state of a reported stable checkpoint")
		}
		if c+1 == n {
			break
		}
	}
	if !keep {
		return
	}
	cp := *st
	cp.Proof = make([]pbftcore.Message, len(st.Proof))
	for k := range st.Proof {
		cp.Proof[k] = pbftcore.CloneMessage(&st.Proof[k])
	}
	cp.ClientTable = slices.Clone(st.ClientTable)
	h.durable[i] = durableCheckpoint{cp: cp, state: state}
}

func newHarness(args map[string]string) (*harness, error) {
	n := intArg(args, "n", 4)
	nClients := intArg(args, "clients", 2)
	h := &harness{n: n, keyring: pbftcore.NewKeyring([]byte("transcript"), n, nClients),
		byz: map[int]*byz.Replica{}, down: map[int]bool{}, signAll: args["signall"] == "true",
		executed: make([][]pbftcore.Executed, n), args: args, durable: make([]durableCheckpoint, n), logs: make([][]pbftcore.Record, n),
		began: make([][]begunCheckpoint, n)}
	for i := range n {
		app := kvapp.New()
		nd, err := pbftcore.New(h.config(i, app))
		if err != nil {
			return nil, err
		}
		h.nodes = append(h.nodes, nd)
		h.apps = append(h.apps, app)
	}
	for c := range nClients {
		cl, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: uint64(c), N: n, Keys: h.keyring.Client(uint64(c)),
			TimeoutTicks: intArg(args, "ctimeout", 30), SignAll: h.signAll})
		if err != nil {
			return nil, err
		}
		h.clients = append(h.clients, cl)
	}
	return h, nil
}

func intArg(args map[string]string, k string, def int) int {
	if v, ok := args[k]; ok {
		i, err := strconv.Atoi(v)
		if err != nil {
			panic(fmt.Sprintf("bad %s=%q", k, v))
		}
		return i
	}
	return def
}

func digestString(d pbftcore.Digest) string { return fmt.Sprintf("%x", d[:3]) }

func describe(m *pbftcore.Message) string {
	switch m.Type {
	case pbftcore.MsgRequest:
		r := m.Requests[0]
		return fmt.Sprintf("Request c%d/%d ro=%v", r.Client, r.Timestamp, r.ReadOnly)
	case pbftcore.MsgPrePrepare:
		return fmt.Sprintf("PrePrepare v=%d n=%d d=%s reqs=%d", m.View, m.Seq, digestString(m.Digest), len(m.Requests))
	case pbftcore.MsgPrepare, pbftcore.MsgCommit:
		return fmt.Sprintf("%s v=%d n=%d d=%s", m.Type, m.View, m.Seq, digestString(m.Digest))
	case pbftcore.MsgReply:
		if m.Refused {
			return fmt.Sprintf("Reply v=%d c%d/%d ro=%v refused", m.View, m.Client, m.Timestamp, m.ReadOnly)
		}
		return fmt.Sprintf("Reply v=%d c%d/%d ro=%v %q", m.View, m.Client, m.Timestamp, m.ReadOnly, m.Result)
	case pbftcore.MsgCheckpoint:
		return fmt.Sprintf("Checkpoint n=%d d=%s", m.Seq, digestString(m.Digest))
	case pbftcore.MsgViewChange:
		return fmt.Sprintf("ViewChange v=%d h=%d P=%d Q=%d", m.View, m.Seq, len(m.Prepared), len(m.PrePrepared))
	case pbftcore.MsgNewView:
		var o []string
		for _, pp := range m.PrePrepares {
			if pp.Digest == pbftcore.BatchDigest(nil) {
				o = append(o, fmt.Sprintf("%d:null", pp.Seq))
			} else {
				o = append(o, fmt.Sprintf("%d:%s", pp.Seq, digestString(pp.Digest)))
			}
		}
		return fmt.Sprintf("NewView v=%d min-s=%d V=%d O=[%s]", m.View, m.Seq, len(m.ViewChanges), strings.Join(o, " "))
	case pbftcore.MsgFetchState:
		return fmt.Sprintf("FetchState n=%d chunk=%d", m.Seq, m.Chunk)
	case pbftcore.MsgStateChunk:
		return fmt.Sprintf("StateChunk n=%d chunk=%d/%d", m.Seq, m.Chunk, m.Chunks)
	case pbftcore.MsgFetchBatch:
		return fmt.Sprintf("FetchBatch n=%d d=%s", m.Seq, digestString(m.Digest))
	case pbftcore.MsgBatch:
		return fmt.Sprintf("Batch n=%d d=%s reqs=%d", m.Seq, digestString(m.Digest), len(m.Requests))
	}
	return m.Type.String()
}

func name(from int) string {
	if from == pbftcore.FromClient {
		return "client"
	}
	return fmt.Sprintf("r%d", from)
}

// collect drains every Ready into the in-flight queue.
func (h *harness) collect() {
	for i, nd := range h.nodes {
		if !nd.HasReady() {
			continue
		}
		rd := nd.Ready()
		h.executed[i] = append(h.executed[i], cloneExecuted(rd.Executed)...)
		// cluster snapshots=lost: a driver whose checkpoint snapshots never reach the disk
		// (each lost in a crash after its stable-checkpoint record was logged).
		if rd.Stable != nil && h.args["showstable"] == "true" { // cluster showstable=true
			fmt.Fprintf(h.out, "r%d reports stable n=%d view=%d active=%v\n", i, rd.Stable.Seq, rd.Stable.View, rd.Stable.ViewActive)
		}
		if rd.Stable != nil && !h.down[i] {
			h.persist(i, rd.Stable, h.args["snapshots"] != "lost")
		}
		if !h.down[i] {
			h.logs[i] = append(h.logs[i], pbftcore.CloneRecords(rd.Persist)...)
		}
		for k := range rd.Messages {
			m := &rd.Messages[k]
			if h.down[i] {
				continue
			}
			if b := h.byz[i]; b != nil {
				for _, t := range b.Transform(m) {
					h.enqueue(i, t)
				}
				continue
			}
			h.enqueue(i, pbftcore.CloneMessage(m))
		}
		nd.Advance()
	}
	for ci, c := range h.clients {
		rd := c.Ready()
		for k := range rd.Messages {
			m := pbftcore.CloneMessage(&rd.Messages[k])
			for _, r := range h.spoiled[ci] {
				for q := range m.Requests {
					if a := m.Requests[q].Auth; len(a) == h.n*pbftcore.MACSize {
						a[r*pbftcore.MACSize] ^= 0xff
					}
				}
			}
			h.enqueue(pbftcore.FromClient, m)
		}
		if rd.Done {
			fmt.Fprintf(h.out, "c%d done ts=%d result=%q ordered-read=%v\n", ci, c.Timestamp(), rd.Result, rd.Ordered)
		}
		c.Advance()
	}
}

func cloneExecuted(es []pbftcore.Executed) []pbftcore.Executed {
	out := slices.Clone(es)
	for i := range out {
		out[i].Op = slices.Clone(out[i].Op)
	}
	return out
}

func (h *harness) enqueue(from int, m pbftcore.Message) {
	switch m.To {
	case pbftcore.ToAll:
		for j := range h.n {
			if j != from {
				h.push(envelope{to: j, m: m})
			}
		}
	case pbftcore.ToClient:
		h.push(envelope{to: int(m.Client), toClient: true, m: m})
	default:
		h.push(envelope{to: m.To, m: m})
	}
}

func (h *harness) push(e envelope) {
	for _, d := range h.drops {
		if d.match(&e) {
			return
		}
	}
	h.queue = append(h.queue, e)
}

// stabilize delivers until nothing is in flight.
func (h *harness) stabilize() {
	h.collect()
	for steps := 0; len(h.queue) > 0; steps++ {
		if steps > 1_000_000 {
			panic("harness: no quiescence")
		}
		e := h.queue[0]
		h.queue = h.queue[1:]
		if e.toClient {
			if h.trace && h.traced(e.m.Type) {
				fmt.Fprintf(h.out, "%s->c%d %s\n", name(e.m.From), e.to, describe(&e.m))
			}
			if e.to < len(h.clients) {
				h.clients[e.to].Step(&e.m)
			}
		} else if !h.down[e.to] {
			if h.trace && h.traced(e.m.Type) {
				fmt.Fprintf(h.out, "%s->r%d %s\n", name(e.m.From), e.to, describe(&e.m))
			}
			if err := h.nodes[e.to].Step(&e.m); err != nil && h.byz[e.to] == nil && !errors.Is(err, pbftcore.ErrStale) {
				fmt.Fprintf(h.out, "r%d rejects %s from %s: %v\n", e.to, describe(&e.m), name(e.m.From), err)
			}
		}
		h.collect()
	}
}

func (h *harness) tick(n int) {
	for range n {
		for i, nd := range h.nodes {
			if !h.down[i] {
				nd.Tick()
			}
			if b := h.byz[i]; b != nil {
				for _, m := range b.Tick() {
					h.enqueue(i, m)
				}
			}
		}
		for _, c := range h.clients {
			c.Tick()
		}
		h.stabilize()
	}
}

func (h *harness) status() {
	for i, nd := range h.nodes {
		s := nd.Status()
		tag := ""
		if b := h.byz[i]; b != nil {
			tag = " byz=" + b.B.String()
		}
		if h.down[i] {
			tag += " down"
		}
		fmt.Fprintf(h.out, "r%d: view=%d active=%v primary=r%d h=%d executed=%d assigned=%d fetching=%v%s\n", i, s.View, s.ViewActive,
			s.Primary, s.LowWatermark, s.LastExecuted, s.Assigned, s.Fetching, tag)
	}
}

func (h *harness) log() {
	for i := range h.nodes {
		var parts []string
		for _, e := range h.executed[i] {
			parts = append(parts, fmt.Sprintf("%d:c%d/%d", e.Seq, e.Client, e.Timestamp))
		}
		fmt.Fprintf(h.out, "r%d: %s\n", i, strings.Join(parts, " "))
	}
}

// check asserts agreement among correct replicas: every executed sequence is a prefix of the
// longest one (state transfer may skip executions, so compare by sequence number).
func (h *harness) check() {
	bySeq := map[uint64][]string{}
	owner := map[uint64]int{}
	for i := range h.nodes {
		if h.byz[i] != nil {
			continue
		}
		seqs := map[uint64][]string{}
		for _, e := range h.executed[i] {
			seqs[e.Seq] = append(seqs[e.Seq], fmt.Sprintf("c%d/%d", e.Client, e.Timestamp))
		}
		for s, reqs := range seqs {
			if prev, ok := bySeq[s]; ok && !slices.Equal(prev, reqs) {
				fmt.Fprintf(h.out, "AGREEMENT VIOLATED at n=%d: r%d %v vs r%d %v\n", s, owner[s], prev, i, reqs)
				return
			}
			bySeq[s], owner[s] = reqs, i
		}
	}
	var vals []string
	for i, a := range h.apps {
		if h.byz[i] == nil && !h.down[i] {
			vals = append(vals, fmt.Sprintf("r%d:%q", i, a.Value("x")))
		}
	}
	fmt.Fprintf(h.out, "agreement ok; x at %s\n", strings.Join(vals, " "))
}

func (h *harness) setTrace(args map[string]string) {
	v, ok := args["trace"]
	h.trace, h.traceTyp = ok, ""
	if v != "true" {
		h.traceTyp = v
	}
}

func (h *harness) traced(t pbftcore.MsgType) bool {
	return h.traceTyp == "" || slices.Contains(strings.Split(h.traceTyp, "|"), t.String())
}

func (h *harness) run(cmd string, args map[string]string) error {
	switch cmd {
	case "byz":
		b, err := byz.Parse(args["b"])
		if err != nil {
			return err
		}
		r := intArg(args, "r", 0)
		h.byz[r] = byz.New(b, h.keyring.Replica(r), h.n, h.signAll, intArg(args, "delay", 100))
		if t, ok := args["targets"]; ok { // partial-pre-prepare: targets=1,6
			h.byz[r].Targets = nil
			for _, f := range strings.Split(t, ",") {
				i, err := strconv.Atoi(f)
				if err != nil || i < 0 || i >= h.n {
					return fmt.Errorf("byz: bad target %q", f)
				}
				h.byz[r].Targets = append(h.byz[r].Targets, i)
			}
		}
	case "spoil":
		// spoil c=0 r=2: client 0's requests carry a wrong MAC for replica 2.
		if h.spoiled == nil {
			h.spoiled = map[int][]int{}
		}
		c := intArg(args, "c", 0)
		h.spoiled[c] = append(h.spoiled[c], intArg(args, "r", 0))
	case "unverified":
		for i, nd := range h.nodes {
			fmt.Fprintf(h.out, "r%d: %d\n", i, unverifiedBatches(nd))
		}
	case "down":
		h.down[intArg(args, "r", 0)] = true
	case "up":
		delete(h.down, intArg(args, "r", 0))
	case "restart":
		// restart r=1,2,3: those replicas crash and restart from their durable checkpoints.
		for _, f := range strings.Split(args["r"], ",") {
			i, err := strconv.Atoi(f)
			if err != nil || i < 0 || i >= h.n {
				return fmt.Errorf("restart: bad replica %q", f)
			}
			if k := intArg(args, "droptail", 0); k > 0 {
				// A crash that loses the log's last k records (not yet durable: sync none,
				// or a snapshot written before the WAL's fsync).
				h.logs[i] = h.logs[i][:max(0, len(h.logs[i])-k)]
			}
			if err := h.restart(i, args["log"] == "true"); err != nil {
				return err
			}
			delete(h.down, i)
		}
	case "durable":
		for i, d := range h.durable {
			fmt.Fprintf(h.out, "r%d: n=%d view=%d proof=%d table=%dB state=%dB\n", i, d.cp.Seq, d.cp.View, len(d.cp.Proof),
				len(d.cp.ClientTable), len(d.state))
		}
	case "drop":
		if _, ok := args["clear"]; ok {
			h.drops = nil
			break
		}
		if _, ok := args["undo"]; ok { // drop undo: remove the rule added last
			if len(h.drops) == 0 {
				return errors.New("drop undo: no rule")
			}
			h.drops = h.drops[:len(h.drops)-1]
			break
		}
		d := dropRule{from: intArg(args, "from", -1), to: intArg(args, "to", -1), seq: intArg(args, "seq", -1), view: intArg(args, "view", -1)}
		if _, ok := args["except"]; ok {
			// drop type=Request to=1 except=0: from every sender (clients included) but r0.
			d.except, d.hasExcept = intArg(args, "except", 0), true
		}
		if t, ok := args["type"]; ok {
			for mt := pbftcore.MsgRequest; mt <= pbftcore.MsgBatch; mt++ {
				if mt.String() == t {
					d.typ = mt
				}
			}
			if d.typ == 0 {
				return fmt.Errorf("unknown type %q", t)
			}
		}
		h.drops = append(h.drops, d)
	case "put", "append", "get":
		c := h.clients[intArg(args, "c", 0)]
		var op []byte
		switch cmd {
		case "put":
			op = kvapp.Put(args["k"], args["v"])
		case "append":
			op = kvapp.Append(args["k"], args["v"])
		default:
			op = kvapp.Get(args["k"])
		}
		if err := c.Invoke(op, args["ro"] == "true"); err != nil {
			return err
		}
		if _, ok := args["nostabilize"]; !ok {
			h.stabilize()
		}
	case "digests":
		// digests r=1: replica 1's async App hands in the digests it began, then the network
		// runs until quiet.
		i := intArg(args, "r", 0)
		for _, b := range h.began[i] {
			h.nodes[i].CheckpointDigest(b.seq, b.digest)
			fmt.Fprintf(h.out, "r%d digest of checkpoint %d handed in\n", i, b.seq)
		}
		h.began[i] = nil
		h.setTrace(args)
		h.stabilize()
		h.trace = false
	case "stabilize":
		h.setTrace(args)
		h.stabilize()
		h.trace = false
	case "tick":
		h.setTrace(args)
		h.tick(intArg(args, "n", 1))
		h.trace = false
	case "flushidle":
		// What the server's driver does after each round of input.
		h.setTrace(args)
		for i, nd := range h.nodes {
			if !h.down[i] {
				nd.FlushIdle()
			}
		}
		h.stabilize()
		h.trace = false
	case "status":
		h.status()
	case "log":
		h.log()
	case "slot":
		// slot n=1 [r=1]: the slot's pre-prepare, P entry and Q entries, held or not.
		for i, nd := range h.nodes {
			if r, ok := args["r"]; ok && r != strconv.Itoa(i) {
				continue
			}
			fmt.Fprintf(h.out, "r%d: %s\n", i, nd.SlotState(uint64(intArg(args, "n", 1))))
		}
	case "check":
		h.check()
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}

// runTranscript replays testdata/<file>: blocks of "command args..." lines, "----", and the
// expected output ending at a blank line. The first block must be a "cluster" command.
func runTranscript(t *testing.T, file string) {
	t.Helper()
	path := "testdata/" + file
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rewritten strings.Builder
	var h *harness
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			rewritten.WriteString(line + "\n")
			continue
		}
		cmdLine, startLine := line, lineNo
		var want []string
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("%s:%d: expected ---- after command", path, startLine)
		}
		lineNo++
		for sc.Scan() {
			lineNo++
			if sc.Text() == "" {
				break
			}
			want = append(want, sc.Text())
		}
		fields := strings.Fields(cmdLine)
		args := map[string]string{}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				v = "true"
			}
			args[k] = v
		}
		out := &strings.Builder{}
		if fields[0] == "cluster" {
			h, err = newHarness(args)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, startLine, err)
			}
			out.WriteString("ok\n")
		} else {
			if h == nil {
				t.Fatalf("%s:%d: no cluster yet", path, startLine)
			}
			h.out = out
			if err := h.run(fields[0], args); err != nil {
				fmt.Fprintf(out, "error: %v\n", err)
			}
		}
		got := strings.TrimRight(out.String(), "\n")
		if got == "" {
			got = "(no output)"
		}
		rewritten.WriteString(cmdLine + "\n----\n" + got + "\n\n")
		if !*rewrite && got != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\n--- got:\n%s\n--- want:\n%s", path, startLine, cmdLine, got, strings.Join(want, "\n"))
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(rewritten.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func unverifiedBatches(nd *pbftcore.Node) uint64 { return nd.UnverifiedBatches() }

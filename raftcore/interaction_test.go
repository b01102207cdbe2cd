package raftcore

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Transcript tests: each testdata/*.txt file is a sequence of blocks
//
//	command arg key=value ...
//	----
//	expected output
//
// separated by blank lines; lines starting with # are comments. `go test -run Transcripts
// -rewrite` regenerates the expected output, so reviews read the transcript diff.

var rewrite = flag.Bool("rewrite", false, "rewrite testdata transcripts with the actual output")

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runTranscript(t, f) })
	}
}

type block struct {
	cmd  string
	want string
	line int
	end  int // index of the line after the block
}

func parseTranscript(t *testing.T, path string) []block {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var blocks []block
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		b := block{cmd: l, line: i + 1}
		i++
		if i >= len(lines) || lines[i] != "----" {
			if !*rewrite {
				t.Fatalf("%s:%d: want ---- after the command", path, b.line)
			}
			b.end = i
			i--
			blocks = append(blocks, b)
			continue
		}
		i++
		var out []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		b.want = strings.Join(out, "\n")
		b.end = i
		blocks = append(blocks, b)
	}
	return blocks
}

func runTranscript(t *testing.T, path string) {
	blocks := parseTranscript(t, path)
	env := &interEnv{t: t}
	var rewritten bytes.Buffer
	raw, _ := os.ReadFile(path)
	lines := strings.Split(string(raw), "\n")
	prev := 0
	for _, b := range blocks {
		got := strings.TrimRight(env.run(b.cmd), "\n")
		if got == "" {
			got = "ok"
		}
		if *rewrite {
			// Copy comments and blank lines before the block unchanged.
			for _, l := range lines[prev : b.line-1] {
				rewritten.WriteString(l + "\n")
			}
			fmt.Fprintf(&rewritten, "%s\n----\n%s\n", b.cmd, got)
			prev = b.end
			if prev < len(lines) && lines[prev] != "" {
				rewritten.WriteString("\n")
			}
			continue
		}
		if got != b.want {
			t.Fatalf("%s:%d: %s\n--- got:\n%s\n--- want:\n%s", path, b.line, b.cmd, got, b.want)
		}
	}
	if *rewrite {
		for _, l := range lines[prev:] {
			if l != "" {
				rewritten.WriteString(l + "\n")
			}
		}
		out := strings.TrimRight(rewritten.String(), "\n") + "\n"
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// interEnv is the transcript driver: nodes, a network of queued messages, and storage that
// keeps only what was acknowledged durable.
type interEnv struct {
	t       *testing.T
	cfg     Config
	nodes   map[uint64]*Node
	stores  map[uint64]*memStore
	queue   []Message // messages in flight, delivered in order
	cut     map[[2]uint64]bool
	down    map[uint64]bool
	applied map[uint64][]string
	seed    uint64
}

// memStore is a node's durable state plus the writes it has not synced yet.
type memStore struct {
	hs      HardState
	snap    Snapshot
	ents    []Entry
	pending []Ready // persisted but not acknowledged (lost on crash)
	marks   []PersistMark
	applied uint64
}

func (s *memStore) write(rd *Ready) {
	if !rd.Snapshot.IsEmpty() {
		s.snap = Snapshot{Meta: cloneMeta(rd.Snapshot.Meta), Data: slices.Clone(rd.Snapshot.Data)}
		s.ents = s.ents[:0]
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		base := s.snap.Meta.Index
		if first <= base {
			panic("entries before the snapshot")
		}
		s.ents = s.ents[:min(uint64(len(s.ents)), first-base-1)]
		for _, e := range rd.Entries {
			e.Data = slices.Clone(e.Data)
			s.ents = append(s.ents, e)
		}
	}
	if rd.HasHardState {
		s.hs = rd.HardState
	}
}

func deepCopyMsg(m Message) Message {
	ents := make([]Entry, len(m.Entries))
	for i, e := range m.Entries {
		e.Data = slices.Clone(e.Data)
		ents[i] = e
	}
	m.Entries = ents
	m.SnapData = slices.Clone(m.SnapData)
	m.Snapshot = cloneMeta(m.Snapshot)
	return m
}

type args struct {
	pos []string
	kv  map[string]string
}

func parseArgs(fields []string) args {
	a := args{kv: map[string]string{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.kv[k] = v
		} else {
			a.pos = append(a.pos, f)
		}
	}
	return a
}

func (a args) int(k string, def int) int {
	if v, ok := a.kv[k]; ok {
		x, err := strconv.Atoi(v)
		if err != nil {
			panic(err)
		}
		return x
	}
	return def
}

func (a args) has(k string) bool {
	_, ok := a.kv[k]
	return ok || slices.Contains(a.pos, k)
}

func ids(s string) []uint64 {
	var out []uint64
	if s == "" {
		return nil
	}
	for _, p := range strings.Split(s, ",") {
		x, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			panic(err)
		}
		out = append(out, x)
	}
	return out
}

func (e *interEnv) node(s string) *Node {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(err)
	}
	n := e.nodes[id]
	if n == nil {
		panic(fmt.Sprintf("no node %d", id))
	}
	return n
}

func (e *interEnv) sortedIDs() []uint64 {
	var out []uint64
	for id := range e.nodes {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (e *interEnv) run(line string) (out string) {
	defer func() {
		if r := recover(); r != nil {
			out = fmt.Sprintf("panic: %v", r)
		}
	}()
	var w strings.Builder
	f := strings.Fields(line)
	a := parseArgs(f[1:])
	switch f[0] {
	case "cluster":
		e.newCluster(a)
	case "add-node":
		// add-node <id> voters=1,2,3 learners=4: a fresh node that will join.
		id := ids(a.pos[0])[0]
		cfg := e.cfg
		cfg.ID = id
		cfg.Membership = Membership{Voters: ids(a.kv["voters"]), Learners: ids(a.kv["learners"])}
		cfg.Rand = rand.New(rand.NewPCG(e.seed, id))
		e.start(id, cfg)
	case "restart":
		// restart <id> [term=T vote=V log=t1,t2,.. commit=C]: rebuild from durable storage,
		// or (with log=) from an explicit state for scenario setup.
		e.restart(a)
	case "crash":
		id := ids(a.pos[0])[0]
		e.down[id] = true
	case "campaign":
		e.node(a.pos[0]).Campaign()
	case "tick":
		k := a.int("n", 1)
		for _, s := range a.pos {
			for i := 0; i < k; i++ {
				e.node(s).Tick()
			}
		}
	case "tick-all":
		k := a.int("n", 1)
		for i := 0; i < k; i++ {
			for _, id := range e.sortedIDs() {
				if !e.down[id] {
					e.nodes[id].Tick()
				}
			}
		}
	case "propose":
		n := e.node(a.pos[0])
		var batch [][]byte
		for _, p := range a.pos[1:] {
			batch = append(batch, []byte(p))
		}
		if _, err := n.Propose(batch); err != nil {
			fmt.Fprintf(&w, "error: %v\n", err)
		}
	case "conf":
		n := e.node(a.pos[0])
		typ := map[string]ConfChangeType{"add-voter": AddVoter, "add-learner": AddLearner, "remove": RemoveNode}[a.pos[1]]
		if _, err := n.ProposeConfChange(ConfChange{Type: typ, NodeID: ids(a.pos[2])[0]}); err != nil {
			fmt.Fprintf(&w, "error: %v\n", err)
		}
	case "transfer":
		if err := e.node(a.pos[0]).TransferLeader(ids(a.pos[1])[0]); err != nil {
			fmt.Fprintf(&w, "error: %v\n", err)
		}
	case "read":
		if err := e.node(a.pos[0]).ReadIndex(uint64(a.int("ctx", 0))); err != nil {
			fmt.Fprintf(&w, "error: %v\n", err)
		}
	case "snapshot":
		// snapshot <id>: report a snapshot at the node's applied index.
		n := e.node(a.pos[0])
		idx := n.applied
		data := []byte(strings.Join(e.applied[n.id], ";"))
		if _, err := n.ReportSnapshot(idx, data); err != nil {
			fmt.Fprintf(&w, "error: %v\n", err)
		}
	case "process-ready":
		for _, s := range a.pos {
			if s != "noack" {
				e.processReady(&w, e.node(s), !a.has("noack"))
			}
		}
	case "ack":
		for _, s := range a.pos {
			e.ackAll(e.node(s))
		}
	case "deliver":
		// deliver [ids] [drop]: deliver (or drop) queued messages addressed to ids (all if none).
		var to []uint64
		for _, s := range a.pos {
			if s != "drop" {
				to = append(to, ids(s)...)
			}
		}
		e.deliver(&w, to, a.has("drop"), true)
	case "run":
		// run n=K: K rounds of (tick every node, stabilize), printing role changes and commits.
		for i := 0; i < a.int("n", 1); i++ {
			for _, id := range e.sortedIDs() {
				if !e.down[id] {
					e.nodes[id].Tick()
				}
			}
			e.stabilize(&w, false)
		}
	case "stabilize":
		e.stabilize(&w, a.has("verbose"))
	case "partition":
		// partition 1,2 3: cut every link between the groups.
		var groups [][]uint64
		for _, g := range a.pos {
			groups = append(groups, ids(g))
		}
		for i := range groups {
			for j := range groups {
				if i != j {
					for _, x := range groups[i] {
						for _, y := range groups[j] {
							e.cut[[2]uint64{x, y}] = true
						}
					}
				}
			}
		}
	case "heal":
		e.cut = map[[2]uint64]bool{}
	case "status":
		for _, id := range e.sortedIDs() {
			if e.down[id] {
				fmt.Fprintf(&w, "%d: down\n", id)
				continue
			}
			n := e.nodes[id]
			fmt.Fprintf(&w, "%d: %v term=%d lead=%d commit=%d applied=%d last=%d voters=%v learners=%v\n",
				id, n.role, n.term, n.lead, n.commit, n.applied, n.log.lastIndex(), n.voters, n.learners)
		}
	case "log":
		for _, s := range a.pos {
			n := e.node(s)
			fmt.Fprintf(&w, "%d: snap=%d/%d", n.id, n.log.snapIndex, n.log.snapTerm)
			for i := n.log.firstIndex(); i <= n.log.lastIndex(); i++ {
				fmt.Fprintf(&w, " %s", fmtEntry(n.log.entry(i)))
			}
			w.WriteString("\n")
		}
	case "progress":
		n := e.node(a.pos[0])
		for _, pr := range n.prs {
			fmt.Fprintf(&w, "%v\n", pr)
		}
	case "applied":
		for _, s := range a.pos {
			n := e.node(s)
			fmt.Fprintf(&w, "%d: %s\n", n.id, strings.Join(e.applied[n.id], " "))
		}
	default:
		panic("unknown command " + f[0])
	}
	return w.String()
}

func (e *interEnv) newCluster(a args) {
	e.nodes, e.stores = map[uint64]*Node{}, map[uint64]*memStore{}
	e.cut, e.down, e.applied = map[[2]uint64]bool{}, map[uint64]bool{}, map[uint64][]string{}
	e.queue = nil
	e.seed = uint64(a.int("seed", 1))
	cfg := DefaultConfig(0, Membership{}, nil)
	cfg.ElectionTick = a.int("election", 10)
	cfg.HeartbeatTick = a.int("heartbeat", 1)
	cfg.PreVote = a.has("prevote")
	cfg.CheckQuorum = a.has("checkquorum")
	if a.has("lease") {
		cfg.ReadOnly = ReadLease
	}
	cfg.LeaseDriftTicks = a.int("drift", 2)
	cfg.SnapshotThreshold = uint64(a.int("threshold", 0))
	cfg.SnapshotRetainEntries = uint64(a.int("retain", 0))
	cfg.SnapshotChunkBytes = uint64(a.int("chunk", 1<<20))
	cfg.MaxInflightMsgs = a.int("inflight", 256)
	cfg.MaxSizePerMsg = uint64(a.int("maxsize", 1<<20))
	e.cfg = cfg
	var voters []uint64
	for i := 1; i <= a.int("n", 3); i++ {
		voters = append(voters, uint64(i))
	}
	learners := ids(a.kv["learners"])
	for _, id := range append(slices.Clone(voters), learners...) {
		c := cfg
		c.ID = id
		c.Membership = Membership{Voters: voters, Learners: learners}
		c.Rand = rand.New(rand.NewPCG(e.seed, id))
		e.start(id, c)
	}
}

func (e *interEnv) start(id uint64, cfg Config) {
	n, err := New(cfg)
	if err != nil {
		panic(err)
	}
	e.nodes[id] = n
	if e.stores[id] == nil {
		e.stores[id] = &memStore{}
	}
	delete(e.down, id)
}

func (e *interEnv) restart(a args) {
	id := ids(a.pos[0])[0]
	old := e.nodes[id]
	st := e.stores[id]
	st.pending, st.marks = nil, nil
	cfg := e.cfg
	cfg.ID = id
	cfg.Rand = rand.New(rand.NewPCG(e.seed, id+1000))
	cfg.Membership = Membership{Voters: old.confs[0].m.Voters, Learners: old.confs[0].m.Learners}
	if lg, ok := a.kv["log"]; ok {
		// Explicit state: entries with the given terms, payload "t<term>i<index>".
		st.snap = Snapshot{}
		st.ents = nil
		for i, ts := range strings.Split(lg, ",") {
			if ts == "" {
				continue
			}
			term, _ := strconv.ParseUint(ts, 10, 64)
			st.ents = append(st.ents, Entry{Index: uint64(i + 1), Term: term, Data: []byte(fmt.Sprintf("t%di%d", term, i+1))})
		}
		st.hs = HardState{Term: uint64(a.int("term", 0)), Vote: uint64(a.int("vote", 0)), Commit: uint64(a.int("commit", 0))}
		st.applied = 0
		e.applied[id] = nil
	}
	cfg.HardState = st.hs
	cfg.Snapshot = st.snap
	cfg.Entries = st.ents
	cfg.Applied = st.snap.Meta.Index
	e.applied[id] = nil
	e.start(id, cfg)
}

func (e *interEnv) ackAll(n *Node) {
	st := e.stores[n.id]
	for i := range st.pending {
		st.write(&st.pending[i])
	}
	if len(st.marks) > 0 {
		n.AckPersisted(st.marks[len(st.marks)-1])
	}
	st.pending, st.marks = nil, nil
}

func (e *interEnv) processReady(w *strings.Builder, n *Node, ack bool) {
	if e.down[n.id] || !n.HasReady() {
		return
	}
	rd := n.Ready()
	fmt.Fprintf(w, "> %d handling Ready\n", n.id)
	if rd.HasSoftState {
		fmt.Fprintf(w, "  Lead:%d State:%v\n", rd.Lead, rd.Role)
	}
	if rd.HasHardState {
		fmt.Fprintf(w, "  HardState Term:%d Vote:%d Commit:%d\n", rd.HardState.Term, rd.HardState.Vote, rd.HardState.Commit)
	}
	if !rd.Snapshot.IsEmpty() {
		fmt.Fprintf(w, "  Snapshot %d/%d voters=%v learners=%v data=%q\n", rd.Snapshot.Meta.Index, rd.Snapshot.Meta.Term,
			rd.Snapshot.Meta.Membership.Voters, rd.Snapshot.Meta.Membership.Learners, rd.Snapshot.Data)
	}
	if len(rd.Entries) > 0 {
		fmt.Fprintf(w, "  Entries: %s\n", fmtEntries(rd.Entries))
	}
	for _, m := range rd.Messages {
		fmt.Fprintf(w, "  send %s\n", fmtMsg(m))
		e.queue = append(e.queue, deepCopyMsg(m))
	}
	if len(rd.CommittedEntries) > 0 {
		fmt.Fprintf(w, "  Committed: %s\n", fmtEntries(rd.CommittedEntries))
	}
	for _, rs := range rd.ReadStates {
		fmt.Fprintf(w, "  ReadState index=%d ctx=%d\n", rs.Index, rs.Context)
	}
	if rd.SnapshotRequest > 0 {
		fmt.Fprintf(w, "  SnapshotRequest %d\n", rd.SnapshotRequest)
	}
	st := e.stores[n.id]
	if rd.MustPersist() {
		cp := rd
		cp.Entries = nil
		for _, en := range rd.Entries {
			en.Data = slices.Clone(en.Data)
			cp.Entries = append(cp.Entries, en)
		}
		cp.Snapshot = Snapshot{Meta: cloneMeta(rd.Snapshot.Meta), Data: slices.Clone(rd.Snapshot.Data)}
		st.pending = append(st.pending, cp)
		st.marks = append(st.marks, rd.Mark)
	}
	if !rd.Snapshot.IsEmpty() {
		e.applied[n.id] = []string{"snap:" + string(rd.Snapshot.Data)}
	}
	for _, en := range rd.CommittedEntries {
		if en.Type == EntryNormal {
			e.applied[n.id] = append(e.applied[n.id], string(en.Data))
		}
	}
	if ack {
		e.ackAll(n)
	} else if rd.MustPersist() {
		fmt.Fprintf(w, "  (not acked)\n")
	}
	n.Advance()
}

func (e *interEnv) deliver(w *strings.Builder, to []uint64, drop, print bool) int {
	var keep []Message
	k := 0
	for _, m := range e.queue {
		if len(to) > 0 && !slices.Contains(to, m.To) {
			keep = append(keep, m)
			continue
		}
		k++
		if drop || e.cut[[2]uint64{m.From, m.To}] || e.down[m.To] || e.nodes[m.To] == nil {
			if print {
				fmt.Fprintf(w, "  dropped %s\n", fmtMsg(m))
			}
			continue
		}
		if err := e.nodes[m.To].Step(&m); err != nil {
			fmt.Fprintf(w, "  step error: %v\n", err)
		}
	}
	e.queue = keep
	return k
}

// stabilize processes Readies and delivers messages until nothing moves.
func (e *interEnv) stabilize(w *strings.Builder, verbose bool) {
	for round := 0; round < 1000; round++ {
		moved := false
		for _, id := range e.sortedIDs() {
			n := e.nodes[id]
			if !e.down[id] && n.HasReady() {
				moved = true
				var sub strings.Builder
				e.processReady(&sub, n, true)
				if verbose {
					w.WriteString(sub.String())
				} else {
					w.WriteString(summarize(sub.String()))
				}
			}
		}
		if len(e.queue) > 0 {
			moved = true
			e.deliver(w, nil, false, verbose)
		}
		if !moved {
			return
		}
	}
	panic("stabilize did not converge")
}

// summarize keeps the lines of a Ready that tell the story: role changes, commits, reads,
// snapshots.
func summarize(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, ">") || strings.HasPrefix(t, "send") || strings.HasPrefix(t, "HardState") ||
			strings.HasPrefix(t, "Entries") || strings.HasPrefix(t, "(not acked)") {
			continue
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return ""
	}
	id := strings.Fields(strings.TrimPrefix(strings.Split(s, "\n")[0], "> "))[0]
	for i := range out {
		out[i] = id + ":" + strings.TrimPrefix(out[i], " ")
	}
	return strings.Join(out, "\n") + "\n"
}

func fmtEntry(e Entry) string {
	switch e.Type {
	case EntryNoop:
		return fmt.Sprintf("%d/%d noop", e.Term, e.Index)
	case EntryConfChange:
		cc, _ := DecodeConfChange(e.Data)
		return fmt.Sprintf("%d/%d conf(%v %d)", e.Term, e.Index, cc.Type, cc.NodeID)
	}
	return fmt.Sprintf("%d/%d %q", e.Term, e.Index, e.Data)
}

func fmtEntries(es []Entry) string {
	var p []string
	for _, e := range es {
		p = append(p, fmtEntry(e))
	}
	return strings.Join(p, ", ")
}

func (t ConfChangeType) String() string {
	switch t {
	case AddVoter:
		return "add-voter"
	case AddLearner:
		return "add-learner"
	case RemoveNode:
		return "remove"
	}
	return "?"
}

func fmtMsg(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %v term=%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case MsgApp:
		fmt.Fprintf(&b, " prev=%d/%d commit=%d", m.LogTerm, m.Index, m.Commit)
		if len(m.Entries) > 0 {
			fmt.Fprintf(&b, " [%s]", fmtEntries(m.Entries))
		}
	case MsgAppResp:
		fmt.Fprintf(&b, " index=%d", m.Index)
		if m.Reject {
			fmt.Fprintf(&b, " reject hint=%d/%d", m.ConflictTerm, m.RejectHint)
		}
	case MsgVote, MsgPreVote:
		fmt.Fprintf(&b, " last=%d/%d", m.LogTerm, m.Index)
		if m.Transfer {
			b.WriteString(" transfer")
		}
	case MsgVoteResp, MsgPreVoteResp:
		if m.Reject {
			b.WriteString(" reject")
		}
	case MsgHeartbeat:
		fmt.Fprintf(&b, " commit=%d round=%d", m.Commit, m.Context)
	case MsgHeartbeatResp:
		fmt.Fprintf(&b, " round=%d", m.Context)
	case MsgSnap:
		fmt.Fprintf(&b, " snap=%d/%d off=%d len=%d", m.Snapshot.Term, m.Snapshot.Index, m.SnapOffset, len(m.SnapData))
		if m.SnapDone {
			b.WriteString(" done")
		}
	case MsgSnapResp:
		fmt.Fprintf(&b, " snap=%d off=%d", m.Snapshot.Index, m.SnapOffset)
		if m.SnapDone {
			b.WriteString(" done")
		}
		if m.Reject {
			b.WriteString(" reject")
		}
	case MsgReadIndex, MsgReadIndexResp:
		fmt.Fprintf(&b, " ctx=%d index=%d", m.Context, m.Index)
		if m.Reject {
			b.WriteString(" reject")
		}
	}
	return b.String()
}

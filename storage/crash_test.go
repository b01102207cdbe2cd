package storage

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Process-level crash test. The test binary re-executes itself as a child (crashChildEnv
// names the WAL directory); the child appends with SyncAlways and prints "ack N" for every
// durable report. The parent SIGKILLs it at random points and, after each kill, reopens the
// WAL and checks that every acknowledged entry is present and intact.
//
// CB_CRASH_KILLS sets the number of kills (default crashKillsDefault, kept small for CI);
// CB_CRASH_SEED replays a run.
const (
	crashChildEnv      = "CB_STORAGE_CRASH_CHILD"
	crashSyncEnv       = "CB_STORAGE_CRASH_SYNC" // "none": the child runs SyncNone
	crashKillsDefault  = 20
	crashSegmentBytes  = 64 << 10
	crashMaxAcksBefore = 150 // the parent kills after a random number of acks up to this
	crashKeepEntries   = 500 // the child compacts, keeping this many entries behind the durable index
	crashCompactEvery  = 700
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashData is entry i's payload: derived from i alone so the parent can verify it.
func crashData(i uint64) []byte { return entryData(i, 1, 16+int(i%200)) }

func crashChild(dir string) int {
	out := os.Stdout
	sync := SyncAlways
	if os.Getenv(crashSyncEnv) == "none" {
		sync = SyncNone
	}
	w, st, err := Open(dir, Options{SegmentBytes: crashSegmentBytes, Sync: sync, OnDurable: func(d Durable) {
		if d.Err == nil {
			fmt.Fprintf(out, "ack %d\n", d.LastIndex)
		}
	}})
	if err != nil {
		fmt.Fprintf(out, "error %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "start %d %d\n", st.FirstIndex, st.LastIndex)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), st.LastIndex))
	next := st.LastIndex + 1
	lastCompact := st.SnapshotIndex
	var ents []Entry
	for {
		n := 1 + rng.IntN(64)
		ents = ents[:0]
		for range n {
			ents = append(ents, Entry{Index: next, Term: 1, Type: byte(next % 3), Data: crashData(next)})
			next++
		}
		seq, err := w.Append(ents, HardState{Term: 1, Commit: next - 1})
		if err != nil {
			fmt.Fprintf(out, "error %v\n", err)
			return 1
		}
		if rng.IntN(4) == 0 {
			// Sometimes wait, so batches vary from one Append to many.
			if err := w.WaitDurable(seq); err != nil {
				fmt.Fprintf(out, "error %v\n", err)
				return 1
			}
		}
		if d := w.LastDurable(); d.LastIndex > lastCompact+crashKeepEntries+crashCompactEvery {
			c := d.LastIndex - crashKeepEntries
			cseq, err := w.Compact(c)
			if err == nil {
				err = w.WaitDurable(cseq)
			}
			if err != nil {
				fmt.Fprintf(out, "error %v\n", err)
				return 1
			}
			lastCompact = c
			fmt.Fprintf(out, "compacted %d\n", c)
		}
	}
}

func envInt(t *testing.T, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func TestCrashRecovery(t *testing.T) { crashRecovery(t, "always") }

// Under SyncNone an acknowledged batch is in the page cache (written with pwrite), so a
// killed process loses none of it.
func TestCrashRecoverySyncNone(t *testing.T) { crashRecovery(t, "none") }

func crashRecovery(t *testing.T, sync string) {
	if testing.Short() {
		t.Skip("process-level crash test")
	}
	kills := envInt(t, "CB_CRASH_KILLS", crashKillsDefault)
	seed := envInt(t, "CB_CRASH_SEED", 1)
	t.Logf("CB_CRASH_SEED=%d CB_CRASH_KILLS=%d", seed, kills)
	rng := rand.New(rand.NewPCG(seed, seed))
	dir := t.TempDir()
	var maxAck, maxCompact uint64
	torn := 0
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashSyncEnv+"="+sync)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		killAfter := rng.IntN(crashMaxAcksBefore + 1)
		acks := 0
		killed := false
		handle := func(line string) {
			f := strings.Fields(line)
			switch {
			case len(f) == 2 && f[0] == "ack":
				n, _ := strconv.ParseUint(f[1], 10, 64)
				maxAck = max(maxAck, n)
				acks++
			case len(f) == 2 && f[0] == "compacted":
				n, _ := strconv.ParseUint(f[1], 10, 64)
				maxCompact = max(maxCompact, n)
			case len(f) == 3 && f[0] == "start":
			default:
				t.Errorf("kill %d: child said %q", k, line)
			}
		}
		for sc.Scan() {
			handle(sc.Text())
			if !killed && acks >= killAfter {
				_ = cmd.Process.Kill() // SIGKILL
				killed = true
			}
		}
		// Lines the child printed before dying were acknowledgements too; the scanner has
		// read them all once it hits EOF.
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("kill %d: child exited on its own", k)
		}
		if k%3 == 2 {
			tearTail(t, dir, rng)
		}
		w, st, err := Open(dir, Options{SegmentBytes: crashSegmentBytes})
		if err != nil {
			t.Fatalf("kill %d (seed %d): recovery failed: %v", k, seed, err)
		}
		if st.TornTailBytes > 0 {
			torn++
		}
		if st.LastIndex < maxAck {
			t.Fatalf("kill %d (seed %d): recovered through %d, but %d was acknowledged", k, seed, st.LastIndex, maxAck)
		}
		if st.SnapshotIndex < maxCompact || st.FirstIndex != st.SnapshotIndex+1 || st.FirstIndex > maxAck+1 && maxAck > 0 {
			t.Fatalf("kill %d: recovered %+v, compaction acknowledged through %d", k, st, maxCompact)
		}
		var buf []byte
		var ents []Entry
		for lo := st.FirstIndex; lo <= st.LastIndex; lo += uint64(len(ents)) {
			ents, buf, err = w.Entries(lo, st.LastIndex+1, 1<<20, ents[:0], buf[:0])
			if err != nil {
				t.Fatalf("kill %d: read from %d: %v", k, lo, err)
			}
			for j, e := range ents {
				i := lo + uint64(j)
				if e.Index != i || e.Term != 1 || e.Type != byte(i%3) || !bytes.Equal(e.Data, crashData(i)) {
					t.Fatalf("kill %d: entry %d damaged (index %d term %d len %d)", k, i, e.Index, e.Term, len(e.Data))
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if maxAck == 0 {
		t.Fatal("no acknowledgements observed")
	}
	t.Logf("%d kills, %d entries acknowledged, compacted through %d, %d torn tails truncated", kills, maxAck, maxCompact, torn)
}

// tearTail simulates a write that was in flight at the crash: a valid batch header for the
// next batch followed by part of its body and garbage, after the last complete batch.
func tearTail(t *testing.T, dir string, rng *rand.Rand) {
	t.Helper()
	w, _, err := Open(dir, Options{SegmentBytes: crashSegmentBytes})
	if err != nil {
		t.Fatalf("open before tearing: %v", err)
	}
	w.mu.Lock()
	path, off, next := "", w.curOff, w.nextBatch
	if w.cur != nil {
		path = w.cur.path
	}
	w.mu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if path == "" {
		return
	}
	// Non-zero data, so that cutting any suffix leaves the batch detectably incomplete
	// (the file reads as zeros past the cut).
	data := bytes.Repeat([]byte{0xaa}, 100)
	body := make([]byte, 0, 4096)
	for i := range 10 {
		body = appendEntryRecord(body, &Entry{Index: 1 << 40, Term: uint64(i), Data: data})
	}
	b := make([]byte, batchHeaderLen, batchHeaderLen+len(body))
	b = append(b, body...)
	putBatchHeader(b, next, len(body))
	cut := batchHeaderLen + rng.IntN(len(body)) // the write stopped part-way
	b = b[:cut]
	for n := len(b) - batchHeaderLen; n > 0 && rng.IntN(4) != 0; {
		b[batchHeaderLen+rng.IntN(n)] ^= 0xff
	}
	f, err := OSFS{}.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

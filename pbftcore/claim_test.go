package pbftcore_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore"
)

// claimHarness is a 4-replica harness whose clients are principals 0..clients-1.
func claimHarness(t *testing.T, clients int, args map[string]string) *harness {
	t.Helper()
	a := map[string]string{"clients": strconv.Itoa(clients)}
	for k, v := range args {
		a[k] = v
	}
	h, err := newHarness(a)
	if err != nil {
		t.Fatal(err)
	}
	h.out = &strings.Builder{}
	return h
}

// invokeClaim starts a claim by harness client c (as its principal); it is delivered on the
// next stabilize.
func invokeClaim(t *testing.T, h *harness, c int, cl pbftcore.Claim) {
	t.Helper()
	if err := h.clients[c].InvokeClaim(pbftcore.AppendClaim(nil, &cl)); err != nil {
		t.Fatalf("c%d: InvokeClaim: %v", c, err)
	}
}

// grantOf returns the grant client c accepted (f+1 matching replies) since h.out was reset.
func grantOf(t *testing.T, h *harness, c int) pbftcore.Grant {
	t.Helper()
	prefix := fmt.Sprintf("c%d done ts=0 result=", c)
	for _, line := range strings.Split(h.out.String(), "\n") {
		q, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		q, _, _ = strings.Cut(q, " ordered-read=")
		raw, err := strconv.Unquote(q)
		if err != nil {
			t.Fatal(err)
		}
		var g pbftcore.Grant
		if err := pbftcore.DecodeGrant([]byte(raw), &g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	t.Fatalf("c%d accepted no grant; output:\n%s", c, h.out)
	return pbftcore.Grant{}
}

func claim(t *testing.T, h *harness, c int, cl pbftcore.Claim) pbftcore.Grant {
	t.Helper()
	h.out.Reset()
	invokeClaim(t, h, c, cl)
	h.stabilize()
	h.tick(1) // a batch flush, for harnesses whose batches take several requests
	return grantOf(t, h, c)
}

// sameTables fails unless every replica holds the same client table (allocation included),
// both as a checkpoint serializes it and field by field.
func sameTables(t *testing.T, h *harness, why string) {
	t.Helper()
	want, wantClaims := pbftcore.ClientTable(h.nodes[0]), pbftcore.ClaimState(h.nodes[0])
	for i := 1; i < h.n; i++ {
		if got := pbftcore.ClientTable(h.nodes[i]); !bytes.Equal(got, want) {
			t.Fatalf("%s: r%d's client table (%d bytes) differs from r0's (%d bytes)", why, i, len(got), len(want))
		}
		if got := pbftcore.ClaimState(h.nodes[i]); got != wantClaims {
			t.Fatalf("%s: r%d's allocation table\n%s\ndiffers from r0's\n%s", why, i, got, wantClaims)
		}
	}
}

const second = uint64(1e9)

// Concurrent claims are ordered: each claimant gets a range no other live claimant holds,
// and once the table is full the next one is told so.
func TestClaimsGrantDisjointRanges(t *testing.T) {
	h := claimHarness(t, 8, map[string]string{"batch": "8"})
	for c := range 5 {
		invokeClaim(t, h, c, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: uint64(100 + c), Count: 2, Now: second, Lease: second})
	}
	h.stabilize()
	h.tick(1) // the batch flush: the five claims are ordered in one batch
	held := make([]int, 8)
	noRoom := 0
	for c := range 5 {
		g := grantOf(t, h, c)
		if g.Nonce != uint64(100+c) {
			t.Fatalf("c%d got nonce %d's grant", c, g.Nonce)
		}
		switch g.Status {
		case pbftcore.Granted:
			if g.Count != 2 || g.Start+2 > 8 {
				t.Fatalf("c%d granted [%d, %d)", c, g.Start, g.Start+uint64(g.Count))
			}
			for p := g.Start; p < g.Start+2; p++ {
				held[p]++
			}
		case pbftcore.NoRoom:
			noRoom++
		default:
			t.Fatalf("c%d: status %d", c, g.Status)
		}
	}
	for p, n := range held {
		if n != 1 {
			t.Fatalf("principal %d granted %d times, want once (held %v)", p, n, held)
		}
	}
	if noRoom != 1 {
		t.Fatalf("%d claims found no room, want 1", noRoom)
	}
	sameTables(t, h, "after the claims")
	// A fixed range overlapping a live grant is refused.
	if g := claim(t, h, 5, pbftcore.Claim{Kind: pbftcore.ClaimAt, Nonce: 7, Start: 3, Count: 2, Now: second, Lease: second}); g.Status != pbftcore.HeldByOther {
		t.Fatalf("overlapping fixed claim: status %d, want HeldByOther", g.Status)
	}
}

// A grant whose lease expired (by the clock that later claims carry) is granted again, with
// timestamps above every one the old holder could use: the old holder's requests are never
// executed again, and they do not disturb the new holder.
func TestClaimLeaseExpiresAndFencesTheOldHolder(t *testing.T) {
	h := claimHarness(t, 4, nil)
	a := claim(t, h, 0, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 1, Count: 4, Now: second, Lease: second})
	if a.Status != pbftcore.Granted || a.Start != 0 || a.Count != 4 {
		t.Fatalf("first claim: %+v", a)
	}
	if err := h.run("put", map[string]string{"c": "0", "k": "x", "v": "old"}); err != nil {
		t.Fatal(err)
	}
	if g := claim(t, h, 1, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 2, Count: 2, Now: second + second/2, Lease: second}); g.Status != pbftcore.NoRoom {
		t.Fatalf("claim inside the lease: status %d, want NoRoom", g.Status)
	}
	b := claim(t, h, 1, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 2, Count: 2, Now: 3 * second, Lease: second})
	if b.Status != pbftcore.Granted || b.Start != 0 || b.Floor < a.Floor+pbftcore.ClaimSpan {
		t.Fatalf("claim after the lease: %+v, want [0, 2) above floor %d", b, a.Floor+pbftcore.ClaimSpan)
	}
	// The old holder resumes: its request is refused everywhere, unexecuted.
	h.out.Reset()
	if err := h.run("put", map[string]string{"c": "0", "k": "x", "v": "stale"}); err != nil {
		t.Fatal(err)
	}
	h.tick(100)
	if strings.Contains(h.out.String(), "c0 done") {
		t.Fatalf("the old holder's request was answered:\n%s", h.out)
	}
	for i, app := range h.apps {
		if v := app.Value("x"); v != "old" {
			t.Fatalf("r%d: x = %q after the old holder's request, want \"old\"", i, v)
		}
	}
	// The new holder of principal 0 starts above its floor and is served.
	nc, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: 0, N: h.n, Keys: h.keyring.Client(0), FirstTimestamp: b.Floor + 1})
	if err != nil {
		t.Fatal(err)
	}
	h.clients[0] = nc
	h.out.Reset()
	if err := h.run("put", map[string]string{"c": "0", "k": "x", "v": "new"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.out.String(), "c0 done") {
		t.Fatalf("the new holder's request was not answered:\n%s", h.out)
	}
	for i, app := range h.apps {
		if v := app.Value("x"); v != "new" {
			t.Fatalf("r%d: x = %q, want \"new\"", i, v)
		}
	}
	// The old nonce's renewal finds its lease gone; the new one's is renewed.
	if g := claim(t, h, 2, pbftcore.Claim{Kind: pbftcore.ClaimRenew, Nonce: 1, Now: 3 * second, Lease: second}); g.Status != pbftcore.Lost {
		t.Fatalf("renewal of the expired grant: status %d, want Lost", g.Status)
	}
	if g := claim(t, h, 3, pbftcore.Claim{Kind: pbftcore.ClaimRenew, Nonce: 2, Now: 3 * second, Lease: second}); g.Status != pbftcore.Granted || g.Start != 0 || g.Floor != b.Floor {
		t.Fatalf("renewal of the live grant: %+v", g)
	}
	sameTables(t, h, "after expiry")
}

// A release frees the range at once, with no wait for the lease.
func TestClaimReleaseFreesTheRange(t *testing.T) {
	h := claimHarness(t, 4, nil)
	if g := claim(t, h, 0, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 1, Count: 4, Now: second, Lease: 60 * second}); g.Status != pbftcore.Granted {
		t.Fatalf("claim: %+v", g)
	}
	if g := claim(t, h, 1, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 2, Count: 1, Now: second, Lease: second}); g.Status != pbftcore.NoRoom {
		t.Fatalf("claim of a held table: status %d, want NoRoom", g.Status)
	}
	if g := claim(t, h, 2, pbftcore.Claim{Kind: pbftcore.ClaimRelease, Nonce: 1, Now: second}); g.Status != pbftcore.Released {
		t.Fatalf("release: status %d", g.Status)
	}
	if g := claim(t, h, 3, pbftcore.Claim{Kind: pbftcore.ClaimAt, Nonce: 3, Start: 1, Count: 3, Now: second, Lease: second}); g.Status != pbftcore.Granted || g.Start != 1 {
		t.Fatalf("claim after the release: %+v", g)
	}
}

// The allocation table is replicated state: a replica restarted from its checkpoint, and one
// that catches up by state transfer, hold the same table as the others, and a claim it
// executes afterwards agrees with theirs.
func TestClaimTableSurvivesRestartAndStateTransfer(t *testing.T) {
	h := claimHarness(t, 4, map[string]string{"k": "4"})
	if err := h.run("down", map[string]string{"r": "3"}); err != nil {
		t.Fatal(err)
	}
	a := claim(t, h, 0, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 1, Count: 2, Now: second, Lease: 60 * second})
	if a.Status != pbftcore.Granted {
		t.Fatalf("claim: %+v", a)
	}
	for i := range 15 { // past r3's window: it must catch up by state transfer
		if err := h.run("put", map[string]string{"c": "0", "k": "x", "v": strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.run("up", map[string]string{"r": "3"}); err != nil {
		t.Fatal(err)
	}
	for i := range 8 { // to the next checkpoints, which r3 fetches
		if err := h.run("put", map[string]string{"c": "0", "k": "y", "v": strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	h.tick(200)
	if st := h.nodes[3].Status(); st.LastExecuted != h.nodes[0].Status().LastExecuted {
		t.Fatalf("r3 executed %d, r0 %d: no catch-up", st.LastExecuted, h.nodes[0].Status().LastExecuted)
	}
	sameTables(t, h, "after r3's state transfer")
	if err := h.restart(1, false); err != nil {
		t.Fatal(err)
	}
	h.tick(200)
	sameTables(t, h, "after r1's restart")
	// The restarted and the transferred replica, with r0, still refuse the live grant to
	// another claimant (r2 is down: f+1 matching answers must include one of them).
	if err := h.run("down", map[string]string{"r": "2"}); err != nil {
		t.Fatal(err)
	}
	h.out.Reset()
	invokeClaim(t, h, 1, pbftcore.Claim{Kind: pbftcore.ClaimAt, Nonce: 2, Start: 0, Count: 1, Now: 2 * second, Lease: second})
	h.stabilize()
	if g := grantOf(t, h, 1); g.Status != pbftcore.HeldByOther {
		t.Fatalf("claim of the held range after restart: status %d, want HeldByOther", g.Status)
	}
}

// Claims are checked like requests: malformed ones are answered Invalid and change nothing.
func TestClaimRejectsMalformed(t *testing.T) {
	h := claimHarness(t, 4, nil)
	for name, cl := range map[string]pbftcore.Claim{
		"count 0":        {Kind: pbftcore.ClaimAny, Nonce: 1, Count: 0, Now: second},
		"beyond table":   {Kind: pbftcore.ClaimAt, Nonce: 1, Start: 3, Count: 2, Now: second},
		"more than all":  {Kind: pbftcore.ClaimAny, Nonce: 1, Count: 5, Now: second},
		"start overflow": {Kind: pbftcore.ClaimAt, Nonce: 1, Start: ^uint64(0), Count: 2, Now: second},
	} {
		if g := claim(t, h, 0, cl); g.Status != pbftcore.Invalid {
			t.Errorf("%s: status %d, want Invalid", name, g.Status)
		}
	}
	var c pbftcore.Claim
	for name, b := range map[string][]byte{
		"nonce 0": pbftcore.AppendClaim(nil, &pbftcore.Claim{Kind: pbftcore.ClaimAny, Count: 1, Now: second}),
		"now 0":   pbftcore.AppendClaim(nil, &pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 1, Count: 1}),
		"kind 9":  pbftcore.AppendClaim(nil, &pbftcore.Claim{Kind: 9, Nonce: 1, Count: 1, Now: second}),
		"short":   pbftcore.AppendClaim(nil, &pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 1, Count: 1, Now: second})[:10],
	} {
		if err := pbftcore.DecodeClaim(b, &c); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if g := claim(t, h, 0, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 1, Count: 4, Now: second, Lease: second}); g.Status != pbftcore.Granted {
		t.Fatalf("valid claim after malformed ones: %+v", g)
	}
}

// A claim sent while the primary is down completes after one view change, like a request
// retransmitted to every replica: the backups that received it start their request timers
// and hold it, and the next primary orders it on entering its view. Before, backups started
// no timer for a claim, so a claimant facing a silent primary waited for other clients'
// traffic to change the view, and with none (a fresh load generator) never got identities.
func TestClaimCompletesAcrossAPrimaryFailure(t *testing.T) {
	h := claimHarness(t, 2, map[string]string{"timeout": "10", "ctimeout": "1000"})
	h.down[0] = true
	h.out.Reset()
	invokeClaim(t, h, 0, pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: 9, Count: 1, Now: second, Lease: second})
	h.stabilize()
	for range 60 { // six view-change timers, far below the client's retransmission
		h.tick(1)
		if strings.Contains(h.out.String(), "c0 done ts=0") {
			break
		}
	}
	if g := grantOf(t, h, 0); g.Status != pbftcore.Granted || g.Nonce != 9 {
		t.Fatalf("grant %+v, want nonce 9 granted", g)
	}
	for i := 1; i < 4; i++ {
		if s := h.nodes[i].Status(); s.View != 1 {
			t.Fatalf("r%d in view %d after the claim, want 1 (one view change)", i, s.View)
		}
	}
	want := pbftcore.ClientTable(h.nodes[1])
	for i := 2; i < 4; i++ {
		if !bytes.Equal(pbftcore.ClientTable(h.nodes[i]), want) {
			t.Fatalf("r%d's client table differs from r1's after the failover", i)
		}
	}
}

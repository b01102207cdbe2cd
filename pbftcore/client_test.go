package pbftcore_test

import (
	"fmt"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore"
)

func sealedReply(t *testing.T, kr *pbftcore.Keyring, from int, ts uint64, result string, readOnly bool) *pbftcore.Message {
	t.Helper()
	a := pbftcore.NewAuthenticator(kr.Replica(from), false)
	m := &pbftcore.Message{Type: pbftcore.MsgReply, From: from, To: pbftcore.ToClient, Client: 0, Timestamp: ts,
		ReadOnly: readOnly, Result: []byte(result)}
	m.Auth = a.Seal(m, nil)
	return m
}

// PBFT §4.1 (OSDI '99): the client accepts a result after f+1 matching replies from distinct
// replicas; a replica repeating itself or a reply with a bad MAC does not count.
func TestClientNeedsFPlusOneDistinctMatchingReplies(t *testing.T) {
	kr := pbftcore.NewKeyring([]byte("client"), 4, 1)
	c, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: 0, N: 4, Keys: kr.Client(0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Invoke([]byte("op"), false); err != nil {
		t.Fatal(err)
	}
	if rd := c.Ready(); len(rd.Messages) != 1 || rd.Messages[0].To != 0 {
		t.Fatalf("ordered request should go to the primary r0: %+v", rd.Messages)
	}
	c.Advance()
	c.Step(sealedReply(t, kr, 1, 1, "A", false))
	c.Step(sealedReply(t, kr, 1, 1, "A", false)) // same replica again
	forged := sealedReply(t, kr, 2, 1, "A", false)
	forged.Auth[0] ^= 1
	c.Step(forged)
	c.Step(sealedReply(t, kr, 3, 1, "B", false)) // does not match
	if c.Ready().Done {
		t.Fatal("accepted a result without f+1 distinct, authentic, matching replies")
	}
	c.Step(sealedReply(t, kr, 2, 1, "A", false))
	rd := c.Ready()
	if !rd.Done || string(rd.Result) != "A" {
		t.Fatalf("want result A after r1 and r2 agree, got done=%v %q", rd.Done, rd.Result)
	}
}

// PBFT §5.1.3 (OSDI '99): a read-only request needs 2f+1 matching replies; replies that
// diverge make the client retry it as an ordered request.
func TestClientReadOnlyNeedsTwoFPlusOne(t *testing.T) {
	kr := pbftcore.NewKeyring([]byte("client"), 4, 1)
	c, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: 0, N: 4, Keys: kr.Client(0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Invoke([]byte("read"), true); err != nil {
		t.Fatal(err)
	}
	if rd := c.Ready(); len(rd.Messages) != 1 || rd.Messages[0].To != pbftcore.ToAll {
		t.Fatalf("read-only request should go to all replicas: %+v", rd.Messages)
	}
	c.Advance()
	c.Step(sealedReply(t, kr, 0, 1, "v1", true))
	c.Step(sealedReply(t, kr, 1, 1, "v1", true))
	c.Step(sealedReply(t, kr, 2, 1, "v0", true))
	if c.Ready().Done {
		t.Fatal("accepted a read with f+1 < 2f+1 matching replies")
	}
	c.Step(sealedReply(t, kr, 3, 1, "v0", true))
	rd := c.Ready()
	if rd.Done {
		t.Fatal("accepted a read whose replies split 2-2")
	}
	if len(rd.Messages) != 1 || rd.Messages[0].Requests[0].ReadOnly || rd.Messages[0].To != 0 {
		t.Fatalf("diverging read should be retried as an ordered request to the primary: %+v", rd.Messages)
	}
}

func sealedRefusal(t *testing.T, kr *pbftcore.Keyring, from int, ts uint64) *pbftcore.Message {
	t.Helper()
	a := pbftcore.NewAuthenticator(kr.Replica(from), false)
	m := &pbftcore.Message{Type: pbftcore.MsgReply, From: from, To: pbftcore.ToClient, Client: 0, Timestamp: ts,
		ReadOnly: true, Refused: true}
	m.Auth = a.Seal(m, nil)
	return m
}

// wantOrderedRetry checks that the client's pending output is the read retried as an ordered
// request to the primary r0 (OSDI '99 §5.1.3).
func wantOrderedRetry(t *testing.T, c *pbftcore.Client, why string) {
	t.Helper()
	rd := c.Ready()
	if rd.Done || len(rd.Messages) != 1 || rd.Messages[0].To != 0 || rd.Messages[0].Requests[0].ReadOnly {
		t.Fatalf("%s: want the read retried as an ordered request to r0 at once, got %+v", why, rd)
	}
	c.Advance()
}

func wantNothing(t *testing.T, c *pbftcore.Client, why string) {
	t.Helper()
	if rd := c.Ready(); rd.Done || len(rd.Messages) != 0 {
		t.Fatalf("%s: want no result and nothing sent, got %+v", why, rd)
	}
}

// PBFT §5.1.3 (OSDI '99): a read needs 2f+1 matching replies among 3f+1, so once f+1
// distinct replicas refused it, it cannot succeed: the client orders it at once, without
// waiting for its timeout. f refusals (all that f Byzantine replicas can send) do not, and a
// replica repeating its refusal counts once.
func TestClientOrdersReadAfterFPlusOneRefusals(t *testing.T) {
	for _, n := range []int{4, 7} {
		f := (n - 1) / 3
		kr := pbftcore.NewKeyring([]byte("client"), n, 1)
		// TimeoutTicks is far away and never ticked: only the refusals can order the read.
		c, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: 0, N: n, Keys: kr.Client(0), TimeoutTicks: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Invoke([]byte("read"), true); err != nil {
			t.Fatal(err)
		}
		c.Advance()
		for r := 1; r <= f; r++ {
			c.Step(sealedRefusal(t, kr, r, 1))
			c.Step(sealedRefusal(t, kr, r, 1)) // the same replica again
		}
		stale := sealedRefusal(t, kr, f+1, 0) // for another request
		c.Step(stale)
		forged := sealedRefusal(t, kr, f+1, 1)
		forged.Auth[0] ^= 1
		c.Step(forged)
		wantNothing(t, c, "f refusals (repeated), a stale and a forged one")
		c.Step(sealedRefusal(t, kr, f+1, 1))
		wantOrderedRetry(t, c, "f+1 refusals")
		// Refusals are never results: the ordered retry completes on f+1 ordered replies.
		c.Step(sealedRefusal(t, kr, f+2, 1))
		wantNothing(t, c, "a refusal after the read was ordered")
		for r := range f + 1 {
			c.Step(sealedReply(t, kr, r, 1, "v", false))
		}
		if rd := c.Ready(); !rd.Done || !rd.Ordered || string(rd.Result) != "v" {
			t.Fatalf("n=%d: want the ordered retry done with v, got %+v", n, rd)
		}
	}
}

// PBFT §5.1.3 (OSDI '99): f refusals from Byzantine replicas cannot force the fallback: the
// 2f+1 correct replicas' matching answers still complete the read on the read-only path. A
// refusal does not count as a result, either.
func TestClientReadSurvivesFRefusals(t *testing.T) {
	kr := pbftcore.NewKeyring([]byte("client"), 7, 1) // f = 2
	c, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: 0, N: 7, Keys: kr.Client(0), TimeoutTicks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Invoke([]byte("read"), true); err != nil {
		t.Fatal(err)
	}
	c.Advance()
	c.Step(sealedRefusal(t, kr, 5, 1))
	c.Step(sealedRefusal(t, kr, 6, 1))
	c.Step(sealedRefusal(t, kr, 6, 1))
	// Were a refusal an empty result, these three "" and the two refusals would be 2f+1.
	c.Step(sealedReply(t, kr, 0, 1, "", true))
	c.Step(sealedReply(t, kr, 1, 1, "", true))
	c.Step(sealedReply(t, kr, 2, 1, "", true))
	wantNothing(t, c, "f refusals and 3 answers \"\"")
	c.Step(sealedReply(t, kr, 3, 1, "", true))
	wantNothing(t, c, "f refusals and 4 answers \"\"")
	c.Step(sealedReply(t, kr, 4, 1, "", true))
	if rd := c.Ready(); !rd.Done || rd.Ordered || len(rd.Result) != 0 || len(rd.Messages) != 0 {
		t.Fatalf("want the read accepted on the read-only path from r0..r4, got %+v", rd)
	}
	c.Advance()
	// Refusals count per attempt: r5's and r6's do not carry over to the next read.
	if err := c.Invoke([]byte("read"), true); err != nil {
		t.Fatal(err)
	}
	c.Advance()
	c.Step(sealedRefusal(t, kr, 0, 2))
	wantNothing(t, c, "one refusal of a new read after f refusals of the last")
}

// PBFT §5.1.3 (OSDI '99): when every replica has either answered or refused and no 2f+1
// answers match, the read is ordered at once: one refusal with diverging answers suffices.
func TestClientOrdersReadWhenAllAnsweredOrRefused(t *testing.T) {
	kr := pbftcore.NewKeyring([]byte("client"), 4, 1)
	c, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: 0, N: 4, Keys: kr.Client(0), TimeoutTicks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Invoke([]byte("read"), true); err != nil {
		t.Fatal(err)
	}
	c.Advance()
	c.Step(sealedRefusal(t, kr, 3, 1))
	c.Step(sealedReply(t, kr, 0, 1, "v1", true))
	c.Step(sealedReply(t, kr, 1, 1, "v1", true))
	wantNothing(t, c, "1 refusal, 2 matching answers, r2 still to answer")
	c.Step(sealedReply(t, kr, 2, 1, "v0", true))
	wantOrderedRetry(t, c, "every replica answered or refused without 2f+1 matching")

	// The same when the last word is a refusal.
	c.Abandon()
	if err := c.Invoke([]byte("read"), true); err != nil {
		t.Fatal(err)
	}
	c.Advance()
	c.Step(sealedReply(t, kr, 0, 2, "v1", true))
	c.Step(sealedReply(t, kr, 1, 2, "v1", true))
	c.Step(sealedReply(t, kr, 2, 2, "v0", true))
	wantNothing(t, c, "2 matching answers and 1 diverging, r3 still to answer")
	c.Step(sealedRefusal(t, kr, 3, 2))
	wantOrderedRetry(t, c, "every replica answered or refused (a refusal last) without 2f+1 matching")
}

func sealedReplyInView(t *testing.T, kr *pbftcore.Keyring, from int, ts, view uint64, result string) *pbftcore.Message {
	t.Helper()
	a := pbftcore.NewAuthenticator(kr.Replica(from), false)
	m := &pbftcore.Message{Type: pbftcore.MsgReply, From: from, To: pbftcore.ToClient, View: view, Client: 0, Timestamp: ts,
		Result: []byte(result)}
	m.Auth = a.Seal(m, nil)
	return m
}

// wantSentTo checks that the client's pending output is its ordered request to replica to.
func wantSentTo(t *testing.T, c *pbftcore.Client, to int, why string) {
	t.Helper()
	rd := c.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].To != to {
		t.Fatalf("%s: want the request sent to r%d, got %+v", why, to, rd.Messages)
	}
	c.Advance()
}

// OSDI '99 §4.1: the client sends a request to the primary of the view it believes current.
// A reply's view is the sender's word only: f faulty replicas, each with authentic replies
// claiming a view of their choosing, must not steer the client's next requests to a primary
// they pick (every such request then waits a timeout). The client moves to a view once f+1
// replicas, one of them correct, have replied from that view or a later one.
func TestClientTakesAViewFromFPlusOneReplies(t *testing.T) {
	for _, n := range []int{4, 7} {
		f := (n - 1) / 3
		kr := pbftcore.NewKeyring([]byte("client"), n, 1)
		c, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: 0, N: n, Keys: kr.Client(0), TimeoutTicks: 1000})
		if err != nil {
			t.Fatal(err)
		}
		ts := uint64(0)
		do := func(replies func(ts uint64)) {
			t.Helper()
			ts++
			if err := c.Invoke([]byte("op"), false); err != nil {
				t.Fatal(err)
			}
			c.Advance()
			replies(ts)
			if rd := c.Ready(); !rd.Done {
				t.Fatalf("n=%d: operation %d not done", n, ts)
			}
			c.Advance()
		}
		// The f faulty replicas (the last ones) reply from view n-1, whose primary is one of them.
		faultyView := uint64(n - 1)
		do(func(ts uint64) {
			for r := n - f; r < n; r++ {
				c.Step(sealedReplyInView(t, kr, r, ts, faultyView, "A"))
			}
			c.Step(sealedReplyInView(t, kr, 0, ts, 0, "A"))
		})
		if err := c.Invoke([]byte("op"), false); err != nil {
			t.Fatal(err)
		}
		wantSentTo(t, c, 0, fmt.Sprintf("n=%d: after f replies from view %d", n, faultyView))
		c.Abandon()
		ts++
		// f+1 correct replicas reply from view 5: the client follows them.
		do(func(ts uint64) {
			for r := range f + 1 {
				c.Step(sealedReplyInView(t, kr, r, ts, 5, "B"))
			}
		})
		if err := c.Invoke([]byte("op"), false); err != nil {
			t.Fatal(err)
		}
		wantSentTo(t, c, 5%n, fmt.Sprintf("n=%d: after f+1 replies from views >= 5", n))
	}
}

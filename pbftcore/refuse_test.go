package pbftcore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/pbftcore/kvapp"
)

// stepRead steps the read-only request req into replica i and returns the one reply it
// queued for the client (cloned, Ready advanced) and what Step returned.
func stepRead(t *testing.T, h *harness, i int, req *pbftcore.Message) (pbftcore.Message, error) {
	t.Helper()
	err := h.nodes[i].Step(req)
	var replies []pbftcore.Message
	if h.nodes[i].HasReady() {
		rd := h.nodes[i].Ready()
		for k := range rd.Messages {
			if m := &rd.Messages[k]; m.Type == pbftcore.MsgReply {
				replies = append(replies, pbftcore.CloneMessage(m))
			}
		}
		h.nodes[i].Advance()
	}
	if len(replies) != 1 {
		t.Fatalf("r%d queued %d replies to the read, want 1 (Step: %v)", i, len(replies), err)
	}
	return replies[0], err
}

// PBFT read-only optimization (OSDI '99 §5.1.3): a replica with a prepared request it has not
// executed cannot answer a read from its state; it returns ErrReadNotSafe and sends the client
// a refused reply, authenticated like its ordinary replies. The MAC covers the flag: a
// refusal turned into an answer, or an answer turned into a refusal, is ignored by the client.
func TestReplicaSendsAuthenticatedReadRefusal(t *testing.T) {
	h, err := newHarness(map[string]string{"n": "4", "clients": "1"})
	if err != nil {
		t.Fatal(err)
	}
	h.out = &strings.Builder{}
	// r1 loses every COMMIT: it prepares the write but cannot execute it.
	if err := h.run("drop", map[string]string{"to": "1", "type": "Commit"}); err != nil {
		t.Fatal(err)
	}
	if err := h.run("put", map[string]string{"c": "0", "k": "x", "v": "1"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.out.String(), "c0 done ts=1") {
		t.Fatalf("the write did not complete at r0, r2, r3:\n%s", h.out)
	}

	c := h.clients[0]
	if err := c.Invoke(kvapp.Get("missing"), true); err != nil { // every answer is ""
		t.Fatal(err)
	}
	rd := c.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].To != pbftcore.ToAll {
		t.Fatalf("read-only request should go to every replica: %+v", rd.Messages)
	}
	req := pbftcore.CloneMessage(&rd.Messages[0])
	c.Advance()

	var answers [4]pbftcore.Message
	for i := range answers {
		var err error
		answers[i], err = stepRead(t, h, i, &req)
		if i == 1 {
			if !errors.Is(err, pbftcore.ErrReadNotSafe) {
				t.Fatalf("r1 (prepared, unexecuted) Step = %v, want ErrReadNotSafe", err)
			}
			continue
		}
		if err != nil || answers[i].Refused {
			t.Fatalf("r%d should answer the read: err=%v reply=%+v", i, err, answers[i])
		}
	}
	refusal := answers[1]
	if !refusal.Refused || !refusal.ReadOnly || refusal.Client != 0 || refusal.Timestamp != c.Timestamp() ||
		len(refusal.Result) != 0 || refusal.To != pbftcore.ToClient || refusal.From != 1 ||
		len(refusal.Auth) != len(answers[0].Auth) || len(refusal.Auth) != pbftcore.MACSize {
		t.Fatalf("bad refusal from r1: %+v (an answer's authenticator is %d bytes)", refusal, len(answers[0].Auth))
	}

	// r1's refusal with its flag cleared would be a third matching "" and complete the read.
	forgedAnswer := pbftcore.CloneMessage(&refusal)
	forgedAnswer.Refused = false
	c.Step(&answers[0])
	c.Step(&answers[3])
	c.Step(&forgedAnswer)
	if rd := c.Ready(); rd.Done || len(rd.Messages) != 0 {
		t.Fatalf("a refusal with its flag cleared counted as an answer: %+v", rd)
	}
	// r2's answer turned into a refusal would be the (f+1)-th refusal with r1's and order the read.
	c.Step(&refusal)
	forgedRefusal := pbftcore.CloneMessage(&answers[2])
	forgedRefusal.Refused, forgedRefusal.Result = true, nil
	c.Step(&forgedRefusal)
	if rd := c.Ready(); rd.Done || len(rd.Messages) != 0 {
		t.Fatalf("an answer turned into a refusal was counted: %+v", rd)
	}
	// The genuine messages still work: r0, r2, r3 agree on "", 2f+1 = 3.
	c.Step(&answers[2])
	if rd := c.Ready(); !rd.Done || rd.Ordered || len(rd.Result) != 0 {
		t.Fatalf("want the read accepted from r0, r2, r3 without ordering, got %+v", rd)
	}
}

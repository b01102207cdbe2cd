package pbftcore_test

import (
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

package transport

import (
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// A partitioned peer's frames are lost in both directions; healing restores delivery on the
// same connections.
func TestPartitionDropsBothDirections(t *testing.T) {
	trs, _ := startCluster(t, 2, nil)
	a, b := trs[0], trs[1]
	frame := func(seq uint64) []byte { return seqFrame(nil, wire.TypeAppendEntries, seq, 16) }
	if err := a.Send(2, frame(0)); err != nil {
		t.Fatal(err)
	}
	receive(t, b, 1)

	a.SetPartition([]uint64{2})
	if got := a.Partitioned(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("Partitioned() = %v", got)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		if err := a.Send(2, frame(seq)); err != nil { // outbound: dropped at a
			t.Fatal(err)
		}
		if err := b.Send(1, frame(seq)); err != nil { // inbound: dropped at a
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, tr := range []*Transport{a, b} {
		select {
		case batch := <-tr.Inbound():
			t.Fatalf("frame crossed the partition: %d frames from %d", len(batch.Frames), batch.Frames[0].From)
		default:
		}
	}

	a.SetPartition(nil)
	if err := a.Send(2, frame(6)); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(1, frame(6)); err != nil {
		t.Fatal(err)
	}
	if seq := checkSeqBody(t, receive(t, b, 1)[0].Body); seq != 6 {
		t.Fatalf("after heal b got seq %d, want 6", seq)
	}
	if seq := checkSeqBody(t, receive(t, a, 1)[0].Body); seq != 6 {
		t.Fatalf("after heal a got seq %d, want 6", seq)
	}
}

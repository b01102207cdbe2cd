package sim

import "github.com/consensusbench/consensusbench/pbftcore"

func readyWithBatch(seq uint64, b byte) pbftcore.Ready {
	var d pbftcore.Digest
	d[0] = b
	return pbftcore.Ready{Batches: []pbftcore.ExecutedBatch{{Seq: seq, Digest: d}}}
}

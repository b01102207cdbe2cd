package storage

import (
	"fmt"
	"testing"
)

// BenchmarkEncodeEntries is the CPU cost of framing a batch (copy + CRC32C per record),
// the part of Append that sits on the critical path when a caller waits for each batch.
func BenchmarkEncodeEntries(b *testing.B) {
	for _, batch := range []int{16, 256} {
		b.Run(fmt.Sprintf("batch=%d/size=128", batch), func(b *testing.B) {
			ents := mkEnts(1, uint64(batch)+1, 1, 128)
			buf := make([]byte, 0, batch*200)
			b.SetBytes(int64(batch * 128))
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for k := range ents {
					buf = appendEntryRecord(buf, &ents[k])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
		})
	}
}

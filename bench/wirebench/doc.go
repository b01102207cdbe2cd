// Package wirebench compares, side by side in one benchmark run, the cost of moving a Raft
// AppendEntries batch through three paths: etcd's go.etcd.io/raft/v3 v3.6.0 raftpb.Message
// (gogo-protobuf Marshal and Unmarshal), this suite's wire codec (AppendAppendEntries and
// DecodeAppendEntries, with and without the framing CRC32C), and a plain copy of the same
// payload bytes as the memory-bandwidth reference.
//
// It owns only benchmarks (in _test.go files) and holds no code that other packages use.
// It must not be imported by production code: it is the only place raftpb is linked in.
//
// Run: go test -run '^$' -bench . -benchmem -count 5 ./bench/wirebench/
// Compare sub-benchmarks with the same entries and size; ratios between impl= values
// measured in one run are what to quote.
package wirebench

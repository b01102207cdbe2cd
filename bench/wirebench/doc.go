// Package wirebench compares, side by side in one benchmark run, the cost of moving a Raft
// AppendEntries batch through three paths: etcd's go.etcd.io/raft/v3 v3.6.0 raftpb.Message
// (gogo-protobuf Marshal and Unmarshal), this suite's wire codec (AppendAppendEntries and
// DecodeAppendEntries, with and without the framing CRC32C), and a plain copy of the same
// payload bytes as the memory-bandwidth reference.
//
// The decoders differ in what they hand back: raftpb's Unmarshal copies every entry's data
// into its own allocation, wire's decoder aliases the input. Each wire path is named for its
// semantics: impl=wire-alias aliases, impl=wire-copy copies each entry into its own allocation
// as raftpb does, impl=wire-copy-batch copies all entries into one allocation per message,
// impl=wire-copy-body copies the body once into a reused buffer. The like-for-like
// comparison with raftpb is wire-copy.
//
// It owns only benchmarks (in _test.go files) and holds no code that other packages use.
// It must not be imported by production code: it is the only place raftpb is linked in.
//
// Run: go test -run '^$' -bench . -benchmem -count 6 ./bench/wirebench/
// Compare sub-benchmarks with the same entries and size; ratios between impl= values
// measured in one run are what to quote.
package wirebench

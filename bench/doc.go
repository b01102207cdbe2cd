// Package bench holds the contract between the load generator and a system under test: the
// Target and Session interfaces (and AsyncSession, a Session that can start a batch without
// waiting, which the closed loop chains through completions), the Op a worker submits, and
// the Clock the drivers read. It
// also keeps the registry of peer systems (RegisterSystem): bindings of other consensus
// systems (etcd, in the nested module peers/) that loadgen --system drives through the same
// Target contract.
//
// The measuring code lives in subpackages:
//   - bench/load: workloads (write-only, read-only, YCSB A/B/C, uniform or zipfian keys) and
//     the open-loop and closed-loop drivers that record HdrHistogram latency per worker.
//   - bench/report: the versioned result file, benchmark-format lines for benchstat, .hgrm
//     files, merging results from several hosts, and comparing runs with x/perf statistics.
//   - bench/plot: percentile spectrum, time series and throughput-latency plots.
//   - bench/benchtest: a fake target and a simulated clock for tests (like net/http/httptest).
//
// Package bench owns no protocol logic and starts no goroutines: a real cluster client is an
// adapter that implements Target (see bench/adapter and cmd/loadgen).
package bench

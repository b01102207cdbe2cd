// Package benchtest provides a fake bench.Target and a simulated bench.Clock for tests of the
// measuring code, in the spirit of net/http/httptest. The fake target has a configurable
// service time, stall windows, error windows and a capacity; on the simulated clock a
// one-worker run is exactly reproducible and takes no real time.
//
// It is test support only: no command exposes it as a target.
package benchtest

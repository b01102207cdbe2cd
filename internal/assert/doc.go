// Package assert holds the invariant checks used across the suite.
//
// Invariants stay on in every build (TigerBeetle style): a violated invariant means the
// replica's state can no longer be trusted, so the check panics with a message that names
// what was expected. Boundary errors (bad input from the network or a user) are never
// asserted; they are returned as sentinel errors by the package that owns the boundary.
//
// The functions take no variadic arguments on purpose: boxing arguments into interfaces
// would allocate on every call, even when the condition holds. Hot paths write
//
//	if got != want {
//		assert.Failf("raftcore: commit %d beyond last index %d", got, want)
//	}
//
// so the formatting cost is paid only on failure.
package assert

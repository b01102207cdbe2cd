//go:build race

package client

// The race detector adds allocations of its own (and sync.Pool drops items at random under
// it), so allocation counts are checked without it.
const raceEnabled = true

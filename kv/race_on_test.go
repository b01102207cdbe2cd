//go:build race

package kv

// The race detector adds allocations of its own, so allocation counts are checked without it.
const raceEnabled = true

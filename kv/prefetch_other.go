//go:build !amd64 && !arm64

package kv

import "unsafe"

// prefetchLines loads one byte of each of the first n addresses, so that their cache
// misses overlap (without a prefetch instruction, these loads wait for the lines).
func prefetchLines(addrs *unsafe.Pointer, n int) {
	var t byte
	for _, p := range unsafe.Slice(addrs, n) {
		t += *(*byte)(p)
	}
	prefetchSink += t
}

var prefetchSink byte

//go:build amd64 || arm64

package kv

import "unsafe"

// prefetchLines asks the CPU to bring the cache line of each of the first n addresses into
// its cache. It does not wait for them: nothing here depends on the lines, so the misses
// proceed while the caller computes.
//
//go:noescape
func prefetchLines(addrs *unsafe.Pointer, n int)

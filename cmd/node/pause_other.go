//go:build !linux

package main

import "time"

// stopSelfFor is Linux-only (it needs a POSIX timer that sends SIGCONT); elsewhere
// /admin/pause answers 501.
var stopSelfFor func(d time.Duration) (func(), error)

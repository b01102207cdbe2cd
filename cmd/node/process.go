package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// processControl is what /admin/crash and /admin/pause do to the node's own process. The
// node uses selfControl; tests of the handlers substitute recorders.
type processControl struct {
	// crash ends the process at once, as kill -9 from outside would; it does not return.
	crash func()
	// pause prepares a pause of d (it may fail before anything was answered) and returns
	// the function that pauses: it returns once the process runs again. nil where the
	// operating system cannot resume a stopped process by itself.
	pause func(d time.Duration) (stop func(), err error)
}

// selfControl acts on this process: SIGKILL, and SIGSTOP with a kernel timer that sends
// SIGCONT (stopSelfFor).
var selfControl = processControl{crash: crashSelf, pause: stopSelfFor}

// crashExitCode is the exit status of a crash whose SIGKILL the kernel did not act on (PID
// 1 of a container ignores signals it has no handler for): what a shell reports after a
// kill -9, and non-zero, so that a supervisor restarts the node either way.
const crashExitCode = 128 + int(syscall.SIGKILL)

// crashSelf sends SIGKILL to the process itself: every thread ends where it is, no deferred
// function or buffered write runs, and the WAL holds what --sync made durable (sync always:
// every acknowledged write; sync none: what reached the page cache, which a process crash
// does not lose). os.Exit runs no deferred function or flush either.
func crashSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	os.Exit(crashExitCode)
}

// incarnation names this process for /admin/status (server.ReplicaStatus.Incarnation): a
// restarted node has a new PID or start time.
var incarnation = fmt.Sprintf("pid %d started %s", os.Getpid(), time.Now().UTC().Format(time.RFC3339Nano))

package main

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sigevent is the kernel's struct sigevent (SIGEV_MAX_SIZE = 64 bytes): the union sigval
// (pointer-sized), the signal, how to notify, and the unused rest.
type sigevent struct {
	value  uintptr
	signo  int32
	notify int32
	_      [64 - 8 - unsafe.Sizeof(uintptr(0))]byte
}

// sigevSignal is SIGEV_SIGNAL: the timer sends signo to the process.
const sigevSignal = 0

// stopSelfFor pauses the whole process for d, as SIGSTOP from outside does, and has the
// kernel resume it: a POSIX timer (timer_create) that sends SIGCONT after d. SIGCONT
// continues a stopped process when it is sent, whoever sends it, so no thread of this
// process (all stopped) and no helper process is needed, and nothing can leave the node
// stopped for good. The timer is created here, so that a failure is answered before the
// pause is promised; stop arms it and stops.
func stopSelfFor(d time.Duration) (stop func(), err error) {
	sev := sigevent{signo: int32(unix.SIGCONT), notify: sigevSignal}
	var id int32 // the kernel's timer_t
	if _, _, e := unix.Syscall(unix.SYS_TIMER_CREATE, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&sev)), uintptr(unsafe.Pointer(&id))); e != 0 {
		return nil, fmt.Errorf("timer_create: %w", e)
	}
	return func() {
		// The stop signal goes to this very thread (tgkill), which then stops on its way
		// back from the system call. Sent to the process, it may be taken by another thread
		// while this one runs on, and a timer deleted before it fires leaves the node
		// stopped for good.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		its := unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}
		if _, _, e := unix.Syscall6(unix.SYS_TIMER_SETTIME, uintptr(id), 0, uintptr(unsafe.Pointer(&its)), 0, 0, 0); e != 0 {
			unix.Syscall(unix.SYS_TIMER_DELETE, uintptr(id), 0, 0)
			return // not armed: stopping now would never end
		}
		_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGSTOP)
		// Delete the timer only once it has fired, whatever woke this thread.
		for {
			var left unix.ItimerSpec
			if _, _, e := unix.Syscall(unix.SYS_TIMER_GETTIME, uintptr(id), uintptr(unsafe.Pointer(&left)), 0); e != 0 || left.Value == (unix.Timespec{}) {
				break
			}
			time.Sleep(time.Duration(left.Value.Nano()))
		}
		unix.Syscall(unix.SYS_TIMER_DELETE, uintptr(id), 0, 0)
	}, nil
}

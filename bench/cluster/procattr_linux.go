package cluster

import "syscall"

// procAttr makes the kernel SIGKILL a node when the process that started it dies, so an
// interrupted or crashed benchmark leaves no replicas behind.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

package cluster

import "syscall"

// procAttr makes the kernel SIGKILL a node when the process that started it dies, so an
// interrupted or crashed benchmark leaves no replicas behind, and puts the node in its own
// process group, so a Ctrl-C at the terminal reaches only the harness's process (which then
// records its partial result and stops the nodes in order) and not the nodes directly.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

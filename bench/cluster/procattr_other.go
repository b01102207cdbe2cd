//go:build !linux

package cluster

import "syscall"

// procAttr: only Linux can tie a child's life to its parent's; elsewhere Stop must run.
func procAttr() *syscall.SysProcAttr { return nil }

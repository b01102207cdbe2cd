package report

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// clockTicksPerSecond is USER_HZ, the unit of /proc/<pid>/stat's CPU times; Linux fixes it
// at 100 on every architecture Go supports.
const clockTicksPerSecond = 100

// ProcessCPUSeconds returns the CPU time (user + system) this process has used.
func ProcessCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// PIDCPUSeconds returns the CPU time (user + system) process pid has used, from
// /proc/<pid>/stat. A local-cluster harness samples it at the window's start and end.
func PIDCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: split after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// After the name: state is field 3, utime field 14, stime field 15.
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseUint(f[utime], 10, 64)
	st, err2 := strconv.ParseUint(f[stime], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad cpu times %q %q", pid, f[utime], f[stime])
	}
	return float64(u+st) / clockTicksPerSecond, nil
}

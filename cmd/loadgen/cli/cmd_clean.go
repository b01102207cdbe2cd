package cli

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// keptDirPattern names the run directories local clusters make in the temporary directory
// (bench/cluster); a failed or interrupted run keeps its directory for its logs.
const keptDirPattern = "consensusbench-local-*"

// cleanCmd removes kept local-run directories: `loadgen clean` lists them with their sizes,
// `--yes` removes them. A directory whose nodes still run (a data directory's LOCK is held)
// is never touched, and neither is one younger than --older-than.
func (a *app) cleanCmd(args []string) error {
	var yes bool
	var older time.Duration
	g := newGroup("Clean")
	g.fs.BoolVar(&yes, "yes", false, "remove them (without it, only list them)")
	g.fs.DurationVar(&older, "older-than", 0, "only directories last changed at least this long ago")
	if _, help, err := a.parse("clean", "loadgen clean [--yes] [--older-than DUR]", []group{g}, args); err != nil || help {
		return err
	}
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), keptDirPattern))
	if err != nil {
		return err
	}
	var total int64
	n := 0
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() {
			continue
		}
		switch {
		case time.Since(st.ModTime()) < older:
			continue
		case inUse(d):
			fmt.Fprintf(a.stdout, "in use, kept: %s\n", d)
			continue
		}
		size := diskUsage(d)
		total += size
		n++
		if !yes {
			fmt.Fprintf(a.stdout, "%8.1f MiB  %s\n", float64(size)/(1<<20), d)
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("clean: %w", err)
		}
		fmt.Fprintf(a.stdout, "removed %8.1f MiB  %s\n", float64(size)/(1<<20), d)
	}
	switch {
	case n == 0:
		fmt.Fprintf(a.stdout, "no kept run directories in %s\n", os.TempDir())
	case yes:
		fmt.Fprintf(a.stdout, "removed %d directories, %.1f MiB\n", n, float64(total)/(1<<20))
	default:
		fmt.Fprintf(a.stdout, "%d directories, %.1f MiB on disk; loadgen clean --yes removes them\n", n, float64(total)/(1<<20))
	}
	return nil
}

// inUse reports whether a node still holds the lock of a data directory under dir.
func inUse(dir string) bool {
	locks, _ := filepath.Glob(filepath.Join(dir, "node-*", "LOCK"))
	for _, l := range locks {
		f, err := os.Open(l)
		if err != nil {
			continue
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		f.Close() // closing drops a lock taken here
		if err != nil {
			return true
		}
	}
	return false
}

// diskUsage adds up the blocks the files under dir occupy (not their sizes: segments are
// sparse once their preallocation was given back).
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

package assert

import (
	"strings"
	"testing"
)

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", want)
		}
		if s, _ := r.(string); !strings.Contains(s, want) {
			t.Fatalf("panic %q does not contain %q", r, want)
		}
	}()
	f()
}

func TestTrue(t *testing.T) {
	True(true, "never")
	mustPanic(t, "invariant violated: x > 0", func() { True(false, "x > 0") })
}

func TestFailf(t *testing.T) {
	mustPanic(t, "commit 7 beyond last index 5", func() { Failf("commit %d beyond last index %d", 7, 5) })
}

func TestEqual(t *testing.T) {
	Equal(3, 3, "same")
	mustPanic(t, "term: got 2, want 3", func() { Equal(2, 3, "term") })
}

func TestTrueDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { True(len(t.Name()) > 0, "name set") })
	if allocs != 0 {
		t.Fatalf("True allocates %v times per call", allocs)
	}
}

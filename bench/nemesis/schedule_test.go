package nemesis

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Schedule
	}{
		{"", nil},
		{"kill-leader@10s,restart@15s", Schedule{{KillLeader, 10 * time.Second, 0}, {Restart, 15 * time.Second, 0}}},
		{"partition-leader@10s:5s", Schedule{{PartitionLeader, 10 * time.Second, 5 * time.Second}}},
		{" pause@1.5s:300ms , transfer-leader@0s ", Schedule{{TransferLeader, 0, 0}, {Pause, 1500 * time.Millisecond, 300 * time.Millisecond}}},
		{"kill-random@3s,pause-random@1s:1s,restart@4s", Schedule{{PauseRandom, time.Second, time.Second}, {KillRandom, 3 * time.Second, 0}, {Restart, 4 * time.Second, 0}}},
		{"kill-all@2s,restart@2s", Schedule{{KillAll, 2 * time.Second, 0}, {Restart, 2 * time.Second, 0}}},
		{"pause-leader@1s:1s,partition-random@1s:2s", Schedule{{PauseLeader, time.Second, time.Second}, {PartitionRandom, time.Second, 2 * time.Second}}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got.String() != tc.want.String() || len(got) != len(tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
		// The rendering is the grammar: it must parse back to the same schedule.
		if again, err := Parse(got.String()); err != nil || again.String() != got.String() {
			t.Errorf("round trip of %q: %v, %v", got, again, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kill-leader", "missing @TIME"},
		{"explode@1s", `unknown action "explode"`},
		{"kill-leader@soon", `bad time "soon"`},
		{"kill-leader@-1s", "outside [0, 24h0m0s]"},
		{"partition-leader@10s", "partition-leader needs a duration: partition-leader@10s:5s"},
		{"pause@1s", "pause needs a duration"},
		{"kill-leader@1s:5s", "kill-leader is instant and takes no duration"},
		{"pause@1s:0s", "duration must be positive"},
		{"pause@1s:x", `bad duration "x"`},
		{"restart@5s", "restart@5s has no kill before it"},
		{"kill-leader@1s,,restart@2s", "step 2 \"\": empty step"},
		{"kill-leader@1s,restart@2s,restart@3s", "restart@3s has no kill before it"},
		{"kill-leader@25h", "outside"},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestParseReportsEveryBadStep(t *testing.T) {
	_, err := Parse("bad@1s,kill-leader@x")
	if err == nil || !strings.Contains(err.Error(), "step 1") || !strings.Contains(err.Error(), "step 2") ||
		!strings.Contains(err.Error(), "syntax:") {
		t.Fatalf("error %v should name both steps and show the syntax", err)
	}
}

func TestScheduleEnd(t *testing.T) {
	s, err := Parse("partition-leader@10s:5s,kill-leader@12s,restart@13s")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.End(); got != 15*time.Second {
		t.Fatalf("End = %v, want 15s", got)
	}
}

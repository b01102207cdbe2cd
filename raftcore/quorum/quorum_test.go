package quorum

import "testing"

// Raft §5.3/§5.4: an entry is committed once a majority of voters store it.
func TestCommittedIndex(t *testing.T) {
	cases := []struct {
		name  string
		acked []uint64
		want  uint64
	}{
		{"none", nil, 0},
		{"one", []uint64{7}, 7},
		{"two need both", []uint64{7, 3}, 3},
		{"three", []uint64{5, 1, 9}, 5},
		{"three ties", []uint64{4, 4, 1}, 4},
		{"four need three", []uint64{10, 9, 2, 1}, 2},
		{"five", []uint64{1, 2, 3, 4, 5}, 3},
		{"five lagging minority", []uint64{100, 100, 100, 0, 0}, 100},
		{"seven", []uint64{7, 6, 5, 4, 3, 2, 1}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := append([]uint64(nil), c.acked...)
			if got := CommittedIndex(c.acked); got != c.want {
				t.Fatalf("CommittedIndex(%v) = %d, want %d", c.acked, got, c.want)
			}
			for i := range orig {
				if orig[i] != c.acked[i] {
					t.Fatalf("input modified: %v -> %v", orig, c.acked)
				}
			}
		})
	}
}

// Brute force: the answer is the largest x such that a majority has acked >= x.
func TestCommittedIndexBrute(t *testing.T) {
	for n := 1; n <= 5; n++ {
		acked := make([]uint64, n)
		var rec func(i int)
		rec = func(i int) {
			if i == n {
				var want uint64
				for x := uint64(0); x <= 4; x++ {
					c := 0
					for _, a := range acked {
						if a >= x {
							c++
						}
					}
					if c >= Majority(n) {
						want = x
					}
				}
				if got := CommittedIndex(acked); got != want {
					t.Fatalf("CommittedIndex(%v) = %d, want %d", acked, got, want)
				}
				return
			}
			for v := uint64(0); v <= 4; v++ {
				acked[i] = v
				rec(i + 1)
			}
		}
		rec(0)
	}
}

// Raft §5.2: a candidate wins with votes from a majority.
func TestTally(t *testing.T) {
	cases := []struct {
		voters, granted, rejected int
		want                      VoteResult
	}{
		{1, 1, 0, VoteWon},
		{1, 0, 0, VotePending},
		{1, 0, 1, VoteLost},
		{3, 1, 0, VotePending},
		{3, 2, 0, VoteWon},
		{3, 1, 1, VotePending},
		{3, 1, 2, VoteLost},
		{4, 2, 2, VoteLost},
		{4, 2, 1, VotePending},
		{4, 3, 1, VoteWon},
		{5, 2, 2, VotePending},
		{5, 2, 3, VoteLost},
	}
	for _, c := range cases {
		if got := Tally(c.voters, c.granted, c.rejected); got != c.want {
			t.Errorf("Tally(%d,%d,%d) = %v, want %v", c.voters, c.granted, c.rejected, got, c.want)
		}
	}
}

func TestCommittedIndexNoAlloc(t *testing.T) {
	acked := []uint64{5, 1, 9, 3, 3}
	if a := testing.AllocsPerRun(100, func() { CommittedIndex(acked) }); a != 0 {
		t.Fatalf("CommittedIndex allocates %v times", a)
	}
}

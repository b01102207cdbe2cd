package quorum

// MaxVoters bounds the voters the functions accept (fixed scratch arrays).
const MaxVoters = 64

// Majority is the smallest number of voters that forms a majority of n.
func Majority(n int) int { return n/2 + 1 }

// CommittedIndex returns the largest index that at least a majority of the voters have
// acknowledged, given each voter's acknowledged index. With no voters it returns 0 (nothing
// can commit without a quorum). acked is not modified.
func CommittedIndex(acked []uint64) uint64 {
	n := len(acked)
	if n == 0 {
		return 0
	}
	if n > MaxVoters {
		panic("invariant violated: quorum: more than MaxVoters voters")
	}
	var scratch [MaxVoters]uint64
	s := scratch[:n]
	copy(s, acked)
	// Insertion sort, descending: n is tiny and this must not allocate.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && s[j] > s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	// The Majority(n)-th largest value is acknowledged by at least a majority.
	return s[Majority(n)-1]
}

// VoteResult is the state of an election.
type VoteResult uint8

const (
	// VotePending: neither outcome is decided yet.
	VotePending VoteResult = iota
	// VoteLost: too many rejections for a majority.
	VoteLost
	// VoteWon: a majority granted.
	VoteWon
)

func (r VoteResult) String() string {
	switch r {
	case VotePending:
		return "pending"
	case VoteLost:
		return "lost"
	case VoteWon:
		return "won"
	}
	return "?"
}

// Tally decides an election among voters voters with granted and rejected answers so far.
func Tally(voters, granted, rejected int) VoteResult {
	q := Majority(voters)
	switch {
	case granted >= q:
		return VoteWon
	case voters-rejected < q:
		return VoteLost
	}
	return VotePending
}

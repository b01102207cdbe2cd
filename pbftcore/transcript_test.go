package pbftcore_test

import "testing"

// PBFT §4.2 (OSDI '99): request, pre-prepare, prepare, commit, in-order execution, reply;
// the client accepts f+1 matching replies; a retransmitted executed request gets the cached
// reply (exactly-once, §4.1).
func TestTranscriptNormalCase(t *testing.T) { runTranscript(t, "normal_case.txt") }

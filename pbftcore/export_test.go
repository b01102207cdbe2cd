package pbftcore

import (
	"fmt"
	"strings"
)

// SlotState describes the slot of seq for transcript tests: the current pre-prepare, the P
// entry, the Q entries a VIEW-CHANGE lists (batch held) and those it does not (batch missing),
// as view:digest prefixes.
func (nd *Node) SlotState(seq uint64) string {
	s := nd.existingSlot(seq)
	if s == nil {
		return fmt.Sprintf("n=%d: no slot", seq)
	}
	dig := func(d Digest) string {
		if d == nullDigest {
			return "null"
		}
		return fmt.Sprintf("%x", d[:3])
	}
	pp := "-"
	if s.hasPP {
		pp = fmt.Sprintf("v%d:%s", s.view, dig(s.digest))
		if s.missing {
			pp += "(missing)"
		}
	}
	p := "-"
	if s.hasP {
		p = fmt.Sprintf("v%d:%s", s.pView, dig(s.pDigest))
	}
	var held, unheld []string
	for i := range s.nq {
		e := fmt.Sprintf("v%d:%s", s.q[i].View, dig(s.q[i].Digest))
		if s.bufs[i].valid {
			held = append(held, e)
		} else {
			unheld = append(unheld, e)
		}
	}
	return fmt.Sprintf("n=%d pre-prepared=%s P=%s Q=[%s] unheld=[%s]", seq, pp, p, strings.Join(held, " "), strings.Join(unheld, " "))
}

// ClientTable is the replica's current client table as a checkpoint serializes it: the
// exactly-once records and the claims' allocation table.
func ClientTable(nd *Node) []byte { return nd.appendClientTable(nil) }

// ClaimState describes the replica's allocation table from its fields (not through its
// serialization): the clock, then each principal's span end, holder and lease.
func ClaimState(nd *Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "clock=%d", nd.claimClock)
	for i := range nd.clients {
		cs := &nd.clients[i]
		fmt.Fprintf(&b, " %d:%d/%d/%d", i, cs.spanEnd, cs.holder, cs.leaseUntil)
	}
	return b.String()
}

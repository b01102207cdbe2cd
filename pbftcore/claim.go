package pbftcore

import (
	"encoding/binary"
	"errors"
	"math"
)

// Client-identity claims: the replicated allocation of client principals.
//
// Replicas keep one exactly-once record (last timestamp, cached reply) per principal, so two
// processes that use one principal at once corrupt each other's sessions. A client therefore
// claims a range of principals through the ordered log: a claim is a request with
// Timestamp 0 (no ordinary request has it) whose Op is a Claim. The core executes it itself,
// never the App, on every replica at the same sequence number, against the allocation table
// kept beside the exactly-once records; so every correct replica grants the same range to the
// same claimant, and a range is granted to one live claimant at a time.
//
// A grant gives principals [Start, Start+Count) to the claim's Nonce, with a span of
// timestamps (Floor, Floor+ClaimSpan] on each of them and a lease. The lease expires by a
// deterministic clock: the highest Now that any executed claim carried (the claimants' wall
// clocks, in nanoseconds), so every replica decides expiry at the same point of the log. The
// holder renews (ClaimRenew) well inside the lease and releases (ClaimRelease) on close. A
// later grant of a principal gets a span above every earlier one, so the requests of a holder
// whose lease expired (stalled, partitioned) can never execute again: an ordinary request on
// a principal that was ever granted executes only inside the span of a live grant, or above
// the last span when the principal is not held (clients that never claim, like the
// simulator's). What cannot be prevented: a claimant whose clock runs more than a lease ahead
// of the holders' expires their leases early (their requests are then refused, never
// executed twice or for the wrong client), and anyone who holds the key seed can claim or
// release anything (claims are authenticated as their principal, like every request).

// Limits of client-identity claims.
const (
	// ClaimSpan is the number of timestamps one grant gives each principal; a holder that
	// used them all must claim again. 2^40 requests outlast any run, and spans of 2^40 leave
	// 2^24 grants per principal before its timestamps would overflow (such a principal is no
	// longer granted).
	ClaimSpan uint64 = 1 << 40
	// MinClaimLeaseNanos and MaxClaimLeaseNanos bound a claim's lease.
	MinClaimLeaseNanos uint64 = 100e6
	MaxClaimLeaseNanos uint64 = 600e9
	// claimBytes is the encoded size of a Claim; grantBytes of a Grant.
	claimBytes = 1 + 1 + 8 + 8 + 4 + 8 + 8
	grantBytes = 1 + 1 + 8 + 8 + 4 + 8 + 8 + 8
	// claimVersion is the first byte of an encoded Claim and Grant.
	claimVersion = 1
	// claimRecordBytes is one principal's allocation record in the client table.
	claimRecordBytes = 24
)

// ClaimKind says what a Claim asks for.
type ClaimKind byte

// Kinds of claims.
const (
	// ClaimAny asks for Count free principals, the lowest free range that fits.
	ClaimAny ClaimKind = 1
	// ClaimAt asks for exactly [Start, Start+Count) (a client configured with a range).
	ClaimAt ClaimKind = 2
	// ClaimRenew extends the lease of what Nonce holds; it grants nothing new.
	ClaimRenew ClaimKind = 3
	// ClaimRelease frees what Nonce holds.
	ClaimRelease ClaimKind = 4
)

// Claim is the operation of a Timestamp-0 request. A claim by a Nonce that already holds a
// live grant (a retransmission) is answered with that grant, its lease extended.
type Claim struct {
	Kind  ClaimKind
	Nonce uint64 // the claimant's random identity, not 0
	Start uint64 // ClaimAt only
	Count uint32 // ClaimAny and ClaimAt: at least 1
	Now   uint64 // the claimant's wall clock, Unix nanoseconds, not 0
	Lease uint64 // nanoseconds, clamped to [MinClaimLeaseNanos, MaxClaimLeaseNanos]
}

// GrantStatus is the outcome of a claim.
type GrantStatus byte

// Outcomes of a claim.
const (
	// Granted: Nonce holds [Start, Start+Count) until LeaseUntil (table clock).
	Granted GrantStatus = 1
	// Released: Nonce holds nothing now.
	Released GrantStatus = 2
	// HeldByOther: a ClaimAt range overlaps another claimant's live grant.
	HeldByOther GrantStatus = 3
	// NoRoom: no free range of Count principals (or the asked one has no timestamps left).
	NoRoom GrantStatus = 4
	// Lost: a renewal found no live grant of Nonce (its lease expired).
	Lost GrantStatus = 5
	// Invalid: the claim is malformed or outside the table.
	Invalid GrantStatus = 6
)

// Grant is the result of a claim; every correct replica returns the same bytes.
type Grant struct {
	Status GrantStatus
	Nonce  uint64
	Start  uint64
	Count  uint32
	// Floor: the holder's timestamps on each principal are (Floor, Floor+ClaimSpan].
	Floor      uint64
	LeaseUntil uint64 // table clock (nanoseconds) at which the lease expires
	Clock      uint64 // the table clock after this claim
}

// ErrBadClaim is returned by DecodeClaim and DecodeGrant for malformed bytes.
var ErrBadClaim = errors.New("pbftcore: malformed claim or grant")

// AppendClaim appends c's encoding to dst.
func AppendClaim(dst []byte, c *Claim) []byte {
	dst = append(dst, claimVersion, byte(c.Kind))
	dst = binary.LittleEndian.AppendUint64(dst, c.Nonce)
	dst = binary.LittleEndian.AppendUint64(dst, c.Start)
	dst = binary.LittleEndian.AppendUint32(dst, c.Count)
	dst = binary.LittleEndian.AppendUint64(dst, c.Now)
	return binary.LittleEndian.AppendUint64(dst, c.Lease)
}

// DecodeClaim decodes b into c.
func DecodeClaim(b []byte, c *Claim) error {
	if len(b) != claimBytes || b[0] != claimVersion {
		return ErrBadClaim
	}
	*c = Claim{Kind: ClaimKind(b[1]), Nonce: binary.LittleEndian.Uint64(b[2:]), Start: binary.LittleEndian.Uint64(b[10:]),
		Count: binary.LittleEndian.Uint32(b[18:]), Now: binary.LittleEndian.Uint64(b[22:]), Lease: binary.LittleEndian.Uint64(b[30:])}
	if c.Kind < ClaimAny || c.Kind > ClaimRelease || c.Nonce == 0 || c.Now == 0 {
		return ErrBadClaim
	}
	return nil
}

// AppendGrant appends g's encoding to dst.
func AppendGrant(dst []byte, g *Grant) []byte {
	dst = append(dst, claimVersion, byte(g.Status))
	dst = binary.LittleEndian.AppendUint64(dst, g.Nonce)
	dst = binary.LittleEndian.AppendUint64(dst, g.Start)
	dst = binary.LittleEndian.AppendUint32(dst, g.Count)
	dst = binary.LittleEndian.AppendUint64(dst, g.Floor)
	dst = binary.LittleEndian.AppendUint64(dst, g.LeaseUntil)
	return binary.LittleEndian.AppendUint64(dst, g.Clock)
}

// DecodeGrant decodes b into g.
func DecodeGrant(b []byte, g *Grant) error {
	if len(b) != grantBytes || b[0] != claimVersion || b[1] < byte(Granted) || b[1] > byte(Invalid) {
		return ErrBadClaim
	}
	*g = Grant{Status: GrantStatus(b[1]), Nonce: binary.LittleEndian.Uint64(b[2:]), Start: binary.LittleEndian.Uint64(b[10:]),
		Count: binary.LittleEndian.Uint32(b[18:]), Floor: binary.LittleEndian.Uint64(b[22:]),
		LeaseUntil: binary.LittleEndian.Uint64(b[30:]), Clock: binary.LittleEndian.Uint64(b[38:])}
	return nil
}

// claimState is one principal's allocation record (part of clientState).
type claimState struct {
	// spanEnd is the top of the last span granted (0: never granted); that grant's
	// timestamps are (spanEnd-ClaimSpan, spanEnd].
	spanEnd    uint64
	holder     uint64 // nonce of the last grant (0: released)
	leaseUntil uint64 // table clock at which that grant expires
	// claimQueued: the primary has a claim of this principal queued or ordered in this view
	// (its digest), so the copies backups relay are not ordered again.
	claimQueued Digest
	// claimWaiting: this replica received the claim from its claimant (a retransmission to
	// every replica, so the primary may be faulty) and waits for a claim of the principal
	// to execute, with the request timer running, as for any request (OSDI '99 §4.4).
	// heldClaim is that claim, kept for the next view's primary (takeOverHeld). Local, not
	// replicated state.
	claimWaiting bool
	heldClaim    queued
}

// live reports whether the principal is held by a grant whose lease has not expired.
func (nd *Node) live(cs *clientState) bool {
	return cs.holder != 0 && cs.leaseUntil >= nd.claimClock
}

// acceptsTimestamp reports whether an ordinary request with timestamp ts may execute on the
// principal: inside the live grant's span, or above the last span when it is not held.
func (nd *Node) acceptsTimestamp(cs *clientState, ts uint64) bool {
	if cs.spanEnd == 0 {
		return true
	}
	if nd.live(cs) {
		return ts > cs.spanEnd-ClaimSpan && ts <= cs.spanEnd
	}
	return ts > cs.spanEnd
}

// grantFloor is the lowest floor a new grant of the principal may have: above every
// timestamp the principal executed and every span granted before; ok is false when no
// span fits below 2^64.
func grantFloor(cs *clientState) (uint64, bool) {
	f := max(cs.spanEnd, cs.lastTs)
	return f, f <= math.MaxUint64-ClaimSpan
}

// executeClaim executes a claim request (Timestamp 0) and returns its result, the encoded
// Grant. Deterministic: it depends on the table and the claim only.
func (nd *Node) executeClaim(r *Request, dst []byte) []byte {
	var c Claim
	g := Grant{Status: Invalid}
	if DecodeClaim(r.Op, &c) != nil {
		return AppendGrant(dst, &g)
	}
	g.Nonce = c.Nonce
	lease := min(max(c.Lease, MinClaimLeaseNanos), MaxClaimLeaseNanos)
	nd.claimClock = max(nd.claimClock, c.Now)
	g.Clock = nd.claimClock
	until := nd.claimClock + lease
	if until < nd.claimClock {
		until = math.MaxUint64
	}
	held := func() (start, count int) {
		start = -1
		for i := range nd.clients {
			if cs := &nd.clients[i]; cs.holder == c.Nonce && nd.live(cs) {
				if start < 0 {
					start = i
				}
				count++
			}
		}
		return start, count
	}
	grantHeld := func(start, count int) []byte {
		for i := start; i < start+count; i++ {
			nd.clients[i].leaseUntil = until
		}
		g.Status, g.Start, g.Count = Granted, uint64(start), uint32(count)
		g.Floor, g.LeaseUntil = nd.clients[start].spanEnd-ClaimSpan, until
		return AppendGrant(dst, &g)
	}
	switch c.Kind {
	case ClaimRelease:
		for i := range nd.clients {
			if cs := &nd.clients[i]; cs.holder == c.Nonce {
				cs.holder, cs.leaseUntil = 0, 0
			}
		}
		g.Status = Released
		return AppendGrant(dst, &g)
	case ClaimRenew:
		if start, count := held(); count > 0 {
			return grantHeld(start, count)
		}
		g.Status = Lost
		return AppendGrant(dst, &g)
	}
	if start, count := held(); count > 0 {
		return grantHeld(start, count) // a retransmitted claim
	}
	n := uint64(len(nd.clients))
	if c.Count == 0 || uint64(c.Count) > n || (c.Kind == ClaimAt && c.Start > n-uint64(c.Count)) {
		return AppendGrant(dst, &g)
	}
	free := func(i uint64) (bool, bool) { // free, has timestamps left
		cs := &nd.clients[i]
		_, ok := grantFloor(cs)
		return !nd.live(cs), ok
	}
	start := uint64(math.MaxUint64)
	if c.Kind == ClaimAt {
		for i := c.Start; i < c.Start+uint64(c.Count); i++ {
			f, ok := free(i)
			if !f {
				g.Status = HeldByOther
				return AppendGrant(dst, &g)
			}
			if !ok {
				g.Status = NoRoom
				return AppendGrant(dst, &g)
			}
		}
		start = c.Start
	} else {
		run := uint64(0)
		for i := uint64(0); i < n; i++ {
			if f, ok := free(i); !f || !ok {
				run = 0
				continue
			}
			if run++; run == uint64(c.Count) {
				start = i + 1 - run
				break
			}
		}
		if start == math.MaxUint64 {
			g.Status = NoRoom
			return AppendGrant(dst, &g)
		}
	}
	// Principals of this nonce's expired grants are left to their lease: forget the nonce
	// there, so that a release or renewal acts on the new grant only.
	for i := range nd.clients {
		if cs := &nd.clients[i]; cs.holder == c.Nonce {
			cs.holder, cs.leaseUntil = 0, 0
		}
	}
	floor := uint64(0)
	for i := start; i < start+uint64(c.Count); i++ {
		f, _ := grantFloor(&nd.clients[i])
		floor = max(floor, f)
	}
	for i := start; i < start+uint64(c.Count); i++ {
		cs := &nd.clients[i]
		cs.spanEnd, cs.holder, cs.leaseUntil = floor+ClaimSpan, c.Nonce, until
	}
	g.Status, g.Start, g.Count, g.Floor, g.LeaseUntil = Granted, start, c.Count, floor, until
	return AppendGrant(dst, &g)
}

// appendClaimTable serializes the allocation table after the exactly-once records: the
// table clock and every principal's record. A table where no claim ever executed (clock 0)
// adds nothing, so clusters whose clients never claim keep their checkpoint bytes.
func (nd *Node) appendClaimTable(dst []byte) []byte {
	if nd.claimClock == 0 {
		return dst
	}
	dst = binary.LittleEndian.AppendUint64(dst, nd.claimClock)
	for i := range nd.clients {
		cs := &nd.clients[i]
		dst = binary.LittleEndian.AppendUint64(dst, cs.spanEnd)
		dst = binary.LittleEndian.AppendUint64(dst, cs.holder)
		dst = binary.LittleEndian.AppendUint64(dst, cs.leaseUntil)
	}
	return dst
}

// claimTableBytes is the largest appendClaimTable output.
func (nd *Node) claimTableBytes() int { return 8 + len(nd.clients)*claimRecordBytes }

// parseClaimTable checks b, the bytes after the exactly-once records.
func (nd *Node) parseClaimTable(b []byte) bool {
	return len(b) == 0 || len(b) == nd.claimTableBytes()
}

// restoreClaimTable installs a table parseClaimTable accepted.
func (nd *Node) restoreClaimTable(b []byte) {
	nd.claimClock = 0
	if len(b) > 0 {
		nd.claimClock = binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for i := range nd.clients {
		cs := &nd.clients[i]
		cs.spanEnd, cs.holder, cs.leaseUntil = 0, 0, 0
		if len(b) >= claimRecordBytes {
			cs.spanEnd = binary.LittleEndian.Uint64(b)
			cs.holder = binary.LittleEndian.Uint64(b[8:])
			cs.leaseUntil = binary.LittleEndian.Uint64(b[16:])
			b = b[claimRecordBytes:]
		}
	}
}

// stepClaim handles a claim request as stepRequest does an ordered one, except that claims
// bypass the exactly-once record (they are idempotent by nonce, and their Timestamp 0 never
// advances it). The primary orders one copy per principal at a time (backups relay the
// copies a client sent to all). A backup relays it, waits for it with the request timer as
// for any request, and holds it for the next view's primary: a claim sent while the primary
// is faulty completes after one view change, like an ordinary request (a claimant that
// cannot get identities cannot send anything else that would start that view change).
func (nd *Node) stepClaim(m *Message, r *Request, d Digest) error {
	cs := &nd.clients[r.Client]
	if nd.isPrimary() && nd.viewActive {
		if cs.claimQueued == d {
			if m.From == FromClient {
				// The claimant retransmitted: like a request's, the primary waits for it
				// too, so a primary whose batches cannot commit moves on (stepRequest).
				nd.waitForClaim(cs)
			}
			return nil
		}
		if nd.qLen == len(nd.queue) {
			return ErrBusy
		}
		nd.enqueue(r, d)
		cs.claimQueued = d
		nd.maybeCutBatches(false)
		return nil
	}
	if m.From != FromClient {
		return ErrNotPrimary
	}
	nd.waitForClaim(cs)
	cs.heldClaim.set(r, d)
	if nd.viewActive {
		nd.relayToPrimary(m.Requests)
	}
	return nil
}

// waitForClaim starts waiting for a claim of cs's principal to execute, and the request
// timer if it is not running.
func (nd *Node) waitForClaim(cs *clientState) {
	if !cs.claimWaiting {
		cs.claimWaiting = true
		nd.waiting++
	}
	nd.startRequestTimer()
}

// claimSettled ends the wait for cs's claim (one of the principal's claims executed, or the
// state moved past what this replica could tell). A claimant that got no answer
// retransmits, which starts the wait again.
func (nd *Node) claimSettled(cs *clientState) {
	if cs.claimWaiting {
		cs.claimWaiting = false
		nd.waiting--
	}
	cs.heldClaim = queued{req: Request{}, data: cs.heldClaim.data[:0]}
}

// replyClaim executes the claim r of batch s and replies to its principal. Claims are not
// App operations: they are not in Ready.Executed.
func (nd *Node) replyClaim(s *slot, r *Request) {
	cs := &nd.clients[r.Client]
	cs.claimQueued = Digest{} // a later retransmission is ordered again, to be answered again
	nd.claimSettled(cs)
	start := len(nd.arena)
	nd.arena = nd.executeClaim(r, nd.arena)
	res := nd.arena[start:len(nd.arena):len(nd.arena)]
	nd.send(Message{Type: MsgReply, To: ToClient, View: s.view, Client: r.Client, Result: res})
}

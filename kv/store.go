package kv

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/consensusbench/consensusbench/internal/assert"
)

// OpKind names an operation.
type OpKind uint8

const (
	OpGet OpKind = iota + 1
	OpPut
	OpDelete
	OpCAS
)

func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCAS:
		return "cas"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one decoded client operation. Byte slices are only read during Apply; they may
// alias a network buffer.
type Op struct {
	Kind     OpKind
	ClientID uint64 // 0: no session (writes are not deduplicated)
	Seq      uint64 // the client's sequence number for this operation, from 1
	Key      []byte
	Value    []byte // Put and CAS: the new value
	Expected []byte // CAS: the value that must be present for the swap to happen
}

// Status is an operation's outcome.
type Status uint8

const (
	StatusOK       Status = iota
	StatusNotFound        // Get, Delete or CAS on a missing key
	StatusMismatch        // CAS: the current value differs from Expected
	// StatusSessionExpired: the sequence number is older than the session's window, or the
	// client is unknown and its sequence is beyond SessionWindow. The operation was not
	// applied now; whether an earlier attempt was applied is unknown.
	StatusSessionExpired
	StatusInvalid // malformed operation (unknown kind, key or value too large, Seq 0 with a client)
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotFound:
		return "not-found"
	case StatusMismatch:
		return "mismatch"
	case StatusSessionExpired:
		return "session-expired"
	case StatusInvalid:
		return "invalid"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Result is what Apply returns.
type Result struct {
	Status Status
	// Value: for Get, the stored value. It aliases the store and is valid only until the
	// next call that changes the store; copy it to keep it.
	Value []byte
	// Duplicate: a retried write answered from the session table without re-applying it.
	Duplicate bool
}

// Limits and defaults.
const (
	DefaultMaxKeyBytes   = 4 << 10
	DefaultMaxValueBytes = 1 << 20
	MaxKeyBytesLimit     = 1 << 20
	MaxValueBytesLimit   = 64 << 20
	DefaultMaxSessions   = 1 << 14
	DefaultSessionTTL    = 1 << 22 // log indexes without a write before a session expires
	// SessionSweepsPerTTL: expired sessions are swept each time the applied index crosses a
	// multiple of SessionTTL/SessionSweepsPerTTL, a rule every replica evaluates alike.
	SessionSweepsPerTTL = 8
	DefaultChunkBytes   = 1 << 20
	MinChunkBytes       = 4 << 10
	// SessionWindow is how many of a client's most recent sequence numbers are remembered
	// (applied or not, and each write's status). A client must never have more than this
	// many operations outstanding (client.RaftClient and client.PBFTClient bound their
	// pipelines by it), so that retries reordered by a redirect still fall inside the
	// window and stay exactly-once. A multiple of 64.
	SessionWindow = 1024
	// arenaCompactMinDead: holes are reclaimed only once they exceed this many chunks.
	arenaCompactMinChunks = 4
	tableMinSlots         = 1 << 10
	// BatchPrefetch: ApplyBatch hashes this many ops and issues the loads of their table
	// slots and records before applying the first of them, so that the cache misses of a
	// batch overlap instead of following one another. Callers that apply a long batch in
	// parts use parts this long.
	BatchPrefetch = 16
	cacheLine     = 64
	// prefetchMaxLines bounds the cache lines of one record that ApplyBatch prefetches.
	prefetchMaxLines = 4
)

// Config bounds a Store. The zero value means defaults.
type Config struct {
	MaxKeyBytes   int
	MaxValueBytes int
	MaxSessions   int
	SessionTTL    uint64
	ChunkBytes    int
	// ExpectedKeys pre-sizes the table so that loading that many keys does not rehash.
	ExpectedKeys int
	// NoDigest turns the incremental state digest off where nothing reads it (Raft; the
	// PBFT replica, which digests its serialized checkpoints): writes then skip hashing,
	// Digest returns zero, and a snapshot's integrity rests on the storage and transport
	// checksums, or the caller's own digest, instead.
	NoDigest bool
}

func (c *Config) fill() error {
	if c.MaxKeyBytes == 0 {
		c.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.ChunkBytes == 0 {
		c.ChunkBytes = DefaultChunkBytes
	}
	switch {
	case c.MaxKeyBytes < 1 || c.MaxKeyBytes > MaxKeyBytesLimit:
		return fmt.Errorf("kv: MaxKeyBytes %d outside [1, %d]", c.MaxKeyBytes, MaxKeyBytesLimit)
	case c.MaxValueBytes < 0 || c.MaxValueBytes > MaxValueBytesLimit:
		return fmt.Errorf("kv: MaxValueBytes %d outside [0, %d]", c.MaxValueBytes, MaxValueBytesLimit)
	case c.MaxSessions < 1:
		return fmt.Errorf("kv: MaxSessions %d < 1", c.MaxSessions)
	case c.SessionTTL < SessionSweepsPerTTL:
		return fmt.Errorf("kv: SessionTTL %d < %d", c.SessionTTL, SessionSweepsPerTTL)
	case c.ChunkBytes < MinChunkBytes || c.ChunkBytes > 1<<30:
		return fmt.Errorf("kv: ChunkBytes %d outside [%d, 1 GiB]", c.ChunkBytes, MinChunkBytes)
	case c.ExpectedKeys < 0:
		return fmt.Errorf("kv: ExpectedKeys %d negative", c.ExpectedKeys)
	}
	return nil
}

// Record layout in the arena: hash[32] | keyLen u32 | valLen u32 | valCap u32 | key |
// value (valCap bytes, valLen of them used). A record's ref points at keyLen. The hash
// (the pair's digest contribution) is there only when the store keeps a digest: with
// NoDigest a record is just its header, key and value, which keeps more of them per cache
// line. In front of the header, the hash shares its cache line or the one before.
const (
	recHeader   = 4 + 4 + 4
	recHashSize = sha256.Size
)

// slot is one open-addressing table entry; ref 0 means empty. No pointers: the GC skips it.
type slot struct {
	hash uint64
	ref  uint64 // (chunk index + 1) << 32 | offset
}

// sessionCache is the session of the client whose op ApplyBatch applied last (id 0: none).
type sessionCache struct {
	id   uint64
	sess *session
}

// session is one client's exactly-once state. It holds no pointers.
type session struct {
	maxSeq    uint64 // highest sequence applied
	lastIndex uint64 // log index of the client's latest write
	// applied is a ring over the window (maxSeq-SessionWindow, maxSeq]: bit seq%SessionWindow
	// says whether seq was applied.
	applied [SessionWindow / 64]uint64
	status  [SessionWindow]Status // status of each applied write, at seq%SessionWindow
	hash    [32]byte              // this session's contribution now in the digest (zero: none)
	dirty   bool                  // changed since hash was computed (see flushSessions)
}

func (ss *session) isApplied(seq uint64) bool {
	b := seq % SessionWindow
	return ss.applied[b/64]&(1<<(b%64)) != 0
}

func (ss *session) setApplied(seq uint64) {
	b := seq % SessionWindow
	ss.applied[b/64] |= 1 << (b % 64)
}

// advanceTo moves maxSeq up to seq, forgetting the sequences that leave the window. Clients
// send in order, so this usually clears one bit.
func (ss *session) advanceTo(seq uint64) {
	if seq-ss.maxSeq >= SessionWindow {
		clear(ss.applied[:])
	} else {
		for q := ss.maxSeq + 1; q <= seq; q++ {
			b := q % SessionWindow
			ss.applied[b/64] &^= 1 << (b % 64)
		}
	}
	ss.maxSeq = seq
}

// Store is the state machine. It is not safe for concurrent use: one goroutine applies.
type Store struct {
	cfg Config

	slots []slot
	count int
	seed  maphash.Seed

	chunks   [][]byte
	live     int // bytes in live records
	dead     int // bytes in abandoned records
	sessions map[uint64]*session
	// dirtySessions lists sessions whose digest contribution is stale: a session changes on
	// every write, so its hash is recomputed once per Digest call instead of once per write.
	dirtySessions []uint64
	applied       uint64
	sweepStep     uint64

	digest  [4]uint64
	scratch []byte

	// pins lists the values (their first bytes) that results of the ApplyBatch in progress
	// alias: a put does not overwrite them in place but moves the key to a new record.
	// Empty between calls.
	pins []*byte
}

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, seed: maphash.MakeSeed(), sessions: make(map[uint64]*session)}
	s.sweepStep = cfg.SessionTTL / SessionSweepsPerTTL
	s.slots = make([]slot, tableMinSlots)
	s.reserve(cfg.ExpectedKeys)
	return s, nil
}

// Len returns the number of keys.
func (s *Store) Len() int { return s.count }

// Sessions returns the number of client sessions held.
func (s *Store) Sessions() int { return len(s.sessions) }

// AppliedIndex returns the highest index passed to Apply (or restored).
func (s *Store) AppliedIndex() uint64 { return s.applied }

// Digest returns the state digest (little-endian 256-bit sum); zero with Config.NoDigest.
func (s *Store) Digest() [32]byte {
	s.flushSessions()
	var d [32]byte
	for i, w := range s.digest {
		binary.LittleEndian.PutUint64(d[8*i:], w)
	}
	return d
}

func (s *Store) digestAdd(h *[32]byte) {
	var c uint64
	for i := range s.digest {
		s.digest[i], c = bits.Add64(s.digest[i], binary.LittleEndian.Uint64(h[8*i:]), c)
	}
}

func (s *Store) digestSub(h *[32]byte) {
	var b uint64
	for i := range s.digest {
		s.digest[i], b = bits.Sub64(s.digest[i], binary.LittleEndian.Uint64(h[8*i:]), b)
	}
}

// --- arena records ---

func (s *Store) rec(ref uint64) []byte {
	c := s.chunks[(ref>>32)-1]
	return c[uint32(ref):]
}

func recKey(r []byte) []byte {
	kl := binary.LittleEndian.Uint32(r[0:])
	return r[recHeader : recHeader+kl]
}

func recValue(r []byte) []byte {
	kl := binary.LittleEndian.Uint32(r[0:])
	vl := binary.LittleEndian.Uint32(r[4:])
	return r[recHeader+kl : recHeader+kl+vl]
}

func recValueCap(r []byte) int { return int(binary.LittleEndian.Uint32(r[8:])) }

// recHash is the pair hash of the record at ref; only a store with a digest has one.
func (s *Store) recHash(ref uint64) []byte {
	c := s.chunks[(ref>>32)-1]
	off := int(uint32(ref))
	return c[off-recHashSize : off]
}

// hashBytes is the size of the hash in front of each record: 0 with NoDigest.
func (s *Store) hashBytes() int {
	if s.cfg.NoDigest {
		return 0
	}
	return recHashSize
}

func (s *Store) recSize(r []byte) int {
	return s.hashBytes() + recHeader + int(binary.LittleEndian.Uint32(r[0:])) + recValueCap(r)
}

// alloc reserves n bytes and returns their ref. Records never straddle chunks; a record
// larger than a chunk gets a chunk of its own.
func (s *Store) alloc(n int) uint64 {
	if k := len(s.chunks); k > 0 {
		c := s.chunks[k-1]
		if cap(c)-len(c) >= n {
			off := len(c)
			s.chunks[k-1] = c[:off+n]
			return uint64(k)<<32 | uint64(off)
		}
	}
	size := max(s.cfg.ChunkBytes, n)
	s.chunks = append(s.chunks, make([]byte, n, size))
	return uint64(len(s.chunks)) << 32
}

// pairHash is a key-value pair's digest contribution: SHA-256("kv" | keyLen | key | value).
func (s *Store) pairHash(key, value []byte, out *[32]byte) {
	b := append(s.scratch[:0], 'k', 'v')
	b = binary.LittleEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	b = append(b, value...)
	s.scratch = b
	*out = sha256.Sum256(b)
}

func (s *Store) newRecord(key, value []byte, h *[32]byte) uint64 {
	hb := s.hashBytes()
	n := hb + recHeader + len(key) + len(value)
	ref := s.alloc(n) + uint64(hb)
	r := s.rec(ref)[:n-hb]
	binary.LittleEndian.PutUint32(r[0:], uint32(len(key)))
	binary.LittleEndian.PutUint32(r[4:], uint32(len(value)))
	binary.LittleEndian.PutUint32(r[8:], uint32(len(value)))
	copy(r[recHeader:], key)
	copy(r[recHeader+len(key):], value)
	if hb != 0 {
		copy(s.recHash(ref), h[:])
	}
	s.live += n
	return ref
}

// --- hash table ---

func (s *Store) hashKey(key []byte) uint64 {
	h := maphash.Bytes(s.seed, key)
	if h == 0 {
		h = 1
	}
	return h
}

// find returns the slot index holding key, or -1.
func (s *Store) find(key []byte, h uint64) int {
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := s.slots[i]
		if sl.ref == 0 {
			return -1
		}
		if sl.hash == h && bytes.Equal(recKey(s.rec(sl.ref)), key) {
			return int(i)
		}
	}
}

func (s *Store) insertSlot(h, ref uint64) {
	mask := uint64(len(s.slots) - 1)
	i := h & mask
	for s.slots[i].ref != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = slot{hash: h, ref: ref}
}

func (s *Store) grow() { s.resize(2 * len(s.slots)) }

// reserve sizes the table for n keys so that inserting them does not rehash.
func (s *Store) reserve(n int) {
	size := len(s.slots)
	for size*3/4 < n {
		size *= 2
	}
	if size != len(s.slots) {
		s.resize(size)
	}
}

func (s *Store) resize(n int) {
	old := s.slots
	s.slots = make([]slot, n)
	for _, sl := range old {
		if sl.ref != 0 {
			s.insertSlot(sl.hash, sl.ref)
		}
	}
}

// removeSlot empties slot i with backward-shift deletion (no tombstones).
func (s *Store) removeSlot(i uint64) {
	mask := uint64(len(s.slots) - 1)
	j := i
	for {
		j = (j + 1) & mask
		sl := s.slots[j]
		if sl.ref == 0 {
			break
		}
		home := sl.hash & mask
		// Leave sl where it is when its home lies cyclically in (i, j].
		if (i <= j && i < home && home <= j) || (i > j && (i < home || home <= j)) {
			continue
		}
		s.slots[i] = sl
		i = j
	}
	s.slots[i] = slot{}
}

// --- operations ---

// Get returns the value of key (StatusNotFound when missing) without touching sessions
// or the applied index: for reads the protocol has already made safe (ReadIndex, leases).
func (s *Store) Get(key []byte) Result {
	return s.get(key, s.hashKey(key))
}

// get is Get with the key's table hash kh.
func (s *Store) get(key []byte, kh uint64) Result {
	i := s.find(key, kh)
	if i < 0 {
		return Result{Status: StatusNotFound}
	}
	return Result{Status: StatusOK, Value: recValue(s.rec(s.slots[i].ref))}
}

// pinned reports whether a result of the ApplyBatch in progress aliases the value that
// starts at v.
func (s *Store) pinned(v *byte) bool {
	for _, p := range s.pins {
		if p == v {
			return true
		}
	}
	return false
}

// put stores value under key, whose table hash is kh.
func (s *Store) put(key, value []byte, kh uint64) {
	var h [32]byte
	if !s.cfg.NoDigest {
		s.pairHash(key, value, &h)
	}
	if i := s.find(key, kh); i >= 0 {
		ref := s.slots[i].ref
		r := s.rec(ref)
		if !s.cfg.NoDigest {
			var old [32]byte
			copy(old[:], s.recHash(ref))
			s.digestSub(&old)
			s.digestAdd(&h)
		}
		if len(value) <= recValueCap(r) && (len(s.pins) == 0 || len(value) == 0 || !s.pinned(&r[recHeader+len(key)])) {
			binary.LittleEndian.PutUint32(r[4:], uint32(len(value)))
			copy(r[recHeader+len(key):], value)
			if !s.cfg.NoDigest {
				copy(s.recHash(ref), h[:])
			}
			return
		}
		size := s.recSize(r)
		s.dead += size
		s.live -= size
		s.slots[i].ref = s.newRecord(key, value, &h)
		s.maybeCompactArena()
		return
	}
	if (s.count+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	if !s.cfg.NoDigest {
		s.digestAdd(&h)
	}
	s.insertSlot(kh, s.newRecord(key, value, &h))
	s.count++
}

func (s *Store) del(key []byte, kh uint64) bool {
	i := s.find(key, kh)
	if i < 0 {
		return false
	}
	ref := s.slots[i].ref
	r := s.rec(ref)
	if !s.cfg.NoDigest {
		var old [32]byte
		copy(old[:], s.recHash(ref))
		s.digestSub(&old)
	}
	size := s.recSize(r)
	s.dead += size
	s.live -= size
	s.removeSlot(uint64(i))
	s.count--
	s.maybeCompactArena()
	return true
}

// maybeCompactArena copies live records into fresh chunks once holes outweigh live data,
// so arena memory stays within about twice the live bytes.
func (s *Store) maybeCompactArena() {
	if s.dead <= s.live || s.dead < arenaCompactMinChunks*s.cfg.ChunkBytes {
		return
	}
	old := s.chunks
	s.chunks = nil
	s.live, s.dead = 0, 0
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.ref == 0 {
			continue
		}
		hb := s.hashBytes()
		c := old[(sl.ref>>32)-1]
		off := int(uint32(sl.ref))
		r := c[off:]
		n := hb + recHeader + int(binary.LittleEndian.Uint32(r[0:])) + int(binary.LittleEndian.Uint32(r[4:]))
		ref := s.alloc(n) + uint64(hb)
		dst := s.rec(ref)
		copy(dst[:n-hb], r[:n-hb])
		if hb != 0 {
			copy(s.recHash(ref), c[off-hb:off])
		}
		binary.LittleEndian.PutUint32(dst[8:], binary.LittleEndian.Uint32(r[4:])) // cap = len
		sl.ref = ref
		s.live += n
	}
}

// Apply applies op at log index (indexes must not decrease; several ops may share one).
// Writes from a client with a session are applied exactly once: a retry of an applied
// (ClientID, Seq) returns the recorded status with Duplicate set.
func (s *Store) Apply(index uint64, op *Op) Result {
	if index < s.applied {
		assert.Failf("kv: apply index %d below applied index %d", index, s.applied)
	}
	s.advance(index)
	var res Result
	s.apply(index, op, 0, &res, nil)
	// Field by field: copying res whole reads it with wide loads that cannot be forwarded
	// from apply's narrower stores, and stalls.
	return Result{Status: res.Status, Value: res.Value, Duplicate: res.Duplicate}
}

// ApplyBatch applies ops in order at log index and writes each one's result to results
// (at least len(ops) long). The store ends as Apply one by one would leave it (an empty
// batch changes nothing), and results[i] is what Apply(index, &ops[i]) would return,
// except that a CAS mismatch, a retried one included, also carries the value the key has
// at that op (nil when it is missing): what a server replies. Result values alias the
// store until the next call that changes it, as with Apply; ops later in the same batch
// do not overwrite them.
//
// It hashes the keys of BatchPrefetch ops at a time and loads their table slots and
// records before applying any of them, so their cache misses overlap.
func (s *Store) ApplyBatch(index uint64, ops []Op, results []Result) {
	if len(ops) == 0 {
		return
	}
	s.applyRun(index, nil, ops, results)
}

// ApplyIndexed is ApplyBatch for ops of several log entries: ops[i] is applied at log
// index indexes[i] (non-decreasing, none below the applied index). The store ends as
// Apply(indexes[i], &ops[i]) one by one would leave it, including the sessions swept as
// the index advances, so a replica may group consecutive entries however it likes: one
// op per entry (one op per client request) then still has its cache misses overlapped
// with its neighbours'. Results are as ApplyBatch's.
func (s *Store) ApplyIndexed(indexes []uint64, ops []Op, results []Result) {
	if len(ops) == 0 {
		return
	}
	if len(indexes) < len(ops) {
		assert.Failf("kv: %d indexes for %d ops", len(indexes), len(ops))
	}
	s.applyRun(indexes[0], indexes, ops, results)
}

// applyRun applies ops at index, or at indexes[i] when indexes is not nil (first is
// indexes[0] then).
func (s *Store) applyRun(first uint64, indexes []uint64, ops []Op, results []Result) {
	if first < s.applied {
		assert.Failf("kv: apply index %d below applied index %d", first, s.applied)
	}
	if len(results) < len(ops) {
		assert.Failf("kv: %d results for %d ops", len(results), len(ops))
	}
	s.advance(first)
	index := first
	var hs [BatchPrefetch]uint64
	var sc sessionCache
	for base := 0; base < len(ops); base += BatchPrefetch {
		part := ops[base:min(base+BatchPrefetch, len(ops))]
		s.prefetch(part, &hs)
		for j := range part {
			if indexes != nil && indexes[base+j] != index {
				if indexes[base+j] < index {
					assert.Failf("kv: apply index %d below applied index %d", indexes[base+j], index)
				}
				index = indexes[base+j]
				// A sweep at the new index may remove the cached session.
				s.advance(index)
				sc = sessionCache{}
			}
			res := &results[base+j]
			s.apply(index, &part[j], hs[j], res, &sc)
			if res.Status == StatusMismatch {
				res.Value = s.get(part[j].Key, hs[j]).Value
			}
			if len(res.Value) > 0 {
				s.pins = append(s.pins, &res.Value[0])
			}
		}
	}
	clear(s.pins) // so that the pins keep no compacted chunk alive
	s.pins = s.pins[:0]
}

// prefetch hashes the keys of ops (at most BatchPrefetch) into hs, 0 for an op that will
// not reach the table, and prefetches each op's home slot as soon as it has its hash; then
// it reads the slots and prefetches the record lines each op will compare, read or write.
// Nothing waits on a prefetch, so the misses of all ops overlap with each other and with
// the work before their data is used.
func (s *Store) prefetch(ops []Op, hs *[BatchPrefetch]uint64) {
	var addrs [BatchPrefetch * prefetchMaxLines]unsafe.Pointer
	mask := uint64(len(s.slots) - 1)
	for j := range ops {
		op := &ops[j]
		hs[j] = 0
		if op.Kind >= OpGet && op.Kind <= OpCAS && len(op.Key) <= s.cfg.MaxKeyBytes {
			h := s.hashKey(op.Key)
			hs[j] = h
			addrs[0] = unsafe.Pointer(&s.slots[h&mask])
			prefetchLines(&addrs[0], 1)
		}
	}
	n := 0
	for j := range ops {
		h := hs[j]
		if h == 0 {
			continue
		}
		for i := h & mask; ; i = (i + 1) & mask {
			sl := &s.slots[i]
			if sl.ref == 0 {
				break
			}
			if sl.hash != h {
				continue
			}
			// The lines of bytes off, off+64, ... and end cover the hash, header, key and
			// (for a put) the value's place.
			c := s.chunks[(sl.ref>>32)-1]
			off := int(uint32(sl.ref)) - s.hashBytes()
			end := min(off+recHeader+len(ops[j].Key)+len(ops[j].Value), len(c)) - 1
			for k := 0; off < end && k < prefetchMaxLines-1; k++ {
				addrs[n] = unsafe.Pointer(&c[off])
				n++
				off += cacheLine
			}
			addrs[n] = unsafe.Pointer(&c[end])
			n++
			break
		}
	}
	prefetchLines(&addrs[0], n)
}

// prefetchRecord asks for up to lines cache lines of the record at ref (from its header on,
// clipped to its chunk): a walk over records in an order of its own uses it to start the
// next records' misses early.
func (s *Store) prefetchRecord(ref uint64, lines int) {
	var addrs [prefetchMaxLines]unsafe.Pointer
	c := s.chunks[(ref>>32)-1]
	off, n := int(uint32(ref)), 0
	for ; n < min(lines, prefetchMaxLines) && off < len(c); n++ {
		addrs[n] = unsafe.Pointer(&c[off])
		off += cacheLine
	}
	prefetchLines(&addrs[0], n)
}

// apply is Apply after the index checks, with the key's table hash kh (0: not computed
// yet). It writes the result to res: a Result is too large to pass in registers, and
// returning it through two calls copied it twice through the stack.
//
// sc, when not nil, remembers the session of the previous op: the ops of a client batch
// share one, so one map lookup serves them all. A session is only removed by a sweep (on
// the first op at a new index, before sc is set) or to make room for another client's
// session (on an op of a client other than sc's, which then replaces sc), so sc stays
// valid while its client's ops follow one another.
func (s *Store) apply(index uint64, op *Op, kh uint64, res *Result, sc *sessionCache) {
	if len(op.Key) > s.cfg.MaxKeyBytes || len(op.Value) > s.cfg.MaxValueBytes || len(op.Expected) > s.cfg.MaxValueBytes {
		*res = Result{Status: StatusInvalid}
		return
	}
	switch op.Kind {
	case OpGet, OpPut, OpDelete, OpCAS:
	default:
		*res = Result{Status: StatusInvalid}
		return
	}
	if kh == 0 {
		kh = s.hashKey(op.Key)
	}
	if op.Kind == OpGet {
		*res = Result{Status: StatusNotFound}
		if i := s.find(op.Key, kh); i >= 0 {
			res.Status, res.Value = StatusOK, recValue(s.rec(s.slots[i].ref))
		}
		return
	}
	if op.ClientID == 0 {
		*res = Result{Status: s.write(op, kh)}
		return
	}
	if op.Seq == 0 {
		*res = Result{Status: StatusInvalid}
		return
	}
	var sess *session
	if sc != nil && sc.id == op.ClientID {
		sess = sc.sess
	} else {
		sess = s.sessions[op.ClientID]
		if sess == nil {
			if op.Seq > SessionWindow {
				*res = Result{Status: StatusSessionExpired}
				return
			}
			if len(s.sessions) >= s.cfg.MaxSessions {
				s.evictSession(index)
			}
			sess = new(session)
			s.sessions[op.ClientID] = sess
		}
		if sc != nil {
			*sc = sessionCache{id: op.ClientID, sess: sess}
		}
	}
	switch {
	case op.Seq > sess.maxSeq:
		sess.advanceTo(op.Seq)
		sess.setApplied(op.Seq)
		*res = Result{Status: s.write(op, kh)}
	case sess.maxSeq-op.Seq >= SessionWindow:
		*res = Result{Status: StatusSessionExpired}
		return
	case sess.isApplied(op.Seq):
		*res = Result{Status: sess.status[op.Seq%SessionWindow], Duplicate: true}
	default:
		sess.setApplied(op.Seq)
		*res = Result{Status: s.write(op, kh)}
	}
	if !res.Duplicate {
		sess.status[op.Seq%SessionWindow] = res.Status
	}
	sess.lastIndex = index
	if !sess.dirty {
		sess.dirty = true
		s.dirtySessions = append(s.dirtySessions, op.ClientID)
	}
}

// write applies a put, delete or CAS whose key hashes to kh.
func (s *Store) write(op *Op, kh uint64) Status {
	switch op.Kind {
	case OpPut:
		s.put(op.Key, op.Value, kh)
		return StatusOK
	case OpDelete:
		if s.del(op.Key, kh) {
			return StatusOK
		}
		return StatusNotFound
	default: // OpCAS
		i := s.find(op.Key, kh)
		if i < 0 {
			return StatusNotFound
		}
		if !bytes.Equal(recValue(s.rec(s.slots[i].ref)), op.Expected) {
			return StatusMismatch
		}
		s.put(op.Key, op.Value, kh)
		return StatusOK
	}
}

// sessionHash computes a session's digest contribution into sess.hash.
func (s *Store) sessionHash(id uint64, sess *session) {
	b := append(s.scratch[:0], 's', 'e')
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.LittleEndian.AppendUint64(b, sess.maxSeq)
	b = binary.LittleEndian.AppendUint64(b, sess.lastIndex)
	for _, w := range sess.applied {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	for _, st := range sess.status {
		b = append(b, byte(st))
	}
	s.scratch = b
	sess.hash = sha256.Sum256(b)
}

// flushSessions brings the digest up to date with every session changed since the last
// flush: subtract the contribution it had, add the new one. Sessions removed meanwhile
// were subtracted when they were removed.
func (s *Store) flushSessions() {
	for _, id := range s.dirtySessions {
		sess := s.sessions[id]
		if sess == nil || !sess.dirty {
			continue
		}
		sess.dirty = false
		if s.cfg.NoDigest {
			continue
		}
		s.digestSub(&sess.hash)
		s.sessionHash(id, sess)
		s.digestAdd(&sess.hash)
	}
	clear(s.dirtySessions)
	s.dirtySessions = s.dirtySessions[:0]
}

// advance moves the applied index and sweeps expired sessions whenever it crosses a
// multiple of the sweep step; the rule depends only on indexes, so replicas agree.
func (s *Store) advance(index uint64) {
	prev := s.applied
	s.applied = index
	if index/s.sweepStep != prev/s.sweepStep {
		s.sweepSessions(index)
	}
}

func (s *Store) expired(sess *session, index uint64) bool {
	return sess.lastIndex+s.cfg.SessionTTL <= index
}

func (s *Store) sweepSessions(index uint64) {
	for id, sess := range s.sessions {
		if s.expired(sess, index) {
			s.digestSub(&sess.hash)
			delete(s.sessions, id)
		}
	}
}

// evictSession makes room for a new session: expired ones first, else the one idle
// longest (lowest lastIndex, then lowest client ID), chosen by value so replicas agree.
func (s *Store) evictSession(index uint64) {
	s.sweepSessions(index)
	if len(s.sessions) < s.cfg.MaxSessions {
		return
	}
	var victim uint64
	var vIndex uint64
	found := false
	for id, sess := range s.sessions {
		if !found || sess.lastIndex < vIndex || (sess.lastIndex == vIndex && id < victim) {
			victim, vIndex, found = id, sess.lastIndex, true
		}
	}
	s.digestSub(&s.sessions[victim].hash)
	delete(s.sessions, victim)
}

// CloneInto makes dst an independent copy of s, as Clone does, reusing dst's memory (table,
// arena chunks, session table) where it is large enough, and returns dst; with a nil dst it
// is Clone. A driver that snapshots a copy of its store on another goroutine keeps one
// spare store this way instead of allocating a whole store per snapshot. dst must not be
// in use by anyone else.
func (s *Store) CloneInto(dst *Store) *Store {
	if dst == nil {
		return s.Clone()
	}
	slots, chunks, sessions, dirty := dst.slots, dst.chunks, dst.sessions, dst.dirtySessions
	*dst = *s
	dst.slots = append(slots[:0], s.slots...)
	dst.chunks = chunks[:0]
	for i, ch := range s.chunks {
		var buf []byte
		if i < len(chunks) {
			buf = chunks[i][:0]
		}
		dst.chunks = append(dst.chunks, append(buf, ch...))
	}
	clear(chunks[min(len(chunks), len(s.chunks)):]) // chunks beyond s's are dropped
	if sessions == nil {
		sessions = make(map[uint64]*session, len(s.sessions))
	}
	for id := range sessions {
		if _, ok := s.sessions[id]; !ok {
			delete(sessions, id)
		}
	}
	for id, sess := range s.sessions {
		if cp := sessions[id]; cp != nil {
			*cp = *sess
			continue
		}
		cp := *sess
		sessions[id] = &cp
	}
	dst.sessions = sessions
	dst.dirtySessions = append(dirty[:0], s.dirtySessions...)
	dst.scratch, dst.pins = nil, nil
	return dst
}

// Clone returns an independent deep copy of the store: what a snapshot taken on another
// goroutine reads while this store keeps applying. It copies the arena and the table (a
// memory copy, tens of milliseconds for a million keys) so that the slow part of a snapshot
// (sorting and writing) leaves the applying goroutine.
func (s *Store) Clone() *Store {
	c := *s
	c.slots = slices.Clone(s.slots)
	c.chunks = make([][]byte, len(s.chunks))
	for i, ch := range s.chunks {
		c.chunks[i] = slices.Clone(ch)
	}
	c.sessions = make(map[uint64]*session, len(s.sessions))
	for id, sess := range s.sessions {
		cp := *sess
		c.sessions[id] = &cp
	}
	c.dirtySessions = slices.Clone(s.dirtySessions)
	c.scratch = nil
	c.pins = nil
	return &c
}

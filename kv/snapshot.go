package kv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Snapshot stream layout (little-endian), deterministic for a given state:
//
//	magic u64 | version u32 | appliedIndex u64 | sessions u64 | keys u64
//	sessions, ascending client ID: id u64 | maxSeq u64 | lastIndex u64 |
//	                               applied [SessionWindow/64]u64 | status [SessionWindow]u8
//	keys, ascending bytewise:      keyLen u32 | valLen u32 | key | value
//	digest [32]byte
//
// Restore recomputes the digest from the restored pairs and sessions and rejects the
// stream when it differs, so a truncated or altered stream never becomes state.
const (
	snapMagic    = 0x31706e73766b6263 // "cbkvsnp1"
	snapVersion  = 2
	snapHdrLen   = 8 + 4 + 8 + 8 + 8
	snapSessLen  = 8*3 + 8*SessionWindow/64
	snapPairHdr  = 8
	snapBufBytes = 1 << 20
	// snapPrefetchAhead is how many records ahead a snapshot walk prefetches: enough
	// misses in flight to cover memory latency, few enough that the lines are still
	// cached when the walk reaches them.
	snapPrefetchAhead = 16
)

// restoreReserveMax bounds the table pre-sizing a snapshot header can ask for.
const restoreReserveMax = 1 << 22

// ErrBadSnapshot says a snapshot stream is malformed or its digest does not match.
var ErrBadSnapshot = errors.New("kv: bad snapshot")

// Rester is a writer that paces the work feeding it (internal/pace.Writer): Snapshot also
// calls Rest between the steps that write nothing (collecting and sorting the keys), so
// that a paced snapshot has no long stretch unpaced.
type Rester interface {
	Rest()
}

// snapRestEvery is how many table slots or refs Snapshot handles between Rest calls.
const snapRestEvery = 1 << 13

// Snapshot writes the whole state to w. Equal states produce equal bytes. It reads the
// store only; it must run on the applying goroutine (between Apply calls), or on a copy.
// When w is a Rester, Snapshot calls its Rest now and then.
func (s *Store) Snapshot(w io.Writer) (int64, error) {
	rest := func() {}
	if r, ok := w.(Rester); ok {
		rest = r.Rest
	}
	bw := bufio.NewWriterSize(w, snapBufBytes)
	cw := &countWriter{w: bw}
	le := binary.LittleEndian
	s.flushSessions()
	var hdr [snapHdrLen]byte
	le.PutUint64(hdr[0:], snapMagic)
	le.PutUint32(hdr[8:], snapVersion)
	le.PutUint64(hdr[12:], s.applied)
	le.PutUint64(hdr[20:], uint64(len(s.sessions)))
	le.PutUint64(hdr[28:], uint64(s.count))
	cw.write(hdr[:])

	ids := make([]uint64, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var sb [snapSessLen + SessionWindow]byte
	for _, id := range ids {
		sess := s.sessions[id]
		le.PutUint64(sb[0:], id)
		le.PutUint64(sb[8:], sess.maxSeq)
		le.PutUint64(sb[16:], sess.lastIndex)
		for i, w := range sess.applied {
			le.PutUint64(sb[24+8*i:], w)
		}
		for i, st := range sess.status {
			sb[snapSessLen+i] = byte(st)
		}
		cw.write(sb[:])
	}

	// Order by key: a radix sort on a 16-byte big-endian key prefix held inline (no
	// comparisons, and no arena access but to break ties between keys sharing the prefix).
	// Both walks below read records in an order unrelated to where the arena holds them (a
	// uniform workload scatters them), so each record is a cache miss: prefetching the
	// record snapPrefetchAhead places ahead overlaps those misses instead of taking them
	// one at a time (BenchmarkSnapshot/order=random, about 2.5x).
	refs := make([]sortRef, 0, s.count)
	for j, sl := range s.slots {
		if j%snapRestEvery == 0 {
			rest()
		}
		if j+snapPrefetchAhead < len(s.slots) {
			if ahead := s.slots[j+snapPrefetchAhead].ref; ahead != 0 {
				s.prefetchRecord(ahead, 1)
			}
		}
		if sl.ref != 0 {
			var p [16]byte
			copy(p[:], recKey(s.rec(sl.ref)))
			refs = append(refs, sortRef{hi: binary.BigEndian.Uint64(p[:8]), lo: binary.BigEndian.Uint64(p[8:]), ref: sl.ref})
		}
	}
	refs = radixSortRefs(refs, make([]sortRef, len(refs)), rest)
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].hi == refs[i].hi && refs[j].lo == refs[i].lo {
			j++
		}
		if j-i > 1 { // keys longer than the prefix, equal in it
			slices.SortFunc(refs[i:j], func(a, b sortRef) int {
				return bytes.Compare(recKey(s.rec(a.ref)), recKey(s.rec(b.ref)))
			})
		}
		i = j
	}
	var ph [snapPairHdr]byte
	for i, sr := range refs {
		if i+snapPrefetchAhead < len(refs) {
			s.prefetchRecord(refs[i+snapPrefetchAhead].ref, prefetchMaxLines)
		}
		r := s.rec(sr.ref)
		k, v := recKey(r), recValue(r)
		le.PutUint32(ph[0:], uint32(len(k)))
		le.PutUint32(ph[4:], uint32(len(v)))
		cw.write(ph[:])
		cw.write(k)
		cw.write(v)
	}
	d := s.Digest()
	cw.write(d[:])
	if cw.err == nil {
		cw.err = bw.Flush()
	}
	return cw.n, cw.err
}

type sortRef struct{ hi, lo, ref uint64 }

// radixSortRefs sorts refs by (hi, lo) ascending with a least-significant-byte-first radix
// sort, using tmp (len(refs)) as the other buffer, and returns whichever holds the result.
// A byte position on which every ref agrees (a common key prefix, the zero padding of short
// keys) costs one counting pass and no move.
// rest is called between passes.
func radixSortRefs(refs, tmp []sortRef, rest func()) []sortRef {
	var counts [16][256]int
	for i := range refs {
		r := &refs[i]
		for b := range 8 {
			counts[b][byte(r.lo>>(8*b))]++
			counts[8+b][byte(r.hi>>(8*b))]++
		}
	}
	src, dst := refs, tmp
	for pass := range 16 {
		rest()
		c := &counts[pass]
		shift, useHi := uint(8*(pass%8)), pass >= 8
		digit := func(r *sortRef) byte {
			if useHi {
				return byte(r.hi >> shift)
			}
			return byte(r.lo >> shift)
		}
		if len(src) == 0 || c[digit(&src[0])] == len(src) {
			continue // every ref has the same byte here
		}
		var next [256]int
		sum := 0
		for d := range 256 {
			next[d], sum = sum, sum+c[d]
		}
		for i := range src {
			d := digit(&src[i])
			dst[next[d]] = src[i]
			next[d]++
		}
		src, dst = dst, src
	}
	return src
}

type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
}

// Restore replaces the state with the snapshot read from r. On error the store is left
// unchanged.
func (s *Store) Restore(r io.Reader) error {
	ns, err := New(s.cfg)
	if err != nil {
		return err
	}
	if err := ns.restore(bufio.NewReaderSize(r, snapBufBytes)); err != nil {
		return err
	}
	*s = *ns
	return nil
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
}

func (s *Store) restore(br *bufio.Reader) error {
	le := binary.LittleEndian
	var hdr [snapHdrLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return bad("header: %v", err)
	}
	if le.Uint64(hdr[0:]) != snapMagic || le.Uint32(hdr[8:]) != snapVersion {
		return bad("magic or version")
	}
	s.applied = le.Uint64(hdr[12:])
	nSess, nKeys := le.Uint64(hdr[20:]), le.Uint64(hdr[28:])
	if nSess > uint64(s.cfg.MaxSessions) {
		return bad("%d sessions exceed MaxSessions %d", nSess, s.cfg.MaxSessions)
	}
	// A damaged count is only caught by the digest at the end, so pre-size within a bound
	// and let the table grow past it if the stream really holds more.
	s.reserve(int(min(nKeys, restoreReserveMax)))
	var sb [snapSessLen + SessionWindow]byte
	var prevID uint64
	for i := range nSess {
		if _, err := io.ReadFull(br, sb[:]); err != nil {
			return bad("session %d: %v", i, err)
		}
		id := le.Uint64(sb[0:])
		if id == 0 || (i > 0 && id <= prevID) {
			return bad("session ids not ascending at %d", i)
		}
		prevID = id
		sess := &session{maxSeq: le.Uint64(sb[8:]), lastIndex: le.Uint64(sb[16:])}
		for k := range sess.applied {
			sess.applied[k] = le.Uint64(sb[24+8*k:])
		}
		for k := range sess.status {
			sess.status[k] = Status(sb[snapSessLen+k])
		}
		if !s.cfg.NoDigest {
			s.sessionHash(id, sess)
			s.digestAdd(&sess.hash)
		}
		s.sessions[id] = sess
	}
	var ph [snapPairHdr]byte
	var key, val, prev []byte
	for i := range nKeys {
		if _, err := io.ReadFull(br, ph[:]); err != nil {
			return bad("pair %d: %v", i, err)
		}
		kl, vl := int(le.Uint32(ph[0:])), int(le.Uint32(ph[4:]))
		if kl > s.cfg.MaxKeyBytes || vl > s.cfg.MaxValueBytes {
			return bad("pair %d: key %d or value %d bytes over the limits", i, kl, vl)
		}
		key, val = grow(key, kl), grow(val, vl)
		if _, err := io.ReadFull(br, key); err != nil {
			return bad("pair %d key: %v", i, err)
		}
		if _, err := io.ReadFull(br, val); err != nil {
			return bad("pair %d value: %v", i, err)
		}
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			return bad("keys not strictly ascending at pair %d", i)
		}
		prev = append(prev[:0], key...)
		if (s.count+1)*4 > len(s.slots)*3 {
			s.grow()
		}
		var h [32]byte
		if !s.cfg.NoDigest {
			s.pairHash(key, val, &h)
			s.digestAdd(&h)
		}
		s.insertSlot(s.hashKey(key), s.newRecord(key, val, &h))
		s.count++
	}
	var d [32]byte
	if _, err := io.ReadFull(br, d[:]); err != nil {
		return bad("digest: %v", err)
	}
	if d != s.Digest() {
		return bad("digest mismatch: stream %x, restored state %x", d, s.Digest())
	}
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

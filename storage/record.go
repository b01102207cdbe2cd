package storage

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
)

// Record framing: crc32c(4) | length(4) | type(1) | payload. The CRC covers bytes [4:].
const (
	recordHeaderLen = 9

	recSegment   = 1 // segment header
	recBatch     = 2 // start of one group-commit batch
	recEntry     = 3 // one log entry
	recHardState = 4 // term, vote, commit
	recCompact   = 5 // compaction point or log reset

	segmentMagic   = 0x6c61776263 // "cbwal" little-endian
	segmentVersion = 1

	segmentPayloadLen   = 8 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 8 + 8 // see appendSegmentHeader
	batchPayloadLen     = 8 + 4
	entryFixedLen       = 8 + 8 + 1
	hardStatePayloadLen = 24
	compactPayloadLen   = 8 + 8 + 1

	batchHeaderLen   = recordHeaderLen + batchPayloadLen
	segmentHeaderLen = recordHeaderLen + segmentPayloadLen

	segmentFlagSynced = 1 // written with SyncAlways

	compactKeepSuffix = 0 // drop entries <= index, keep the rest
	compactReset      = 1 // drop every entry; the log restarts after index
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// beginRecord appends a header for a record of payload length n and returns dst and the
// offset of the header, to be sealed by sealRecord once the payload is appended.
func beginRecord(dst []byte, typ byte, n int) ([]byte, int) {
	at := len(dst)
	dst = le.AppendUint32(dst, 0)
	dst = le.AppendUint32(dst, uint32(n))
	dst = append(dst, typ)
	return dst, at
}

// sealRecord writes the CRC of the record starting at at.
func sealRecord(b []byte, at int) {
	n := int(le.Uint32(b[at+4:]))
	le.PutUint32(b[at:], crc32.Checksum(b[at+4:at+recordHeaderLen+n], castagnoli))
}

// entryRecordLen is the framed size of an entry record with n data bytes.
func entryRecordLen(n int) int { return recordHeaderLen + entryFixedLen + n }

// appendEntryRecord frames e onto dst. It sizes dst once and stores fields in place: this
// runs per entry inside Append, on the path a waiting caller sees.
func appendEntryRecord(dst []byte, e *Entry) []byte {
	at := len(dst)
	n := entryFixedLen + len(e.Data)
	dst = slices.Grow(dst, recordHeaderLen+n)[:at+recordHeaderLen+n]
	r := dst[at:]
	le.PutUint32(r[4:], uint32(n))
	r[8] = recEntry
	le.PutUint64(r[9:], e.Index)
	le.PutUint64(r[17:], e.Term)
	r[25] = e.Type
	copy(r[26:], e.Data)
	le.PutUint32(r, crc32.Checksum(r[4:], castagnoli))
	return dst
}

func appendHardStateRecord(dst []byte, hs HardState) []byte {
	dst, at := beginRecord(dst, recHardState, hardStatePayloadLen)
	dst = le.AppendUint64(dst, hs.Term)
	dst = le.AppendUint64(dst, hs.Vote)
	dst = le.AppendUint64(dst, hs.Commit)
	sealRecord(dst, at)
	return dst
}

func appendCompactRecord(dst []byte, index, term uint64, kind byte) []byte {
	dst, at := beginRecord(dst, recCompact, compactPayloadLen)
	dst = le.AppendUint64(dst, index)
	dst = le.AppendUint64(dst, term)
	dst = append(dst, kind)
	sealRecord(dst, at)
	return dst
}

// putBatchHeader fills the batch record reserved at the front of b.
func putBatchHeader(b []byte, seq uint64, bodyLen int) {
	le.PutUint32(b[4:], batchPayloadLen)
	b[8] = recBatch
	le.PutUint64(b[9:], seq)
	le.PutUint32(b[17:], uint32(bodyLen))
	sealRecord(b, 0)
}

// segmentHeader is the first record of every segment: enough to start recovery from this
// segment when every earlier one has been removed by compaction.
type segmentHeader struct {
	seq       uint64
	flags     uint32
	nextBatch uint64 // sequence of the first batch in this segment
	snapIndex uint64
	snapTerm  uint64
	hs        HardState
}

func appendSegmentHeader(dst []byte, h *segmentHeader) []byte {
	dst, at := beginRecord(dst, recSegment, segmentPayloadLen)
	dst = le.AppendUint64(dst, segmentMagic)
	dst = le.AppendUint32(dst, segmentVersion)
	dst = le.AppendUint32(dst, h.flags)
	dst = le.AppendUint64(dst, h.seq)
	dst = le.AppendUint64(dst, h.nextBatch)
	dst = le.AppendUint64(dst, h.snapIndex)
	dst = le.AppendUint64(dst, h.snapTerm)
	dst = le.AppendUint64(dst, h.hs.Term)
	dst = le.AppendUint64(dst, h.hs.Vote)
	dst = le.AppendUint64(dst, h.hs.Commit)
	sealRecord(dst, at)
	return dst
}

func parseSegmentHeader(p []byte) (segmentHeader, bool) {
	var h segmentHeader
	if len(p) != segmentPayloadLen || le.Uint64(p) != segmentMagic || le.Uint32(p[8:]) != segmentVersion {
		return h, false
	}
	h.flags = le.Uint32(p[12:])
	h.seq = le.Uint64(p[16:])
	h.nextBatch = le.Uint64(p[24:])
	h.snapIndex = le.Uint64(p[32:])
	h.snapTerm = le.Uint64(p[40:])
	h.hs = HardState{Term: le.Uint64(p[48:]), Vote: le.Uint64(p[56:]), Commit: le.Uint64(p[64:])}
	return h, true
}

// readRecord parses the record at b[off:]. ok is false when the bytes there are not a
// complete record with a valid CRC; a record never extends past len(b).
func readRecord(b []byte, off int) (typ byte, payload []byte, next int, ok bool) {
	if off < 0 || len(b)-off < recordHeaderLen {
		return 0, nil, 0, false
	}
	n := int(le.Uint32(b[off+4:]))
	if n > len(b)-off-recordHeaderLen {
		return 0, nil, 0, false
	}
	end := off + recordHeaderLen + n
	if crc32.Checksum(b[off+4:end], castagnoli) != le.Uint32(b[off:]) {
		return 0, nil, 0, false
	}
	return b[off+8], b[off+recordHeaderLen : end], end, true
}

// isBatchAt reports whether a valid batch record with sequence >= minSeq starts at off.
// Recovery uses it to tell a torn tail (nothing valid after the damage) from corruption.
func isBatchAt(b []byte, off int, minSeq uint64) bool {
	if len(b)-off < batchHeaderLen || b[off+8] != recBatch || le.Uint32(b[off+4:]) != batchPayloadLen {
		return false
	}
	typ, p, _, ok := readRecord(b, off)
	return ok && typ == recBatch && le.Uint64(p) >= minSeq
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

package server

import (
	"encoding/binary"
	"fmt"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/storage"
)

// The PBFT replica's WAL is a log of pbftcore's protocol records (pbftcore.Ready.Persist:
// pre-prepared with its batch, prepared, committed, view), one WAL entry per record, indexed
// by record number. Under storage.SyncAlways a Ready's messages (peer messages and client
// replies alike) leave only once its records are durable, which is pbftcore's contract for
// a replica that restarts as a correct one: a restarted replica rebuilds its log, P and Q
// sets and view from these records (pbftcore.Config.Log) on top of its stable-checkpoint
// snapshot, re-executes what it committed, and loses no acknowledged request even when
// every replica restarts at once.
//
// Entry data: format byte pbftRecordFormat, kind, active (0/1), has-batch (0/1), view u64,
// seq u64, digest [32], then with a batch: count u32 and per request client u64,
// timestamp u64, read-only (0/1), op length u32, op, authenticator length u32,
// authenticator; a stable-checkpoint record (pbftcore.RecStable) instead carries its proof:
// count u32 and per signed CHECKPOINT sender u32, signature length u32, signature (the
// sequence number and digest are the record's). Integers are little-endian. Entry.Term holds the record's sequence number
// (0 for view records), so compaction can find the first record still needed.

// pbftRecordFormat marks a record entry; a WAL whose entries do not start with it was
// written by another format and is refused at startup with an error naming it.
const pbftRecordFormat = 0xB1

const pbftRecordHeader = 4 + 8 + 8 + 32

// appendRecord encodes rec into dst.
func appendRecord(dst []byte, rec *pbftcore.Record) []byte {
	active, hasBatch := byte(0), byte(0)
	if rec.Active {
		active = 1
	}
	if rec.Requests != nil {
		hasBatch = 1
	}
	dst = append(dst, pbftRecordFormat, byte(rec.Kind), active, hasBatch)
	dst = binary.LittleEndian.AppendUint64(dst, rec.View)
	dst = binary.LittleEndian.AppendUint64(dst, rec.Seq)
	dst = append(dst, rec.Digest[:]...)
	if rec.Kind == pbftcore.RecStable {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(rec.Proof)))
		for i := range rec.Proof {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(rec.Proof[i].From))
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(rec.Proof[i].Auth)))
			dst = append(dst, rec.Proof[i].Auth...)
		}
		return dst
	}
	if rec.Requests == nil {
		return dst
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(rec.Requests)))
	for i := range rec.Requests {
		q := &rec.Requests[i]
		dst = binary.LittleEndian.AppendUint64(dst, q.Client)
		dst = binary.LittleEndian.AppendUint64(dst, q.Timestamp)
		ro := byte(0)
		if q.ReadOnly {
			ro = 1
		}
		dst = append(dst, ro)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(q.Op)))
		dst = append(dst, q.Op...)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(q.Auth)))
		dst = append(dst, q.Auth...)
	}
	return dst
}

// decodeRecord decodes one record entry; byte fields alias b.
func decodeRecord(b []byte, rec *pbftcore.Record) error {
	if len(b) < pbftRecordHeader || b[0] != pbftRecordFormat {
		return fmt.Errorf("not a pbft protocol record (format %#x, %d bytes): the WAL was written by another version; move the data directory away", firstByte(b), len(b))
	}
	if b[1] < byte(pbftcore.RecPrePrepared) || b[1] > byte(pbftcore.RecStable) || b[2] > 1 || b[3] > 1 {
		return fmt.Errorf("bad record header %x: the WAL was written by another version or is damaged; move the data directory away", b[:4])
	}
	*rec = pbftcore.Record{Kind: pbftcore.RecordKind(b[1]), Active: b[2] == 1,
		View: binary.LittleEndian.Uint64(b[4:]), Seq: binary.LittleEndian.Uint64(b[12:])}
	copy(rec.Digest[:], b[20:52])
	hasBatch := b[3] == 1
	b = b[pbftRecordHeader:]
	if rec.Kind == pbftcore.RecStable {
		if hasBatch {
			return fmt.Errorf("stable-checkpoint record for %d claims a batch", rec.Seq)
		}
		return decodeProof(b, rec)
	}
	if !hasBatch {
		if len(b) != 0 {
			return fmt.Errorf("record of kind %v has %d trailing bytes", rec.Kind, len(b))
		}
		return nil
	}
	short := fmt.Errorf("record of kind %v for %d is truncated", rec.Kind, rec.Seq)
	if len(b) < 4 {
		return short
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b))/25 {
		return short
	}
	rec.Requests = make([]pbftcore.Request, n)
	for i := range rec.Requests {
		if len(b) < 25 {
			return short
		}
		q := &rec.Requests[i]
		q.Client = binary.LittleEndian.Uint64(b)
		q.Timestamp = binary.LittleEndian.Uint64(b[8:])
		if b[16] > 1 {
			return fmt.Errorf("record of kind %v for %d: bad read-only flag %d", rec.Kind, rec.Seq, b[16])
		}
		q.ReadOnly = b[16] == 1
		opLen := binary.LittleEndian.Uint32(b[17:])
		b = b[21:]
		if uint64(opLen)+4 > uint64(len(b)) {
			return short
		}
		q.Op, b = b[:opLen], b[opLen:]
		authLen := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if uint64(authLen) > uint64(len(b)) {
			return short
		}
		q.Auth, b = b[:authLen], b[authLen:]
	}
	if len(b) != 0 {
		return fmt.Errorf("record of kind %v for %d has %d trailing bytes", rec.Kind, rec.Seq, len(b))
	}
	return nil
}

// decodeProof decodes a RecStable record's signed CHECKPOINTs (at most pbftcore.MaxReplicas).
func decodeProof(b []byte, rec *pbftcore.Record) error {
	short := fmt.Errorf("stable-checkpoint record for %d is truncated", rec.Seq)
	if len(b) < 4 {
		return short
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if n > pbftcore.MaxReplicas {
		return fmt.Errorf("stable-checkpoint record for %d has %d proof entries, over %d", rec.Seq, n, pbftcore.MaxReplicas)
	}
	rec.Proof = make([]pbftcore.Message, n)
	for i := range rec.Proof {
		if len(b) < 8 {
			return short
		}
		from, l := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		b = b[8:]
		if from >= pbftcore.MaxReplicas || uint64(l) > uint64(len(b)) {
			return short
		}
		rec.Proof[i] = pbftcore.Message{Type: pbftcore.MsgCheckpoint, From: int(from), To: pbftcore.ToAll, Seq: rec.Seq,
			Digest: rec.Digest, Auth: b[:l]}
		b = b[l:]
	}
	if len(b) != 0 {
		return fmt.Errorf("stable-checkpoint record for %d has %d trailing bytes", rec.Seq, len(b))
	}
	return nil
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// recordMark remembers where one logged record sits, for compaction.
type recordMark struct {
	idx  uint64 // WAL index
	seq  uint64 // the record's sequence number (0 for a view record)
	view bool
}

// readLog returns every record in w, in order, and their marks.
func readLog(w *storage.WAL) ([]pbftcore.Record, []recordMark, error) {
	first, last := w.FirstIndex(), w.LastIndex()
	if last < first {
		return []pbftcore.Record{}, nil, nil
	}
	ents, _, err := w.Entries(first, last+1, 0, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("server: read pbft log: %w", err)
	}
	recs := make([]pbftcore.Record, len(ents))
	marks := make([]recordMark, len(ents))
	for i := range ents {
		if err := decodeRecord(ents[i].Data, &recs[i]); err != nil {
			return nil, nil, fmt.Errorf("server: pbft log entry %d: %w", ents[i].Index, err)
		}
		marks[i] = recordMark{idx: ents[i].Index, seq: recs[i].Seq, view: recs[i].Kind == pbftcore.RecView}
	}
	return recs, marks, nil
}

// logRecords appends a Ready's records to the WAL in one call (one group-commit batch).
func (r *PBFTReplica) logRecords(recs []pbftcore.Record) error {
	r.walEnts = r.walEnts[:0]
	r.walData = r.walData[:0]
	r.walSpans = r.walSpans[:0]
	for i := range recs {
		start := len(r.walData)
		r.walData = appendRecord(r.walData, &recs[i])
		r.walSpans = append(r.walSpans, [2]int{start, len(r.walData)})
	}
	r.walSinceSnap += uint64(len(r.walData))
	next := r.wal.LastIndex() + 1
	for i := range recs {
		sp := r.walSpans[i]
		idx := next + uint64(i)
		r.walEnts = append(r.walEnts, storage.Entry{Index: idx, Term: recs[i].Seq, Data: r.walData[sp[0]:sp[1]]})
		r.marks = append(r.marks, recordMark{idx: idx, seq: recs[i].Seq, view: recs[i].Kind == pbftcore.RecView})
	}
	return r.appendWAL()
}

// compactLog drops the records no restart needs once checkpoint h is stable and persisted:
// everything before both the first record for a number above h and the latest view record.
func (r *PBFTReplica) compactLog(h uint64) error {
	firstLive, lastView := r.wal.LastIndex()+1, uint64(0)
	found := false
	for _, m := range r.marks {
		if m.view {
			lastView = m.idx
		} else if !found && m.seq > h {
			firstLive, found = m.idx, true
		}
	}
	keep := firstLive
	if lastView != 0 {
		keep = min(keep, lastView)
	}
	if keep <= r.wal.FirstIndex() {
		return nil
	}
	if _, err := r.wal.Compact(keep - 1); err != nil {
		return fmt.Errorf("wal compact: %w", err)
	}
	k := 0
	for k < len(r.marks) && r.marks[k].idx < keep {
		k++
	}
	r.marks = append(r.marks[:0], r.marks[k:]...)
	return nil
}

package wire

// Hand-written sample messages: one per type, with every field set to a recognisable value.
// The golden vectors in testdata/golden/ are their encodings.

func mac(b byte, n int) []byte {
	out := make([]byte, n*MACSize)
	for i := range out {
		out[i] = b + byte(i/MACSize)
	}
	return out
}

func shortMACs(b byte, n int) []byte {
	out := make([]byte, n*ShortMACSize)
	for i := range out {
		out[i] = b + byte(i/ShortMACSize)
	}
	return out
}

func sig(b byte) []byte {
	out := make([]byte, SignatureSize)
	for i := range out {
		out[i] = b
	}
	return out
}

func digest(b byte) (d Digest) {
	for i := range d {
		d[i] = b
	}
	return d
}

func samplePrepare(replica uint64) Prepare {
	return Prepare{View: 3, Seq: 130, Replica: replica, Digest: digest(0xD1), Auth: Authenticator{Kind: AuthSignature, Signature: sig(byte(replica))}}
}

func sampleViewChange(replica uint64) ViewChange {
	return ViewChange{
		NewView: 4, StableSeq: 128, Replica: replica, StableDigest: digest(0xC0),
		C: []Checkpoint{
			{Seq: 128, Replica: 0, Digest: digest(0xC0), Auth: Authenticator{Kind: AuthSignature, Signature: sig(0x10)}},
			{Seq: 128, Replica: 2, Digest: digest(0xC0), Auth: Authenticator{Kind: AuthSignature, Signature: sig(0x12)}},
		},
		P: []PreparedCert{{
			PrePrepare: PrePrepareHeader{View: 3, Seq: 130, Replica: 3, Digest: digest(0xD1), Auth: Authenticator{Kind: AuthSignature, Signature: sig(0x33)}},
			Prepares:   []Prepare{samplePrepare(1), samplePrepare(2)},
		}},
		Q:    []PrePrepared{{Seq: 130, View: 3, Digest: digest(0xD1)}, {Seq: 131, View: 2, Digest: digest(0xD2)}},
		Auth: Authenticator{Kind: AuthSignature, Signature: sig(0x40 + byte(replica))},
	}
}

func goldenSamples() []Message {
	return []Message{
		&PeerHello{ClusterID: 0xC1C1, NodeID: 2, Protocol: ProtocolRaft, ProtocolVersion: 1},
		&AppendEntries{
			Term: 5, From: 1, To: 2, PrevIndex: 100, PrevTerm: 4, Commit: 99, Seq: 7,
			Entries: []Entry{
				{Term: 4, Type: EntryNormal, Data: []byte("put k1=v1")},
				{Term: 5, Type: EntryNoop},
				{Term: 5, Type: EntryConfChange, Data: []byte{0x01, 0x04}},
			},
		},
		&AppendEntriesReply{Term: 5, From: 2, To: 1, Seq: 7, Success: false, MatchIndex: 0, RejectIndex: 100, ConflictTerm: 3, ConflictIndex: 80},
		&RequestVote{Term: 6, From: 3, To: 1, LastLogIndex: 103, LastLogTerm: 5, PreVote: true, LeaderTransfer: false},
		&RequestVoteReply{Term: 6, From: 1, To: 3, Granted: true, PreVote: true},
		&InstallSnapshot{
			Term: 5, From: 1, To: 3, SnapshotIndex: 1000, SnapshotTerm: 4,
			Voters: []uint64{1, 2, 3}, VotersOutgoing: nil, Learners: []uint64{4},
			Offset: 4096, Done: true, Data: []byte("snapshot tail"),
		},
		&InstallSnapshotReply{Term: 5, From: 3, To: 1, SnapshotIndex: 1000, SnapshotTerm: 4, NextOffset: 4109, Reject: false, Done: true},
		&TimeoutNow{Term: 5, From: 1, To: 2},
		&Heartbeat{Term: 5, From: 1, To: 3, Commit: 99, Context: 17},
		&HeartbeatReply{Term: 5, From: 3, To: 1, Context: 17, LastIndex: 103},
		&ReadIndex{Term: 5, From: 2, To: 1, Context: []byte{0, 0, 0, 0, 0, 0, 0, 42}},
		&ReadIndexReply{Term: 5, From: 1, To: 2, Index: 103, Context: []byte{0, 0, 0, 0, 0, 0, 0, 42}},
		&Request{ClientID: 77, Timestamp: 1001, ReadOnly: false, Op: []byte("put a=1"), Auth: Authenticator{Kind: AuthMACs, MACs: mac(0xA0, 4)}},
		&PrePrepare{
			PrePrepareHeader: PrePrepareHeader{View: 3, Seq: 130, Replica: 3, Digest: digest(0xD1), Auth: Authenticator{Kind: AuthMACs, MACs: mac(0xB0, 4)}},
			Requests: []Request{
				{ClientID: 77, Timestamp: 1001, Op: []byte("put a=1"), Auth: Authenticator{Kind: AuthMACs, MACs: mac(0xA0, 4)}},
				{ClientID: 78, Timestamp: 5, ReadOnly: true, Op: []byte("get a")},
			},
		},
		&Prepare{View: 3, Seq: 130, Replica: 1, Digest: digest(0xD1), Auth: Authenticator{Kind: AuthMACs, MACs: mac(0xE0, 4)}},
		&Commit{View: 3, Seq: 130, Replica: 2, Digest: digest(0xD1), Auth: Authenticator{Kind: AuthMACs, MACs: mac(0xF0, 4)}},
		// A refused read-only reply (flags 0x03): pins the refused bit; it carries no result.
		&PBFTReply{View: 3, Timestamp: 1001, ClientID: 77, Replica: 1, ReadOnly: true, Refused: true, Auth: Authenticator{Kind: AuthShortMACs, MACs: shortMACs(0x50, 1)}},
		&Checkpoint{Seq: 256, Replica: 2, Digest: digest(0xC2), Auth: Authenticator{Kind: AuthSignature, Signature: sig(0x22)}},
		func() Message { vc := sampleViewChange(1); return &vc }(),
		&NewView{
			View: 4, Replica: 0, StableSeq: 128, StableDigest: digest(0xC0),
			V: []ViewChange{sampleViewChange(0), sampleViewChange(1), sampleViewChange(2)},
			O: []PrePrepareHeader{
				{View: 4, Seq: 129, Replica: 0, Auth: Authenticator{Kind: AuthSignature, Signature: sig(0x60)}},
				{View: 4, Seq: 130, Replica: 0, Digest: digest(0xD1), Auth: Authenticator{Kind: AuthSignature, Signature: sig(0x61)}},
			},
			Auth: Authenticator{Kind: AuthSignature, Signature: sig(0x70)},
		},
		&FetchState{Replica: 3, Seq: 256, Digest: digest(0xC2), Offset: 8192, Auth: Authenticator{Kind: AuthNone}},
		&StateChunk{Replica: 1, Seq: 256, Digest: digest(0xC2), Offset: 3, Chunks: 4, Done: true, Data: []byte("state bytes")},
		&FetchBatch{Seq: 130, Replica: 3, Digest: digest(0xD1), Auth: Authenticator{Kind: AuthShortMACs, MACs: shortMACs(0x90, 4)}},
		&Batch{
			PrePrepareHeader: PrePrepareHeader{Seq: 130, Replica: 1, Digest: digest(0xD1), Auth: Authenticator{Kind: AuthShortMACs, MACs: shortMACs(0x91, 1)}},
			Requests:         []Request{{ClientID: 77, Timestamp: 1001, Op: []byte("put a=1"), Auth: Authenticator{Kind: AuthShortMACs, MACs: shortMACs(0xA0, 4)}}},
		},
		&ClientRequest{
			ClientID: 9, FirstSeq: 300,
			Ops: []Op{
				{Kind: OpPut, Key: []byte("k1"), Value: []byte("v1")},
				{Kind: OpGet, Key: []byte("k1")},
				{Kind: OpDelete, Key: []byte("k2")},
				{Kind: OpCAS, Key: []byte("k3"), Expected: []byte("old"), Value: []byte("new")},
			},
		},
		&ClientReply{
			ClientID: 9, FirstSeq: 300, LeaderHint: 1, View: 0, Replica: 0,
			Results: []OpResult{{Status: StatusOK}, {Status: StatusOK, Value: []byte("v1")}, {Status: StatusNotFound}, {Status: StatusCASMismatch, Value: []byte("cur")}},
		},
		&PeerAuth{Nonce: [PeerAuthNonceSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Proof: [PeerAuthProofSize]byte(sig(0x50)[:PeerAuthProofSize])},
	}
}

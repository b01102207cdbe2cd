package pbftcore

import "fmt"

// MsgType names a PBFT message (OSDI '99 §4; TOCS 2002 §4).
type MsgType uint8

// Message types. The numbering is local to pbftcore; the server maps them to wire types.
const (
	MsgRequest    MsgType = iota + 1 // client -> replica(s), or a backup relaying to the primary
	MsgPrePrepare                    // ⟨PRE-PREPARE, v, n, d⟩ + batch, from the primary
	MsgPrepare                       // ⟨PREPARE, v, n, d, i⟩
	MsgCommit                        // ⟨COMMIT, v, n, d, i⟩
	MsgReply                         // ⟨REPLY, v, t, c, i, r⟩
	MsgCheckpoint                    // ⟨CHECKPOINT, n, d, i⟩, signed
	MsgViewChange                    // ⟨VIEW-CHANGE, v+1, h, C, P, Q, i⟩, signed
	MsgNewView                       // ⟨NEW-VIEW, v+1, V, O⟩, signed
	MsgFetchState                    // ask a replica for one chunk of the state at checkpoint n
	MsgStateChunk                    // one chunk of the checkpointed state
	MsgFetchBatch                    // ask for the batch with digest d chosen for n by a NEW-VIEW
	MsgBatch                         // a request batch, answering MsgFetchBatch
)

var msgTypeNames = [...]string{"?", "Request", "PrePrepare", "Prepare", "Commit", "Reply",
	"Checkpoint", "ViewChange", "NewView", "FetchState", "StateChunk", "FetchBatch", "Batch"}

func (t MsgType) String() string {
	if int(t) < len(msgTypeNames) {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Destinations besides a replica index.
const (
	// ToAll multicasts a message to every other replica; it carries one authenticator with an
	// entry for each replica, so the same bytes go to all of them.
	ToAll = -1
	// ToClient sends a reply to the client named by Message.Client.
	ToClient = -2
	// FromClient marks a request sent by a client rather than relayed by a replica.
	FromClient = -3
)

// Digest is a SHA-256 digest.
type Digest = [32]byte

// Request is a client operation. Timestamp orders one client's requests and gives
// exactly-once execution (OSDI '99 §4.1). Auth is the client's authenticator: one MAC per
// replica over the request digest, or an ed25519 signature in SignAll mode.
type Request struct {
	Client    uint64
	Timestamp uint64
	ReadOnly  bool
	Op        []byte
	Auth      []byte
}

// Message is every PBFT message. Fields are used according to Type; the paper's names are in
// the comments. Byte slices and nested slices in messages from Ready alias core memory and
// stay valid until Advance; Step copies whatever it keeps, so the caller may reuse a message
// after Step returns.
type Message struct {
	Type MsgType
	From int // sending replica, or FromClient
	To   int // receiving replica, ToAll or ToClient

	View   uint64 // v (VIEW-CHANGE and NEW-VIEW: the view being moved to)
	Seq    uint64 // n (VIEW-CHANGE: h, the sequence number of the sender's stable checkpoint)
	Digest Digest // d: batch digest, or state digest for CHECKPOINT and STATE-CHUNK

	// Requests: the batch of a PRE-PREPARE (empty = null request) or of a MsgBatch, or the
	// one request of a MsgRequest. NEW-VIEW's O entries carry digests only.
	Requests []Request

	// Reply fields (also Client/Timestamp of the request being answered). Refused marks a
	// read-only reply in which the replica declines to answer from its state (OSDI '99
	// §5.1.3: view change, state transfer, or a prepared request not executed yet); it
	// carries no result, and the client orders the read once f+1 replicas refused.
	Client    uint64
	Timestamp uint64
	ReadOnly  bool
	Refused   bool
	Result    []byte

	// VIEW-CHANGE: Checkpoints is C, the 2f+1 signed CHECKPOINT messages proving h; Prepared
	// is P and PrePrepared is Q (TOCS 2002 §4.5). NEW-VIEW: ViewChanges is V, the view-change
	// messages it was computed from, and PrePrepares is O (sequence numbers above Seq =
	// min-s, Seq carrying the chosen checkpoint). Both carry digests, never batches (TOCS
	// 2002 §5.2), so their size is bounded by N and the window whatever the batches weigh.
	Checkpoints []Message
	Prepared    []PreparedEntry
	PrePrepared []PrePreparedEntry
	ViewChanges []Message
	PrePrepares []Message

	// State transfer: chunk Chunk of Chunks of the state at checkpoint Seq.
	Chunk  uint32
	Chunks uint32
	Data   []byte

	// Auth is the authenticator: a MAC vector (one MACSize entry per replica, indexed by
	// replica), a single MAC for point-to-point messages, or an ed25519 signature.
	Auth []byte
}

// PreparedEntry is one element of a VIEW-CHANGE's P set: the batch with digest Digest
// prepared at the sender with sequence number Seq in view View, the latest view in which
// anything prepared there for Seq. Only the digest travels (TOCS 2002 §5.2): a replica that
// lacks the batch a NEW-VIEW chooses fetches it (MsgFetchBatch), and the digest proves it.
type PreparedEntry struct {
	Seq    uint64
	View   uint64
	Digest Digest
}

// PrePreparedEntry is one element of the Q set: Digest pre-prepared at the sender for Seq in
// view View (the latest view in which that digest pre-prepared there).
type PrePreparedEntry struct {
	Seq    uint64
	View   uint64
	Digest Digest
}

// Executed reports one executed request to observers (the simulator's checkers, a server's
// log); Op aliases core memory until Advance.
type Executed struct {
	Seq       uint64
	Client    uint64
	Timestamp uint64
	Op        []byte
}

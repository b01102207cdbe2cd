package wire

import "github.com/consensusbench/consensusbench/internal/assert"

// Client messages: a batch of key-value operations and the batch of their results. One frame
// carries many operations so the client amortises framing and system calls; operation i has
// sequence number FirstSeq+i, which the replicated state machine uses for exactly-once
// execution per ClientID.

// OpKind is a key-value operation.
type OpKind uint8

// Operation kinds. Zero is invalid so that a forgotten field fails the decode.
const (
	OpPut    OpKind = 1 // set Key to Value
	OpGet    OpKind = 2 // read Key
	OpDelete OpKind = 3 // remove Key
	OpCAS    OpKind = 4 // set Key to Value if its current value equals Expected

	opKindMax = OpCAS
)

// String returns the operation's name.
func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpGet:
		return "get"
	case OpDelete:
		return "delete"
	case OpCAS:
		return "cas"
	}
	return "OpKind(" + itoa(int(k)) + ")"
}

// Op is one operation. Only the fields the kind uses are encoded: Put sends Key and Value,
// Get and Delete send Key, CAS sends Key, Expected and Value; decoding sets the unused ones
// to nil. (Encoding a Get with a Value drops the Value.)
type Op struct {
	Kind     OpKind
	Key      []byte
	Value    []byte
	Expected []byte
}

const opMinSize = sizeU8 + sizeLen

func (o *Op) size() int {
	switch o.Kind {
	case OpPut:
		return sizeU8 + 2*sizeLen + len(o.Key) + len(o.Value)
	case OpCAS:
		return sizeU8 + 3*sizeLen + len(o.Key) + len(o.Value) + len(o.Expected)
	}
	return sizeU8 + sizeLen + len(o.Key)
}

// ClientRequest is a batch of operations from one client. Auth lets PBFT clients
// authenticate the batch (AuthNone for Raft).
type ClientRequest struct {
	ClientID uint64
	FirstSeq uint64
	Ops      []Op
	Auth     Authenticator
}

const clientRequestMinSize = 2*sizeU64 + sizeCount + minAuthSize

// Type implements Message.
func (*ClientRequest) Type() Type { return TypeClientRequest }

// Size implements Message.
func (m *ClientRequest) Size() int {
	n := clientRequestMinSize - minAuthSize + m.Auth.size()
	for i := range m.Ops {
		n += m.Ops[i].size()
	}
	return n
}

// AppendBody implements Message.
func (m *ClientRequest) AppendBody(dst []byte) []byte { return AppendClientRequest(dst, m) }

// Decode implements Message.
func (m *ClientRequest) Decode(body []byte) error { return DecodeClientRequest(body, m) }

// AppendClientRequest appends the encoded body of m to dst. It panics on an Op with an
// invalid Kind (a bug of the sender).
func AppendClientRequest(dst []byte, m *ClientRequest) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.ClientID)
	dst = appendU64(dst, m.FirstSeq)
	dst = appendCount(dst, len(m.Ops))
	for i := range m.Ops {
		o := &m.Ops[i]
		if o.Kind == 0 || o.Kind > opKindMax {
			assert.Failf("wire: ClientRequest op %d has invalid kind %d", i, o.Kind)
		}
		dst = appendU8(dst, uint8(o.Kind))
		dst = appendBytes(dst, o.Key)
		switch o.Kind {
		case OpPut:
			dst = appendBytes(dst, o.Value)
		case OpCAS:
			dst = appendBytes(dst, o.Expected)
			dst = appendBytes(dst, o.Value)
		}
	}
	return appendAuth(dst, &m.Auth)
}

// DecodeClientRequest fills m from body; keys and values alias body, m.Ops reuses its
// capacity.
func DecodeClientRequest(body []byte, m *ClientRequest) error {
	d := decoder{b: body}
	m.ClientID = d.u64()
	m.FirstSeq = d.u64()
	m.Ops = resize(m.Ops, d.count(opMinSize))
	for i := range m.Ops {
		o := &m.Ops[i]
		o.Kind = OpKind(d.u8())
		o.Key = d.bytes()
		o.Value, o.Expected = nil, nil
		switch o.Kind {
		case OpPut:
			o.Value = d.bytes()
		case OpCAS:
			o.Expected = d.bytes()
			o.Value = d.bytes()
		case OpGet, OpDelete:
		default:
			d.fail()
		}
	}
	d.auth(&m.Auth)
	return d.finish()
}

// Status is the outcome of one operation.
type Status uint8

// Statuses.
const (
	StatusOK          Status = 0 // done; Value holds a Get's result
	StatusNotFound    Status = 1 // Get, Delete or CAS of a missing key
	StatusCASMismatch Status = 2 // CAS whose Expected differed; Value holds the current value
	StatusNotLeader   Status = 3 // Raft: this node is not the leader; see LeaderHint
	StatusBusy        Status = 4 // rejected by admission control: retry later
	StatusError       Status = 5 // failed; Value holds a message
	// StatusSessionExpired: the store no longer remembers the client's session for this
	// sequence number (idle past its TTL, or retried after the window moved on). Not applied
	// now; whether an earlier attempt was applied is unknown.
	StatusSessionExpired Status = 6

	statusMax = StatusSessionExpired
)

// String returns the status name.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotFound:
		return "not-found"
	case StatusCASMismatch:
		return "cas-mismatch"
	case StatusNotLeader:
		return "not-leader"
	case StatusBusy:
		return "busy"
	case StatusError:
		return "error"
	case StatusSessionExpired:
		return "session-expired"
	}
	return "Status(" + itoa(int(s)) + ")"
}

// OpResult is the outcome of one operation of a request batch.
type OpResult struct {
	Status Status
	Value  []byte
}

const opResultMinSize = sizeU8 + sizeLen

// ClientReply answers a ClientRequest: Results[i] belongs to operation FirstSeq+i. For Raft,
// LeaderHint names the leader as this node knows it (0 unknown). For PBFT, View and Replica
// let the client match f+1 replies and learn the primary; Auth is the replica's MAC for the
// client.
type ClientReply struct {
	ClientID   uint64
	FirstSeq   uint64
	LeaderHint uint64
	View       uint64
	Replica    uint64
	Results    []OpResult
	Auth       Authenticator
}

const clientReplyMinSize = 5*sizeU64 + sizeCount + minAuthSize

// Type implements Message.
func (*ClientReply) Type() Type { return TypeClientReply }

// Size implements Message.
func (m *ClientReply) Size() int {
	n := clientReplyMinSize - minAuthSize + m.Auth.size() + opResultMinSize*len(m.Results)
	for i := range m.Results {
		n += len(m.Results[i].Value)
	}
	return n
}

// AppendBody implements Message.
func (m *ClientReply) AppendBody(dst []byte) []byte { return AppendClientReply(dst, m) }

// Decode implements Message.
func (m *ClientReply) Decode(body []byte) error { return DecodeClientReply(body, m) }

// AppendClientReply appends the encoded body of m to dst.
func AppendClientReply(dst []byte, m *ClientReply) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.ClientID)
	dst = appendU64(dst, m.FirstSeq)
	dst = appendU64(dst, m.LeaderHint)
	dst = appendU64(dst, m.View)
	dst = appendU64(dst, m.Replica)
	dst = appendCount(dst, len(m.Results))
	for i := range m.Results {
		r := &m.Results[i]
		if r.Status > statusMax {
			assert.Failf("wire: ClientReply result %d has invalid status %d", i, r.Status)
		}
		dst = appendU8(dst, uint8(r.Status))
		dst = appendBytes(dst, r.Value)
	}
	return appendAuth(dst, &m.Auth)
}

// DecodeClientReply fills m from body; values alias body, m.Results reuses its capacity.
func DecodeClientReply(body []byte, m *ClientReply) error {
	d := decoder{b: body}
	m.ClientID = d.u64()
	m.FirstSeq = d.u64()
	m.LeaderHint = d.u64()
	m.View = d.u64()
	m.Replica = d.u64()
	m.Results = resize(m.Results, d.count(opResultMinSize))
	for i := range m.Results {
		r := &m.Results[i]
		r.Status = Status(d.u8())
		if r.Status > statusMax {
			d.fail()
		}
		r.Value = d.bytes()
	}
	d.auth(&m.Auth)
	return d.finish()
}

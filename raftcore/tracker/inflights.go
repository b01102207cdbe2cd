package tracker

// Inflights is a ring of the AppendEntries in flight to one follower, each recorded by its
// last index and payload bytes. It is full when it holds maxCount messages or maxBytes bytes;
// the ring is allocated once at its full size.
type Inflights struct {
	start    int // ring position of the oldest message
	count    int
	bytes    uint64
	maxCount int
	maxBytes uint64
	buf      []inflight
}

type inflight struct {
	index uint64
	bytes uint64
}

// NewInflights returns an empty window of maxCount messages and maxBytes bytes.
func NewInflights(maxCount int, maxBytes uint64) *Inflights {
	if maxCount <= 0 || maxBytes == 0 {
		panic("invariant violated: tracker: inflight limits must be positive")
	}
	return &Inflights{maxCount: maxCount, maxBytes: maxBytes, buf: make([]inflight, maxCount)}
}

// Add records a message whose last entry is index carrying bytes of payload. Indexes must
// increase; the window must not be full.
func (in *Inflights) Add(index, bytes uint64) {
	if in.Full() {
		panic("invariant violated: tracker: Add to a full inflight window")
	}
	if in.count > 0 {
		if last := in.buf[(in.start+in.count-1)%in.maxCount].index; index <= last {
			panic("invariant violated: tracker: inflight indexes must increase")
		}
	}
	in.buf[(in.start+in.count)%in.maxCount] = inflight{index: index, bytes: bytes}
	in.count++
	in.bytes += bytes
}

// FreeLE frees every message whose last index is <= to (the follower acknowledged to).
func (in *Inflights) FreeLE(to uint64) {
	for in.count > 0 {
		f := &in.buf[in.start]
		if f.index > to {
			break
		}
		in.bytes -= f.bytes
		in.count--
		in.start++
		if in.start == in.maxCount {
			in.start = 0
		}
	}
	if in.count == 0 {
		in.start = 0
	}
}

// FreeFirstOne frees the oldest message in flight (its acknowledgement may be lost).
func (in *Inflights) FreeFirstOne() {
	if in.count > 0 {
		in.FreeLE(in.buf[in.start].index)
	}
}

// Full reports whether no further message may be sent. A window holding bytes >= maxBytes
// is full; one large message may exceed it so a follower is never starved.
func (in *Inflights) Full() bool { return in.count == in.maxCount || in.bytes >= in.maxBytes }

// Count is the number of messages in flight.
func (in *Inflights) Count() int { return in.count }

// Bytes is the payload in flight.
func (in *Inflights) Bytes() uint64 { return in.bytes }

// Reset empties the window.
func (in *Inflights) Reset() { in.start, in.count, in.bytes = 0, 0, 0 }

package pbftcore

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Limits and defaults. Every bound the core applies is here or in Config.
const (
	// MaxReplicas bounds n; quorums are tracked in a uint64 bitmask of senders.
	MaxReplicas = 64
	// MACSize is the length of one authenticator entry: HMAC-SHA256 truncated to 128 bits.
	MACSize = 16
	// DefaultCheckpointInterval is K, the paper's experimental value (OSDI '99 §4.3).
	DefaultCheckpointInterval = 128
	// DefaultMaxBatchRequests and DefaultMaxBatchBytes bound one pre-prepare's batch.
	DefaultMaxBatchRequests = 64
	DefaultMaxBatchBytes    = 256 << 10
	// DefaultMaxOpBytes bounds one request's operation and DefaultMaxResultBytes a result.
	DefaultMaxOpBytes     = 4 << 10
	DefaultMaxResultBytes = 4 << 10
	// DefaultMaxPendingRequests bounds requests queued at the primary or waiting at a backup.
	DefaultMaxPendingRequests = 4096
	// DefaultRequestTimeoutTicks is the base view-change timer (OSDI '99 §4.4); it doubles
	// per consecutive view change.
	DefaultRequestTimeoutTicks = 40
	// MaxTimeoutDoublings caps the doubling so the timer cannot overflow.
	MaxTimeoutDoublings = 10
	// DefaultRetransmitTicks is how often a replica with unfinished work re-sends its own
	// latest protocol messages (lost-message recovery, Castro's thesis §5.2).
	DefaultRetransmitTicks = 10
	// DefaultMaxStateChunkBytes bounds one state-transfer chunk; MaxStateChunks bounds the
	// number of chunks of one checkpoint.
	DefaultMaxStateChunkBytes = 64 << 10
	MaxStateChunks            = 1 << 16
	// DefaultMaxStateBytes bounds the state a replica accepts in one state transfer (all
	// chunks together): the chunks are held until the digest can be checked, so without it a
	// faulty source could fill memory.
	DefaultMaxStateBytes = 1 << 30
	// MaxPrePreparedPerSeq bounds the Q entries kept per sequence number (one per digest,
	// latest view); older views are evicted first.
	MaxPrePreparedPerSeq = 4
	// MaxWindowSize bounds L. VIEW-CHANGE and NEW-VIEW carry digests only, so their size
	// grows with n and L alone: about 260*L bytes per VIEW-CHANGE (P and Q entries) and n of
	// them in a NEW-VIEW, which at n = MaxReplicas and L = MaxWindowSize is about 34 MB,
	// inside a 64 MiB frame (the server's test builds that NEW-VIEW and checks).
	MaxWindowSize = 2048
	// MaxRetainedOutputBytes and MaxRetainedOutputRequests bound the output buffers a Node
	// keeps for reuse after Advance: larger ones (from a rare huge Ready) are dropped, so
	// steady-state memory does not remember the largest Ready ever produced.
	MaxRetainedOutputBytes    = 8 << 20
	MaxRetainedOutputRequests = 1 << 14
)

// App is the replicated application, called synchronously by the core. Implementations
// must be deterministic: every correct replica that executes the same requests in the same
// order must produce the same results and state digests.
type App interface {
	// Execute applies a request ordered at sequence number seq and appends its result to dst.
	Execute(seq uint64, req *Request, dst []byte) []byte
	// Read answers a read-only operation from the current state (no change), appending the
	// result to dst.
	Read(op []byte, dst []byte) []byte
	// Checkpoint records the state after executing seq (which may be copy-on-write) and
	// returns its digest. The app must be able to serve StateChunk for seq until
	// DiscardBelow(s) with s > seq.
	Checkpoint(seq uint64) Digest
	// StateChunk appends chunk i of the state recorded at checkpoint seq to dst and returns
	// it with the number of chunks; ok is false if seq is not held.
	StateChunk(seq uint64, i int, dst []byte) (data []byte, chunks int, ok bool)
	// StateDigest computes the digest a Checkpoint would return for the state given as chunks,
	// without installing it.
	StateDigest(chunks [][]byte) Digest
	// Restore replaces the state with the one given as chunks (checkpoint seq).
	Restore(seq uint64, chunks [][]byte)
	// DiscardBelow drops recorded checkpoints below seq.
	DiscardBelow(seq uint64)
}

// AsyncCheckpointer is an App that digests its checkpoints off the driver's goroutine (a
// whole-state digest takes milliseconds, and the replica processes nothing meanwhile). The
// core calls BeginCheckpoint(seq) instead of Checkpoint when it executes a checkpoint's
// sequence number; the App records the state at seq (a copy, or copy-on-write) and the
// driver hands its digest in with Node.CheckpointDigest when ready. Until then the
// replica's own CHECKPOINT for seq is not sent; seq may become stable meanwhile on 2f+1
// others' messages. Checkpoint is still called, synchronously, while New replays a log.
type AsyncCheckpointer interface {
	App
	BeginCheckpoint(seq uint64)
}

// Config configures one replica.
type Config struct {
	ID   int // this replica, 0..N-1
	N    int // replicas; f = (N-1)/3
	Keys *Keys
	App  App
	// Rand is the only randomness (choice of state-transfer source); it must be seeded.
	Rand *rand.Rand

	CheckpointInterval uint64 // K
	WindowSize         uint64 // L; H = h + L. Must be a multiple of K, at least 2K.

	MaxBatchRequests   int // requests per pre-prepare
	MaxBatchBytes      int // op bytes per pre-prepare
	BatchFlushTicks    int // a partial batch waits at most this many ticks (0: flush every tick)
	MaxInflightBatches int // pre-prepared but not executed batches at the primary (<= L)
	MaxPendingRequests int
	MaxOpBytes         int
	MaxResultBytes     int
	MaxStateChunkBytes int
	MaxStateBytes      int // all chunks of one state transfer together

	RequestTimeoutTicks int // base view-change timer
	RetransmitTicks     int
	// SignAll authenticates every message with ed25519 signatures instead of MACs, to show
	// what signatures cost.
	SignAll bool
	// Start, when not nil, starts the replica at a durable stable checkpoint instead of at
	// sequence number 0 (restart.go); App must already hold the state at Start.Seq.
	Start *StartState
	// Log, when not nil, holds the records of Ready.Persist logged since Start (or since the
	// replica first started), in log order: New rebuilds the protocol state from them
	// (persist.go). LogSynced says each Ready's records were durable before its messages
	// went out (the driver's fsync policy); without it a crash may have lost the tail, so
	// reads stay refused until the replica has passed its old high watermark.
	Log       []Record
	LogSynced bool
}

// DefaultConfig fills every limit with its default.
func DefaultConfig(id, n int, keys *Keys, app App, rng *rand.Rand) Config {
	return Config{
		ID: id, N: n, Keys: keys, App: app, Rand: rng,
		CheckpointInterval:  DefaultCheckpointInterval,
		WindowSize:          2 * DefaultCheckpointInterval,
		MaxBatchRequests:    DefaultMaxBatchRequests,
		MaxBatchBytes:       DefaultMaxBatchBytes,
		BatchFlushTicks:     0,
		MaxInflightBatches:  2 * DefaultCheckpointInterval,
		MaxPendingRequests:  DefaultMaxPendingRequests,
		MaxOpBytes:          DefaultMaxOpBytes,
		MaxResultBytes:      DefaultMaxResultBytes,
		MaxStateChunkBytes:  DefaultMaxStateChunkBytes,
		MaxStateBytes:       DefaultMaxStateBytes,
		RequestTimeoutTicks: DefaultRequestTimeoutTicks,
		RetransmitTicks:     DefaultRetransmitTicks,
	}
}

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("pbftcore: invalid config")

func (c *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.N < 4 || c.N > MaxReplicas:
		return bad("N=%d not in [4, %d]", c.N, MaxReplicas)
	case c.ID < 0 || c.ID >= c.N:
		return bad("ID=%d not in [0, N)", c.ID)
	case c.Keys == nil:
		return bad("Keys missing")
	case c.Keys.ID != c.ID || len(c.Keys.PeerSecrets) != c.N || len(c.Keys.ReplicaPublic) != c.N:
		return bad("Keys do not belong to replica %d of %d", c.ID, c.N)
	case len(c.Keys.ClientSecrets) != len(c.Keys.ClientPublic):
		return bad("client secrets and public keys differ in number")
	case c.App == nil:
		return bad("App missing")
	case c.Rand == nil:
		return bad("Rand missing")
	case c.CheckpointInterval == 0:
		return bad("CheckpointInterval is 0")
	case c.WindowSize < 2*c.CheckpointInterval || c.WindowSize%c.CheckpointInterval != 0 || c.WindowSize > MaxWindowSize:
		return bad("WindowSize=%d must be a multiple of K=%d, at least 2K and at most %d", c.WindowSize, c.CheckpointInterval, MaxWindowSize)
	case c.MaxBatchRequests < 1 || c.MaxBatchBytes < c.MaxOpBytes:
		return bad("batch limits (%d requests, %d bytes) below one request of %d bytes", c.MaxBatchRequests, c.MaxBatchBytes, c.MaxOpBytes)
	case c.BatchFlushTicks < 0:
		return bad("BatchFlushTicks negative")
	case c.MaxInflightBatches < 1 || uint64(c.MaxInflightBatches) > c.WindowSize:
		return bad("MaxInflightBatches=%d not in [1, L=%d]", c.MaxInflightBatches, c.WindowSize)
	case c.MaxPendingRequests < c.MaxBatchRequests:
		return bad("MaxPendingRequests below MaxBatchRequests")
	case c.MaxStateBytes < c.MaxStateChunkBytes:
		return bad("MaxStateBytes=%d below MaxStateChunkBytes=%d", c.MaxStateBytes, c.MaxStateChunkBytes)
	case c.MaxOpBytes < 1 || c.MaxResultBytes < 1 || c.MaxStateChunkBytes < 1:
		return bad("byte limits must be positive")
	case c.RequestTimeoutTicks < 2 || c.RetransmitTicks < 1:
		return bad("RequestTimeoutTicks must be >= 2 and RetransmitTicks >= 1")
	}
	return nil
}

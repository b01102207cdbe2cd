package benchtest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/consensusbench/consensusbench/bench"
)

// minService is the least clock time a batch takes: on the simulated clock a closed loop
// against a zero-latency target would otherwise never move time and never end.
const minService = time.Microsecond

// Window is a span of clock time [From, To).
type Window struct{ From, To time.Duration }

func (w Window) contains(t time.Duration) bool { return t >= w.From && t < w.To }

// ErrInjected is what Do returns inside an error window.
var ErrInjected = errors.New("benchtest: injected error")

// Target is a fake key-value cluster. A batch takes Service (plus Batch x PerOp) of clock
// time; a batch that arrives inside a stall window is held until the window ends (a leader
// election, a GC pause); with Capacity > 0 batches queue behind one another at that many ops/s.
// Reads see earlier writes. Safe for concurrent use.
type Target struct {
	Clock    bench.Clock
	Service  time.Duration
	PerOp    time.Duration
	Capacity float64 // ops/s; 0 is unlimited
	Stalls   []Window
	Errors   []Window

	mu       sync.Mutex
	busy     time.Duration // capacity model: the server is busy until then
	data     map[string][]byte
	opened   int
	closed   int
	batches  int64
	maxBatch int
}

// Open returns a session; the fake keeps no per-session state.
func (t *Target) Open(ctx context.Context, worker int) (bench.Session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.opened++
	return &session{t: t}, nil
}

// Close marks the target closed.
func (t *Target) Close() error { return nil }

// Stats returns sessions opened and closed and batches served.
func (t *Target) Stats() (opened, closed int, batches int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.opened, t.closed, t.batches
}

type session struct{ t *Target }

func (s *session) Close() error {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	s.t.closed++
	return nil
}

func (s *session) Do(ctx context.Context, ops []bench.Op) error {
	t := s.t
	now := t.Clock.Now()
	for _, w := range t.Errors {
		if w.contains(now) {
			// A failure takes the service time too: a closed loop on the simulated clock
			// would otherwise spin at one instant.
			if err := t.Clock.SleepUntil(ctx, now+max(t.Service, minService)); err != nil {
				return err
			}
			return ErrInjected
		}
	}
	start := now
	for _, w := range t.Stalls {
		if w.contains(start) {
			start = w.To
		}
	}
	t.mu.Lock()
	if t.Capacity > 0 {
		start = max(start, t.busy)
		t.busy = start + time.Duration(float64(len(ops))*1e9/t.Capacity)
		start = t.busy
	}
	if t.data == nil {
		t.data = make(map[string][]byte)
	}
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case bench.OpWrite:
			t.data[string(op.Key)] = append([]byte(nil), op.Value...)
		case bench.OpRead:
			v, ok := t.data[string(op.Key)]
			op.Out = append(op.Out[:0], v...)
			op.Found = ok
		}
	}
	t.batches++
	t.maxBatch = max(t.maxBatch, len(ops))
	t.mu.Unlock()
	done := start + t.Service + time.Duration(len(ops))*t.PerOp
	return t.Clock.SleepUntil(ctx, max(done, now+minService))
}

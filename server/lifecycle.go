package server

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
)

// lifecycle is the plumbing every replica shares: its driver goroutine's start and stop,
// the fatal error that ends it, and the WAL's durable notifications. It decides no protocol
// logic.
type lifecycle struct {
	log *slog.Logger

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	running  atomic.Bool // the driver was started (Stop waits for it only then)
	fatal    atomic.Pointer[error]

	// durableSeq is the WAL's newest durable call; durableErr its fail-stop error; durableC
	// wakes the driver after either changed.
	durableSeq atomic.Uint64
	durableErr atomic.Pointer[error]
	durableC   chan struct{}
}

func newLifecycle(log *slog.Logger) lifecycle {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return lifecycle{log: log, stop: make(chan struct{}), done: make(chan struct{}), durableC: make(chan struct{}, 1)}
}

// Done is closed when the driver has stopped (after Stop, or after a fatal error).
func (l *lifecycle) Done() <-chan struct{} { return l.done }

// Err returns the fatal error that stopped the replica, if any.
func (l *lifecycle) Err() error {
	if e := l.fatal.Load(); e != nil {
		return *e
	}
	return nil
}

func (l *lifecycle) setFatal(err error) {
	l.fatal.CompareAndSwap(nil, &err)
	l.log.Error("replica stopping on fatal error", "err", err)
}

// onDurable runs on the WAL's writer goroutine. It must not block on the driver (the driver
// may itself be blocked in Append waiting for the writer), so it only records and pokes.
func (l *lifecycle) onDurable(d storage.Durable) {
	if d.Err != nil {
		err := d.Err
		l.durableErr.Store(&err)
	} else {
		l.durableSeq.Store(d.Seq)
	}
	select {
	case l.durableC <- struct{}{}:
	default:
	}
}

// shutdown stops the driver (if it was started), then flushes and closes the WAL and closes
// the transport. It is safe to call more than once.
func (l *lifecycle) shutdown(wal *storage.WAL, tr *transport.Transport) error {
	l.stopOnce.Do(func() { close(l.stop) })
	if l.running.Load() {
		<-l.done
	}
	werr := wal.Close()
	terr := tr.Close()
	if err := l.Err(); err != nil {
		return err
	}
	if werr != nil && !errors.Is(werr, storage.ErrClosed) {
		return werr
	}
	return terr
}

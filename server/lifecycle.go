package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
)

// lifecycle is the plumbing every replica shares: its driver goroutine's start and stop,
// the fatal error that ends it, and the WAL's durable notifications. It decides no protocol
// logic.
type lifecycle struct {
	log *slog.Logger
	met *Metrics
	tr  *transport.Transport
	wal *storage.WAL

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

	lockFile *os.File // holds the data directory's flock while the replica lives

	// background counts goroutines that write into the data directory beside the driver
	// (snapshot writers); Stop waits for them before it releases the directory.
	background sync.WaitGroup
}

func newLifecycle(log *slog.Logger, met *Metrics) lifecycle {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if met == nil {
		met = NewMetrics()
	}
	return lifecycle{log: log, met: met, stop: make(chan struct{}), done: make(chan struct{}), durableC: make(chan struct{}, 1)}
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

// start starts the transport, then the driver goroutine run.
func (l *lifecycle) start(run func()) error {
	if err := l.tr.Start(); err != nil {
		return err
	}
	l.running.Store(true)
	go run()
	return nil
}

// Metrics returns the replica's metric registry.
func (l *lifecycle) Metrics() *Metrics { return l.met }

// SetPeerAddr tells the transport where peer id listens (in-process clusters bind port 0).
func (l *lifecycle) SetPeerAddr(id uint64, addr string) error { return l.tr.SetPeerAddr(id, addr) }

// PeerAddr returns the bound peer listener address (after Start).
func (l *lifecycle) PeerAddr() string { return l.tr.PeerAddr() }

// ClientAddr returns the bound client listener address (after Start).
func (l *lifecycle) ClientAddr() string { return l.tr.ClientAddr() }

// SetPartition drops all traffic to and from peers (fault injection; empty heals).
func (l *lifecycle) SetPartition(peers []uint64) { l.tr.SetPartition(peers) }

// Stop stops the driver (if it was started), then flushes and closes the WAL and closes the
// transport. It is safe to call more than once.
func (l *lifecycle) Stop() error {
	wal, tr := l.wal, l.tr
	l.stopOnce.Do(func() { close(l.stop) })
	if l.running.Load() {
		<-l.done
	}
	l.background.Wait()
	werr := wal.Close()
	terr := tr.Close()
	l.releaseDataDir()
	if err := l.Err(); err != nil {
		return err
	}
	if werr != nil && !errors.Is(werr, storage.ErrClosed) {
		return werr
	}
	return terr
}

// lockFileName is the file in a replica's data directory that an exclusive flock holds
// while the replica runs, so that two processes (or two replicas in one process) can never
// write the same WAL.
const lockFileName = "LOCK"

// lockDataDir takes the data directory's lock; release drops it.
func (l *lifecycle) lockDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("server: data directory %s is in use by another replica (%s is locked)", dir, lockFileName)
		}
		return fmt.Errorf("server: lock %s: %w", filepath.Join(dir, lockFileName), err)
	}
	l.lockFile = f
	return nil
}

// releaseDataDir drops the data directory's lock (closing the file releases the flock).
func (l *lifecycle) releaseDataDir() {
	if l.lockFile != nil {
		l.lockFile.Close()
		l.lockFile = nil
	}
}

package client

import (
	"context"
	"sync"
	"time"
)

// SharedConns is a set of connections, one per replica, that several RaftClients use
// together (Config.Shared). Each client keeps its own ID, sequence numbers and leader; the
// connection matches replies to calls by client ID and sequence number.
//
// Sharing is what makes one operation per request cheap: concurrent callers' frames leave
// in one write, the replica reads them in one read and answers them in one writev, so the
// system calls per request on both sides fall with the number of clients per connection.
// etcd's benchmark tool shares connections the same way (its --conns and --clients).
//
// A broken connection fails the calls in flight on it, whoever made them, and the next
// call dials a new one.
type SharedConns struct {
	dialMu sync.Mutex // one dial at a time, so concurrent first calls make one connection
	mu     sync.Mutex
	conns  map[uint64]*conn
	closed bool
}

// NewSharedConns returns an empty set; connections are made on first use.
func NewSharedConns() *SharedConns { return &SharedConns{conns: map[uint64]*conn{}} }

// lookup returns the connection to node id, if the set has one (maybe closed).
func (s *SharedConns) lookup(id uint64) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[id]
}

// get returns the live connection to node id, dialling one if there is none (its caller,
// RaftClient.connTo, looked it up first).
func (s *SharedConns) get(ctx context.Context, id uint64, addr string, maxFrame int, dialTimeout, writeTimeout time.Duration) (*conn, error) {
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	if cn := s.lookup(id); cn != nil && !cn.isClosed() {
		return cn, nil // dialled while this caller waited
	}
	cn, err := dialConn(ctx, id, addr, maxFrame, dialTimeout, writeTimeout)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cn.close()
		return nil, ErrClosed
	}
	s.conns[id] = cn
	return cn, nil
}

// Close closes every connection; calls in flight on them fail. The clients that used the
// set should be closed first.
func (s *SharedConns) Close() error {
	s.mu.Lock()
	conns := s.conns
	s.conns, s.closed = map[uint64]*conn{}, true
	s.mu.Unlock()
	for _, cn := range conns {
		cn.close()
	}
	return nil
}

package raftcore

// Node is one Raft replica's state machine. Not safe for concurrent use.
type Node struct {
	id   uint64
	lead uint64
	role Role
}

func newNode(cfg Config) *Node                          { panic("raftcore: under construction") }
func (n *Node) tick()                                   { panic("raftcore: under construction") }
func (n *Node) step(m *Message) error                   { panic("raftcore: under construction") }
func (n *Node) propose(batch [][]byte) error            { panic("raftcore: under construction") }
func (n *Node) proposeConfChange(cc ConfChange) error   { panic("raftcore: under construction") }
func (n *Node) transferLeader(to uint64) error          { panic("raftcore: under construction") }
func (n *Node) campaignNow()                            { panic("raftcore: under construction") }
func (n *Node) readIndex(rctx uint64) error             { panic("raftcore: under construction") }
func (n *Node) hasReady() bool                          { panic("raftcore: under construction") }
func (n *Node) ready() Ready                            { panic("raftcore: under construction") }
func (n *Node) advance()                                { panic("raftcore: under construction") }
func (n *Node) ackPersisted(mark PersistMark)           { panic("raftcore: under construction") }
func (n *Node) reportSnapshot(i uint64, d []byte) error { panic("raftcore: under construction") }
func (n *Node) status() Status                          { panic("raftcore: under construction") }

package transport

import (
	"github.com/consensusbench/consensusbench/wire"
)

// appendHello appends this node's PeerHello frame (the dialer's opening frame and the
// acceptor's answer).
func appendHello(dst []byte, cfg *Config) []byte {
	h := wire.PeerHello{
		ClusterID:       cfg.ClusterID,
		NodeID:          cfg.NodeID,
		Protocol:        cfg.Protocol,
		ProtocolVersion: ProtocolVersion,
	}
	return wire.AppendMessageFrame(dst, 0, &h)
}

func decodeHello(body []byte) (wire.PeerHello, error) {
	var h wire.PeerHello
	err := wire.DecodePeerHello(body, &h)
	return h, err
}

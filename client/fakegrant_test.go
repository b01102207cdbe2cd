package client

import (
	"net"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/wire"
)

// fakeGrant answers a claim (a Timestamp-0 request) on behalf of fake replica i, as every
// correct replica of an empty cluster would: a claim gets [0, Count) or its fixed range, a
// renewal its lease, a release Released. It reports false for any other request.
func fakeGrant(kr *pbftcore.Keyring, i int, nc net.Conn, req *wire.Request) bool {
	if req.Timestamp != 0 {
		return false
	}
	var cl pbftcore.Claim
	g := pbftcore.Grant{Status: pbftcore.Invalid}
	if pbftcore.DecodeClaim(req.Op, &cl) == nil {
		g = pbftcore.Grant{Status: pbftcore.Granted, Nonce: cl.Nonce, Count: cl.Count, LeaseUntil: cl.Now + cl.Lease, Clock: cl.Now}
		switch cl.Kind {
		case pbftcore.ClaimAt:
			g.Start = cl.Start
		case pbftcore.ClaimRelease:
			g = pbftcore.Grant{Status: pbftcore.Released, Nonce: cl.Nonce, Clock: cl.Now}
		}
	}
	m := pbftcore.Message{Type: pbftcore.MsgReply, From: i, To: pbftcore.ToClient, Client: req.ClientID,
		Result: pbftcore.AppendGrant(nil, &g)}
	m.Auth = pbftcore.NewAuthenticator(kr.Replica(i), false).Seal(&m, nil)
	_, _ = nc.Write(wire.AppendMessageFrame(nil, 0, &wire.PBFTReply{ClientID: m.Client, Replica: uint64(i), Result: m.Result,
		Auth: wire.Authenticator{Kind: wire.AuthShortMACs, MACs: m.Auth}}))
	return true
}

package clusterspec

import (
	"strings"
	"testing"
	"time"
)

func TestParseClusterSpec(t *testing.T) {
	good := LocalClusterSpec("raft", 3, 7100)
	good.Tick = Duration(5 * time.Millisecond)
	b, err := good.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseClusterSpec(b)
	if err != nil {
		t.Fatalf("round trip: %v\n%s", err, b)
	}
	if s.TickInterval() != 5*time.Millisecond || len(s.Nodes) != 3 || s.Nodes[2].ClientAddr != "127.0.0.1:7105" {
		t.Fatalf("round trip changed the spec: %+v", s)
	}
	if n, ok := s.Node(2); !ok || n.PeerAddr != "127.0.0.1:7101" {
		t.Fatalf("Node(2) = %+v, %v", n, ok)
	}
}

func TestClusterSpecErrorsNameTheProblem(t *testing.T) {
	cases := []struct {
		name, json, want string
	}{
		{"unknown field", `{"protocol":"raft","nodez":[]}`, `unknown field "nodez"`},
		{"trailing data", `{"protocol":"raft","nodes":[{"id":1,"peer_addr":"a:1","client_addr":"a:2"}]} {"protocol":"pbft"}`, "after the JSON object"},
		{"protocol", `{"protocol":"paxos","nodes":[{"id":1,"peer_addr":"a:1","client_addr":"a:2"}]}`, `protocol "paxos"`},
		{"pbft size", `{"protocol":"pbft","nodes":[{"id":1,"peer_addr":"a:1","client_addr":"a:2"}]}`, "at least 4 nodes"},
		{"zero id", `{"protocol":"raft","nodes":[{"id":0,"peer_addr":"a:1","client_addr":"a:2"}]}`, "id must be nonzero"},
		{"dup id", `{"protocol":"raft","nodes":[{"id":1,"peer_addr":"a:1","client_addr":"a:2"},{"id":1,"peer_addr":"a:3","client_addr":"a:4"}]}`, "id 1 repeated"},
		{"bad addr", `{"protocol":"raft","nodes":[{"id":1,"peer_addr":"nope","client_addr":"a:2"}]}`, `peer_addr "nope"`},
		{"dup addr", `{"protocol":"raft","nodes":[{"id":1,"peer_addr":"a:1","client_addr":"a:1"}]}`, "used twice"},
		{"tick", `{"protocol":"raft","tick":"1us","nodes":[{"id":1,"peer_addr":"a:1","client_addr":"a:2"}]}`, "tick 1µs outside"},
		{"reads", `{"protocol":"raft","raft":{"reads":"dirty"},"nodes":[{"id":1,"peer_addr":"a:1","client_addr":"a:2"}]}`, `raft.reads "dirty"`},
		{"auth", `{"protocol":"raft","pbft":{"auth":"none"},"nodes":[{"id":1,"peer_addr":"a:1","client_addr":"a:2"}]}`, `pbft.auth "none"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseClusterSpec([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

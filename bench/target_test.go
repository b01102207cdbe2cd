package bench

import (
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string // empty: valid
	}{
		{"targets", Spec{Protocol: "raft", Targets: []string{"a:1"}}, ""},
		{"local durable", Spec{Protocol: "pbft", Local: 4, Sync: "always"}, ""},
		{"cluster file", Spec{Protocol: "raft", ClusterFile: "c"}, ""},
		{"no cluster", Spec{Protocol: "raft"}, "exactly once"},
		{"two clusters", Spec{Protocol: "raft", Targets: []string{"a:1"}, Local: 3}, "exactly once"},
		{"protocol", Spec{Protocol: "paxos", Local: 3}, "protocol"},
		{"sync", Spec{Protocol: "raft", Local: 3, Sync: "sometimes"}, "sync"},
	}
	for _, c := range cases {
		err := c.spec.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error naming %q", c.name, err, c.want)
		}
	}
	if OpRead.String() != "read" || OpWrite.String() != "write" || OpKind(9).String() != "OpKind(9)" {
		t.Error("OpKind names")
	}
}

package bench

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestRegisterSystem(t *testing.T) {
	open := func(context.Context, Spec) (Target, error) { return nil, nil }
	s := System{Name: "peer-under-test", Version: "v1.2.3", Protocol: "raft", Sync: "always", Reads: []string{"safe"}, Open: open}
	RegisterSystem(s)
	got, ok := LookupSystem(s.Name)
	if !ok || got.Version != "v1.2.3" {
		t.Fatalf("LookupSystem = %+v, %v", got, ok)
	}
	if names := SystemNames(); names[0] != SystemOurs || !slices.Contains(names, s.Name) {
		t.Fatalf("SystemNames = %v", names)
	}
	if _, ok := LookupSystem("not-registered"); ok {
		t.Fatal("LookupSystem found a system nobody registered")
	}
	bad := map[string]System{
		"duplicate":  s,
		"ours":       {Name: SystemOurs, Version: "v1", Protocol: "raft", Sync: "always", Reads: []string{"safe"}, Open: open},
		"no version": {Name: "x1", Protocol: "raft", Sync: "always", Reads: []string{"safe"}, Open: open},
		"protocol":   {Name: "x2", Version: "v1", Protocol: "paxos", Sync: "always", Reads: []string{"safe"}, Open: open},
		"sync":       {Name: "x3", Version: "v1", Protocol: "raft", Sync: "sometimes", Reads: []string{"safe"}, Open: open},
		"reads":      {Name: "x4", Version: "v1", Protocol: "raft", Sync: "always", Open: open},
		"no open":    {Name: "x5", Version: "v1", Protocol: "raft", Sync: "always", Reads: []string{"safe"}},
	}
	for name, sys := range bad {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: RegisterSystem did not panic", name)
				}
			}()
			RegisterSystem(sys)
		}()
	}
}

func TestSystemID(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{}, SystemOurs}, // a result from before the field existed
		{Spec{System: SystemOurs}, SystemOurs},
		{Spec{System: "etcd", SystemVersion: "v3.7.3"}, "etcd-v3.7.3"},
		{Spec{System: "etcd"}, "etcd"},
	} {
		if got := c.spec.SystemID(); got != c.want {
			t.Errorf("%+v: SystemID %q, want %q", c.spec, got, c.want)
		}
	}
	if strings.Contains(SystemOurs, "-") {
		t.Fatal("SystemOurs must not look like name-version")
	}
}

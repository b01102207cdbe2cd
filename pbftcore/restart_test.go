package pbftcore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/pbftcore/kvapp"
)

// PBFT §4.3 (OSDI '99): a stable checkpoint is proven by 2f+1 signed CHECKPOINTs from
// distinct replicas for (n, d). A restart (Config.Start) installs only a state that such a
// proof certifies and that the App and client table actually match.
func TestStartRejectsUnprovenCheckpoint(t *testing.T) {
	h, err := newHarness(map[string]string{"k": "4", "clients": "1"})
	if err != nil {
		t.Fatal(err)
	}
	h.out = &strings.Builder{}
	for _, v := range []string{"1", "2", "3", "4"} {
		if err := h.run("put", map[string]string{"c": "0", "k": "x", "v": v}); err != nil {
			t.Fatal(err)
		}
	}
	d := h.durable[1]
	if d.cp.Seq != 4 || len(d.cp.Proof) < 3 {
		t.Fatalf("durable checkpoint of r1 = n=%d with %d proofs, want n=4 with 2f+1", d.cp.Seq, len(d.cp.Proof))
	}
	start := func(mut func(s *pbftcore.StartState, app *kvapp.App)) error {
		app := kvapp.New()
		app.Restore(d.cp.Seq, [][]byte{d.state})
		cfg := h.config(1, app)
		s := pbftcore.StartState{Seq: d.cp.Seq, View: d.cp.View, ViewActive: d.cp.ViewActive, Digest: d.cp.Digest,
			Proof: append([]pbftcore.Message(nil), d.cp.Proof...), ClientTable: append([]byte(nil), d.cp.ClientTable...)}
		mut(&s, app)
		cfg.Start = &s
		_, err := pbftcore.New(cfg)
		return err
	}
	if err := start(func(*pbftcore.StartState, *kvapp.App) {}); err != nil {
		t.Fatalf("valid start rejected: %v", err)
	}
	cases := map[string]func(s *pbftcore.StartState, app *kvapp.App){
		"2f proofs": func(s *pbftcore.StartState, _ *kvapp.App) { s.Proof = s.Proof[:2] },
		"duplicate sender": func(s *pbftcore.StartState, _ *kvapp.App) {
			s.Proof[1] = s.Proof[0]
		},
		"forged signature": func(s *pbftcore.StartState, _ *kvapp.App) {
			s.Proof[0].Auth = append([]byte(nil), s.Proof[0].Auth...)
			s.Proof[0].Auth[0] ^= 1
		},
		"other digest":  func(s *pbftcore.StartState, _ *kvapp.App) { s.Digest[0] ^= 1 },
		"other seq":     func(s *pbftcore.StartState, _ *kvapp.App) { s.Seq = 8 },
		"zero seq":      func(s *pbftcore.StartState, _ *kvapp.App) { s.Seq = 0 },
		"client table":  func(s *pbftcore.StartState, _ *kvapp.App) { s.ClientTable[len(s.ClientTable)-1] ^= 1 },
		"short table":   func(s *pbftcore.StartState, _ *kvapp.App) { s.ClientTable = s.ClientTable[:3] },
		"app state off": func(_ *pbftcore.StartState, app *kvapp.App) { app.Restore(4, [][]byte{nil}) },
	}
	for name, mut := range cases {
		if err := start(mut); !errors.Is(err, pbftcore.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
}

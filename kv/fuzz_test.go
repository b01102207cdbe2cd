package kv

import (
	"bytes"
	"testing"
)

// FuzzRestore feeds arbitrary streams to Restore (a PBFT replica restores state fetched
// from peers): it must fail cleanly or produce a state whose snapshot reproduces the input.
func FuzzRestore(f *testing.F) {
	s, _ := New(Config{})
	s.Apply(1, &Op{Kind: OpPut, Key: []byte("a"), Value: []byte("1")})
	s.Apply(2, &Op{Kind: OpPut, Key: []byte("b"), Value: []byte("22"), ClientID: 5, Seq: 1})
	var buf bytes.Buffer
	s.Snapshot(&buf)
	f.Add(buf.Bytes())
	empty, _ := New(Config{})
	var eb bytes.Buffer
	empty.Snapshot(&eb)
	f.Add(eb.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _ := New(Config{MaxValueBytes: 1 << 16})
		if err := r.Restore(bytes.NewReader(data)); err != nil {
			return
		}
		var out bytes.Buffer
		if _, err := r.Snapshot(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data[:out.Len()]) {
			t.Fatal("accepted snapshot does not reproduce its own bytes")
		}
	})
}

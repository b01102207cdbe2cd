package server

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/consensusbench/consensusbench/kv"
)

// A checkpoint's serialized state that the background snapshot writer is reading
// (kvApp.writing) is never recycled for a later checkpoint once discarded: the bytes the
// writer holds stay those of its checkpoint while later checkpoints of a changed store are
// taken. Unpinned buffers are recycled (the allocation the spares exist to save).
func TestPBFTAppKeepsBuffersBeingWritten(t *testing.T) {
	store, err := kv.New(kv.Config{NoDigest: true})
	if err != nil {
		t.Fatal(err)
	}
	a := newKVApp(store)
	put := func(seq uint64, v string) {
		for i := range 200 {
			store.Apply(seq, &kv.Op{Kind: kv.OpPut, Key: fmt.Appendf(nil, "k%03d", i), Value: []byte(v)})
		}
	}
	put(1, "first")
	a.Checkpoint(8)
	held, _ := a.snapshot(8)
	want := bytes.Clone(held.data)
	a.writing[8] = true // handed to the writer
	for h := uint64(16); h <= 64; h += 8 {
		a.DiscardBelow(h)
		put(h, fmt.Sprint("later-", h))
		a.Checkpoint(h)
	}
	if !bytes.Equal(held.data, want) {
		t.Fatal("a checkpoint buffer being written was reused for a later checkpoint")
	}
	if len(a.spare) == 0 {
		// Buffers not being written are recycled: checkpoints 16.. were discarded unpinned.
		a.DiscardBelow(1 << 20)
	}
	if len(a.spare) == 0 {
		t.Fatal("discarded checkpoints that no writer holds were not kept for reuse")
	}
}

// A checkpoint digested off the driver (asyncKVApp) that finishes after the core discarded
// its number is not kept (its buffer is reused instead); one at or above the floor is.
func TestPBFTAppInstallsOnlyCheckpointsStillWanted(t *testing.T) {
	store, err := kv.New(kv.Config{NoDigest: true})
	if err != nil {
		t.Fatal(err)
	}
	a := newKVApp(store)
	a.DiscardBelow(16)
	if a.install(8, serializeCheckpoint(store, nil)) {
		t.Fatal("installed checkpoint 8 after DiscardBelow(16)")
	}
	if _, ok := a.snapshot(8); ok || len(a.spare) != 1 {
		t.Fatalf("checkpoint 8 held %v, spare buffers %d (want its buffer kept for reuse)", ok, len(a.spare))
	}
	if !a.install(16, serializeCheckpoint(store, nil)) {
		t.Fatal("checkpoint 16 (at the floor) not installed")
	}
	if _, ok := a.snapshot(16); !ok {
		t.Fatal("checkpoint 16 not held")
	}
}

package history

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/report"
)

// Check limits.
const (
	// DefaultCheckTimeout bounds porcupine's search; a check that runs out says so
	// (inconclusive) rather than passing.
	DefaultCheckTimeout = 60 * time.Second
	// DefaultReadBackBatch is how many keys one read-back batch asks for when the caller
	// does not say. Keep batch x value size small: a PBFT reply carries at most
	// server.PBFTMaxResultBytes (8 KiB) of results, and a larger one is never answered.
	DefaultReadBackBatch = 16
	// readBackRetry is the pause before retrying a read-back batch that failed (the cluster
	// may still be electing a leader after the restart).
	readBackRetry = 100 * time.Millisecond
)

// kvInput and kvOutput are the model's operation: a put of tag val, or a get that saw val
// (0: absent).
type kvInput struct {
	put bool
	key uint32
	val uint64
}

type kvOutput struct{ val uint64 }

// kvModel is a register per key; porcupine checks each key's history on its own.
func (r *Recorder) kvModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[uint32][]porcupine.Operation{}
			var order []uint32
			for _, o := range history {
				k := o.Input.(kvInput).key
				if _, ok := byKey[k]; !ok {
					order = append(order, k)
				}
				byKey[k] = append(byKey[k], o)
			}
			out := make([][]porcupine.Operation, 0, len(order))
			for _, k := range order {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return uint64(0) },
		Step: func(state, input, output any) (bool, any) {
			in := input.(kvInput)
			if in.put {
				return true, in.val
			}
			return output.(kvOutput).val == state.(uint64), state
		},
		Equal: func(a, b any) bool { return a.(uint64) == b.(uint64) },
		DescribeOperation: func(input, output any) string {
			in := input.(kvInput)
			if in.put {
				return fmt.Sprintf("put(%s, #%d)", r.keyName(in.key), in.val)
			}
			return fmt.Sprintf("get(%s) -> %s", r.keyName(in.key), tagName(output.(kvOutput).val))
		},
		DescribeState: func(state any) string { return tagName(state.(uint64)) },
	}
}

func tagName(v uint64) string {
	switch v {
	case 0:
		return "absent"
	case ^uint64(0):
		return "a value no write wrote"
	}
	return fmt.Sprintf("#%d", v)
}

func (r *Recorder) keyName(k uint32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info[k].name
}

// CheckLinearizable checks the history against the key-value model. On a violation it writes
// porcupine's HTML visualization to vizPath (when not empty) and names it in the verdict.
// timeout bounds the search (0: DefaultCheckTimeout); a search that runs out is not OK and
// says it was inconclusive.
func (r *Recorder) CheckLinearizable(timeout time.Duration, vizPath string) (*report.Verdict, error) {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	r.mu.Lock()
	ops := make([]porcupine.Operation, len(r.ops))
	keys := map[uint32]bool{}
	for i, o := range r.ops {
		keys[o.key] = true
		ops[i] = porcupine.Operation{ClientId: int(o.client), Input: kvInput{put: o.kind == opPut, key: o.key, val: o.val},
			Call: o.call, Output: kvOutput{val: o.val}, Return: o.ret}
		if o.kind == opPut {
			ops[i].Output = kvOutput{}
		}
	}
	bits, dropped := r.bits, r.dropped
	r.mu.Unlock()
	v := &report.Verdict{Checked: int64(len(ops))}
	if bits == 0 {
		v.Detail = fmt.Sprintf("every op: %d ops over %d keys", len(ops), len(keys))
	} else {
		v.Detail = fmt.Sprintf("sampled 1/%d of the keys after the history passed %d ops: %d ops over %d keys checked, %d ops of other keys not kept",
			1<<bits, r.cfg.MaxOps, len(ops), len(keys), dropped)
	}
	model := r.kvModel()
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	switch res {
	case porcupine.Ok:
		v.OK = true
		return v, nil
	case porcupine.Unknown:
		v.Detail = fmt.Sprintf("inconclusive: porcupine ran out of its %v budget; %s", timeout, v.Detail)
		return v, nil
	}
	v.Failed = 1
	v.Detail = "NOT linearizable: " + r.describeViolation(info) + "; " + v.Detail
	if vizPath != "" {
		if err := os.MkdirAll(filepath.Dir(vizPath), 0o755); err != nil {
			return v, err
		}
		if err := porcupine.VisualizePath(model, info, vizPath); err != nil {
			return v, fmt.Errorf("history: writing the visualization: %w", err)
		}
		v.Artifact = vizPath
	}
	return v, nil
}

// describeViolation names a key whose history could not be linearized: the partition whose
// longest partial linearization is shortest of its history.
func (r *Recorder) describeViolation(info porcupine.LinearizationInfo) string {
	parts := info.PartialLinearizationsOperations()
	for _, p := range parts {
		if len(p) == 0 || len(p[0]) == 0 {
			continue
		}
		in := p[0][0].Input.(kvInput)
		return fmt.Sprintf("key %q has no valid order", r.keyName(in.key))
	}
	return "some key has no valid order"
}

// CheckDurable reads every key that has an acknowledged write back through s (after the
// cluster was killed and restarted) and counts acknowledged writes that were lost: a write w
// is lost if the key is absent, holds a value no write to it wrote, or holds the value of a
// write that completed before w was issued (which therefore cannot follow w). Checked is
// the number of acknowledged writes examined. Keys are read `batch` per request (0:
// DefaultReadBackBatch). Failed batches are retried until ctx ends.
func (r *Recorder) CheckDurable(ctx context.Context, s bench.Session, batch int) (*report.Verdict, error) {
	if batch <= 0 {
		batch = DefaultReadBackBatch
	}
	r.mu.Lock()
	type write struct{ call, ret int64 }
	acked := map[uint32][]write{}
	byTag := map[uint64]op{}
	for _, o := range r.ops {
		if o.kind != opPut {
			continue
		}
		byTag[o.val] = o
		if o.ret != unknownReturn {
			acked[o.key] = append(acked[o.key], write{o.call, o.ret})
		}
	}
	keys := make([]uint32, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = r.info[k].name
	}
	bits := r.bits
	r.mu.Unlock()

	v := &report.Verdict{}
	var firstLost string
	ops := make([]bench.Op, 0, batch)
	for from := 0; from < len(keys); from += batch {
		to := min(from+batch, len(keys))
		ops = ops[:0]
		for _, n := range names[from:to] {
			ops = append(ops, bench.Op{Kind: bench.OpRead, Key: []byte(n)})
		}
		for {
			err := s.Do(ctx, ops)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return v, fmt.Errorf("history: reading back keys %d..%d: %w (last: %v)", from, to, ctx.Err(), err)
			}
			time.Sleep(readBackRetry)
		}
		for i, k := range keys[from:to] {
			got := &ops[i]
			var tag uint64
			if got.Found {
				tag = TagOf(got.Out)
			}
			x, known := byTag[tag]
			for _, w := range acked[k] {
				v.Checked++
				lost := !got.Found || !known || x.key != k || x.ret < w.call
				if lost {
					v.Failed++
					if firstLost == "" {
						firstLost = fmt.Sprintf("key %q: write issued at %v, acknowledged at %v, reads back as %s",
							names[from+i], time.Duration(w.call), time.Duration(w.ret), tagName(tag))
					}
				}
			}
		}
	}
	v.OK = v.Failed == 0
	v.Detail = fmt.Sprintf("%d acknowledged writes over %d keys read back, %d lost", v.Checked, len(keys), v.Failed)
	if bits > 0 {
		v.Detail += fmt.Sprintf(" (keys sampled 1/%d)", 1<<bits)
	}
	if firstLost != "" {
		v.Detail += "; first: " + firstLost
	}
	if v.Checked == 0 {
		return v, errors.New("history: no acknowledged write to read back")
	}
	return v, nil
}

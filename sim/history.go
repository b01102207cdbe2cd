package sim

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpStatus is what the workload learned about an op.
type OpStatus uint8

// An op is pending until a client completes it; at the end of the run a pending op becomes
// unknown: it may or may not have taken effect, at any time after its call.
const (
	OpPending OpStatus = iota
	OpDone             // a client reported an output
	OpUnknown          // timed out or the run ended: return time is +infinity
)

// Record is one op of the client history.
type Record struct {
	Op     Op
	Call   int64 // simulated time the client started it
	Return int64 // simulated time of completion; math.MaxInt64 when unknown
	Out    Output
	Status OpStatus
}

// LinearizabilityTimeout bounds porcupine's search. The histories the workload produces are
// small and partitioned by key, so a check that runs this long means a pathological history;
// the run reports it as a failure instead of hanging (the verdict itself is deterministic).
const LinearizabilityTimeout = 60 * time.Second

// kvModelOutput is the porcupine output of one op.
type kvModelOutput struct {
	Out     Output
	Unknown bool
}

// kvModel is the sequential specification of one key (porcupine partitions by key). The
// state is the key's int64 value. It is nondeterministic only for a cas of unknown outcome.
var kvModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		var byKey [KeysMax][]porcupine.Operation
		for _, o := range history {
			k := o.Input.(Op).Key
			byKey[k] = append(byKey[k], o)
		}
		var parts [][]porcupine.Operation
		for _, p := range byKey {
			if len(p) > 0 {
				parts = append(parts, p)
			}
		}
		return parts
	},
	Init: func() []interface{} { return []interface{}{int64(0)} },
	Step: func(state, input, output interface{}) []interface{} {
		v := state.(int64)
		op := input.(Op)
		out := output.(kvModelOutput)
		switch op.Kind {
		case OpGet:
			if out.Unknown || out.Out.Value == v {
				return []interface{}{v}
			}
			return nil
		case OpPut:
			return []interface{}{op.Value}
		case OpCAS:
			switch {
			case out.Unknown && v == op.Expect:
				return []interface{}{op.Value, v}
			case out.Unknown:
				return []interface{}{v}
			case out.Out.OK && v == op.Expect:
				return []interface{}{op.Value}
			case !out.Out.OK && v != op.Expect:
				return []interface{}{v}
			}
			return nil
		}
		return nil
	},
	DescribeOperation: func(input, output interface{}) string {
		op := input.(Op)
		out := output.(kvModelOutput)
		res := fmt.Sprintf("%v", out.Out)
		if out.Unknown {
			res = "?"
		}
		return fmt.Sprintf("c%d#%d %s(k%d,%d,%d) -> %s", op.Client, op.Seq, op.Kind, op.Key, op.Value, op.Expect, res)
	},
}

// CheckLinearizable checks the history against the KV model. Unknown gets are left out (a
// read that never returned constrains nothing); unknown writes stay with an infinite return
// time. It returns nil when linearizable.
func CheckLinearizable(history []Record) error {
	ops := make([]porcupine.Operation, 0, len(history))
	for _, r := range history {
		unknown := r.Status != OpDone
		if unknown && r.Op.Kind == OpGet {
			continue
		}
		ret := r.Return
		if unknown {
			ret = math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{
			ClientId: int(r.Op.Client),
			Input:    r.Op,
			Call:     r.Call,
			Output:   kvModelOutput{Out: r.Out, Unknown: unknown},
			Return:   ret,
		})
	}
	res := porcupine.CheckOperationsTimeout(kvModel.ToModel(), ops, LinearizabilityTimeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("linearizability check timed out after %v on %d ops", LinearizabilityTimeout, len(ops))
	}
	return fmt.Errorf("history of %d ops is not linearizable:\n%s", len(ops), describeHistory(history))
}

// describeHistoryMax bounds how many records a failure message lists.
const describeHistoryMax = 400

func describeHistory(history []Record) string {
	h := slices.Clone(history)
	slices.SortStableFunc(h, func(a, b Record) int {
		if a.Op.Key != b.Op.Key {
			return int(a.Op.Key) - int(b.Op.Key)
		}
		switch {
		case a.Call < b.Call:
			return -1
		case a.Call > b.Call:
			return 1
		}
		return 0
	})
	s := ""
	for i, r := range h {
		if i == describeHistoryMax {
			s += fmt.Sprintf("  ... %d more\n", len(h)-i)
			break
		}
		ret := "inf"
		if r.Status == OpDone {
			ret = fmt.Sprint(r.Return)
		}
		s += fmt.Sprintf("  k%d [%d,%s] c%d#%d %s val=%d exp=%d -> %+v status=%d\n",
			r.Op.Key, r.Call, ret, r.Op.Client, r.Op.Seq, r.Op.Kind, r.Op.Value, r.Op.Expect, r.Out, r.Status)
	}
	return s
}

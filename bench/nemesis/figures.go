package nemesis

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/consensusbench/consensusbench/bench/report"
)

// Figure parameters.
const (
	// PreFaultWindow is how many whole seconds before a fault give its pre-fault rate.
	PreFaultWindow = 5
	// RecoveredFraction is the share of the pre-fault rate a second must reach for the
	// cluster to count as recovered.
	RecoveredFraction = 0.9
	// DipHorizon is how long after a fault (after its end, for faults with a duration) a
	// second below RecoveredFraction of the pre-fault rate still counts as its dip.
	DipHorizon = 3 * time.Second
	// minFaultSpan is how long an instant fault (kill, transfer) counts as "inside" for the
	// latency split when it never recovers or recovers at once.
	minFaultSpan = time.Second
)

// Span is one successful request: when it was issued and when it completed, as offsets from
// the measured window's start (bench/history records them).
type Span struct{ Call, Return time.Duration }

// Figures is what one fault did to the load.
type Figures struct {
	Event report.Event `json:"event"`
	// PreRate is the mean ops/s over the PreFaultWindow whole seconds before the fault
	// (0: the fault came too early to have one; Dip and Recovery are then not computed).
	PreRate float64 `json:"pre_rate"`
	// Unavailable is the time from the fault to the first successful completion of a request
	// issued after it (with Spans: bench/history gives the writes, i.e. commits), or to the first second after it with successful ops
	// (without: whole-second resolution). -1: nothing succeeded afterwards.
	Unavailable time.Duration `json:"unavailable_ns"`
	// MinRate is the lowest ops/s of a second from the fault's second to recovery (or over
	// DipHorizon when it never dipped below the threshold), and Dip the fall from PreRate as a fraction (1 = nothing committed for a whole second); -1 when
	// not computed.
	MinRate float64 `json:"min_rate"`
	Dip     float64 `json:"dip"`
	// Recovery is the time from the fault to the start of the first second back at
	// RecoveredFraction of PreRate after the first second below it (whole-second
	// resolution; 0: the rate never fell below it within DipHorizon). -1: never.
	Recovery time.Duration `json:"recovery_ns"`
	// Inside is the latency of ops that completed in the seconds of the fault window (its
	// duration, or until recovery for instant faults); Outside of those completing in
	// seconds touched by no fault window.
	Inside  report.Percentiles `json:"inside"`
	Outside report.Percentiles `json:"outside"`
}

// isFault reports whether an event kind is a fault (restarts are repairs).
func isFault(kind string) bool { return kind != string(Restart) }

// Analyze computes the Figures of every fault in r.Events from r.Series and, when given,
// the successful requests' spans (which sharpen Unavailable to the request).
func Analyze(r *report.Result, spans []Span) ([]Figures, error) {
	hists := make([]*hdrhistogram.Histogram, len(r.Series))
	for i, s := range r.Series {
		h, err := report.DecodeHistogram(s.Histogram)
		if err != nil {
			return nil, fmt.Errorf("nemesis: second %d: %w", s.T, err)
		}
		hists[i] = h
	}
	var figs []Figures
	for _, ev := range r.Events {
		if !isFault(ev.Kind) {
			continue
		}
		figs = append(figs, analyzeOne(r.Series, ev, spans))
	}
	// Seconds inside some fault window, for the outside percentiles.
	inAny := make([]bool, len(r.Series))
	for i := range figs {
		from, to := window(&figs[i])
		for j, s := range r.Series {
			if overlaps(s.T, from, to) {
				inAny[j] = true
			}
		}
	}
	for i := range figs {
		from, to := window(&figs[i])
		var in, out *hdrhistogram.Histogram
		for j, s := range r.Series {
			h := hists[j]
			switch {
			case overlaps(s.T, from, to):
				in = add(in, h)
			case !inAny[j]:
				out = add(out, h)
			}
		}
		if in != nil {
			figs[i].Inside = report.PercentilesOf(in)
		}
		if out != nil {
			figs[i].Outside = report.PercentilesOf(out)
		}
	}
	return figs, nil
}

func add(dst, h *hdrhistogram.Histogram) *hdrhistogram.Histogram {
	if dst == nil {
		return hdrhistogram.Import(h.Export())
	}
	dst.Merge(h)
	return dst
}

// window is the span a fault's latencies count as inside: its duration, or for instant
// faults until recovery (at least minFaultSpan).
func window(f *Figures) (from, to time.Duration) {
	from, to = f.Event.At, f.Event.End
	if to <= from {
		to = from + max(f.Recovery, minFaultSpan)
	}
	return from, to
}

// overlaps reports whether second t ([t, t+1s)) overlaps [from, to).
func overlaps(t int, from, to time.Duration) bool {
	s := time.Duration(t) * time.Second
	return s < to && s+time.Second > from
}

func analyzeOne(series []report.Second, ev report.Event, spans []Span) Figures {
	f := Figures{Event: ev, Unavailable: -1, Recovery: -1, MinRate: -1, Dip: -1}
	faultSec := int(ev.At / time.Second)
	n := 0
	var sum int64
	for _, s := range series {
		if s.T < faultSec && s.T >= faultSec-PreFaultWindow {
			sum += s.Ops
			n++
		}
	}
	if n > 0 {
		f.PreRate = float64(sum) / float64(n)
	}
	if spans != nil {
		for _, sp := range spans {
			if sp.Call >= ev.At && (f.Unavailable < 0 || sp.Return-ev.At < f.Unavailable) {
				f.Unavailable = sp.Return - ev.At
			}
		}
	} else {
		for _, s := range series {
			if s.T > faultSec && s.Ops > 0 {
				f.Unavailable = time.Duration(s.T)*time.Second - ev.At
				break
			}
		}
	}
	if f.PreRate == 0 {
		return f
	}
	// The first second below the threshold within the fault's horizon; none: no dip worth
	// recovering from (Recovery 0).
	thr := RecoveredFraction * f.PreRate
	horizon := ev.End
	if horizon < ev.At {
		horizon = ev.At
	}
	horizon += DipHorizon
	below := -1
	for i, s := range series {
		if s.T < faultSec || time.Duration(s.T)*time.Second >= horizon {
			continue
		}
		if f.MinRate < 0 || float64(s.Ops) < f.MinRate {
			f.MinRate = float64(s.Ops)
		}
		if float64(s.Ops) < thr {
			below = i
			break
		}
	}
	if below < 0 {
		f.Recovery = 0
	} else {
		for _, s := range series[below:] {
			rate := float64(s.Ops)
			if rate >= thr {
				f.Recovery = time.Duration(s.T)*time.Second - ev.At
				break
			}
			f.MinRate = min(f.MinRate, rate)
		}
	}
	if f.MinRate >= 0 {
		f.Dip = 1 - f.MinRate/f.PreRate
	}
	return f
}

// Summary renders a figure in one line, for the result's event detail and the summary.
func (f Figures) Summary() string {
	dur := func(d time.Duration) string {
		if d < 0 {
			return "never"
		}
		return report.FormatLatency(int64(d))
	}
	s := fmt.Sprintf("unavailable %s; ", dur(f.Unavailable))
	if f.PreRate > 0 {
		s += fmt.Sprintf("rate %.0f -> min %.0f ops/s (dip %.0f%%); ", f.PreRate, f.MinRate, 100*f.Dip)
		if f.Recovery == 0 {
			s += fmt.Sprintf("never below %.0f%% of it; ", 100*RecoveredFraction)
		} else {
			s += fmt.Sprintf("back to %.0f%% after %s; ", 100*RecoveredFraction, dur(f.Recovery))
		}
	} else {
		s += "no pre-fault second (rate dip not measured); "
	}
	s += fmt.Sprintf("p50/p99 inside %s/%s, outside %s/%s",
		report.FormatLatency(f.Inside.P50), report.FormatLatency(f.Inside.P99),
		report.FormatLatency(f.Outside.P50), report.FormatLatency(f.Outside.P99))
	return s
}

// WriteFigures prints one line per fault.
func WriteFigures(w io.Writer, figs []Figures) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range figs {
		target := f.Event.Target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(tw, "fault %s@%.2fs\t%s\t%s\n", f.Event.Kind, f.Event.At.Seconds(), target, f.Summary())
	}
	return tw.Flush()
}

// WriteRepairs writes one summary line for each restart that has something to say: how
// long after its crash a supervised node came back, or why the restart failed.
func WriteRepairs(w io.Writer, events []report.Event) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range events {
		if e.Kind == string(Restart) && e.Detail != "" {
			fmt.Fprintf(tw, "repair %s@%.2fs\t%s\t%s\n", e.Kind, e.At.Seconds(), e.Target, e.Detail)
		}
	}
	return tw.Flush()
}

// Annotate writes each fault's figures into its event in r, as numbers (Figures) and in
// words (Detail, after any failure note the executor put there), so the result file's events
// carry them.
func Annotate(r *report.Result, figs []Figures) {
	k := 0
	for i := range r.Events {
		if !isFault(r.Events[i].Kind) || k >= len(figs) {
			continue
		}
		d := figs[k].Summary()
		if r.Events[i].Detail != "" {
			d = r.Events[i].Detail + "; " + d
		}
		r.Events[i].Detail = d
		f := &figs[k]
		r.Events[i].Figures = &report.FaultFigures{PreRate: f.PreRate, UnavailableNs: int64(f.Unavailable), MinRate: f.MinRate,
			Dip: f.Dip, RecoveryNs: int64(f.Recovery), Inside: f.Inside, Outside: f.Outside}
		k++
	}
}

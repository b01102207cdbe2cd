package pace

import (
	"io"
	"time"
)

// Writer passes writes to W, at most Piece bytes per call to W (0: whole writes), and
// whenever it has been busy for Slice of wall-clock time since it last rested, sleeps long
// enough that it is busy at most Duty of the time. Busy is measured in wall-clock time, so
// time the thread spent descheduled counts as work: a Writer on a crowded host rests more,
// never less. Duty 0 or at least 1 writes without resting.
type Writer struct {
	W     io.Writer
	Duty  float64
	Slice time.Duration
	Piece int

	busySince time.Time
	rested    time.Duration // total time slept, for callers that report it
	sleep     func(time.Duration)
	now       func() time.Time
}

// Write writes p to W in pieces, resting between them as the duty cycle requires.
func (w *Writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		piece := p
		if w.Piece > 0 && len(piece) > w.Piece {
			piece = p[:w.Piece]
		}
		w.Rest()
		n, err := w.W.Write(piece)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	w.Rest()
	return written, nil
}

// Rest sleeps if the Writer has been busy for a Slice since it last rested; work done
// outside Write (a sort before the first write) can call it too.
func (w *Writer) Rest() {
	if w.Duty <= 0 || w.Duty >= 1 {
		return
	}
	now := w.clock()
	if w.busySince.IsZero() {
		w.busySince = now
		return
	}
	busy := now.Sub(w.busySince)
	if busy < w.Slice {
		return
	}
	d := time.Duration(float64(busy) * (1 - w.Duty) / w.Duty)
	if w.sleep != nil {
		w.sleep(d)
	} else {
		time.Sleep(d)
	}
	w.rested += d
	w.busySince = w.clock()
}

// Rested returns the total time the Writer slept.
func (w *Writer) Rested() time.Duration { return w.rested }

func (w *Writer) clock() time.Time {
	if w.now != nil {
		return w.now()
	}
	return time.Now()
}

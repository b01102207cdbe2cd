package pace

import (
	"bytes"
	"testing"
	"time"
)

// fakeClock advances by step for every piece written (the work) and by the slept time on
// every sleep.
type fakeClock struct {
	t     time.Time
	step  time.Duration
	slept []time.Duration
	out   bytes.Buffer
}

func (c *fakeClock) Write(p []byte) (int, error) { c.t = c.t.Add(c.step); return c.out.Write(p) }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(d time.Duration) {
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
}

func TestWriterKeepsItsDutyCycle(t *testing.T) {
	c := &fakeClock{t: time.Unix(0, 0), step: 500 * time.Microsecond}
	w := &Writer{W: c, Duty: 0.25, Slice: time.Millisecond, Piece: 10, now: c.now, sleep: c.sleep}
	data := bytes.Repeat([]byte("x"), 1000)
	n, err := w.Write(data)
	if err != nil || n != len(data) || !bytes.Equal(c.out.Bytes(), data) {
		t.Fatalf("wrote %d, %v; output intact %v", n, err, bytes.Equal(c.out.Bytes(), data))
	}
	if len(c.slept) == 0 {
		t.Fatal("never rested")
	}
	// Every rest is three times the busy stretch before it (duty 1/4), and the busy
	// stretches are at least a Slice.
	for _, d := range c.slept {
		if d < 3*time.Millisecond {
			t.Fatalf("rest %v after at least a 1 ms slice at duty 1/4, want at least 3 ms", d)
		}
	}
	// Over the whole write, the time not spent resting is about a quarter.
	total := c.t.Sub(time.Unix(0, 0))
	if busy := float64(total-w.Rested()) / float64(total); busy > 0.3 {
		t.Fatalf("busy %.2f of %v, want at most about 0.25", busy, total)
	}
}

func TestWriterWithoutDutyNeverRests(t *testing.T) {
	c := &fakeClock{t: time.Unix(0, 0), step: time.Second}
	for _, duty := range []float64{0, 1} {
		w := &Writer{W: c, Duty: duty, Slice: time.Millisecond, Piece: 1, now: c.now, sleep: c.sleep}
		if _, err := w.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.slept) != 0 {
		t.Fatalf("rested %v without a duty cycle", c.slept)
	}
}

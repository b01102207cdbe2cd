package report

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Host context: what else the load host was doing while a run was measured. On a shared
// machine nothing shields a benchmark (niceness does not: the kernel's autogroup scheduler
// shares CPU between sessions whatever their priority), so a result says how busy its host
// was and is marked noisy when others took a real share of it.

// Noise thresholds: a run is noisy when, over its measured window, processes other than the
// run's own (loadgen and, for local clusters, the nodes) kept more than NoisyOtherShare of
// the machine's cores busy, or the hypervisor stole more than NoisyStealShare of its time.
const (
	NoisyOtherShare = 0.25
	NoisyStealShare = 0.05
)

// HostSample is one reading of the host's counters (Linux /proc; zero elsewhere).
type HostSample struct {
	At   time.Time
	Load [3]float64 // /proc/loadavg: 1, 5 and 15 minutes
	// CPU jiffies summed over all CPUs (/proc/stat's "cpu" line).
	Busy, Idle, Steal uint64
	// PressureSomeUs is /proc/pressure/cpu's "some" total: microseconds in which at least one
	// runnable task waited for a CPU.
	PressureSomeUs uint64
	HasPressure    bool
}

// ReadHostSample reads the host's counters now. Missing files leave their fields zero.
func ReadHostSample() HostSample {
	s := HostSample{At: time.Now()}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		s.Load = parseLoadavg(b)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		s.Busy, s.Idle, s.Steal = parseProcStat(b)
	}
	if b, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		s.PressureSomeUs, s.HasPressure = parsePressureSome(b)
	}
	return s
}

func parseLoadavg(b []byte) (l [3]float64) {
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// parseProcStat sums the "cpu" line: user nice system idle iowait irq softirq steal guest
// guest_nice. Busy is everything but idle, iowait and steal (guest time is already in user).
func parseProcStat(b []byte) (busy, idle, steal uint64) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, 0
	}
	v := make([]uint64, 8)
	for i := range v {
		if i+1 < len(f) {
			v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
	}
	user, nice, system, idl, iowait, irq, softirq, st := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	return user + nice + system + irq + softirq, idl + iowait, st
}

// parsePressureSome reads "some avg10=... avg60=... avg300=... total=N".
func parsePressureSome(b []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				n, err := strconv.ParseUint(v, 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// Host is the result's host context over the measured window.
type Host struct {
	LoadBefore [3]float64 `json:"load_before"` // load averages at the window's start
	LoadAfter  [3]float64 `json:"load_after"`  // and at its end
	// BusyCores is the whole machine's CPU in use over the window, in cores; OwnCores the
	// run's own processes' (loadgen, and the nodes of a local cluster); OtherCores the rest.
	BusyCores  float64 `json:"busy_cores"`
	OwnCores   float64 `json:"own_cores"`
	OtherCores float64 `json:"other_cores"`
	// StealShare is the share of CPU time the hypervisor gave to others; PressureShare the
	// share of the window in which some runnable task waited for a CPU (-1: not available).
	StealShare    float64 `json:"steal_share"`
	PressureShare float64 `json:"cpu_pressure_share"`
	// Noisy is set when other processes or the hypervisor took a real share of the machine
	// (NoisyOtherShare, NoisyStealShare); Why says what.
	Noisy bool     `json:"noisy"`
	Why   []string `json:"why,omitempty"`
}

// HostOver computes the host context between two samples, given the machine's core count and
// the CPU seconds the run's own processes used in between.
func HostOver(from, to HostSample, cores int, ownCPUSeconds float64) *Host {
	h := &Host{LoadBefore: from.Load, LoadAfter: to.Load, PressureShare: -1}
	secs := to.At.Sub(from.At).Seconds()
	if secs <= 0 || cores <= 0 {
		return h
	}
	busy, idle, steal := sub(to.Busy, from.Busy), sub(to.Idle, from.Idle), sub(to.Steal, from.Steal)
	total := busy + idle + steal
	if total > 0 {
		// Jiffies over all CPUs: scale by the elapsed CPU capacity rather than assume USER_HZ.
		h.BusyCores = float64(busy) / float64(total) * float64(cores)
		h.StealShare = float64(steal) / float64(total)
	}
	h.OwnCores = ownCPUSeconds / secs
	h.OtherCores = max(h.BusyCores-h.OwnCores, 0)
	if from.HasPressure && to.HasPressure {
		h.PressureShare = min(float64(sub(to.PressureSomeUs, from.PressureSomeUs))/1e6/secs, 1)
	}
	if share := h.OtherCores / float64(cores); share > NoisyOtherShare {
		h.Why = append(h.Why, fmt.Sprintf("other processes used %.0f%% of the %d cores", 100*share, cores))
	}
	if h.StealShare > NoisyStealShare {
		h.Why = append(h.Why, fmt.Sprintf("the hypervisor stole %.0f%% of CPU time", 100*h.StealShare))
	}
	h.Noisy = len(h.Why) > 0
	return h
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// String is one line for the summary.
func (h *Host) String() string {
	s := fmt.Sprintf("load %.2f -> %.2f, busy %.2f cores (this run %.2f, others %.2f), steal %.1f%%",
		h.LoadBefore[0], h.LoadAfter[0], h.BusyCores, h.OwnCores, h.OtherCores, 100*h.StealShare)
	if h.PressureShare >= 0 {
		s += fmt.Sprintf(", cpu pressure %.0f%%", 100*h.PressureShare)
	}
	if h.Noisy {
		s += " — NOISY: " + strings.Join(h.Why, "; ")
	}
	return s
}

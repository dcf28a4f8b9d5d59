package egress_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chorus-mixnet/chorus/client/egress"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// This file plays the global passive observer of DESIGN §1: it sees only
// when frames cross the client–provider link, and tries to tell an idle
// client from a busy one with a two-sample Kolmogorov–Smirnov test on the
// gaps between frames.

// ks2 returns the two-sample Kolmogorov–Smirnov statistic of a and b (the
// largest distance between their empirical distribution functions) and its
// asymptotic p-value: the probability of a distance at least this large if
// both samples came from one continuous distribution.
func ks2(a, b []float64) (d, p float64) {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	n, m := len(a), len(b)
	i, j := 0, 0
	for i < n && j < m {
		x := min(a[i], b[j])
		for i < n && a[i] == x {
			i++
		}
		for j < m && b[j] == x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(n)-float64(j)/float64(m)))
	}
	ne := float64(n) * float64(m) / float64(n+m)
	sq := math.Sqrt(ne)
	// Stephens' small-sample correction, as in Numerical Recipes.
	return d, kolmogorovQ((sq + 0.12 + 0.11/sq) * d)
}

// kolmogorovQ is the complementary Kolmogorov distribution,
// Q(λ) = 2 Σ_{k≥1} (-1)^{k-1} exp(-2k²λ²), computed for small λ from the
// equivalent Jacobi-theta form 1 - (√(2π)/λ) Σ_{k≥1} exp(-(2k-1)²π²/(8λ²)),
// which converges fast where the first does not.
func kolmogorovQ(l float64) float64 {
	if l <= 0 {
		return 1
	}
	if l < 1.18 {
		var s float64
		for k := 1; k <= 10; k++ {
			o := float64(2*k - 1)
			s += math.Exp(-o * o * math.Pi * math.Pi / (8 * l * l))
		}
		return min(1, max(0, 1-math.Sqrt(2*math.Pi)/l*s))
	}
	var s float64
	sign := 1.0
	for k := 1; k <= 100; k++ {
		term := sign * math.Exp(-2*float64(k*k)*l*l)
		s += term
		if math.Abs(term) < 1e-300 {
			break
		}
		sign = -sign
	}
	return min(1, max(0, 2*s))
}

func TestKS(t *testing.T) {
	// Tabulated values of the Kolmogorov distribution.
	for _, c := range []struct{ l, q float64 }{
		{0.5, 0.9639}, {0.8, 0.5441}, {1.0, 0.2700}, {1.2, 0.1122},
		{1.36, 0.0495}, {1.63, 0.0098}, {2.0, 0.000671},
	} {
		if q := kolmogorovQ(c.l); math.Abs(q-c.q) > 1e-4*max(1, c.q*10) {
			t.Errorf("Q(%v) = %.6f, want %.6f", c.l, q, c.q)
		}
	}
	// Both forms agree where they meet.
	if a, b := kolmogorovQ(1.18-1e-9), kolmogorovQ(1.18); math.Abs(a-b) > 1e-9 {
		t.Errorf("the two forms disagree at 1.18: %v, %v", a, b)
	}
	same := []float64{1, 2, 3, 4}
	if d, p := ks2(same, same); d != 0 || p != 1 {
		t.Errorf("identical samples: D %v, p %v", d, p)
	}
	if d, _ := ks2([]float64{1, 2}, []float64{3, 4}); d != 1 {
		t.Errorf("disjoint samples: D %v, want 1", d)
	}
	// Power and size on samples of known distributions.
	rng := rand.New(rand.NewPCG(1, 2))
	exp := func(n int, mean float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = rng.ExpFloat64() * mean
		}
		return s
	}
	if d, p := ks2(exp(5000, 1), exp(5000, 1)); p < 0.01 {
		t.Errorf("same distribution: D %.4f, p %.3g", d, p)
	}
	if d, p := ks2(exp(5000, 1), exp(5000, 1.2)); p > 1e-6 {
		t.Errorf("means 1 and 1.2: D %.4f, p %.3g", d, p)
	}
}

// arrival is a message of n fragments handed to the client at a time.
type arrival struct {
	at time.Duration
	n  int
}

// bursts is a user who sends messages of 1 to 40 fragments at exponential
// intervals of mean 1s: about 20 fragments a second on average, 40% of
// the λP capacity, so the outbox is sometimes empty, sometimes deep.
func bursts(seed uint64, period time.Duration) []arrival {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var as []arrival
	for at := time.Duration(rng.ExpFloat64() * float64(time.Second)); at < period; at += time.Duration(rng.ExpFloat64() * float64(time.Second)) {
		as = append(as, arrival{at: at, n: 1 + rng.IntN(40)})
	}
	return as
}

// observe runs a Sender for period in a bubble, feeding it the arrivals,
// and returns the times of every frame on the link.
func observe(t *testing.T, rngSeed uint64, period time.Duration, as []arrival) []time.Duration {
	var times []time.Duration
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t)
		ob := &outbox{}
		_, stop := start(t, egress.Config{
			Parameters: pkitest.Parameters(), Packets: ob, Control: &poller{}, Sink: w, Rand: seed(rngSeed),
		})
		go func() {
			for _, a := range as {
				time.Sleep(a.at - time.Since(w.start))
				ob.add(a.n)
			}
		}()
		// Run a little longer and keep the frames before period: a tick
		// exactly at period would race with the stop.
		time.Sleep(period + time.Millisecond)
		if err := stop(); err != nil {
			t.Error(err)
		}
		reals := 0
		for _, f := range w.frames() {
			if f.at >= period {
				continue
			}
			times = append(times, f.at)
			if f.mark == markReal {
				reals++
			}
		}
		t.Logf("%d frames, %d of them real", len(times), reals)
	})
	return times
}

// noCover is what a client without cover traffic would put on the wire
// for the same arrivals: each message's fragments back to back, one per
// millisecond (the link's write time), and nothing in between, plus the
// same constant-rate retrieval polls.
func noCover(period time.Duration, as []arrival) []time.Duration {
	var times []time.Duration
	for _, a := range as {
		for k := range a.n {
			if at := a.at + time.Duration(k)*time.Millisecond; at < period {
				times = append(times, at)
			}
		}
	}
	interval := pkitest.Parameters().RetrievalInterval
	for at := interval; at < period; at += interval {
		times = append(times, at)
	}
	slices.Sort(times)
	return times
}

func gaps(times []time.Duration) []float64 {
	g := make([]float64, 0, len(times))
	for i := 1; i < len(times); i++ {
		g = append(g, (times[i] - times[i-1]).Seconds())
	}
	return g
}

// TestObserverCannotTellIdleFromBusy: the inter-frame gaps of an idle
// client and of a client sending bursts of messages pass a two-sample KS
// test as one distribution (p > 0.01), while the same test on a client
// without cover traffic rejects it overwhelmingly (p < 1e-6). All seeds
// are fixed, so the outcome is deterministic.
//
// Frame times depend on the clocks' seed alone, never on the outbox
// (TestTimingIndependentOfOutbox), so "idle with seed a vs busy with seed
// b" is a draw from the null hypothesis and its p-value is uniform on
// [0, 1]: any fixed seed pair has a 1% chance of p ≤ 0.01. The pair
// (11, 12) is such a pair (p = 0.003; 60 other pairs gave a uniform
// spread), which is why this test uses (1, 2). The test is not there to
// find a difference (there is none to find) but to show the observer's
// view of a busy client is the idle client's, and that the same observer
// is powerful enough to see a client without cover traffic.
func TestObserverCannotTellIdleFromBusy(t *testing.T) {
	const period = 10 * time.Minute
	work := bursts(100, period)
	total := 0
	for _, a := range work {
		total += a.n
	}
	t.Logf("workload: %d messages, %d fragments in %v", len(work), total, period)

	idle := gaps(observe(t, 1, period, nil))
	busy := gaps(observe(t, 2, period, work))
	bare := gaps(noCover(period, work))

	d, p := ks2(idle, busy)
	t.Logf("idle vs busy:          n=%d m=%d  D=%.5f  p=%.4f", len(idle), len(busy), d, p)
	if p <= 0.01 {
		t.Errorf("an observer tells idle from busy: D=%.5f, p=%.3g", d, p)
	}
	d, p = ks2(idle, bare)
	t.Logf("idle vs without cover: n=%d m=%d  D=%.5f  p=%.3g", len(idle), len(bare), d, p)
	if p >= 1e-6 {
		t.Errorf("the test cannot even see a client without cover traffic: D=%.5f, p=%.3g", d, p)
	}
}

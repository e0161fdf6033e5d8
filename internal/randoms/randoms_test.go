package randoms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestCountSumsToN(t *testing.T) {
	totals := []int64{0, 1, 5, 6, 7, 1000, 123457, minPerWorker*2 + 5, 3_000_001}
	for _, par := range []int{0, 1, 2, 3, 8} {
		for _, total := range totals {
			c, err := CountSeeded(context.Background(), total, par, 42)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Sum(); got != uint64(total) {
				t.Errorf("sum for %d with parallelism %d: got %d, want %d", total, par, got, total)
			}
		}
	}
}

func TestCountNegativeIsEmpty(t *testing.T) {
	c, err := CountSeeded(context.Background(), -5, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sum(); got != 0 {
		t.Errorf("sum for -5: got %d, want 0", got)
	}
	if got := string(c.AppendJSON(nil)); got != "{}" {
		t.Errorf("JSON for -5: got %s, want {}", got)
	}
}

func TestCountSeededIsReproducible(t *testing.T) {
	a, _ := CountSeeded(context.Background(), 1_000_000, 2, 7)
	b, _ := CountSeeded(context.Background(), 1_000_000, 2, 7)
	c, _ := CountSeeded(context.Background(), 1_000_000, 2, 8)
	if *a != *b {
		t.Error("same seed gave different counts")
	}
	if *a == *c {
		t.Error("different seeds gave the same counts")
	}
}

// chiSquare is Pearson's statistic of counts against the uniform distribution.
func chiSquare(counts []uint64) float64 {
	var total uint64
	for _, v := range counts {
		total += v
	}
	want := float64(total) / float64(len(counts))
	var x float64
	for _, v := range counts {
		d := float64(v) - want
		x += d * d / want
	}
	return x
}

// chiSquareQuantile approximates the q-quantile of chi-square with k degrees
// of freedom (Wilson–Hilferty), given z, the standard normal q-quantile.
func chiSquareQuantile(k, z float64) float64 {
	a := 2 / (9 * k)
	return k * math.Pow(1-a+z*math.Sqrt(a), 3)
}

// The counts are uniform: with a fixed seed, Pearson's chi-square over the
// 1000 buckets falls inside the two-sided 99.8% interval (999 degrees of
// freedom: about 866..1143). Too small would mean "too regular", also a bug.
func TestCountIsUniformChiSquare(t *testing.T) {
	const total = 10_000_000
	lo, hi := chiSquareQuantile(n-1, -3.09), chiSquareQuantile(n-1, 3.09)
	for _, par := range []int{1, 2} {
		c, err := CountSeeded(context.Background(), total, par, 20261127)
		if err != nil {
			t.Fatal(err)
		}
		x := chiSquare(c[:])
		t.Logf("parallelism %d: chi-square %.1f, accepted interval %.1f..%.1f", par, x, lo, hi)
		if x < lo || x > hi {
			t.Errorf("parallelism %d: chi-square got %.1f, want within %.1f..%.1f", par, x, lo, hi)
		}
	}
}

// The same chi-square test rejects what rejection sampling avoids: mapping a
// 10-bit chunk onto 1..1000 with a modulo makes 1..24 twice as likely. This
// shows the uniformity test above can fail.
func TestChiSquareDetectsModuloBias(t *testing.T) {
	const total = 1_000_000
	var biased [n]uint64
	g := wyrand(streamSeed(20261127, 0))
	for i := 0; i < total; {
		r := g.next()
		for range chunksPerWord {
			biased[(r&chunkMask)%n]++
			r >>= chunkBits
			i++
		}
	}
	hi := chiSquareQuantile(n-1, 3.09)
	if x := chiSquare(biased[:]); x <= hi {
		t.Errorf("modulo-biased counts: chi-square got %.1f, want > %.1f", x, hi)
	}
}

// Every 10-bit chunk value maps to at most one number, every number has
// exactly one chunk value, and the 24 others are rejected: so a uniform
// chunk gives a uniform number, with no bias at all.
func TestChunkMappingIsExact(t *testing.T) {
	var tl tally
	for v := range slots {
		tl[v]++
	}
	if got, want := tl.rejected(), int64(slots-n); got != want {
		t.Errorf("rejected slots: got %d, want %d", got, want)
	}
	var c Counts
	tl.flush(&c)
	for i, v := range c {
		if v != 1 {
			t.Fatalf("number %d: got %d preimages, want 1", i+Min, v)
		}
	}
	if tl != (tally{}) {
		t.Error("flush left the tally non-zero")
	}
}

// A batch never draws more than it was asked for, whatever the rejections.
func TestDrawNeverOvershoots(t *testing.T) {
	g := wyrand(1)
	var tl tally
	for want := int64(1); want < 200; want++ {
		before := tl.rejected()
		var accepted uint64
		for _, v := range tl[:n] {
			accepted += uint64(v)
		}
		got := tl.draw(&g, want)
		var after uint64
		for _, v := range tl[:n] {
			after += uint64(v)
		}
		if got < 1 || got > want {
			t.Fatalf("draw(%d) = %d, want 1..%d", want, got, want)
		}
		if after-accepted != uint64(got) {
			t.Fatalf("draw(%d) said %d but tallied %d (rejected before %d)", want, got, after-accepted, before)
		}
	}
}

// The rejection rate is the expected 24/1024 of chunks, so no chunk position
// is lost or duplicated.
func TestRejectionRate(t *testing.T) {
	const words = 1 << 18
	g := wyrand(3)
	var tl tally
	tl.fillWords(&g, words)
	rate := float64(tl.rejected()) / (words * chunksPerWord)
	want := float64(slots-n) / slots
	sd := math.Sqrt(want * (1 - want) / (words * chunksPerWord))
	if math.Abs(rate-want) > 5*sd {
		t.Errorf("rejection rate: got %.5f, want %.5f ± %.5f", rate, want, 5*sd)
	}
}

func TestCountCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Count(ctx, 1_000_000_000, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v for a cancelled count, want context.Canceled", err)
	}
}

// A count far too big to finish stops soon after its deadline.
func TestCountStopsAtDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Count(ctx, 1<<50, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stopped after %v, want soon after the 20ms deadline", d)
	}
}

func TestAppendJSONShape(t *testing.T) {
	c, _ := CountSeeded(context.Background(), 100_000, 2, 1)
	b := c.AppendJSON(nil)
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	if len(m) != Max {
		t.Errorf("got %d keys, want %d", len(m), Max)
	}
	var sum uint64
	for _, v := range m {
		sum += v
	}
	if sum != 100_000 {
		t.Errorf("got sum %d, want 100000", sum)
	}
	// Keys are the numbers 1..1000, in ascending order.
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	prev := Min - 1
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		k, err := strconv.Atoi(tok.(string))
		if err != nil || k < Min || k > Max || k <= prev {
			t.Fatalf("key %q after %d: want an integer in %d..%d, ascending", tok, prev, Min, Max)
		}
		prev = k
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendJSONExact(t *testing.T) {
	var c Counts
	c[0], c[9], c[Max-Min] = 5, 18446744073709551615, 7
	got := string(c.AppendJSON([]byte("x")))
	want := `x{"1":5,"10":18446744073709551615,"1000":7}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// naiveCount is the reference most first versions look like: the global
// generator and a map.
func naiveCount(total int) map[int]int {
	m := make(map[int]int)
	for range total {
		m[rand.IntN(Max-Min+1)+Min]++
	}
	return m
}

func TestNaiveReferenceAgrees(t *testing.T) {
	m := naiveCount(10_000)
	var sum int
	for k, v := range m {
		if k < Min || k > Max {
			t.Fatalf("naive key %d out of range", k)
		}
		sum += v
	}
	if sum != 10_000 {
		t.Errorf("naive sum: got %d, want 10000", sum)
	}
}

const benchTotal = 1 << 24

func reportPerNumber(b *testing.B, numbers float64, cores int) {
	perNum := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / numbers
	b.ReportMetric(perNum, "ns/number")
	b.ReportMetric(perNum*float64(cores), "ns/number/core")
}

// BenchmarkCount reports the kernel's cost per number on one core and on
// all cores (wall time; ns/number/core = wall x cores used).
func BenchmarkCount(b *testing.B) {
	ctx := context.Background()
	for _, cores := range []int{1, runtime.GOMAXPROCS(0)} {
		name := "cores=" + strconv.Itoa(cores)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := CountSeeded(ctx, benchTotal, cores, 1); err != nil {
					b.Fatal(err)
				}
			}
			reportPerNumber(b, benchTotal, cores)
		})
	}
}

// BenchmarkCountDefault is the default request: 100,000,000 numbers, all cores.
func BenchmarkCountDefault(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		if _, err := Count(ctx, 100_000_000, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/request")
	reportPerNumber(b, 100_000_000, runtime.GOMAXPROCS(0))
}

// BenchmarkNaive is the reference: math/rand/v2's global IntN into a map.
func BenchmarkNaive(b *testing.B) {
	const total = 1 << 20
	for b.Loop() {
		_ = naiveCount(total)
	}
	reportPerNumber(b, total, 1)
}

// BenchmarkSpeedupVsNaive runs both on one core in the same iteration and
// reports how many times faster the kernel is.
func BenchmarkSpeedupVsNaive(b *testing.B) {
	const total = 1 << 20
	ctx := context.Background()
	var naive, kernel time.Duration
	for b.Loop() {
		t0 := time.Now()
		_ = naiveCount(total)
		t1 := time.Now()
		if _, err := CountSeeded(ctx, total, 1, 1); err != nil {
			b.Fatal(err)
		}
		naive += t1.Sub(t0)
		kernel += time.Since(t1)
	}
	b.ReportMetric(float64(naive)/float64(kernel), "x-faster")
	b.ReportMetric(float64(naive.Nanoseconds())/float64(b.N)/total, "naive-ns/number")
	b.ReportMetric(float64(kernel.Nanoseconds())/float64(b.N)/total, "kernel-ns/number")
}

func BenchmarkAppendJSON(b *testing.B) {
	c, _ := CountSeeded(context.Background(), 100_000_000, 0, 1)
	buf := make([]byte, 0, 16<<10)
	for b.Loop() {
		buf = c.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkFillWords(b *testing.B) {
	var tl tally
	g := wyrand(1)
	for b.Loop() {
		tl.fillWords(&g, benchTotal/chunksPerWord)
		tl = tally{}
	}
	reportPerNumber(b, benchTotal, 1)
}

// With a spare P (GOMAXPROCS above the CPU count), the default parallelism
// stays at one goroutine per CPU, so one P is left for the network.
func TestDefaultParallelismLeavesSpareP(t *testing.T) {
	prev := runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	defer runtime.GOMAXPROCS(prev)
	if got, want := DefaultParallelism(), runtime.NumCPU(); got != want {
		t.Errorf("with GOMAXPROCS %d: got %d, want %d", runtime.NumCPU()+1, got, want)
	}
	runtime.GOMAXPROCS(1)
	if got := DefaultParallelism(); got != 1 {
		t.Errorf("with GOMAXPROCS 1: got %d, want 1", got)
	}
}

// BenchmarkIncrementsOnly is the floor under fillWords: only the counter
// increments, from indices drawn beforehand (no generator, no shifts). When
// it costs about as much per number as BenchmarkFillWords, the kernel is
// bound by its increments (about one per clock cycle), not by drawing.
func BenchmarkIncrementsOnly(b *testing.B) {
	idx := make([]uint16, 1<<16)
	g := wyrand(1)
	for i := range idx {
		idx[i] = uint16(g.next() & chunkMask)
	}
	var tl tally
	for b.Loop() {
		for range benchTotal / len(idx) {
			for _, i := range idx {
				tl[i&chunkMask]++
			}
		}
	}
	reportPerNumber(b, benchTotal, 1)
}

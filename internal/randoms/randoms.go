// Package randoms draws uniformly distributed integers in [Min, Max] and
// counts how often each was drawn. It is the CPU-heavy kernel behind
// /api/randoms: pure, cancellable, and parallel across cores.
//
// # How a number is drawn
//
// Each goroutine runs its own wyrand generator (one 64x64->128-bit multiply
// per 64-bit output). Every output is cut into six 10-bit chunks, each
// uniform in [0, 1024). A chunk below 1000 is a draw of Min+chunk; a chunk
// of 1000..1023 is rejected (plain rejection sampling, 24/1024 = 2.3% of
// chunks), so there is no modulo bias: every accepted value has probability
// exactly 1/1000.
//
// The hot loop has no branch per draw: every chunk increments its own slot
// of a 1024-slot uint32 tally, and the 24 slots past 999 simply collect the
// rejected chunks. A batch of w words therefore draws 6w - rejected numbers,
// never more than 6w; the loop asks for at most remaining/6 words per batch,
// so it never overshoots, and it finishes the last few numbers one chunk at
// a time. The result is the histogram of the first total accepted chunks of
// an i.i.d. stream, i.e. of total independent uniform draws.
//
// Between batches a goroutine yields (runtime.Gosched every yieldEvery
// draws) so light requests are not starved, and checks ctx every checkEvery
// draws; the uint32 tally is flushed into the uint64 Counts at each check,
// long before a slot could overflow.
package randoms

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"math/bits"
	"runtime"
	"strconv"
	"sync"
)

// The range drawn from, inclusive.
const (
	Min = 1
	Max = 1000
	n   = Max - Min + 1
)

// Counts holds how often each number was drawn: Counts[i] is the count of Min+i.
type Counts [n]uint64

const (
	chunkBits     = 10
	slots         = 1 << chunkBits // a chunk is uniform in [0, slots)
	chunkMask     = slots - 1
	chunksPerWord = 64 / chunkBits // 6 chunks from each 64-bit output
)

// yieldEvery bounds how long a goroutine keeps its core without yielding:
// about 100 µs here, an interval that measurements showed keeps /api/info
// responsive while /api/randoms computes on every core (it was 65536 draws
// with the first kernel, 3x slower than this one). Yielding more
// often costs: runtime.Gosched wakes an idle P, if any, whose thread may
// steal the goroutine, moving it to another core: with an idle P, one
// goroutine yielding every 25 µs ran 29% slower than one yielding every
// 400 µs, and 8% slower when yielding every 100 µs.
// checkEvery bounds the cancellation delay and how much a uint32 tally slot
// can hold before it is flushed.
const (
	yieldEvery = 1 << 18 // draws between runtime.Gosched calls
	checkEvery = 1 << 20 // draws between ctx checks and tally flushes
)

// minPerWorker is the fewest draws worth starting a goroutine for.
const minPerWorker = 1 << 18

// Compile-time checks of the invariants above (a negative array length does
// not compile).
var (
	_ [slots - n]struct{}                    // the range fits in one chunk
	_ [64 - chunksPerWord*chunkBits]struct{} // the chunks fit in one word
	_ [1<<32 - 1 - checkEvery]struct{}       // a uint32 slot cannot overflow between flushes
	_ [yieldEvery - chunksPerWord]struct{}   // a batch is at least one word
)

// Count draws total numbers using up to parallelism goroutines (0 means
// DefaultParallelism) seeded from the OS, and returns the merged counts. It returns
// ctx.Err() soon after ctx is cancelled.
func Count(ctx context.Context, total int64, parallelism int) (*Counts, error) {
	var seed [8]byte
	_, _ = crand.Read(seed[:]) // never fails on Linux (crypto/rand panics or blocks otherwise)
	return CountSeeded(ctx, total, parallelism, binary.LittleEndian.Uint64(seed[:]))
}

// DefaultParallelism is the number of goroutines Count uses when asked for
// 0: one per CPU this process may run on (GOMAXPROCS, but never more than
// runtime.NumCPU). A server that runs with GOMAXPROCS above NumCPU thus keeps
// a P free of computing, whose thread waits in the network poller: light
// requests are then noticed at once instead of at the runtime's next
// forced network poll (every 10 ms while every P is busy).
func DefaultParallelism() int {
	return max(1, min(runtime.GOMAXPROCS(0), runtime.NumCPU()))
}

// CountSeeded is Count with a fixed seed, for reproducible tests. The result
// depends on seed, total and the number of goroutines actually used.
func CountSeeded(ctx context.Context, total int64, parallelism int, seed uint64) (*Counts, error) {
	if total < 0 {
		total = 0
	}
	if parallelism <= 0 {
		parallelism = DefaultParallelism()
	}
	if int64(parallelism) > total/minPerWorker+1 {
		parallelism = int(total/minPerWorker + 1)
	}
	if parallelism == 1 {
		out := new(Counts)
		if err := countPart(ctx, out, total, streamSeed(seed, 0)); err != nil {
			return nil, err
		}
		return out, nil
	}
	parts := make([]Counts, parallelism)
	errs := make([]error, parallelism)
	var wg sync.WaitGroup
	per := total / int64(parallelism)
	for i := range parallelism {
		m := per
		if i == 0 {
			m += total % int64(parallelism)
		}
		wg.Go(func() {
			errs[i] = countPart(ctx, &parts[i], m, streamSeed(seed, i))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	out := &parts[0]
	for i := 1; i < len(parts); i++ {
		for j, v := range parts[i] {
			out[j] += v
		}
	}
	return out, nil
}

// streamSeed derives the starting state of goroutine i's generator
// (splitmix64 of seed+i), so the streams start far apart.
func streamSeed(seed uint64, i int) uint64 {
	z := seed + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// wyrand is Wang Yi's generator: a Weyl sequence mixed by one 128-bit
// multiply. It passes BigCrush and PractRand; its state is one word.
type wyrand uint64

const (
	wyP0 = 0xa0761d6478bd642f
	wyP1 = 0xe7037ed1a0b428db
)

func (s *wyrand) next() uint64 {
	*s += wyP0
	hi, lo := bits.Mul64(uint64(*s), uint64(*s^wyP1))
	return hi ^ lo
}

// tally counts chunks: slots [0, n) are draws of Min+slot, slots [n, 1024)
// are rejected chunks.
type tally [slots]uint32

// fillWords draws words 64-bit outputs and tallies their six chunks each. It
// is the hot loop: no branch, no bounds check (the & proves the index), and
// the generator state stays in a register (a method call on *g would keep
// it in memory and chain every word through a store and a load).
func (t *tally) fillWords(g *wyrand, words int) {
	s := uint64(*g)
	for ; words > 0; words-- {
		s += wyP0
		hi, lo := bits.Mul64(s, s^wyP1)
		r := hi ^ lo
		t[r&chunkMask]++
		t[r>>(1*chunkBits)&chunkMask]++
		t[r>>(2*chunkBits)&chunkMask]++
		t[r>>(3*chunkBits)&chunkMask]++
		t[r>>(4*chunkBits)&chunkMask]++
		t[r>>(5*chunkBits)&chunkMask]++
	}
	*g = wyrand(s)
}

// rejected is how many chunks were rejected since the last flush.
func (t *tally) rejected() int64 {
	var r uint32
	for _, v := range t[n:] {
		r += v
	}
	return int64(r)
}

// draw tallies at least one and at most want accepted draws (want > 0) and
// returns how many it tallied.
func (t *tally) draw(g *wyrand, want int64) int64 {
	if want >= chunksPerWord {
		words := want / chunksPerWord
		before := t.rejected()
		t.fillWords(g, int(words))
		return words*chunksPerWord - (t.rejected() - before)
	}
	// The last few draws, one chunk at a time; unused chunks are dropped,
	// which cannot bias anything: the decision to stop never looks at them.
	var got int64
	for got < want {
		r := g.next()
		for range chunksPerWord {
			if c := r & chunkMask; c < n {
				t[c]++
				if got++; got == want {
					break
				}
			}
			r >>= chunkBits
		}
	}
	return got
}

// flush adds the accepted slots to c and clears the tally.
func (t *tally) flush(c *Counts) {
	for i := range c {
		c[i] += uint64(t[i])
	}
	*t = tally{}
}

// countPart adds m draws from a generator started at state to c.
func countPart(ctx context.Context, c *Counts, m int64, state uint64) error {
	var t tally
	g := wyrand(state)
	for m > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		for left := min(m, checkEvery); left > 0; {
			got := t.draw(&g, min(left, yieldEvery))
			left -= got
			m -= got
			runtime.Gosched()
		}
		t.flush(c)
	}
	return nil
}

// Sum is the total of all counts.
func (c *Counts) Sum() uint64 {
	var s uint64
	for _, v := range c {
		s += v
	}
	return s
}

// AppendJSON appends the counts as a JSON object {"1":count,...} with keys in
// ascending numeric order, omitting numbers never drawn.
func (c *Counts) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	first := true
	for i, v := range c {
		if v == 0 {
			continue
		}
		if first {
			first = false
			dst = append(dst, keys[keyOff[i]+1:keyOff[i+1]]...)
		} else {
			dst = append(dst, keys[keyOff[i]:keyOff[i+1]]...)
		}
		dst = strconv.AppendUint(dst, v, 10)
	}
	return append(dst, '}')
}

// keys is `,"1":,"2":...,"1000":` and keyOff[i] is where the key of Min+i
// starts (at its comma); both are built once, when the package loads.
var keys, keyOff = buildKeys()

func buildKeys() (string, *[n + 1]int) {
	var b []byte
	off := new([n + 1]int)
	for i := range n {
		off[i] = len(b)
		b = append(b, ',', '"')
		b = strconv.AppendInt(b, int64(i+Min), 10)
		b = append(b, '"', ':')
	}
	off[n] = len(b)
	return string(b), off
}

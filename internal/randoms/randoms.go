// Package randoms draws uniformly distributed integers in [Min, Max] and
// counts how often each was drawn. It is the CPU-heavy kernel behind
// /api/randoms: pure, cancellable, and parallel across cores.
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

// yieldEvery is how many draws a goroutine makes between yields to the
// scheduler, so that other requests (e.g. /info) are not starved.
const yieldEvery = 1 << 16

// checkEvery is how many draws happen between checks of ctx.
const checkEvery = 1 << 20

// Count draws total numbers using up to parallelism goroutines (0 means
// GOMAXPROCS) seeded from the OS, and returns the merged counts. It returns
// ctx.Err() soon after ctx is cancelled.
func Count(ctx context.Context, total int64, parallelism int) (*Counts, error) {
	var seed [8]byte
	_, _ = crand.Read(seed[:]) // never fails on Linux (crypto/rand panics or blocks otherwise)
	return CountSeeded(ctx, total, parallelism, binary.LittleEndian.Uint64(seed[:]))
}

// CountSeeded is Count with a fixed seed, for reproducible tests.
func CountSeeded(ctx context.Context, total int64, parallelism int, seed uint64) (*Counts, error) {
	if total < 0 {
		total = 0
	}
	if parallelism <= 0 {
		parallelism = runtime.GOMAXPROCS(0)
	}
	if int64(parallelism) > total/checkEvery+1 {
		parallelism = int(total/checkEvery + 1)
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
			errs[i] = countPart(ctx, &parts[i], m, seed+uint64(i)*0x9E3779B97F4A7C15)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	out := new(Counts)
	for i := range parts {
		for j, v := range parts[i] {
			out[j] += v
		}
	}
	return out, nil
}

// countPart draws m numbers with a wyrand generator and Lemire's
// multiply-and-reject, so that there is no modulo bias.
func countPart(ctx context.Context, c *Counts, m int64, state uint64) error {
	const threshold = (1<<64 - n) % n // 2^64 mod n: low words below it are rejected
	for m > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := min(m, checkEvery)
		m -= batch
		for batch > 0 {
			step := min(batch, yieldEvery)
			batch -= step
			for k := int64(0); k < step; {
				state += 0xa0761d6478bd642f
				hi, lo := bits.Mul64(state, state^0xe7037ed1a0b428db)
				x := hi ^ lo
				h, l := bits.Mul64(x, n)
				if l < threshold {
					continue
				}
				c[h]++
				k++
			}
			runtime.Gosched()
		}
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
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, int64(i+Min), 10)
		dst = append(dst, '"', ':')
		dst = strconv.AppendUint(dst, v, 10)
	}
	return append(dst, '}')
}

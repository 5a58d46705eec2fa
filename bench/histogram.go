package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^subBits linear sub-buckets, so a recorded value is known to within
// 1/2^subBits of itself (the quantiles report a bucket's midpoint, which
// halves that again: under 0.4%).
const subBits = 7

const (
	subCount = 1 << subBits
	// numBuckets covers every non-negative int64.
	numBuckets = (63-(subBits+1))<<subBits + 2*subCount
)

// Histogram records non-negative durations in log-linear buckets, in the
// manner of HdrHistogram: values below 2^(subBits+1) ns are exact, larger
// ones fall in one of 2^subBits equal sub-buckets of their power of two. Its
// memory is bounded (at most numBuckets counters, allocated up to the largest
// value seen) whatever the number of samples, and two histograms merge
// exactly. The zero value is an empty histogram ready to use.
//
// A Histogram is not safe for concurrent use.
type Histogram struct {
	// counts[i] is the number of values in bucket i. len(counts) <= numBuckets.
	counts []uint64
	// n is the sum of counts.
	n uint64
	// min and max are the exact extreme values; meaningful only when n > 0.
	min, max time.Duration
}

// bucketOf returns the bucket index of v >= 0.
func bucketOf(v uint64) int {
	shift := max(bits.Len64(v)-(subBits+1), 0)
	return shift<<subBits + int(v>>shift)
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < 2*subCount {
		return uint64(i), uint64(i)
	}
	shift := i>>subBits - 1
	sub := uint64(i - shift<<subBits)
	lo = sub << shift
	return lo, lo + 1<<shift - 1
}

// Record adds one value. A negative value (clocks of two events that raced)
// counts as 0.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	i := bucketOf(uint64(d))
	if i >= len(h.counts) {
		h.grow(i + 1)
	}
	h.counts[i]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if h.n == 0 || d > h.max {
		h.max = d
	}
	h.n++
}

func (h *Histogram) grow(n int) {
	// Grow geometrically, within the bound, so that rising values do not
	// reallocate at every new bucket.
	n = min(max(n, 2*len(h.counts)), numBuckets)
	counts := make([]uint64, n)
	copy(counts, h.counts)
	h.counts = counts
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.grow(len(o.counts))
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.n == 0 || o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest value recorded, 0 if none.
func (h *Histogram) Min() time.Duration { return h.min }

// Max returns the largest value recorded, 0 if none.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the value below or at which a fraction q (0..1) of the
// recorded values lie: the value of rank ceil(q*n) in sorted order, to within
// the bucket precision, and never outside [Min, Max]. It returns 0 for an
// empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum < rank {
			continue
		}
		lo, hi := bucketBounds(i)
		mid := time.Duration(lo + (hi-lo)/2)
		return min(max(mid, h.min), h.max)
	}
	return h.max // unreachable while n == sum(counts)
}

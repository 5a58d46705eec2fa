package bench

// The histogram must report quantiles within its stated precision of the exact
// ones (a sorted reference), merge exactly, and stay bounded in memory.

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exactQuantile is the reference: the value of rank ceil(q*n) of sorted.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestHistogram_QuantileMatchesSortedReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"small exact values", func() time.Duration { return time.Duration(rng.IntN(256)) }},
		{"uniform microseconds to milliseconds", func() time.Duration {
			return time.Duration(rng.Int64N(int64(5*time.Millisecond))) + time.Microsecond
		}},
		{"log-normal latencies", func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5 + 13)) // around 0.4ms, long tail
		}},
		{"bimodal with huge outliers", func() time.Duration {
			if rng.IntN(100) == 0 {
				return time.Duration(rng.Int64N(int64(time.Hour)))
			}
			return time.Duration(rng.Int64N(int64(time.Millisecond)))
		}},
	}
	quantiles := []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 20000)
			for i := range vals {
				vals[i] = tt.gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			require.Equal(t, uint64(len(vals)), h.Count())
			assert.Equal(t, vals[0], h.Min())
			assert.Equal(t, vals[len(vals)-1], h.Max())
			for _, q := range quantiles {
				want := exactQuantile(vals, q)
				got := h.Quantile(q)
				// Midpoint of a bucket of width <= value/128: within 1/256, plus rounding.
				tol := float64(want)/250 + 1
				assert.InDelta(t, float64(want), float64(got), tol, "q=%v want %v got %v", q, want, got)
			}
		})
	}
}

func TestHistogram_Merge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 10000 {
		v := time.Duration(rng.Int64N(int64(10 * time.Millisecond)))
		if i%3 == 0 {
			v *= 1000 // b's values are larger, so Merge must grow a
			b.Record(v)
		} else {
			a.Record(v)
		}
		all.Record(v)
	}
	var empty Histogram
	a.Merge(&empty)
	a.Merge(&b)
	assert.Equal(t, all.Count(), a.Count())
	assert.Equal(t, all.Min(), a.Min())
	assert.Equal(t, all.Max(), a.Max())
	assert.Equal(t, all.counts, a.counts[:len(all.counts)])
	for _, q := range []float64{0.5, 0.99, 0.999} {
		assert.Equal(t, all.Quantile(q), a.Quantile(q), "q=%v", q)
	}

	var into Histogram
	into.Merge(&b)
	assert.Equal(t, b.Min(), into.Min(), "merge into empty takes the other's min")
	assert.Equal(t, b.Quantile(0.5), into.Quantile(0.5))
}

func TestHistogram_EdgeCases(t *testing.T) {
	var h Histogram
	assert.Equal(t, time.Duration(0), h.Quantile(0.5), "empty histogram")
	assert.Equal(t, uint64(0), h.Count())

	h.Record(-5 * time.Millisecond)
	assert.Equal(t, time.Duration(0), h.Max(), "negative values count as zero")

	h.Record(time.Duration(math.MaxInt64))
	assert.Equal(t, time.Duration(math.MaxInt64), h.Quantile(1))
	assert.LessOrEqual(t, len(h.counts), numBuckets, "memory stays bounded")
	assert.Equal(t, numBuckets, bucketOf(math.MaxInt64)+1)

	for i := range 2 * subCount {
		lo, hi := bucketBounds(i)
		assert.Equal(t, uint64(i), lo)
		assert.Equal(t, uint64(i), hi, "values below 2^(subBits+1) are exact")
	}
	for _, v := range []uint64{256, 257, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64} {
		lo, hi := bucketBounds(bucketOf(v))
		assert.True(t, lo <= v && v <= hi, "%d in [%d,%d]", v, lo, hi)
		assert.LessOrEqual(t, float64(hi-lo), float64(v)/subCount, "bucket width of %d", v)
	}
}

func BenchmarkHistogram_Record(b *testing.B) {
	var h Histogram
	v := time.Duration(0)
	for b.Loop() {
		v = (v + 7919) % time.Second
		h.Record(v)
	}
}

package bench

import (
	"cmp"
	"slices"
	"time"
)

// Point summarizes the values of one window of a Series.
type Point struct {
	At       time.Duration // middle of the window, since the run's origin
	P50, P99 time.Duration
	Max      time.Duration
	Count    uint64
}

// Series is a time series of durations in fixed windows, for the plot: each
// window keeps a Histogram while it may still receive values and only a Point
// once it is closed, so memory grows with the run's length, not its load.
// Not safe for concurrent use.
type Series struct {
	origin time.Time
	window time.Duration
	// open holds the windows that may still receive values: those within
	// openWindows of the newest. Older ones are in closed.
	open   map[int64]*Histogram
	newest int64
	closed []Point
}

// openWindows is how many windows behind the newest still take values:
// samples arrive slightly out of time order (lag samples come in batches).
const openWindows = 2

// NewSeries returns an empty series of windows of the given width starting at
// origin.
func NewSeries(origin time.Time, window time.Duration) *Series {
	return &Series{origin: origin, window: max(window, time.Millisecond), open: map[int64]*Histogram{}}
}

// Add records the value v observed at time at. A value older than the open
// windows is counted in the oldest open one.
func (s *Series) Add(at time.Time, v time.Duration) {
	idx := int64(at.Sub(s.origin) / s.window)
	if idx > s.newest {
		s.newest = idx
		s.closeBefore(idx - openWindows)
	}
	idx = max(idx, s.newest-openWindows)
	h := s.open[idx]
	if h == nil {
		h = &Histogram{}
		s.open[idx] = h
	}
	h.Record(v)
}

func (s *Series) closeBefore(limit int64) {
	for idx, h := range s.open {
		if idx < limit {
			s.closed = append(s.closed, s.point(idx, h))
			delete(s.open, idx)
		}
	}
}

func (s *Series) point(idx int64, h *Histogram) Point {
	return Point{
		At:    time.Duration(idx)*s.window + s.window/2,
		P50:   h.Quantile(0.5),
		P99:   h.Quantile(0.99),
		Max:   h.Max(),
		Count: h.Count(),
	}
}

// Points returns every window that has values, in time order.
func (s *Series) Points() []Point {
	pts := slices.Clone(s.closed)
	for idx, h := range s.open {
		pts = append(pts, s.point(idx, h))
	}
	slices.SortFunc(pts, func(a, b Point) int { return cmp.Compare(a.At, b.At) })
	return pts
}

package bench

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotFloorMs is the smallest value drawn: the y axes are logarithmic, so
// that a failover's second-long latencies and sub-millisecond steady state
// fit on one axis.
const plotFloorMs = 0.001

// WritePlot draws the run's timeline to a PNG file at path: send latency
// (top) and replication lag (bottom) over time, p50, p99 and max per window,
// with the fault injections and recoveries marked by vertical lines.
func WritePlot(path string, r Result) (err error) {
	tl := r.Timeline
	var end float64
	for _, pts := range [][]Point{tl.Latency, tl.Lag} {
		if len(pts) > 0 {
			end = max(end, pts[len(pts)-1].At.Seconds())
		}
	}
	for _, m := range tl.Marks {
		end = max(end, m.At.Seconds())
	}
	lat, err := seriesPlot(fmt.Sprintf("send latency (%d replicas, %d clients)", r.Replicas, r.Clients), tl.Latency, tl.Marks, end)
	if err != nil {
		return err
	}
	lagTitle := "replication lag, primary append -> backup durable"
	if len(tl.Lag) == 0 {
		lagTitle += " (none: no backup)"
	}
	lag, err := seriesPlot(lagTitle, tl.Lag, tl.Marks, end)
	if err != nil {
		return err
	}
	lag.X.Label.Text = "seconds since the start of the load"

	const w, h = 10 * vg.Inch, 8 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{{lat}, {lag}}, tiles, dc)
	lat.Draw(canvases[0][0])
	lag.Draw(canvases[1][0])

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create plot: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close plot %s: %w", path, cerr)
		}
	}()
	bw := bufio.NewWriter(f)
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(bw); err != nil {
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	return nil
}

// seriesPlot draws one series' p50, p99 and max in milliseconds, on a log
// axis, with a labelled vertical line per mark.
func seriesPlot(title string, pts []Point, marks []Mark, end float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "ms"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Min, p.X.Max = 0, math.Max(end, 1)
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true

	colorMarks := color.RGBA{R: 44, G: 160, B: 44, A: 255}
	yMax := 1.0
	lines := []struct {
		name  string
		col   color.Color
		value func(Point) time.Duration
	}{
		{"max", color.RGBA{R: 150, G: 150, B: 150, A: 255}, func(pt Point) time.Duration { return pt.Max }},
		{"p99", color.RGBA{R: 214, G: 39, B: 40, A: 255}, func(pt Point) time.Duration { return pt.P99 }},
		{"p50", color.RGBA{R: 31, G: 119, B: 180, A: 255}, func(pt Point) time.Duration { return pt.P50 }},
	}
	for _, l := range lines {
		if len(pts) == 0 {
			break
		}
		xys := make(plotter.XYs, len(pts))
		for i, pt := range pts {
			y := math.Max(ms(l.value(pt)), plotFloorMs)
			xys[i] = plotter.XY{X: pt.At.Seconds(), Y: y}
			yMax = math.Max(yMax, y)
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", l.name, err)
		}
		line.Color = l.col
		line.Width = vg.Points(1.2)
		p.Add(line)
		p.Legend.Add(l.name, line)
	}
	if len(pts) == 0 {
		// A log axis needs a range even with nothing to draw.
		p.Y.Min, p.Y.Max = plotFloorMs*100, 10
		yMax = 10
	}
	var markLine *plotter.Line
	for i, m := range marks {
		x := m.At.Seconds()
		line, err := plotter.NewLine(plotter.XYs{{X: x, Y: plotFloorMs * 100}, {X: x, Y: yMax}})
		if err != nil {
			return nil, fmt.Errorf("plot mark %q: %w", m.Label, err)
		}
		line.Color = colorMarks
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
		markLine = line
		// Stagger the labels so that close marks stay readable.
		labels, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    []plotter.XY{{X: x, Y: yMax / math.Pow(2.5, float64(i%4))}},
			Labels: []string{m.Label},
		})
		if err != nil {
			return nil, fmt.Errorf("plot mark %q: %w", m.Label, err)
		}
		for j := range labels.TextStyle {
			labels.TextStyle[j].Color = colorMarks
			labels.TextStyle[j].Font.Size = vg.Points(8)
		}
		p.Add(labels)
	}
	if markLine != nil {
		p.Legend.Add("fault / recovery", markLine)
	}
	return p, nil
}

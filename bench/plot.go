package bench

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"
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

// The plot's layout: the legends sit in a strip right of the panels, so
// that they never cover the data.
const (
	plotWidth   = 11 * vg.Inch
	panelHeight = 3.3 * vg.Inch
	legendWidth = 1.7 * vg.Inch
)

// markColor draws fault injections and recoveries.
var markColor = color.RGBA{R: 44, G: 160, B: 44, A: 255}

// replicaColors tell the replicas apart on the disk panel.
var replicaColors = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255},
	color.RGBA{R: 140, G: 86, B: 75, A: 255},
	color.RGBA{R: 23, G: 190, B: 207, A: 255},
}

// panel is one plot of the figure with its legend, drawn beside it.
type panel struct {
	p      *plot.Plot
	legend plot.Legend
}

func newPanel(title string) panel {
	pn := panel{p: plot.New(), legend: plot.NewLegend()}
	pn.p.Title.Text = title
	pn.p.Add(plotter.NewGrid())
	pn.legend.Top, pn.legend.Left = true, true
	pn.legend.TextStyle.Font.Size = vg.Points(10)
	return pn
}

// WritePlot draws the run's timeline to a PNG file at path: send latency
// (top), replication lag (middle), p50, p99 and max per window, and each
// replica's data directory size (bottom), over time, with the fault
// injections and recoveries marked by vertical lines. Each panel's legend
// is beside it, right of the data.
func WritePlot(path string, r Result) (err error) {
	tl := r.Timeline
	var end float64
	for _, pts := range [][]Point{tl.Latency, tl.Lag} {
		if len(pts) > 0 {
			end = max(end, pts[len(pts)-1].At.Seconds())
		}
	}
	for _, s := range tl.Disk {
		if len(s) > 0 {
			end = max(end, s[len(s)-1].Sec)
		}
	}
	for _, m := range tl.Marks {
		end = max(end, m.At.Seconds())
	}
	lat, err := seriesPanel(fmt.Sprintf("send latency (%d replicas, %d clients)", r.Replicas, r.Clients), tl.Latency, tl.Marks, end)
	if err != nil {
		return err
	}
	lagTitle := "replication lag, primary append -> backup durable"
	if len(tl.Lag) == 0 {
		lagTitle += " (none: no backup)"
	}
	lag, err := seriesPanel(lagTitle, tl.Lag, tl.Marks, end)
	if err != nil {
		return err
	}
	disk, err := diskPanel(tl.Disk, tl.Marks, end)
	if err != nil {
		return err
	}
	disk.p.X.Label.Text = "seconds since the start of the load"
	panels := []panel{lat, lag, disk}

	img := vgimg.New(plotWidth, panelHeight*vg.Length(len(panels)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		plots[i] = []*plot.Plot{pn.p}
	}
	canvases := plot.Align(plots, tiles, draw.Crop(dc, 0, -legendWidth, 0, 0))
	for i, pn := range panels {
		c := canvases[i][0]
		pn.p.Draw(c)
		// The legend's strip starts level with the panel's data area.
		top := c.Max.Y - pn.p.Title.TextStyle.Rectangle(pn.p.Title.Text).Size().Y - pn.p.Title.Padding
		pn.legend.Draw(draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: c.Max.X + 3*vg.Millimeter, Y: c.Min.Y},
			Max: vg.Point{X: dc.Max.X, Y: top},
		}})
	}

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

// seriesPanel draws one series' p50, p99 and max in milliseconds, on a log
// axis, with a labelled vertical line per mark.
func seriesPanel(title string, pts []Point, marks []Mark, end float64) (panel, error) {
	pn := newPanel(title)
	p := pn.p
	p.Y.Label.Text = "ms"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Min, p.X.Max = 0, math.Max(end, 1)

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
			return pn, fmt.Errorf("plot %s: %w", l.name, err)
		}
		line.Color = l.col
		line.Width = vg.Points(1.2)
		p.Add(line)
		pn.legend.Add(l.name, line)
	}
	if len(pts) == 0 {
		// A log axis needs a range even with nothing to draw.
		p.Y.Min, p.Y.Max = plotFloorMs*100, 10
		yMax = 10
	}
	// The mark labels go above the data, staggered on four levels so that
	// close marks stay readable.
	if len(marks) > 0 {
		p.Y.Max = yMax * 50
	}
	err := addMarks(&pn, marks, plotFloorMs*100, p.Y.Max, func(i int) float64 { return yMax * 35 / math.Pow(2, float64(i%4)) })
	return pn, err
}

// diskPanel draws the space allocated to each replica's data directory
// over time, in MiB, and dashed, its log directory alone. (The sum of the file sizes, also in the samples, is
// not drawn: Badger's sparse preallocated files make it jump by a hundred
// MiB at a time while hardly a block is written.)
func diskPanel(disk map[string][]DiskSample, marks []Mark, end float64) (panel, error) {
	title := "disk per replica: space allocated to the data directory (du)"
	if len(disk) == 0 {
		title += " (not measured)"
	}
	pn := newPanel(title)
	p := pn.p
	p.Y.Label.Text = "MiB"
	p.X.Min, p.X.Max = 0, math.Max(end, 1)
	p.Y.Min = 0
	yMax := 1.0
	ids := make([]int, 0, len(disk))
	for id := range disk {
		n, err := strconv.Atoi(id)
		if err != nil {
			return pn, fmt.Errorf("plot disk: replica id %q", id)
		}
		ids = append(ids, n)
	}
	slices.Sort(ids)
	for _, id := range ids {
		samples := disk[strconv.Itoa(id)]
		if len(samples) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(samples))
		for i, s := range samples {
			xys[i] = plotter.XY{X: s.Sec, Y: float64(s.Allocated) / (1 << 20)}
			yMax = math.Max(yMax, xys[i].Y)
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return pn, fmt.Errorf("plot disk of replica %d: %w", id, err)
		}
		line.Color, line.Width = replicaColors[id%len(replicaColors)], vg.Points(1.2)
		p.Add(line)
		pn.legend.Add("replica "+strconv.Itoa(id), line)
		// Dashed: the log alone, the part that compaction bounds (the
		// state and the snapshots grow with the messages kept).
		rest := make(plotter.XYs, len(samples))
		hasLog := false
		for i, s := range samples {
			rest[i] = plotter.XY{X: s.Sec, Y: float64(s.Dirs[logSubdir]) / (1 << 20)}
			hasLog = hasLog || s.Dirs[logSubdir] > 0
		}
		if !hasLog {
			continue
		}
		dashed, err := plotter.NewLine(rest)
		if err != nil {
			return pn, fmt.Errorf("plot disk of replica %d: %w", id, err)
		}
		dashed.Color, dashed.Width = line.Color, vg.Points(1)
		dashed.Dashes = []vg.Length{vg.Points(5), vg.Points(2)}
		p.Add(dashed)
		pn.legend.Add("replica "+strconv.Itoa(id)+": log", dashed)
	}
	// Room above the highest curve for the mark labels, staggered on four
	// levels.
	p.Y.Max = yMax * 1.4
	err := addMarks(&pn, marks, 0, p.Y.Max, func(i int) float64 { return p.Y.Max * (0.96 - 0.06*float64(i%4)) })
	return pn, err
}

// addMarks draws a dashed vertical line from lo to hi for each mark, with
// its label at labelY(i), and a legend entry for them.
func addMarks(pn *panel, marks []Mark, lo, hi float64, labelY func(i int) float64) error {
	var markLine *plotter.Line
	for i, m := range marks {
		x := m.At.Seconds()
		line, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
		if err != nil {
			return fmt.Errorf("plot mark %q: %w", m.Label, err)
		}
		line.Color = markColor
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		pn.p.Add(line)
		markLine = line
		labels, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    []plotter.XY{{X: x, Y: labelY(i)}},
			Labels: []string{m.Label},
		})
		if err != nil {
			return fmt.Errorf("plot mark %q: %w", m.Label, err)
		}
		for j := range labels.TextStyle {
			labels.TextStyle[j].Color = markColor
			labels.TextStyle[j].Font.Size = vg.Points(8)
		}
		pn.p.Add(labels)
	}
	if markLine != nil {
		pn.legend.Add("fault / recovery", markLine)
	}
	return nil
}

package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// PhaseLines wraps w for Options.Progress when it is not a terminal (a log
// file, a pipe, CI): the progress is then one line per phase, as the run
// enters it, instead of a line rewritten in place with \r, which would pile
// up there as one endless line.
func PhaseLines(w io.Writer) io.Writer { return phaseLines{w} }

// phaseLines marks a progress writer that wants a line per phase.
type phaseLines struct{ io.Writer }

// ProgressWriter returns the writer for Options.Progress that suits w: w
// itself on a terminal (a line rewritten in place), PhaseLines(w) on
// anything else.
func ProgressWriter(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return w
	}
	return PhaseLines(w)
}

// progress reports a run's progress while it goes: on a terminal, one
// status line rewritten in place (\r, no newline) with the phase, the time
// since the start of the load and the sends; elsewhere (PhaseLines), one
// line per phase.
type progress struct {
	w     io.Writer
	lines bool // one line per phase, no \r
	start time.Time
	phase atomic.Value // string
	rec   atomic.Pointer[recorder]
	width int // of the last line, to blank it out
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if pl, ok := w.(phaseLines); ok {
		p.w, p.lines = pl.Writer, true
	}
	p.phase.Store("start")
	return p
}

func (p *progress) setPhase(name string) {
	if p != nil {
		p.phase.Store(name)
	}
}

// run redraws the line every 250ms (or, with lines, prints the phase when
// it changes) until ctx ends, then erases the line. The returned function
// waits for it to finish.
func (p *progress) run(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	if p == nil || p.w == nil {
		return wg.Wait
	}
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		var lastSends uint64
		lastPhase := ""
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				if !p.lines {
					fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
				}
				return
			case now := <-t.C:
				phase := p.phase.Load().(string)
				if p.lines {
					if phase != lastPhase {
						lastPhase = phase
						fmt.Fprintf(p.w, "chatbench: %s (%.1fs)\n", phase, time.Since(p.start).Seconds())
					}
					continue
				}
				line := fmt.Sprintf("chatbench: %-9s %6.1fs", phase, time.Since(p.start).Seconds())
				if rec := p.rec.Load(); rec != nil {
					sends := rec.sends.Load()
					rate := float64(sends-lastSends) / now.Sub(last).Seconds()
					lastSends, last = sends, now
					line += fmt.Sprintf("  sends %d (%.0f/s)  pushes %d", sends, rate, rec.pushes.Load())
				}
				pad := max(p.width-len(line), 0)
				p.width = len(line)
				fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
			}
		}
	})
	return wg.Wait
}

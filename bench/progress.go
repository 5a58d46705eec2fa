package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress rewrites one status line on a terminal (\r, no newline) while a
// run goes: the phase, the time since the start of the load, and the sends.
type progress struct {
	w     io.Writer
	start time.Time
	phase atomic.Value // string
	rec   atomic.Pointer[recorder]
	width int // of the last line, to blank it out
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	p.phase.Store("start")
	return p
}

func (p *progress) setPhase(name string) {
	if p != nil {
		p.phase.Store(name)
	}
}

// run redraws the line every 250ms until ctx ends, then erases it. The
// returned function waits for it to finish.
func (p *progress) run(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	if p == nil || p.w == nil {
		return wg.Wait
	}
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		var lastSends uint64
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
				return
			case now := <-t.C:
				line := fmt.Sprintf("chatbench: %-9s %6.1fs", p.phase.Load(), time.Since(p.start).Seconds())
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

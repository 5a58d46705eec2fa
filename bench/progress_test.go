package bench

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// lockedBuffer is a bytes.Buffer for the progress goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runProgress runs a progress on w through three phases and returns what
// buf (under w) received.
func runProgress(w io.Writer, buf *lockedBuffer) string {
	p := newProgress(w)
	ctx, cancel := context.WithCancel(context.Background())
	wait := p.run(ctx)
	time.Sleep(300 * time.Millisecond)
	p.setPhase("load")
	time.Sleep(300 * time.Millisecond)
	p.setPhase("failover")
	time.Sleep(300 * time.Millisecond)
	cancel()
	wait()
	return buf.String()
}

func TestProgress_LinesOffATerminal(t *testing.T) {
	var w lockedBuffer
	out := runProgress(PhaseLines(&w), &w)
	assert.NotContains(t, out, "\r", "no carriage returns in a log")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	assert.Len(t, lines, 3, "%q", out)
	assert.Contains(t, lines[0], "chatbench: start")
	assert.Contains(t, lines[1], "chatbench: load (")
	assert.Contains(t, lines[2], "chatbench: failover (")

	assert.IsType(t, phaseLines{}, ProgressWriter(&w), "a buffer is not a terminal")
}

func TestProgress_RewrittenOnATerminal(t *testing.T) {
	var w lockedBuffer
	out := runProgress(&w, &w)
	assert.Contains(t, out, "\rchatbench: load")
	assert.NotContains(t, out, "\n")
}

package server

import (
	"sync"
	"time"
)

// loginLimiter locks a name out after too many failed logins within a window,
// which makes guessing a password online slow. It is local to the server, not
// replicated: a failover resets it, which costs an attacker one window.
type loginLimiter struct {
	max    int
	window time.Duration

	mu sync.Mutex
	// failures holds per-name failure counts in the current window.
	// Invariant: at most maxTracked names (old windows are dropped first).
	failures map[string]*failureWindow
}

type failureWindow struct {
	start time.Time
	count int
}

// maxTracked bounds the limiter's memory against a flood of random names.
const maxTracked = 100_000

func newLoginLimiter(max int, window time.Duration) *loginLimiter {
	return &loginLimiter{max: max, window: window, failures: make(map[string]*failureWindow)}
}

// blocked returns how long name remains locked out, 0 if it is not.
func (l *loginLimiter) blocked(name string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.failures[name]
	if w == nil || w.count < l.max {
		return 0
	}
	if left := w.start.Add(l.window).Sub(now); left > 0 {
		return left
	}
	delete(l.failures, name)
	return 0
}

func (l *loginLimiter) fail(name string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.failures[name]
	if w == nil || now.Sub(w.start) >= l.window {
		if w == nil && len(l.failures) >= maxTracked {
			l.evict(now)
		}
		w = &failureWindow{start: now}
		l.failures[name] = w
	}
	w.count++
}

func (l *loginLimiter) succeed(name string) {
	l.mu.Lock()
	delete(l.failures, name)
	l.mu.Unlock()
}

// evict drops expired windows, or everything if none has expired (a flood).
func (l *loginLimiter) evict(now time.Time) {
	for name, w := range l.failures {
		if now.Sub(w.start) >= l.window {
			delete(l.failures, name)
		}
	}
	if len(l.failures) >= maxTracked {
		clear(l.failures)
	}
}

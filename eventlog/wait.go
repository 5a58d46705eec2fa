package eventlog

import (
	"context"
	"fmt"
)

// waitPast implements Wait for both logs. state reports, atomically, whether
// the log is closed, its last offset, and the channel that is closed at the
// next change (each implementation replaces it on every append or close).
func waitPast(ctx context.Context, after Offset, state func() (closed bool, last Offset, changed <-chan struct{})) error {
	for {
		closed, last, changed := state()
		switch {
		case closed:
			return fmt.Errorf("wait after %d: %w", after, ErrClosed)
		case last > after:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

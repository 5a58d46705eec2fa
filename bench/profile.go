package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// profile starts fetching a CPU profile from every running replica when
// Options.ProfileDir is set, as <phase>-<id>.pprof, for secs seconds (0:
// until ctx's deadline); the returned function waits for them and reports
// every failure. Profiles are for finding where the time goes: they do not
// change any figure, but the profiler itself costs a few percent of CPU.
func (r *runner) profile(ctx context.Context, phase string, secs int) func() error {
	dir := r.opts.ProfileDir
	if dir == "" {
		return func() error { return nil }
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() error { return fmt.Errorf("create profile directory: %w", err) }
	}
	if dl, ok := ctx.Deadline(); ok && secs == 0 {
		secs = int(time.Until(dl) / time.Second)
	}
	secs = max(secs, 1)
	var wg sync.WaitGroup
	errs := make([]error, len(r.addrs))
	for id := range r.addrs {
		addr := r.cl.DebugAddr(id)
		if addr == "" || !r.cl.Running(id) {
			continue
		}
		wg.Go(func() {
			path := filepath.Join(dir, phase+"-"+strconv.Itoa(id)+".pprof")
			errs[id] = fetchProfile(addr, secs, path)
		})
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}

func fetchProfile(addr string, secs int, path string) error {
	hc := http.Client{Timeout: time.Duration(secs)*time.Second + 30*time.Second}
	resp, err := hc.Get("http://" + addr + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
	if err != nil {
		return fmt.Errorf("fetch profile from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch profile from %s: %s", addr, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	return f.Close()
}

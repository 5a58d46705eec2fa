package netfault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// FlapConfig configures Flap. Zero fields take the defaults.
type FlapConfig struct {
	// Replicas are the ids whose links flap; default every replica.
	Replicas []int
	// MinWait and MaxWait bound the random wait between two changes;
	// default 200ms and 2s.
	MinWait, MaxWait time.Duration
	// MaxCut is the most directed links cut at once; 0 means no bound.
	MaxCut int
}

// FlapEvent is one change Flap made.
type FlapEvent struct {
	At    time.Duration // since Flap started
	Cut   bool          // the links were cut; else restored
	Links []Link
}

// String is "1.234s cut 0->1,1->0".
func (e FlapEvent) String() string {
	verb := "restore"
	if e.Cut {
		verb = "cut"
	}
	names := make([]string, len(e.Links))
	for i, l := range e.Links {
		names[i] = l.String()
	}
	return fmt.Sprintf("%.3fs %s %s", e.At.Seconds(), verb, strings.Join(names, ","))
}

// Flap cuts and restores random links between the replicas until ctx ends,
// waiting a random time between two changes. A change cuts one direction or
// both of a random pair, or restores some of the links it cut. The random
// choices come only from rng (Flap owns it while it runs), so a seed gives
// the same sequence of changes. Before it returns, Flap restores every link
// it cut; it returns the changes it made. It does not touch links it did
// not cut, and must not run concurrently with other changes to the links it
// flaps.
func Flap(ctx context.Context, p *Proxy, rng *rand.Rand, cfg FlapConfig) (events []FlapEvent) {
	ids := cfg.Replicas
	if len(ids) == 0 {
		for j := range p.Replicas() {
			ids = append(ids, j)
		}
	}
	if cfg.MinWait <= 0 {
		cfg.MinWait = 200 * time.Millisecond
	}
	if cfg.MaxWait < cfg.MinWait {
		cfg.MaxWait = max(2*time.Second, cfg.MinWait)
	}
	start := time.Now()
	var cut []Link // cut by Flap and not restored yet
	record := func(isCut bool, links []Link) {
		events = append(events, FlapEvent{At: time.Since(start), Cut: isCut, Links: links})
	}
	defer func() {
		if len(cut) > 0 {
			p.RestoreLinks(cut...)
			record(false, cut)
		}
	}()
	if len(ids) < 2 {
		<-ctx.Done()
		return events
	}
	for {
		wait := cfg.MinWait + time.Duration(rng.Int64N(int64(cfg.MaxWait-cfg.MinWait)+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return events
		case <-t.C:
		}
		room := cfg.MaxCut <= 0 || len(cut) < cfg.MaxCut
		if len(cut) == 0 || (room && rng.IntN(2) == 0) {
			ia, ib := rng.IntN(len(ids)), rng.IntN(len(ids)-1)
			if ib >= ia {
				ib++
			}
			a, b := ids[ia], ids[ib]
			var links []Link
			switch rng.IntN(3) {
			case 0:
				links = []Link{{a, b}}
			case 1:
				links = []Link{{b, a}}
			default:
				links = []Link{{a, b}, {b, a}}
			}
			links = slices.DeleteFunc(links, func(l Link) bool { return slices.Contains(cut, l) })
			if cfg.MaxCut > 0 {
				links = links[:min(len(links), cfg.MaxCut-len(cut))]
			}
			if len(links) == 0 {
				continue
			}
			p.CutLinks(links...)
			cut = append(cut, links...)
			record(true, links)
			continue
		}
		// Restore one cut link, and its reverse half the time.
		l := cut[rng.IntN(len(cut))]
		links := []Link{l}
		if r := (Link{l.To, l.From}); slices.Contains(cut, r) && rng.IntN(2) == 0 {
			links = append(links, r)
		}
		cut = slices.DeleteFunc(cut, func(c Link) bool { return slices.Contains(links, c) })
		p.RestoreLinks(links...)
		record(false, links)
	}
}

package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the figures of r as an aligned table, one row per
// figure: the value, the value relative to this disk's fsync where that is
// how the goal is stated, the goal, and PASS or MISS ("-" when the run did
// not measure it).
func WriteTable(w io.Writer, r Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "chatbench: %d replicas, %d clients, %.1fs of load\n\n", r.Replicas, r.Clients, r.LoadSec)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tRELATIVE\tGOAL\tRESULT")
	targets := map[string]Target{}
	for _, t := range r.Targets {
		targets[t.Name] = t
	}
	row := func(name, value, rel, target string) {
		t, ok := targets[target]
		goal, verdict := "", ""
		if ok {
			goal, verdict = t.Goal, "-"
			if t.Pass != nil {
				verdict = "MISS"
				if *t.Pass {
					verdict = "PASS"
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, value, rel, goal, verdict)
	}
	row("fsync p50 / p99", fmt.Sprintf("%s / %s ms", num(r.FsyncMs.P50), num(r.FsyncMs.P99)),
		fmt.Sprintf("%.0f fsync/s", r.FsyncPerSec), "")
	row("sends", fmt.Sprintf("%d acknowledged, %.0f/s", r.Sends, r.SendsPerSec),
		fmt.Sprintf("%.1fx fsync rate", r.Ratios.SendsPerFsync), "sends_per_sec")
	row("latency p50 / p99 / p999", fmt.Sprintf("%s / %s / %s ms", num(r.LatencyMs.P50), num(r.LatencyMs.P99), num(r.LatencyMs.P999)),
		fmt.Sprintf("p99 %.1fx fsync p50", r.Ratios.LatencyP99OverFsyncP50), "latency_p99")
	lag, lagRel := "-", "-"
	if r.LagMs != nil {
		lag = fmt.Sprintf("%s / %s / %s ms", num(r.LagMs.P50), num(r.LagMs.P99), num(r.LagMs.Max))
	}
	if r.Ratios.LagP99OverFsyncP50 != nil {
		lagRel = fmt.Sprintf("p99 %.1fx fsync p50", *r.Ratios.LagP99OverFsyncP50)
	}
	row("lag durable p50 / p99 / max", lag, lagRel, "lag_p99_ms")
	if r.LagAppliedMs != nil {
		row("lag applied p50 / p99 / max", fmt.Sprintf("%s / %s / %s ms", num(r.LagAppliedMs.P50), num(r.LagAppliedMs.P99), num(r.LagAppliedMs.Max)), "", "")
	}
	failover := "-"
	if r.FailoverMs != nil {
		failover = num(*r.FailoverMs) + " ms"
	}
	row("failover", failover, "", "failover_ms")
	catchup := "-"
	if r.CatchupEventsPerSec != nil {
		catchup = fmt.Sprintf("%.0f events/s", *r.CatchupEventsPerSec)
		if r.CatchupEvents != nil && r.CatchupMs != nil {
			catchup += fmt.Sprintf(" (%d in %s ms)", *r.CatchupEvents, num(*r.CatchupMs))
		}
	}
	row("catch-up", catchup, "", "catchup_events_per_sec")
	row("restart", num(r.RestartMs)+" ms", fmt.Sprintf("hello after %s ms", num(r.RestartHelloMs)), "restart_ms")
	row("peak RSS per replica", rssText(r.RSSMB), "", "")
	return tw.Flush()
}

// num formats a figure with three significant digits or more.
func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func rssText(m map[string]float64) string {
	if len(m) == 0 {
		return "-"
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s: %.0f MiB", id, m[id])
	}
	return strings.Join(parts, ", ")
}

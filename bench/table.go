package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the figures of r as an aligned table, one row per
// figure: the value, related information (the value relative to this
// disk's fsync, the per-replica shares), the goal, and PASS or MISS ("-"
// when the run did not measure it, or measured it in another
// configuration than the goal's).
func WriteTable(w io.Writer, r Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "chatbench: %d replicas, %d clients, %.1fs of load\n", r.Replicas, r.Clients, r.LoadSec)
	fmt.Fprintf(tw, "workload: %d of %d users listening, %d-byte bodies, %s%s\n\n",
		r.ListeningUsers, r.Clients, r.BodyBytes, readText(r.ReadEvery), keepText(r.Keep, r.Deletes))
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
		fmt.Sprintf("%.1fx fsync rate", r.Ratios.SendsPerFsync), "")
	row("latency p50 / p99 / p999", fmt.Sprintf("%s / %s / %s ms", num(r.LatencyMs.P50), num(r.LatencyMs.P99), num(r.LatencyMs.P999)),
		fmt.Sprintf("p99 %.1fx fsync p50", r.Ratios.LatencyP99OverFsyncP50), "")
	lag, lagRel := "-", "-"
	if r.LagMs != nil {
		lag = fmt.Sprintf("%s / %s / %s ms", num(r.LagMs.P50), num(r.LagMs.P99), num(r.LagMs.Max))
	}
	if r.Ratios.LagP99OverFsyncP50 != nil {
		lagRel = fmt.Sprintf("p99 %.1fx fsync p50", *r.Ratios.LagP99OverFsyncP50)
	}
	row("lag durable p50 / p99 / max", lag, lagRel, "")
	if r.LagAppliedMs != nil {
		row("lag applied p50 / p99 / max", fmt.Sprintf("%s / %s / %s ms", num(r.LagAppliedMs.P50), num(r.LagAppliedMs.P99), num(r.LagAppliedMs.Max)), "", "")
	}
	cpu, cpuRel := "-", "-"
	if c := r.CPUUsPerSend; c != nil {
		if c.Total != nil {
			cpu = fmt.Sprintf("%s µs over %d replica", num(*c.Total), r.Replicas)
			if r.Replicas != 1 {
				cpu += "s"
			}
		}
		cpuRel = byReplica(c.ByReplica, r.LoadPrimary, func(v float64) string { return num(v) + " µs" })
		if c.Harness != nil {
			cpuRel += fmt.Sprintf("; harness %s µs", num(*c.Harness))
		}
	}
	row("CPU per send", cpu, cpuRel, "cpu_us_per_send")
	if len(r.LoadCPUPct) > 0 {
		row("CPU under load", byReplica(r.LoadCPUPct, r.LoadPrimary, pct), "of a core", "")
	}
	idle, idleRel := "-", ""
	if len(r.IdleCPUPct) > 0 {
		idle = byReplica(r.IdleCPUPct, nil, pct)
		idleRel = fmt.Sprintf("of a core, over %.1fs", r.IdleSec)
	}
	row("CPU idle", idle, idleRel, "idle_cpu_pct")
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
	if len(r.DiskGrowth) > 0 {
		files := map[string]float64{}
		end := map[string]float64{}
		perSend := map[string]float64{}
		late := map[string]float64{}
		dirNames := map[string]bool{}
		for id, g := range r.DiskGrowth {
			end[id] = float64(g.EndBytes) / (1 << 20)
			files[id] = float64(g.EndFileBytes) / (1 << 20)
			perSend[id] = g.BytesPerSend
			if g.SecondHalfBytesPerSend != nil {
				late[id] = *g.SecondHalfBytesPerSend
			}
			for name := range g.EndDirBytes {
				dirNames[name] = true
			}
		}
		mib := func(v float64) string { return num(v) + " MiB" }
		bytesText := func(v float64) string { return fmt.Sprintf("%.0f B", v) }
		row("disk at end of load", byReplica(end, nil, mib), "file sizes "+byReplica(files, nil, mib), "")
		lateText := "-"
		if len(late) > 0 {
			lateText = "2nd half " + byReplica(late, nil, bytesText)
		}
		row("disk growth per send", byReplica(perSend, nil, bytesText), lateText, "")
		// By directory: the log is what compaction bounds; the state and
		// the snapshots grow with the messages kept.
		for _, name := range slices.Sorted(maps.Keys(dirNames)) {
			if name == "." {
				continue
			}
			dirEnd, dirLate := map[string]float64{}, map[string]float64{}
			for id, g := range r.DiskGrowth {
				dirEnd[id] = float64(g.EndDirBytes[name]) / (1 << 20)
				if v, ok := g.SecondHalfDirBytesPerSend[name]; ok {
					dirLate[id] = v
				}
			}
			lateText := "-"
			if len(dirLate) > 0 {
				lateText = "2nd half " + byReplica(dirLate, nil, bytesText) + " per send"
			}
			row("  "+name+"/", byReplica(dirEnd, nil, mib), lateText, "")
		}
	}
	return tw.Flush()
}

// readText describes how often a non-listening user reads its queue.
func readText(every int) string {
	if every <= 0 {
		return "no reads"
	}
	return fmt.Sprintf("a read every %d sends", every)
}

// keepText describes the deletes of a run with Options.Keep.
func keepText(keep int, deletes uint64) string {
	if keep <= 0 {
		return ""
	}
	return fmt.Sprintf(", each user keeping %d message copies (%d deleted)", keep, deletes)
}

func pct(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "%"
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
	return byReplica(m, nil, func(v float64) string { return fmt.Sprintf("%.0f MiB", v) })
}

// byReplica formats figures by replica id, in id order, as
// "0: F, 1: F", marking the primary when it is known; "-" when empty.
func byReplica(m map[string]float64, primary *int, format func(float64) string) string {
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
		name := id
		if primary != nil && id == strconv.Itoa(*primary) {
			name += " (primary)"
		}
		parts[i] = name + ": " + format(m[id])
	}
	return strings.Join(parts, ", ")
}

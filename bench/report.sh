#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# bench/report.sh - the final table: medians of the RESULT lines of every benchmark, the
# ratios fanout / peer and, per target of docs/benchmarks.md's "target" column, met or MISSED.
#
#   bench/report.sh [LOG...]     (RESULT lines on stdin when no file is given)
#
# Prints a Markdown table (pasted into README.md's "Benchmarks" section). Rows without a
# target are context ("-"). A scenario with no RESULT lines is reported "not run".
# Exit status 0 (the programs themselves fail on broken invariants, not on speed).
set -u

awk '
function med(key, m,    s, n, a, i, j, t) {
	s = vals[key SUBSEP m]
	n = split(s, a, " ")
	if (n == 0) return ""
	for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return (n % 2) ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
function mx(key, m,    s, n, a, i, r) {
	s = vals[key SUBSEP m]
	n = split(s, a, " ")
	if (n == 0) return ""
	r = a[1] + 0
	for (i = 2; i <= n; i++) if (a[i] + 0 > r) r = a[i] + 0
	return r
}
function K(scn, impl, cur, cs) { return scn SUBSEP impl SUBSEP cur SUBSEP cs }
function fmt(v) {
	if (v == "") return "n/a"
	if (v >= 1e6) return sprintf("%.1f M", v / 1e6)
	if (v >= 1e4) return sprintf("%.0f k", v / 1e3)
	if (v >= 100) return sprintf("%.0f", v)
	return sprintf("%.2f", v)
}
function row(id, what, fo, peer, pv, ratio, must, verdict) {
	printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", id, what, fo, peer, pv, ratio, must, verdict
	if (verdict == "MISSED") missed++
	if (verdict == "met") met++
	if (verdict == "not run") notrun++
}
# fanout / peer on items/s with a minimum ratio (0: context only)
function tput(id, scn, fo_impl, peer, cur, min, label,    f, p, r, v) {
	f = med(K(scn, fo_impl, cur, ""), "items_per_s")
	p = med(K(scn, peer, cur, ""), "items_per_s")
	if (f == "" || p == "") { if (min > 0) row(id, label, fmt(f), peer, fmt(p), "n/a", ">= " min "x", "not run"); return }
	r = f / p
	v = min > 0 ? (r >= min ? "met" : "MISSED") : "-"
	row(id, label, fmt(f), peer, fmt(p), sprintf("%.2fx", r), min > 0 ? ">= " min "x" : "-", v)
}
# a value against an upper bound
function bound(id, label, v, limit, unit,    verdict) {
	if (v == "") { row(id, label, "n/a", "-", "-", "-", "<= " limit unit, "not run"); return }
	verdict = v <= limit ? "met" : "MISSED"
	row(id, label, fmt(v) unit, "-", "-", "-", "<= " limit unit, verdict)
}
/^RESULT / {
	delete kv
	for (i = 2; i <= NF; i++) { eq = index($i, "="); if (eq) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
	cur = ("cursors" in kv) ? kv["cursors"] : (("chunk" in kv) ? kv["chunk"] : "")
	g = K(kv["scenario"], kv["impl"], cur, ("case" in kv) ? kv["case"] : "")
	for (m in kv) if (kv[m] != "NA") vals[g SUBSEP m] = vals[g SUBSEP m] " " kv[m]
	seen[kv["scenario"]] = 1
}
END {
	met = missed = notrun = 0
	print "| id | measure | fanout | peer | peer value | ratio | must | verdict |"
	print "|---|---|---|---|---|---|---|---|"
	# B1
	tput("B1", "B1", "fanout", "ckring", 1, 0.5, "1->1 items/s")
	tput("B1", "B1", "fanout", "ckring_copy", 1, 2, "1->1 items/s")
	tput("B1", "B1", "fanout", "wfcq_pool", 1, 0, "1->1 items/s")
	tput("B1", "B1", "fanout", "mutex", 1, 0, "1->1 items/s")
	tput("B1", "B1", "fanout", "zmq", 1, 0, "1->1 items/s")
	tput("B1", "B1", "fanout", "fanout_mp", 1, 0, "1->1 items/s (single_producer vs default)")
	# B2
	for (c = 2; c <= 4; c += 2) {
		tput("B2", "B2", "fanout", "ckring_copy", c, 2, "1->" c " items/s")
		tput("B2", "B2", "fanout", "zmq", c, 10, "1->" c " items/s")
		tput("B2", "B2", "fanout_mp", "ckring_copy", c, 0, "1->" c " items/s, fanout_mp")
	}
	tput("B2", "B2", "fanout", "ckring_copy", 1, 0, "1->1 items/s")
	# B2n: the natural configuration (cases cap1024, cap4096; fanout_best is case best)
	split("1 1.5 2", m2n, " ")
	for (ci = 0; ci <= 1; ci++) {
		cs = ci ? "cap4096" : "cap1024"
		for (i = 1; i <= 3; i++) {
			c = 2 ^ i
			f = med(K("B2n", "fanout", c, cs), "items_per_s"); p = med(K("B2n", "ckring_copy", c, cs), "items_per_s")
			fc = med(K("B2n", "fanout", c, cs), "cpu_ns_per_item"); pc = med(K("B2n", "ckring_copy", c, cs), "cpu_ns_per_item")
			fw = med(K("B2n", "fanout", c, cs), "csw_per_item"); pw = med(K("B2n", "ckring_copy", c, cs), "csw_per_item")
			ld = med(K("B2n", "fanout", c, cs), "load1")
			lbl = "natural 1->" c ", " cs ", load " ld
			if (f == "" || p == "") { row("B2n", lbl " items/s", "n/a", "ckring_copy", "n/a", "n/a", ">= " m2n[i] "x", "not run"); continue }
			row("B2n", lbl " items/s", fmt(f), "ckring_copy", fmt(p), sprintf("%.2fx", f / p), ">= " m2n[i] "x", f / p >= m2n[i] ? "met" : "MISSED")
			row("B2n", lbl " cpu ns/item (csw/item)", sprintf("%.0f (%.4f)", fc, fw), "ckring_copy", sprintf("%.0f (%.4f)", pc, pw), sprintf("%.2fx", fc / pc), "< 1x", fc < pc ? "met" : "MISSED")
			b = med(K("B2n", "fanout_best", c, "best"), "items_per_s")
			if (b != "") row("B2n", lbl " vs own best (sp, batch 64, cap 65536)", fmt(f), "fanout_best", fmt(b), sprintf("%.2fx", f / b), ">= 0.6x", f / b >= 0.6 ? "met" : "MISSED")
		}
	}
	# B3
	a = med(K("B3", "fanout", 1, ""), "instr_per_item"); b = med(K("B3", "fanout", 8, ""), "instr_per_item")
	if (a == "" || b == "") row("B3", "producer instr/item 8 vs 1 cursors", "n/a", "-", "-", "-", "<= 1.10", "not run")
	else row("B3", "producer instr/item, 1 -> 8 cursors", sprintf("%.1f -> %.1f", a, b), "-", "-", sprintf("%.3f", b / a), "<= 1.10", b / a <= 1.10 ? "met" : "MISSED")
	a = med(K("B3", "fanout_mp", 1, ""), "instr_per_item"); b = med(K("B3", "fanout_mp", 8, ""), "instr_per_item")
	if (a != "" && b != "") row("B3", "fanout_mp instr/item, 1 -> 8 cursors", sprintf("%.1f -> %.1f", a, b), "-", "-", sprintf("%.3f", b / a), "-", "-")
	a = med(K("B3", "ckring_copy", 1, ""), "instr_per_item"); b = med(K("B3", "ckring_copy", 8, ""), "instr_per_item")
	if (a != "" && b != "") row("B3", "ckring_copy instr/item, 1 -> 8 consumers", "-", "ckring_copy", sprintf("%.1f -> %.1f", a, b), sprintf("%.3f", b / a), "-", "-")
	# B4
	a = med(K("B4a", "fanout", 1, ""), "instr_per_item"); b = med(K("B4a", "fanout_tap", 1, ""), "instr_per_item")
	if (a == "" || b == "") row("B4a", "extra producer instr/item with a counter tap", "n/a", "-", "-", "-", "0 (< 0.5)", "not run")
	else row("B4a", "extra producer instr/item with a counter tap", sprintf("%+.2f (%.1f -> %.1f)", b - a, a, b), "-", "-", "-", "0 (< 0.5)", (b - a < 0.5) ? "met" : "MISSED")
	base = med(K("B4", "fanout", 1, ""), "items_per_s")
	split("B4a B4b B4c", v4, " "); split("0.95 0.80 0.97", lim4, " ")
	desc["B4a"] = "producer with a counter tap at 1 kHz"; desc["B4b"] = "producer with a passive reader of every item (3 thr/2 cpu)"; desc["B4c"] = "producer with a stalled passive (bounded, FO_LAGGED checked)"
	for (i = 1; i <= 3; i++) {
		x = med(K(v4[i], "fanout", 2, ""), "items_per_s")
		if (base == "" || x == "") { row(v4[i], desc[v4[i]], "n/a", "base", "n/a", "n/a", "drop <= " (1 - lim4[i]) * 100 "%", "not run"); continue }
		r = x / base
		row(v4[i], desc[v4[i]], fmt(x), "no passive", fmt(base), sprintf("%.3f (drop %.1f%%)", r, (1 - r) * 100), "drop <= " (1 - lim4[i]) * 100 "%", r >= lim4[i] ? "met" : "MISSED")
	}
	ms = mx(K("B4c", "fanout", 2, ""), "max_live_segments")
	if (ms != "") row("B4c", "max live segments with the stalled passive", ms, "-", "-", "-", "bounded (checked)", "met")
	# B5
	bound("B5", "fork, idle (ns)", med(K("B5", "fanout", 1, "idle"), "ns_per_fork"), 50, " ns")
	bound("B5", "fork, producer flat out (ns)", med(K("B5", "fanout", 1, "loaded"), "ns_per_fork"), 200, " ns")
	a = med(K("B5", "fanout", 1, "idle"), "ns_per_fork"); b = med(K("B5", "fanout", 1, "backlog"), "ns_per_fork")
	if (a == "" || b == "") row("B5", "fork backlog 1 M / backlog 0", "n/a", "-", "-", "-", "<= 1.2", "not run")
	else row("B5", "fork backlog 1 M / backlog 0", sprintf("%.1f / %.1f ns", b, a), "-", "-", sprintf("%.2f", b / a), "<= 1.2", b / a <= 1.2 ? "met" : "MISSED")
	# B6
	bound("B6", "bytes per queued 64-byte item (RSS, incl. malloc(64) item)", med(K("B6", "fanout", 1, ""), "bytes_per_item"), 96, " B")
	x = med(K("B6", "fanout", 1, ""), "stats_bytes_per_item"); if (x != "") row("B6", "fanout stats: live_bytes/retained + 64", fmt(x) " B", "-", "-", "-", "-", "-")
	split("ckring_copy mutex wfcq_malloc zmq", p6, " ")
	for (i = 1; i <= 4; i++) { x = med(K("B6", p6[i], 1, ""), "bytes_per_item"); if (x != "") row("B6", "bytes per queued item", "-", p6[i], fmt(x) " B", "-", "-", "-") }
	bound("B6b", "memory returned after catch-up (ms)", med(K("B6b", "fanout", 1, "catchup"), "return_ms"), 10, " ms")
	bound("B6b", "memory returned after close (ms)", med(K("B6b", "fanout", 1, "close"), "return_ms"), 10, " ms")
	x = med(K("B6b", "free_only", 0, "floor"), "return_ms"); if (x != "") row("B6b", "free() of the same 1 M items alone (floor)", "-", "free_only", fmt(x) " ms", "-", "-", "-")
	# B7
	f = med(K("B7", "fanout", 1, ""), "p50_ns"); p = med(K("B7", "ckring", 1, ""), "p50_ns")
	if (f == "" || p == "") row("B7", "latency p50", "n/a", "ckring", "n/a", "n/a", "<= 1.25x", "not run")
	else row("B7", "latency p50 (ns)", fmt(f), "ckring", fmt(p), sprintf("%.2fx", f / p), "<= 1.25x", f / p <= 1.25 ? "met" : "MISSED")
	f = med(K("B7", "fanout", 1, ""), "p99_ns"); p = med(K("B7", "ckring", 1, ""), "p99_ns")
	if (f == "" || p == "") row("B7", "latency p99", "n/a", "ckring", "n/a", "n/a", "<= 2x", "not run")
	else row("B7", "latency p99 (ns)", fmt(f), "ckring", fmt(p), sprintf("%.2fx", f / p), "<= 2x", f / p <= 2 ? "met" : "MISSED")
	f = mx(K("B7", "fanout", 1, ""), "max_ns")
	if (f != "") row("B7", "worst latency over all runs (ns)", fmt(f), "ckring", fmt(mx(K("B7", "ckring", 1, ""), "max_ns")), "-", "< 10 ms", f < 1e7 ? "met" : "MISSED")
	split("mutex zmq", p7, " ")
	for (i = 1; i <= 2; i++) { x = med(K("B7", p7[i], 1, ""), "p50_ns"); y = med(K("B7", p7[i], 1, ""), "p99_ns"); if (x != "") row("B7", "latency p50 / p99 (ns)", fmt(med(K("B7", "fanout", 1, ""), "p50_ns")) " / " fmt(med(K("B7", "fanout", 1, ""), "p99_ns")), p7[i], fmt(x) " / " fmt(y), "-", "-", "-") }
	# B8
	f = med(K("B8", "fanout", 2, ""), "p99_ns"); a = med(K("B8", "mutex", 2, ""), "p99_ns"); b = med(K("B8", "zmq", 2, ""), "p99_ns")
	if (f == "" || (a == "" && b == "")) row("B8", "fan-out to 2 latency p99", "n/a", "mutex/zmq", "n/a", "n/a", "<= min", "not run")
	else { p = (a != "" && (b == "" || a < b)) ? a : b; row("B8", "fan-out to 2 latency p99 (ns), 3 thr/2 cpu", fmt(f), "min(mutex, zmq)", fmt(a) " / " fmt(b), sprintf("%.2fx", f / p), "<= 1x", f <= p ? "met" : "MISSED") }
	x = med(K("B8", "ckring_copy", 2, ""), "p99_ns"); if (x != "") row("B8", "fan-out to 2 latency p99 (ns)", fmt(f), "ckring_copy", fmt(x), "-", "-", "-")
	# B9
	tput("B9", "B9", "fanout", "mutex", 1, 2, "blocking 1->1 items/s (fo_cursor_next)")
	tput("B9", "B9", "fanout_fd", "mutex", 1, 2, "blocking 1->1 items/s (eventfd + poll)")
	split("fanout fanout_fd mutex", p9, " ")
	for (i = 1; i <= 3; i++) {
		x = med(K("B9", p9[i], 1, ""), "idle_cpu_pct"); y = mx(K("B9", p9[i], 1, ""), "idle_wakeups")
		if (x == "") continue
		if (p9[i] == "mutex") row("B9", "idle CPU % / wake-ups while blocked", "-", "mutex", sprintf("%.3f%% / %d", x, y), "-", "-", "-")
		else row("B9", "idle CPU % / wake-ups while blocked (" p9[i] ")", sprintf("%.3f%% / %d", x, y), "-", "-", "-", "< 1%, no timed wake-ups", (x < 1 && y <= 2) ? "met" : "MISSED")
	}
	# B10, B11
	tput("B10", "B10", "fanout", "ckring", 2, 2, "share group of 2 items/s")
	tput("B10", "B10", "fanout", "mutex", 2, 0, "share group of 2 items/s")
	tput("B10", "B10", "fanout", "wfcq_pool", 2, 0, "share group of 2 items/s")
	tput("B11", "B11", "fanout", "ckring", 1, 2, "2 producers -> 1 items/s")
	tput("B11", "B11", "fanout", "wfcq_pool", 1, 1, "2 producers -> 1 items/s")
	tput("B11", "B11", "fanout", "wfcq_malloc", 1, 0, "2 producers -> 1 items/s")
	tput("B11", "B11", "fanout", "mutex", 1, 0, "2 producers -> 1 items/s")
	# B12
	for (c = 1; c <= 4; c += 3) {
		g = med(K("B12", "fanout", c, ""), "items_per_s"); j = med(K("B12", "fanout_jemalloc", c, ""), "items_per_s")
		if (g == "" || j == "") { row("B12", "jemalloc / glibc items/s, 1->" c, "n/a", "glibc", "n/a", "n/a", ">= 0.9", "not run"); continue }
		row("B12", "items/s 1->" c ", jemalloc vs glibc", fmt(j), "fanout on glibc", fmt(g), sprintf("%.2f", j / g), ">= 0.9", j / g >= 0.9 ? "met" : "MISSED")
	}
	a = mx(K("B12", "fanout", 1, ""), "fo_allocs_per_item"); b = mx(K("B12", "fanout_jemalloc", 1, ""), "fo_allocs_per_item")
	if (b != "" && b > a) a = b
	b = mx(K("B12", "fanout", 4, ""), "fo_allocs_per_item"); if (b != "" && b > a) a = b
	if (a == "") row("B12", "fanout allocations per item", "n/a", "-", "-", "-", "<= 1/32", "not run")
	else row("B12", "fanout allocations per item (worst run)", sprintf("%.5f", a), "-", "-", "-", "<= 0.03125", a <= 1 / 32 ? "met" : "MISSED")
	# B15: process pools (bench/b15_proc.c; chunk= is the parameter)
	for (c = 1; c <= 16; c *= 16) {
		tput("B15", "B15", "proc", "python_imap", c, 10, "process map, chunk " c ", --buffer 16, items/s")
		tput("B15", "B15", "proc", "threads", c, 0.5, "process map, chunk " c ", --buffer 16, items/s")
		tput("B15", "B15", "proc_dflt", "python_imap", c, 10, "process map, chunk " c ", default options, items/s")
		tput("B15", "B15", "proc_dflt", "threads_dflt", c, 0.5, "process map, chunk " c ", default options, items/s")
	}
	a = med(K("B15b", "task_proc", "", ""), "round_trip_us_median"); b = med(K("B15b", "bare_fork_pipe", "", ""), "round_trip_us_median")
	if (a == "" || b == "") row("B15b", "fork-per-call task round trip", "n/a", "bare fork+pipe", "n/a", "n/a", "<= 1.5x", "not run")
	else row("B15b", "fork-per-call task round trip, us", fmt(a), "bare fork+pipe", fmt(b), sprintf("%.2fx", a / b), "<= 1.5x", a / b <= 1.5 ? "met" : "MISSED")
	bound("B15c", "SIGKILLed worker: kill -> error at its place", med(K("B15c", "proc", "", ""), "kill_to_error_ms_median"), 10, " ms")
	# B16: the Redis and NATS bridges (bench/b16_bridges.c; its RESULT lines carry batch=, no cursors=)
	tput("B16", "B16", "fanout", "hiredis", "", 0.8, "sink -> Redis -> source items/s, 64 B, batch 256")
	tput("B16", "B16", "fanout_nats", "libnats", "", 0.8, "sink -> NATS JetStream -> source items/s, 64 B, batch 256")
	# B17, B17b: the fanout command (bench/b17_cli.sh; items_per_s holds jobs/s and MB/s)
	tput("B17", "B17", "fanout", "parallel", 2, 10, "map -j2 -k, trivial jobs/s")
	tput("B17", "B17", "fanout", "xargs", 2, 1, "map -j2 -k, trivial jobs/s (xargs -P2 -n1)")
	tput("B17b", "B17b", "fanout", "tee", 4, 1, "tee to 4 wc -l, MB/s (tee >(...))")
	tput("B17b", "B17b", "fanout", "pee", 4, 1, "tee to 4 wc -l, MB/s")
	tput("B17b", "B17b", "fanout_tap", "fanout", 4, 0.95, "tee with a stalled --tap vs none, MB/s")
	printf "\nTargets: %d met, %d MISSED, %d not run.\n", met, missed, notrun
}
' "$@"

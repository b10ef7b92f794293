#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# bench/b17_cli.sh - docs/benchmarks.md B17 and B17b: the `fanout` command against the shell
# tools people use today, interleaved in the same run (medians by bench/report.sh).
#
#   B17   fanout map -j2 -k over 2000 `true` jobs  vs  GNU parallel -j2 -k, xargs -P2 -n1
#         (jobs/s; every tool must exit 0)
#   B17b  fanout tee of 1 GB of lines to 4 `wc -l`  vs  tee >(wc -l)x4, pee 'wc -l'x4,
#         and fanout tee with a stalled --tap beside the 4 (MB/s; every consumer must count
#         every line).  The stalled tap reads nothing until all 4 consumers are done.
#
#   bench/b17_cli.sh [--quick] [other args are ignored]
#
# --quick: 20 jobs, 20 MB, one round.  Environment: FANOUT (the binary; default
# $BUILD_DIR/cli/fanout), BUILD_DIR (default build/bench), B17_ROUNDS (default 3),
# B17B_ROUNDS (default 5: a tee run is short and noisy), B17_JOBS (0: skip B17), B17_BYTES.
# B17b lines also give cpu_s: user + system seconds of all its processes.  A missing peer (parallel, pee) is reported and skipped.
# Prints RESULT lines (bench/run.sh format) with the load average; exits non-zero if a
# tool fails or a consumer misses lines.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-"$root/build/bench"}
fanout=${FANOUT:-"$build/cli/fanout"}
quick=0
for a in "$@"; do [ "$a" = --quick ] && quick=1; done
if [ "$quick" = 1 ]; then
	rounds=1 rounds_b=1 njobs=${B17_JOBS:-20} bytes=${B17_BYTES:-20000000}
else
	rounds=${B17_ROUNDS:-3} rounds_b=${B17B_ROUNDS:-5} njobs=${B17_JOBS:-2000} bytes=${B17_BYTES:-1000000000}
fi
if [ ! -x "$fanout" ]; then
	echo "b17_cli: $fanout not built (FANOUT_BUILD_CLI=ON)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/b17.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
status=0
now() { date +%s%N; }
load() { cut -d' ' -f1 /proc/loadavg; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---- B17: map ------------------------------------------------------------------------------
seq 1 "$njobs" >"$tmp/jobs"

# b17 IMPL CMD...: run CMD with the job list on stdin, print its RESULT line.
b17() {
	local impl=$1 t0 t1 rc
	shift
	t0=$(now)
	"$@" <"$tmp/jobs" >/dev/null
	rc=$?
	t1=$(now)
	if [ "$rc" != 0 ]; then
		echo "b17_cli: B17 $impl exited $rc" >&2
		status=1
		return
	fi
	echo "RESULT scenario=B17 impl=$impl cursors=2 items_per_s=$(awk -v n="$njobs" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }') jobs=$njobs seconds=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }') load=$(load)"
}

echo "# B17: $njobs 'true' jobs at -j2 -k, $rounds round(s)"
have parallel || echo "# B17: GNU parallel not installed (apt-get install parallel): skipped"
[ "$njobs" -gt 0 ] || rounds=0 # B17_JOBS=0: B17b only
for _ in $(seq 1 "$rounds"); do
	b17 fanout "$fanout" map -j2 -k -- true
	have parallel && b17 parallel parallel --will-cite -j2 -k true
	b17 xargs xargs -P2 -n1 true
done

# ---- B17b: tee -----------------------------------------------------------------------------
yes 'the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ' |
	head -c "$bytes" >"$tmp/in"
lines=$(wc -l <"$tmp/in")
mkfifo "$tmp/stall"

# b17b IMPL: 4 `wc -l` consumers of $tmp/in through IMPL; each writes its count to $tmp/c.N.
b17b() {
	local impl=$1 t0 t1 rc i c=()
	rm -f "$tmp"/c.*
	for i in 1 2 3 4; do c+=("wc -l >$tmp/c.$i"); done
	local TIMEFORMAT='%U %S' # CPU seconds of every process, consumers included
	t0=$(now)
	{ time {
	case $impl in
	fanout) "$fanout" tee "${c[@]}" <"$tmp/in" ;;
	fanout_tap)
		# the tap holds its stdin unread until the 4 consumers have each written a line
		# to the fifo (it opens it read-write, so it never sees EOF early)
		local tap="exec 3<>$tmp/stall; for i in 1 2 3 4; do read -r _ <&3; done"
		for i in 1 2 3 4; do c[i - 1]="${c[i - 1]}; echo >$tmp/stall"; done
		"$fanout" tee --tap "$tap" "${c[@]}" <"$tmp/in" 2>"$tmp/tap.err"
		;;
	tee)
		tee >(wc -l >"$tmp/c.1") >(wc -l >"$tmp/c.2") >(wc -l >"$tmp/c.3") \
			>(wc -l >"$tmp/c.4") <"$tmp/in" >/dev/null
		;;
	pee) pee "${c[@]}" <"$tmp/in" ;;
	esac
	echo $? >"$tmp/rc"
	wait # process substitutions (bash >= 5.1)
	} 2>&3; } 3>&2 2>"$tmp/cpu"
	t1=$(now)
	rc=$(cat "$tmp/rc")
	for i in 1 2 3 4; do
		if [ "$(cat "$tmp/c.$i" 2>/dev/null)" != "$lines" ]; then
			echo "b17_cli: B17b $impl: consumer $i counted '$(cat "$tmp/c.$i" 2>/dev/null)', not $lines" >&2
			rc=1
		fi
	done
	if [ "$rc" != 0 ]; then
		echo "b17_cli: B17b $impl failed ($rc)" >&2
		status=1
		return
	fi
	local extra=""
	[ "$impl" = fanout_tap ] && extra=" tap_skipped=$(sed -n 's/.*: \([0-9]*\) records skipped.*/\1/p' "$tmp/tap.err")"
	echo "RESULT scenario=B17b impl=$impl cursors=4 items_per_s=$(awk -v b="$bytes" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", b / 1e6 / (ns / 1e9) }') unit=MB/s bytes=$bytes seconds=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }') cpu_s=$(awk '{ printf "%.2f", $1 + $2 }' "$tmp/cpu")$extra load=$(load)"
}

echo "# B17b: $bytes bytes ($lines lines) to 4 'wc -l', $rounds_b round(s)"
have pee || echo "# B17b: pee not installed (apt-get install moreutils): skipped"
for _ in $(seq 1 "$rounds_b"); do
	b17b fanout
	b17b tee
	have pee && b17b pee
	b17b fanout_tap
done
exit $status

#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# bench/run.sh - build the benchmarks (Release), run every bench/b*_* program (B1-B12 of
# docs/benchmarks.md, fanout and its peers interleaved; bench/b17_cli.sh: B17/B17b, the fanout command, 5 runs each by default) and print one
# final table of medians, ratios fanout / peer and met / MISSED per target (bench/report.sh).
#
#   bench/run.sh [--quick] [other args passed to every benchmark]
#
# --quick: small sizes, for CI (under 60 s in all; B3/B4a need valgrind and are skipped with
# a note without it; B12's jemalloc half needs libjemalloc2).
# Environment: BUILD_DIR (default build/bench), JOBS (default 2),
# FO_BENCH_PREBUILT=1: BUILD_DIR already holds built benchmarks (scripts/test.sh),
# BENCH_LOG: where the raw output goes (default $BUILD_DIR/bench-results.log),
# BENCH_ONLY: space-separated program names to run (default: all).
# Exits non-zero if the build or any benchmark fails (a broken invariant, never a missed
# speed target); the RESULT lines, each program's summary and the final table go to stdout.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-"$root/build/bench"}
jobs=${JOBS:-2}

if [ "${FO_BENCH_PREBUILT:-0}" != 1 ]; then
	# Only the library and the benchmarks: a broken test must not stop a measurement.
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFANOUT_BUILD_BENCH=ON \
		-DFANOUT_BUILD_TESTS=OFF -DFANOUT_BUILD_EXAMPLES=OFF >/dev/null || exit 1
	cmake --build "$build" -j"$jobs" || exit 1
fi

log=${BENCH_LOG:-"$build/bench-results.log"}
mkdir -p "$(dirname "$log")" || exit 1
: >"$log" || exit 1
rcfile=$(mktemp) || exit 1
trap 'rm -f "$rcfile"' EXIT

{
	echo "# fanout benchmarks $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -srm)," \
		"$(getconf _NPROCESSORS_ONLN) cpus, load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
	echo "# args: $*"
} | tee -a "$log"

status=0
ran=0
start=$(date +%s)
# C programs (bench/b*_*.c, built into $build/bench) and shell benchmarks of the fanout
# command (bench/b*_*.sh, B17: they find the binary in $build/cli).
for src in "$here"/b*_*.c "$here"/b*_*.sh; do
	[ -e "$src" ] || continue
	case $src in
	*.sh)
		name=$(basename "$src" .sh)
		prog=$src
		;;
	*)
		name=$(basename "$src" .c)
		prog="$build/bench/$name"
		;;
	esac
	if [ -n "${BENCH_ONLY:-}" ]; then
		case " $BENCH_ONLY " in *" $name "*) ;; *) continue ;; esac
	fi
	if [ ! -x "$prog" ]; then
		echo "run.sh: $prog was not built" >&2
		status=1
		continue
	fi
	echo "=== $name $*" | tee -a "$log"
	ran=$((ran + 1))
	t0=$(date +%s)
	{
		BUILD_DIR=$build "$prog" "$@"
		echo $? >"$rcfile"
	} | tee -a "$log"
	rc=$(cat "$rcfile")
	echo "=== $name: exit $rc, $(($(date +%s) - t0)) s" | tee -a "$log"
	if [ "$rc" != 0 ]; then
		echo "run.sh: $name FAILED" >&2
		status=1
	fi
done
if [ "$ran" -eq 0 ]; then
	echo "run.sh: no benchmarks found in $here" >&2
	status=1
fi

echo
echo "## Summary: medians, ratio fanout / peer, docs/benchmarks.md targets ($(($(date +%s) - start)) s; raw log: $log)"
echo
sh "$here/report.sh" "$log"
exit $status

#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# bench/run.sh - build the benchmarks (Release) and run every bench/b*_* program.
#
#   bench/run.sh [--quick] [other args passed to every benchmark]
#
# Environment: BUILD_DIR (default build/bench), JOBS (default 2),
# FO_BENCH_PREBUILT=1: BUILD_DIR already holds built benchmarks (scripts/test.sh).
# Exits non-zero if the build or any benchmark fails; the RESULT lines and each
# program's summary table go to stdout.
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

status=0
ran=0
for src in "$here"/b*_*.c; do
	[ -e "$src" ] || continue
	name=$(basename "$src" .c)
	prog="$build/bench/$name"
	if [ ! -x "$prog" ]; then
		echo "run.sh: $prog was not built" >&2
		status=1
		continue
	fi
	echo "=== $name $*"
	ran=$((ran + 1))
	if ! "$prog" "$@"; then
		echo "run.sh: $name FAILED" >&2
		status=1
	fi
done
if [ "$ran" -eq 0 ]; then
	echo "run.sh: no benchmarks found in $here" >&2
	status=1
fi
exit $status

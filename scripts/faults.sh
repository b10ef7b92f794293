#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Random faults (TESTING.md §5; docs/testing.md): tests/fault/fault_stress under libfiu.
#
#   scripts/faults.sh [SECONDS]   each scenario for SECONDS (default 6), random seeds
#   FO_FAULT_BUILDS="release asan" which build directories to use (default both; they are
#                                 configured and built here if missing)
#
# Scenarios (libfiu fault points, see tests/fault/fault_stress.c):
#   alloc-2%, alloc-20%      fanout/alloc                      every fanout allocation
#   eventfd+threads          fanout/posix/eventfd 30 %, fanout/posix/pthread_create 20 %
#   write                    fanout/posix/write 5 % (eventfd signals; a lost one is counted)
#   everything               all of the above at once, plus fanout/posix/fork
#   fiu-ctrl                 starts clean; fiu-ctrl switches allocation failures on for a
#                            while and off again in the running process
#   asan: alloc-10%          the ASan + UBSan + LSan build (allocation point only)
# Each run is bounded (timeout -s KILL); a run fails on a wrong code, a lost / duplicated /
# twice-freed item, a leak, a stall (the program's 60 s watchdog) or a sanitizer report.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=${1:-6}
builds=${FO_FAULT_BUILDS:-release asan}
limit=$((seconds * 4 + 90))

if ! command -v fiu-run >/dev/null || ! command -v fiu-ctrl >/dev/null; then
	echo "faults.sh: fiu-run / fiu-ctrl missing (apt-get install fiu-utils libfiu-dev)" >&2
	exit 1
fi

build_dir() { # NAME -> configures and builds build/NAME's fault_stress
	local name=$1 dir="build/$1"
	local args=(-DFANOUT_BUILD_TESTS=ON -DFANOUT_BUILD_EXAMPLES=OFF)
	if [ "$name" = asan ]; then
		args+=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" -DFANOUT_SANITIZE=address)
		export CC=clang
	else
		args+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFANOUT_SANITIZE=)
	fi
	if [ ! -f "$dir/CMakeCache.txt" ]; then
		cmake -S . -B "$dir" "${args[@]}" >"$dir.faults-cmake.log" 2>&1 ||
			{ cat "$dir.faults-cmake.log"; return 1; }
	fi
	cmake --build "$dir" -j 2 --target fault_stress >/dev/null || return 1
	[ -x "$dir/tests/fault/fault_stress" ]
}

# libfiu's preload keeps one strdup'ed string for the life of the process.
supp=$(mktemp)
trap 'rm -f "$supp"' EXIT
echo "leak:fiu_run_preload.so" >"$supp"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$supp

failed=0
summary=()

# run NAME BUILD [fiu-run -c commands...]
run() {
	local name=$1 build=$2
	shift 2
	local bin="build/$build/tests/fault/fault_stress" seed=$RANDOM$RANDOM
	local fiu=()
	for c in "$@"; do fiu+=(-c "$c"); done
	local log
	log=$(mktemp)
	timeout -s KILL "$limit" fiu-run "${fiu[@]}" "$bin" --seed "$seed" --seconds "$seconds" \
		>"$log" 2>&1
	local rc=$?
	local line
	line=$(grep -E '^fault_stress: [0-9]+ rounds' "$log" | sed 's/^fault_stress: //')
	if [ $rc -ne 0 ]; then
		failed=1
		echo "--- $build $name FAILED (rc $rc; replay with the same points: --seed $seed)"
		grep -E 'FAIL|FATAL|ERROR|SUMMARY|STALL|phase' "$log" | head -20
	fi
	summary+=("$(printf '%-7s %-16s %s  %s' "$build" "$name" \
		"$([ $rc -eq 0 ] && echo PASS || echo "FAIL($rc)")" "${line:-no summary (seed $seed)}")")
	rm -f "$log"
}

# fiu-ctrl: allocation failures switched on and off in the running process.
run_ctrl() {
	local build=$1 bin="build/$1/tests/fault/fault_stress" seed=$RANDOM$RANDOM log
	log=$(mktemp)
	local fifo_dir
	fifo_dir=$(mktemp -d)
	timeout -s KILL "$limit" fiu-run -f "$fifo_dir/ctl" "$bin" --seed "$seed" \
		--seconds "$((seconds * 2))" >"$log" 2>&1 &
	local pid=$!
	sleep 1
	# fiu-run execs the program: $pid is it (timeout's child); find the program's pid.
	local target
	target=$(pgrep -P "$pid" -f fault_stress | head -1)
	local ctl_ok=1
	if [ -n "$target" ] && fiu-ctrl -f "$fifo_dir/ctl" \
		-c "enable_random name=fanout/alloc,probability=0.1" "$target"; then
		sleep "$seconds"
		fiu-ctrl -f "$fifo_dir/ctl" -c "disable name=fanout/alloc" "$target" || ctl_ok=0
	else
		ctl_ok=0
	fi
	wait "$pid"
	local rc=$?
	local line
	line=$(grep -E '^fault_stress: [0-9]+ rounds' "$log" | sed 's/^fault_stress: //')
	if [ $rc -ne 0 ] || [ $ctl_ok -ne 1 ] || ! grep -qE 'injected: [1-9]' <<<"$line"; then
		failed=1
		echo "--- $build fiu-ctrl FAILED (rc $rc, fiu-ctrl ok $ctl_ok; --seed $seed)"
		grep -E 'FAIL|FATAL|ERROR|SUMMARY|STALL|phase' "$log" | head -20
		rc=1
	fi
	summary+=("$(printf '%-7s %-16s %s  %s' "$build" "fiu-ctrl" \
		"$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "${line:-no summary}")")
	rm -rf "$log" "$fifo_dir"
}

echo "faults.sh: ${seconds}s per scenario, builds: $builds; load: $(cat /proc/loadavg)"
for b in $builds; do
	if ! build_dir "$b"; then
		summary+=("$(printf '%-7s build FAILED' "$b")")
		failed=1
		continue
	fi
	case $b in
	release)
		run alloc-2% release "enable_random name=fanout/alloc,probability=0.02"
		run alloc-20% release "enable_random name=fanout/alloc,probability=0.2"
		run eventfd+threads release "enable_random name=fanout/posix/eventfd,probability=0.3" \
			"enable_random name=fanout/posix/pthread_create,probability=0.2"
		run write release "enable_random name=fanout/posix/write,probability=0.05"
		run everything release "enable_random name=fanout/alloc,probability=0.05" \
			"enable_random name=fanout/posix/eventfd,probability=0.2" \
			"enable_random name=fanout/posix/pthread_create,probability=0.2" \
			"enable_random name=fanout/posix/write,probability=0.02" \
			"enable_random name=fanout/posix/fork,probability=0.5"
		run_ctrl release
		;;
	asan)
		run alloc-10% asan "enable_random name=fanout/alloc,probability=0.1"
		;;
	*)
		echo "faults.sh: unknown build '$b'" >&2
		failed=1
		;;
	esac
done

echo
printf '%s\n' "${summary[@]}"
[ $failed -eq 0 ] && echo "faults.sh: all scenarios passed" || echo "faults.sh: FAILED"
exit $failed

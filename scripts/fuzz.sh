#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Run the libFuzzer harnesses (tests/fuzz/fuzz_*.c; docs/testing.md).
#
#   scripts/fuzz.sh [SECONDS]     each harness for SECONDS (default 600), growing a working
#                                 corpus in build/fuzz/corpus/<harness> (seeded from the
#                                 committed tests/fuzz/corpus/<harness>)
#   scripts/fuzz.sh --smoke       the CI smoke: each harness from the committed corpus with a
#                                 random seed (printed) for 100 000 executions or 60 s, whichever
#                                 comes first (FO_FUZZ_SMOKE_RUNS, FO_FUZZ_SMOKE_SECONDS;
#                                 FO_FUZZ_SEED=N repeats a run's mutations, on one thread)
#   scripts/fuzz.sh --merge       minimise build/fuzz/corpus/<harness> into the committed
#                                 corpus (then review and commit tests/fuzz/corpus)
#   FO_FUZZ_ONLY=stream           one harness; FO_FUZZ_JOBS=2 parallel workers per harness
#
# Builds build/fuzz (clang, ASan + UBSan, -DFANOUT_BUILD_FUZZ=ON). A failure leaves
# build/fuzz/artifacts/<harness>/crash-* and prints the replay command
# (FO_FUZZ_TRACE=1 prints each decoded operation). Checks that find known, not yet merged
# bugs of issue 12 are skipped while their numbers are listed in tests/fuzz/known_bugs.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=run
seconds=600
case "${1:-}" in
--smoke) mode=smoke ;;
--merge) mode=merge ;;
'') ;;
*[!0-9]*)
	echo "usage: $0 [SECONDS | --smoke | --merge]" >&2
	exit 2
	;;
*) seconds=$1 ;;
esac

dir=build/fuzz
if ! CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" \
	-DFANOUT_SANITIZE=address -DFANOUT_BUILD_FUZZ=ON -DFANOUT_BUILD_TESTS=ON \
	-DFANOUT_BUILD_EXAMPLES=OFF -DFANOUT_BUILD_BENCH=OFF -DFANOUT_BUILD_CLI=OFF >"$dir.cmake.log" 2>&1; then
	cat "$dir.cmake.log"
	echo "fuzz.sh: configure failed" >&2
	exit 1
fi

harnesses=()
for src in tests/fuzz/fuzz_*.c; do
	h=$(basename "$src" .c)
	if [ -n "${FO_FUZZ_ONLY:-}" ] && [ "$h" != "fuzz_${FO_FUZZ_ONLY#fuzz_}" ]; then
		continue
	fi
	harnesses+=("$h")
done
if ! cmake --build "$dir" -j 2 --target "${harnesses[@]}"; then
	echo "fuzz.sh: build failed" >&2
	exit 1
fi

known=$(tr -d ' \n' <tests/fuzz/known_bugs 2>/dev/null || true)
export FO_FUZZ_KNOWN=${FO_FUZZ_KNOWN-$known}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
echo "fuzz.sh: mode=$mode harnesses=${harnesses[*]} FO_FUZZ_KNOWN='$FO_FUZZ_KNOWN' load: $(cat /proc/loadavg)"

failed=0
summary=()
for h in "${harnesses[@]}"; do
	bin="$dir/tests/fuzz/$h"
	seed="tests/fuzz/corpus/$h"
	work="$dir/corpus/$h"
	art="$dir/artifacts/$h"
	mkdir -p "$seed" "$work" "$art"
	common=(-max_len=512 -timeout=30 -rss_limit_mb=4096 -print_final_stats=1
		"-artifact_prefix=$art/")
	log="$dir/$h.$mode.log"
	case $mode in
	merge)
		"$bin" "${common[@]}" -merge=1 "$seed" "$work" >"$log" 2>&1
		rc=$?
		summary+=("$(printf '%-12s merge rc=%d: %s files, %s bytes' "$h" "$rc" \
			"$(find "$seed" -type f ! -name '.*' | wc -l)" "$(cat "$seed"/* 2>/dev/null | wc -c)")")
		[ $rc -eq 0 ] || failed=1
		continue
		;;
	smoke)
		# New inputs go to a scratch directory: the committed corpus stays as it is.
		scratch=$(mktemp -d)
		# A fresh seed each run: every CI run explores new inputs (a fixed seed
		# replays the same mutations each time and finds nothing new).  The seed is
		# printed; a failure leaves its input in $art (the replay command below), and
		# that input is what reproduces it: the flow harness runs threads, so the same
		# seed need not give the same run.  Bounded by executions and time: the
		# time bound is what usually ends it on 2 shared cores.
		smoke_seed=${FO_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
		smoke_secs=${FO_FUZZ_SMOKE_SECONDS:-60}
		echo "fuzz.sh: $h smoke seed $smoke_seed (FO_FUZZ_SEED=$smoke_seed repeats it)"
		timeout -s KILL $((smoke_secs + 240)) "$bin" "${common[@]}" -seed="$smoke_seed" \
			-runs="${FO_FUZZ_SMOKE_RUNS:-100000}" -max_total_time="$smoke_secs" \
			"$scratch" "$seed" >"$log" 2>&1
		rc=$?
		rm -rf "$scratch"
		;;
	run)
		jobs=${FO_FUZZ_JOBS:-1}
		extra=()
		[ "$jobs" -gt 1 ] && extra=(-fork="$jobs")
		timeout -s KILL $((seconds + 120)) "$bin" "${common[@]}" "${extra[@]}" \
			-max_total_time="$seconds" "$work" "$seed" >"$log" 2>&1
		rc=$?
		;;
	esac
	runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
	secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' | tail -1)
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
	if [ $rc -ne 0 ]; then
		failed=1
		grep -A3 -E 'FUZZ CHECK FAILED|ERROR: (Address|Undefined|Leak)|SUMMARY' "$log" | head -20
		crash=$(ls -t "$art" 2>/dev/null | head -1)
		echo "fuzz.sh: $h FAILED (rc $rc); log $log"
		[ -n "$crash" ] && echo "  replay: FO_FUZZ_TRACE=1 FO_FUZZ_KNOWN='$FO_FUZZ_KNOWN' $bin $art/$crash"
	fi
	seedinfo=$(grep -oE 'INFO: Seed: [0-9]+' "$log" | head -1 | grep -oE '[0-9]+$')
	summary+=("$(printf '%-12s %s  %s executions in %s s, seed %s, %s, corpus %s inputs' "$h" \
		"$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "${runs:-?}" "${secs:-?}" \
		"${seedinfo:-?}" "${cov:-?}" \
		"$(find "$seed" "$work" -type f ! -name '.*' 2>/dev/null | wc -l)")")
done

printf '%s\n' "${summary[@]}"
exit $failed

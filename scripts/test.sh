#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Build fanout and run every test, in three build directories:
#   build/release  gcc,   RelWithDebInfo, tests + examples + benchmarks (bench/run.sh --quick),
#                  clang-format check (fails the build when a file is not formatted),
#                  scripts/check_install.sh (the installed package, consumed 4 ways),
#                  scripts/check_doc_examples.sh (the docs' C examples compile and run),
#                  scripts/check_api_docs.sh (Doxygen man page for every exported function),
#                  scripts/check_headers.sh (every header alone in C11 and C++11, -Wpedantic)
#   build/asan     clang, AddressSanitizer + UndefinedBehaviorSanitizer, -O1 -g
#   build/tsan     clang, ThreadSanitizer, -O1 -g, ctest -j1 (stress tests oversubscribe
#                  the 2 cores on purpose)
# Then the spin models (scripts/check_models.sh), the fuzzing smoke (scripts/fuzz.sh --smoke)
# and the random-fault runs (scripts/faults.sh).
# FO_BUILDS="release asan" selects a subset. Exits non-zero if any step of any build fails.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/deps.sh || exit 1

builds=${FO_BUILDS:-release asan tsan}
jobs=2 # the CI machines have 2 cores
summary=()
failed=0

banner() {
	printf '\n==============================================================================\n'
	printf '== %s\n' "$*"
	printf '==============================================================================\n'
}

# run_build NAME CC CTEST_JOBS CMAKE_ARGS...
run_build() {
	local name=$1 cc=$2 ctest_jobs=$3
	shift 3
	local dir="build/$name" start=$SECONDS step="" note="" ctest_prefix=()

	banner "$name: CC=$cc, $dir"

	# clang 14's TSan cannot map its shadow memory with more than 28 bits of mmap ASLR
	# (newer kernels default to 32): run the tests with address randomization off.
	if [ "$name" = tsan ] && [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
		ctest_prefix=(setarch "$(uname -m)" -R)
	fi

	if ! CC=$cc cmake -S . -B "$dir" -DFANOUT_BUILD_TESTS=ON -DFANOUT_BUILD_EXAMPLES=ON "$@"; then
		step=configure
	elif ! cmake --build "$dir" -j "$jobs"; then
		step=build
	elif ! (cd "$dir" && "${ctest_prefix[@]}" ctest --output-on-failure --no-tests=error \
		-j "$ctest_jobs"); then
		step=ctest
	fi

	if [ -z "$step" ] && [ "$name" = release ]; then
		banner "$name: scripts/check_install.sh (install, then consume with pkg-config and CMake)"
		bash scripts/check_install.sh "$root/$dir" || step="check_install.sh"
	fi
	if [ -z "$step" ] && [ "$name" = release ]; then
		banner "$name: scripts/check_doc_examples.sh (every C example of README.md and docs/)"
		bash scripts/check_doc_examples.sh "$root/$dir" || step="check_doc_examples.sh"
	fi
	if [ -z "$step" ] && [ "$name" = release ]; then
		banner "$name: scripts/check_headers.sh (each header alone, C11 and C++11, -Wpedantic)"
		bash scripts/check_headers.sh "$root/$dir" || step="check_headers.sh"
	fi
	if [ -z "$step" ] && [ "$name" = release ]; then
		banner "$name: scripts/check_api_docs.sh (a man page for every exported function)"
		bash scripts/check_api_docs.sh "$root/$dir" || step="check_api_docs.sh"
	fi
	if [ -z "$step" ] && [ "$name" = release ]; then
		if [ -f bench/run.sh ]; then
			banner "$name: bench/run.sh --quick"
			FO_BENCH_PREBUILT=1 BUILD_DIR="$root/$dir" bash bench/run.sh --quick || step="bench/run.sh --quick"
		else
			echo "(no bench/run.sh yet: benchmarks skipped)"
		fi
		banner "$name: format-check"
		local fmt_out unformatted
		if ! fmt_out=$(cmake --build "$dir" --target format-check 2>&1); then
			unformatted=$(grep -oE '^[^ :]+\.[ch]:' <<<"$fmt_out" | sed 's/:$//' | sort -u)
			if [ -z "$unformatted" ]; then
				echo "$fmt_out"
			fi
			echo "ERROR: $(grep -c . <<<"$unformatted") file(s) not clang-formatted" \
				"(fix: cmake --build $dir --target format):"
			sed "s|^$root/|  |" <<<"$unformatted"
			step="format-check"
		else
			echo "format-check: clean"
		fi
	fi

	local took=$((SECONDS - start))
	if [ -z "$step" ]; then
		summary+=("$(printf '%-8s PASS  (%ds%s)' "$name" "$took" "$note")")
	else
		summary+=("$(printf '%-8s FAIL  at %s (%ds)' "$name" "$step" "$took")")
		failed=1
	fi
}

for b in $builds; do
	case "$b" in
	release)
		run_build release "${FO_CC_RELEASE:-gcc}" "$jobs" \
			-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFANOUT_SANITIZE= -DFANOUT_BUILD_BENCH=ON
		;;
	asan)
		run_build asan clang "$jobs" \
			-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" \
			-DFANOUT_SANITIZE=address -DFANOUT_BUILD_BENCH=OFF
		;;
	tsan)
		run_build tsan clang 1 \
			-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" \
			-DFANOUT_SANITIZE=thread -DFANOUT_BUILD_BENCH=OFF
		;;
	*)
		echo "test.sh: unknown build '$b' in FO_BUILDS (use release, asan, tsan)" >&2
		summary+=("$(printf '%-8s FAIL  unknown build' "$b")")
		failed=1
		;;
	esac
done

# Spin models of the wait/arm handshakes (docs/models): every model verifies and every
# deliberately broken variant is caught.
banner "models: scripts/check_models.sh"
if bash scripts/check_models.sh; then
	summary+=("$(printf '%-8s PASS' models)")
else
	summary+=("$(printf '%-8s FAIL' models)")
	failed=1
fi

# Fuzzing smoke (tests/fuzz; docs/testing.md): each libFuzzer harness from the committed
# corpus with a random seed (printed) for 100 000 executions or 60 s, whichever comes first
# (on 2 cores the 60 s do: about 2.5 min with the build), in build/fuzz (clang, ASan + UBSan).
banner "fuzz: scripts/fuzz.sh --smoke"
start=$SECONDS
if bash scripts/fuzz.sh --smoke; then
	summary+=("$(printf '%-8s PASS  (%ds)' fuzz $((SECONDS - start)))")
else
	summary+=("$(printf '%-8s FAIL  (%ds)' fuzz $((SECONDS - start)))")
	failed=1
fi

# Random faults (tests/fault; docs/testing.md): fault_stress under libfiu, 4 s per scenario,
# in the release and asan builds this run made.
fault_builds=""
for b in $builds; do
	case $b in release | asan) fault_builds="$fault_builds $b" ;; esac
done
if [ -n "$fault_builds" ]; then
	banner "faults: scripts/faults.sh 4 (builds:$fault_builds)"
	start=$SECONDS
	if FO_FAULT_BUILDS="$fault_builds" bash scripts/faults.sh 4; then
		summary+=("$(printf '%-8s PASS  (%ds)' faults $((SECONDS - start)))")
	else
		summary+=("$(printf '%-8s FAIL  (%ds)' faults $((SECONDS - start)))")
		failed=1
	fi
fi

banner "summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
	echo "test.sh: FAILED"
	exit 1
fi
echo "test.sh: all builds passed"

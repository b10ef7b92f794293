#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Soak (docs/testing.md; not in CI): run the churn, oracle and flow stresses with random
# seeds, one after the other, for MINUTES, sampling each process's VmRSS.
#
#   scripts/soak.sh MINUTES [BUILD]      BUILD: build directory (default build/release)
#   FO_SOAK_RSS_GROWTH_MB=64             fail if a process's RSS grows more than this from
#                                        its first-quarter median to its last-quarter median
#   FO_SOAK_SAMPLE_S=2                   RSS sample period
#
# Prints one line per run: program, seed, exit code, seconds, items/s, RSS start/peak/end.
# A run that fails prints its replay command; the script exits non-zero if any run failed
# or grew. The log with every sample is build/soak-<date>.log.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

minutes=${1:?usage: scripts/soak.sh MINUTES [BUILD]}
dir=${2:-build/release}
growth_mb=${FO_SOAK_RSS_GROWTH_MB:-64}
period=${FO_SOAK_SAMPLE_S:-2}
log="build/soak-$(date -u +%Y%m%dT%H%M%S).log"

if [ ! -x "$dir/tests/stress_churn" ]; then
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFANOUT_BUILD_TESTS=ON >/dev/null &&
		cmake --build "$dir" -j 2 --target stress_churn stress_oracle stress_flow >/dev/null ||
		{ echo "soak.sh: build failed" >&2; exit 1; }
fi

# name: command (items per producer chosen so one run lasts tens of seconds)
progs=(
	"churn:$dir/tests/stress_churn --items 3000000"
	"oracle:$dir/tests/stress_oracle --items 100000"
	"flow:$dir/tests/stress_flow"
)
items_of() { # name -> items the run moves (for items/s; rough for flow)
	case $1 in
	churn) echo $((8 * 2 * 3000000)) ;;
	oracle) echo $((48 * 100000 * 3)) ;;
	flow) echo 2000000 ;;
	esac
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}'; }

end=$((SECONDS + minutes * 60))
failed=0
runs=0
echo "soak.sh: $minutes min, $dir, RSS growth bound ${growth_mb} MB, log $log; load: $(cat /proc/loadavg)" |
	tee "$log"
printf '%-7s %-22s %4s %7s %12s %10s %10s %10s\n' prog seed rc secs items/s rss0_MB \
	peak_MB end_MB | tee -a "$log"
while [ $SECONDS -lt $end ]; do
	for p in "${progs[@]}"; do
		[ $SECONDS -lt $end ] || break
		name=${p%%:*}
		cmd=${p#*:}
		seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
		start=$SECONDS
		t0=$(date +%s.%N)
		# shellcheck disable=SC2086
		timeout -s KILL 1800 $cmd --seed "$seed" >"$log.run" 2>&1 &
		pid=$!
		samples=()
		while kill -0 "$pid" 2>/dev/null; do
			child=$(pgrep -P "$pid" | head -1)
			r=$(rss_kb "${child:-$pid}")
			[ -n "$r" ] && samples+=("$r") && echo "rss $name $seed $((SECONDS - start)) $r" >>"$log"
			sleep "$period"
		done
		wait "$pid"
		rc=$?
		secs=$(echo "$(date +%s.%N) - $t0" | bc)
		n=${#samples[@]}
		q=$(((n + 3) / 4))
		first=$(printf '%s\n' "${samples[@]:0:$q}" | median)
		last=$(printf '%s\n' "${samples[@]:$((n - q)):$q}" | median)
		peak=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
		rate=$(echo "$(items_of "$name") / $secs" | bc)
		printf '%-7s %-22s %4d %7.1f %12s %10.1f %10.1f %10.1f\n' "$name" "$seed" "$rc" "$secs" \
			"$rate" "$(echo "${first:-0} / 1024" | bc -l)" "$(echo "${peak:-0} / 1024" | bc -l)" \
			"$(echo "${last:-0} / 1024" | bc -l)" | tee -a "$log"
		cat "$log.run" >>"$log"
		runs=$((runs + 1))
		if [ $rc -ne 0 ]; then
			failed=1
			echo "  FAILED: replay: $cmd --seed $seed" | tee -a "$log"
			grep -E 'FAIL|FATAL|ERROR' "$log.run" | head -5
		fi
		if [ "$n" -ge 4 ] && [ $((${last:-0} - ${first:-0})) -gt $((growth_mb * 1024)) ]; then
			failed=1
			echo "  FAILED: RSS grew $(((last - first) / 1024)) MB (> $growth_mb) in $name seed $seed" |
				tee -a "$log"
		fi
	done
done
rm -f "$log.run"
echo "soak.sh: $runs runs, $([ $failed -eq 0 ] && echo PASS || echo FAIL); log $log; load: $(cat /proc/loadavg)" |
	tee -a "$log"
exit $failed

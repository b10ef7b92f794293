#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Model-check the spin models in docs/models/ (see docs/models/README.md):
#   1. every configuration of arm.pml, share.pml, push.pml, fenced.pml, bias.pml, reclaim.pml and trim.pml must verify with 0 errors
#      (safety: assertions and invalid end states = a reader asleep forever; liveness for
#      arm.pml: the ltl claim no_lost_wakeup with weak fairness), and room.pml (a producer
#      waiting for room) with 0 errors;
#   2. every deliberately broken variant (-DBROKEN_*) must FAIL: the model has teeth.
# Exits non-zero if any run disagrees.  Needs spin (Debian package `spin`) and gcc.
#
#   bash scripts/check_models.sh            # everything, ~1-2 min on 2 cores
#   KEEP=1 bash scripts/check_models.sh     # keep the work directory (pan.c, trails)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=${CC:-gcc}
memlim=${FO_SPIN_MEMLIM:-4096} # MB: pan stops (and we fail) rather than swap

for tool in spin "$cc"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "check_models.sh: '$tool' not found (bash scripts/deps.sh installs spin)" >&2
		exit 1
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fanout-models.XXXXXX")
if [ "${KEEP:-0}" != 1 ]; then
	trap 'rm -rf "$work"' EXIT
fi
cp "$root"/docs/models/*.pml "$work/"
cd "$work" || exit 1

failed=0
pml=arm.pml # the model run() checks

# run NAME EXPECT(pass|fail) MODE(safety|liveness) SPIN_DEFINES...
run() {
	local name=$1 expect=$2 mode=$3
	shift 3
	local out errors states verdict ccflags=(-O2 -w "-DMEMLIM=$memlim" -DCOLLAPSE) panflags=(-m200000)
	if [ "$mode" = safety ]; then
		ccflags+=(-DSAFETY -DNOCLAIM)
	else
		panflags+=(-a -f)
	fi
	rm -f pan pan.* ./*.trail
	if ! spin "$@" -a "$pml" >spin.log 2>&1; then
		cat spin.log
		echo "FAIL  $name: spin -a failed"
		failed=1
		return
	fi
	if ! "$cc" "${ccflags[@]}" -o pan pan.c >cc.log 2>&1; then
		cat cc.log
		echo "FAIL  $name: $cc pan.c failed"
		failed=1
		return
	fi
	out=$(./pan "${panflags[@]}" 2>&1)
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' <<<"$out" | tail -1)
	if [ -z "$errors" ]; then
		echo "$out" | tail -20
		echo "FAIL  $name: pan gave no verdict"
		failed=1
		return
	fi
	# A search cut short by memory or by the depth bound (-m) proves nothing: pan says
	# "max search depth too small" and goes on with a truncated search and 0 errors.
	if grep -q 'reached -DMEMLIM bound\|Search not completed\|max search depth too small' <<<"$out" &&
		[ "$errors" = 0 ]; then
		echo "$out" | tail -20
		echo "FAIL  $name: search incomplete (memory or depth bound)"
		failed=1
		return
	fi
	if [ "$expect" = pass ] && [ "$errors" = 0 ]; then
		verdict="ok   "
	elif [ "$expect" = fail ] && [ "$errors" != 0 ]; then
		verdict="ok   "
	else
		verdict="FAIL "
		failed=1
		echo "$out" | tail -25
	fi
	local why
	why=$(grep -m1 -E '^pan:[0-9]+: ' <<<"$out" | sed 's/^pan:[0-9]*: //; s/ (at depth.*//')
	printf '%s %-44s %-8s expect %-4s errors %s, states %s%s\n' "$verdict" "$name" "$mode" \
		"$expect" "$errors" "$states" "${why:+ ($why)}"
}

echo "== arm.pml: the protocol as implemented (must verify)"
run "2 producers x1, watcher + sleeper" pass safety -DPER=1
run "2 producers x1, watcher + sleeper" pass liveness -DPER=1
run "2 producers x2, watcher" pass safety -DPER=2 -DNO_SLEEPER
run "2 producers x3, watcher" pass safety -DPER=3 -DNO_SLEEPER
run "2 producers x2, sleeper" pass safety -DPER=2 -DNO_WATCHER
run "2 producers x2, watcher, ltl" pass liveness -DPER=2 -DNO_SLEEPER
run "no membarrier: both fences seq_cst" pass safety -DPER=1 -DNO_MEMBARRIER

echo "== arm.pml: deliberately broken variants (must FAIL)"
run "BROKEN_NO_FENCE (no heavy fence)" fail safety -DPER=1 -DBROKEN_NO_FENCE
run "BROKEN_GEN_AFTER (ticket after announcing)" fail safety -DPER=1 -DBROKEN_GEN_AFTER
run "BROKEN_ANNOUNCE_FIRST (need before armed)" fail safety -DPER=1 -DBROKEN_ANNOUNCE_FIRST
run "BROKEN_NO_RECHECK (arm without re-check)" fail safety -DPER=1 -DBROKEN_NO_RECHECK
run "BROKEN_CLOSE_NOWAIT (close ignores busy)" fail safety -DPER=1 -DBROKEN_CLOSE_NOWAIT
run "BROKEN_NO_FENCE, ltl" fail liveness -DPER=1 -DBROKEN_NO_FENCE

echo "== room.pml: a producer waiting for room, watermark then exact sleep (must verify)"
pml=room.pml
run "capacity 3, 4 items, 2 readers" pass safety -DCAP=3 -DN=4
echo "== room.pml: deliberately broken variants (must FAIL)"
run "BROKEN_NO_BOUND (watermark sleep, no deadline)" fail safety -DCAP=3 -DN=4 -DBROKEN_NO_BOUND
run "BROKEN_NO_FENCE (no heavy fence)" fail safety -DCAP=3 -DN=4 -DBROKEN_NO_FENCE
run "BROKEN_EXACT_NO_RECHECK" fail safety -DCAP=3 -DN=4 -DBROKEN_EXACT_NO_RECHECK

pml=share.pml
echo "== share.pml: the share-group claim (must verify)"
run "2 producers x2, 3 members (2 may close)" pass safety -DPER=2

echo "== share.pml: deliberately broken variants (must FAIL)"
run "BROKEN_PLAIN_STORE (store, not CAS)" fail safety -DBROKEN_PLAIN_STORE
run "BROKEN_CLAIM_FIRST (claim, then wait)" fail safety -DBROKEN_CLAIM_FIRST
run "BROKEN_STALE_COUNT (retry, old count)" fail safety -DBROKEN_STALE_COUNT

pml=push.pml
echo "== push.pml: multi-producer claim without a read section (must verify)"
run "2 producers x2, 2-item segments" pass safety
run "2 producers, a batch crossing a boundary" pass safety -DBATCH
echo "== push.pml: deliberately broken variants (must FAIL)"
run "BROKEN_NO_STALE (count, then segment)" fail safety -DBROKEN_NO_STALE
run "BROKEN_DEREF (segment base before claim)" fail safety -DBROKEN_DEREF
run "BROKEN_HELP_NO_RS (helper, no read section)" fail safety -DBROKEN_HELP_NO_RS

pml=fenced.pml
echo "== fenced.pml: the single producer's claim without a locked instruction (must verify)"
run "3 pushes, close, a cursor from the start" pass safety
run "3 pushes, close, the first cursor created" pass safety -DLATE
echo "== fenced.pml: deliberately broken variants (must FAIL)"
run "BROKEN_CLOSE_NO_MB (close, no membarrier)" fail safety -DBROKEN_CLOSE_NO_MB
run "BROKEN_FIRST_NO_MB (first cursor, no mb)" fail safety -DLATE -DBROKEN_FIRST_NO_MB
run "BROKEN_CLOSING_OK (store despite CLOSING)" fail safety -DBROKEN_CLOSING_OK

pml=bias.pml
echo "== bias.pml: a default stream's claim biased to its first producer (must verify)"
run "owner x2, revoker x2" pass safety
run "owner x2, revoker x2, a close" pass safety -DCLOSE
echo "== bias.pml: deliberately broken variants (must FAIL)"
run "BROKEN_NO_MB (revoker, no membarrier)" fail safety -DBROKEN_NO_MB
run "BROKEN_NO_MB with a close" fail safety -DCLOSE -DBROKEN_NO_MB
run "BROKEN_LEAVE_EARLY (busy 0 before claim)" fail safety -DBROKEN_LEAVE_EARLY
run "BROKEN_NO_WAIT (clear without waiting)" fail safety -DBROKEN_NO_WAIT

pml=stage.pml
echo "== stage.pml: a pipeline stage's sleeps, thresholds and the thread's wakes (must verify)"
run "ring 4, 5 items, half-ring thresholds" pass safety
run "ring 4, thresholds 3 and 3" pass safety -DIWANT=3 -DRWANT=3
run "ring 3, 6 items" pass safety -DCAP=3 -DN=6
echo "== stage.pml: deliberately broken variants (must FAIL)"
run "BROKEN_NO_FLUSH (block without waking)" fail safety -DBROKEN_NO_FLUSH
run "BROKEN_NO_BLOCKED (reader ignores blocked)" fail safety -DBROKEN_NO_BLOCKED

pml=reclaim.pml
small="-DSEG=1 -DPUSHES0=1" # every position its own segment: each batch crosses one
echo "== reclaim.pml: segment reclamation as implemented (must verify)"
run "no cursor, 2 producers, 2-item segments" pass safety -DPUSHES0=2
run "taps only (window 1)" pass safety $small -DW=1 -DPASSIVE
run "active cursor from the start" pass safety $small -DACTIVE
run "active cursor created later" pass safety $small -DLATE
run "share-group member" pass safety $small -DMEMBER

echo "== reclaim.pml: deliberately broken variants (must FAIL)"
run "BROKEN_LIMBO_FREE (release unwritten)" fail safety $small -DW=1 -DPASSIVE -DBROKEN_LIMBO_FREE
run "BROKEN_LIMBO_NOPIN (limbo without pin)" fail safety $small -DW=1 -DPASSIVE -DBROKEN_LIMBO_NOPIN
run "BROKEN_STOP (stop at unwritten: bug 5)" fail safety -DPUSHES0=2 -DBROKEN_STOP
run "BROKEN_PIN_ANYWAY (pin ignores DEAD)" fail safety -DSEG=1 -DPUSHES0=2 -DW=1 -DPASSIVE -DBROKEN_PIN_ANYWAY
run "BROKEN_HOLD_END (hold after the batch)" fail safety $small -DACTIVE -DBROKEN_HOLD_END
run "BROKEN_NO_SLACK (F not strict)" fail safety $small -DLATE -DBROKEN_NO_SLACK

pml=trim.pml
echo "== trim.pml: trimming a lapped passive's segment (must verify)"
run "1 passive, 3 slots, 2 calls" pass safety
run "2 passives, 3 slots, 2 calls" pass safety -DNP=2
run "1 passive, 4 slots, 3 calls" pass safety -DS=4 -DCALLS=3
echo "== trim.pml: deliberately broken variants (must FAIL)"
run "BROKEN_TRIM_ORDER (DEAD check, then publish)" fail safety -DBROKEN_TRIM_ORDER
run "BROKEN_TRIM_NOPIN (trim without own pin)" fail safety -DBROKEN_TRIM_NOPIN

if [ "$failed" -ne 0 ]; then
	echo "check_models.sh: FAILED"
	exit 1
fi
echo "check_models.sh: all models verified, every broken variant caught"

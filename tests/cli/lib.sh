# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# tests/cli/lib.sh - a tiny TAP-style harness for the shell tests of the `fanout` command.
# Each test_*.sh sources it, defines functions t_<name> and calls run_tests. CTest passes
# FANOUT (the built binary); sanitizer failures show up as wrong exit codes (ASan aborts,
# TSan exits 66) and as "Sanitizer" on a captured stderr, which every test checks.
set -u
shopt -s lastpipe # `seq ... | fo ...` runs fo in this shell, so rc is kept
: "${FANOUT:?set FANOUT to the fanout binary}"

T=$(mktemp -d "${TMPDIR:-/tmp}/fanout-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
export T

# fo ARGS...: run fanout with stdout to $T/out and stderr to $T/err; sets rc.
fo() {
	"$FANOUT" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if grep -q Sanitizer "$T/err"; then
		cat "$T/err" >&2
		rc=250
	fi
	return 0
}

# eq GOT WANT [WHAT]: fail loudly when they differ.
eq() {
	if [ "$1" != "$2" ]; then
		printf '%s: expected [%s], got [%s]\n' "${3:-value}" "$2" "$1" >&2
		return 1
	fi
}

run_tests() {
	local n=0 failed=0 t
	for t in $(declare -F | awk '{print $3}' | grep '^t_'); do
		n=$((n + 1))
		rm -rf "${T:?}"/* 2>/dev/null
		if ("$t"); then
			echo "ok $n - ${t#t_}"
		else
			echo "not ok $n - ${t#t_}"
			echo "--- stderr of the last fanout run:" >&2
			cat "$T/err" >&2 2>/dev/null
			failed=$((failed + 1))
		fi
	done
	echo "# $n tests, $failed failed"
	[ "$failed" -eq 0 ]
}

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# fanout tee: every record to every CMD, early exits, stalled taps, NUL records, 1 M lines.
. "$(dirname "$0")/lib.sh"

# tap_accounted GOT TOTAL: tap 1 skipped some records, and GOT + skipped = TOTAL.
tap_accounted() {
	local skipped
	skipped=$(sed -n 's/^fanout tee: tap 1 .*: \([0-9]*\) records skipped$/\1/p' "$T/err")
	[ -n "$skipped" ] && [ "$skipped" -gt 0 ] || return 1
	eq "$(($1 + skipped))" "$2" "tap records + skipped"
}

t_million_lines_every_line_accounted_for() {
	seq 1 1000000 >"$T/in"
	local want_sum
	want_sum=$(md5sum <"$T/in")
	fo tee --buffer 100 'wc -l >"$T/n1"' 'md5sum >"$T/sum"' 'tail -1 >"$T/last"' <"$T/in"
	eq "$rc" 0 rc && eq "$(cat "$T/n1")" 1000000 count && eq "$(cat "$T/sum")" "$want_sum" md5 &&
		eq "$(cat "$T/last")" 1000000 last
}

t_consumer_exiting_early_is_dropped() {
	seq 1 300000 | fo tee 'head -1 >"$T/h"' 'wc -l >"$T/w"' 'exec 0<&-; echo closed >"$T/c"'
	eq "$rc" 0 rc && eq "$(cat "$T/h")" 1 head && eq "$(cat "$T/w")" 300000 wc && eq "$(cat "$T/c")" closed
}

t_exit_status_first_failing_cmd() {
	seq 1 1000 | fo tee 'cat >/dev/null' 'cat >/dev/null; exit 3' 'exit 4'
	eq "$rc" 3 rc || return 1
	seq 1 1000 | fo tee 'cat >/dev/null' 'kill -9 $$'
	eq "$rc" 137 "rc when killed by SIGKILL" || return 1
	seq 1 10 | fo tee --tap 'exit 5' 'cat >/dev/null'
	eq "$rc" 0 "a tap's status does not count"
}

t_stalled_tap_never_delays_the_others() {
	# the tap reads nothing for 5 s; the lossless consumer must be done long before
	seq 1 1000000 >"$T/in"
	fo tee --buffer 1000 --tap 'sleep 5; date +%s%N >"$T/tap_start"; wc -l >"$T/tap_n"' \
		'wc -l >"$T/n"; date +%s%N >"$T/done"' <"$T/in"
	eq "$rc" 0 rc && eq "$(cat "$T/n")" 1000000 count || return 1
	[ "$(cat "$T/done")" -lt "$(cat "$T/tap_start")" ] || {
		echo "the lossless consumer finished after the stalled tap woke up" >&2
		return 1
	}
	# the tap got some records and fanout reports exactly how many it skipped
	tap_accounted "$(cat "$T/tap_n")" 1000000
}

t_stalled_tap_resumes_at_newer_records_whole() {
	# the tap stalls while its pipe fills and the others read on far past it (it is
	# lapped), then reads again: it gets whole records in order, the last ones
	# included, and the skipped count adds up
	{
		seq 1 3000000
		sleep 2
		seq 3000001 3000010
	} | fo tee --tap 'sleep 1; cat >"$T/tap"' 'wc -l >"$T/n"'
	eq "$rc" 0 rc && eq "$(cat "$T/n")" 3000010 count || return 1
	eq "$(tail -1 "$T/tap")" 3000010 "the tap's last record" || return 1
	# every line a whole number, each larger than the one before
	awk '!/^[0-9]+$/ || $1 <= prev { bad = 1 } { prev = $1 } END { exit bad }' "$T/tap" || {
		echo "the tap got a torn or out-of-order record" >&2
		return 1
	}
	tap_accounted "$(wc -l <"$T/tap")" 3000010
}

t_taps_only() {
	seq 1 1000 | fo tee --tap 'wc -l'
	eq "$rc" 0 rc && eq "$(tr -d ' ' <"$T/out")" 1000 out && grep -q ': 0 records skipped$' "$T/err"
}

t_null_records() {
	printf 'a b\0c\nd\0e' | fo tee -0 --buffer 1 --tap 'tr "\0" "|" >"$T/y"' 'tr "\0" "|" >"$T/x"'
	eq "$rc" 0 rc && eq "$(cat "$T/x")" "a b|c
d|e" x || return 1
	# the last record lacks its NUL: passed on as is
	printf 'a\0b\0' | fo tee -0 'od -c | head -1'
	grep -q 'a  \\0   b  \\0' "$T/out"
}

t_long_record_and_no_final_newline() {
	{
		head -c 300000 /dev/zero | tr '\0' x
		printf '\nshort\nlast'
	} >"$T/in"
	fo tee --buffer 2 'cat >"$T/a"' 'cat >"$T/b"' <"$T/in"
	eq "$rc" 0 rc && cmp -s "$T/in" "$T/a" && cmp -s "$T/in" "$T/b"
}

run_tests

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# fanout map: order, {} substitution, exit codes, timeouts, retries, halting, joblog.
. "$(dirname "$0")/lib.sh"

t_keep_order() {
	# later lines finish first; -k must still print them in input order
	seq 1 40 | fo map -j4 -k -- sh -c 'sleep 0.0$((9 - $1 % 10)); echo $1' sh {}
	eq "$rc" 0 rc && eq "$(cat "$T/out")" "$(seq 1 40)" out
}

t_unordered_has_everything() {
	seq 1 200 | fo map -j3 -- echo {}
	eq "$rc" 0 rc && eq "$(sort -n "$T/out")" "$(seq 1 200)" out
}

t_braces_spaces_quotes() {
	printf '%s\n' 'a b' "it's" 'say "hi"' '$HOME *' 'back\slash' '' '  lead' >"$T/in"
	fo map -k -j3 -- printf '<%s>\n' {} <"$T/in"
	eq "$rc" 0 rc && eq "$(cat "$T/out")" "$(sed 's/.*/<&>/' "$T/in")" out
}

t_braces_inside_words_and_appended() {
	printf 'x y\nz\n' | fo map -k -- printf '%s|%s\n' 'pre{}post' '{}{}'
	eq "$rc" 0 rc && eq "$(cat "$T/out")" "prex ypost|x yx y
prezpost|zz" out || return 1
	printf 'x y\n' | fo map -k -- printf '[%s]'
	eq "$(cat "$T/out")" "[x y]" appended
}

t_shell_quotes_the_line() {
	printf '%s\n' "it's" 'a;b' '$(echo no)' >"$T/in"
	fo map -k --shell -- echo {} '|' tr a-z A-Z <"$T/in"
	eq "$rc" 0 rc && eq "$(cat "$T/out")" "IT'S
A;B
\$(ECHO NO)" out
}

t_pipe_gives_the_line_on_stdin() {
	printf 'one two\nthree\n' | fo map -k --pipe -- sed 's/^/>/'
	eq "$rc" 0 rc && eq "$(cat "$T/out")" ">one two
>three" out
}

t_pipe_to_a_job_that_does_not_read() {
	head -c 300000 /dev/zero | tr '\0' x >"$T/in"
	echo >>"$T/in"
	echo short >>"$T/in"
	fo map -k --pipe -- head -c 3 <"$T/in"
	eq "$rc" 0 rc && eq "$(cat "$T/out")" "xxxsho" out || return 1
	fo map --pipe -- true <"$T/in"
	eq "$rc" 0 "rc of true"
}

t_null_records() {
	printf 'a b\0c\nd\0' | fo map -k -0 -- printf '[%s]'
	eq "$rc" 0 rc && eq "$(cat "$T/out")" "[a b][c
d]" out
}

t_outputs_never_interleave() {
	seq 1 12 | fo map -j4 -- sh -c 'echo $1 a; sleep 0.02; echo $1 b; echo $1 e >&2; sleep 0.01; echo $1 c' sh {}
	eq "$rc" 0 rc || return 1
	# every job's three lines are adjacent, in order
	awk 'NR % 3 == 1 { j = $1; if ($2 != "a") exit 1 } NR % 3 == 2 { if ($1 != j || $2 != "b") exit 1 }
	     NR % 3 == 0 { if ($1 != j || $2 != "c") exit 1 } END { if (NR != 36) exit 1 }' "$T/out" &&
		eq "$(sort -n "$T/err" | tr '\n' ,)" "$(seq 1 12 | sed 's/$/ e/' | tr '\n' ,)" err
}

t_exit_status_counts_failures() {
	seq 1 7 | fo map -j3 -- sh -c 'exit $(($1 % 2))' sh {}
	eq "$rc" 4 "rc (1 3 5 7 fail)"
}

t_exit_status_capped_at_101() {
	seq 1 130 | fo map -j4 -- false
	eq "$rc" 101 rc
}

t_not_found_fails() {
	echo x | fo map -- /nonexistent/prog {}
	eq "$rc" 1 rc && grep -q nonexistent "$T/err"
}

t_killed_by_signal() {
	echo 1 | fo map --joblog "$T/log" -- sh -c 'kill -9 $$' sh {}
	eq "$rc" 1 rc && eq "$(tail -1 "$T/log" | cut -f7,8)" "0	9" "exitval, signal"
}

t_timeout_kills_the_process_group() {
	local mark=$((RANDOM + 40000)) t0 t1
	t0=$(date +%s%N)
	# the job's background grandchild must die with it (3 s: margin for the quick job on a
	# loaded machine under ASan)
	printf '0.01\n%s\n' "$mark" | fo map -j2 -k --timeout 3 --joblog "$T/log" -- sh -c 'sleep $1 & sleep $1; wait' sh {}
	t1=$(date +%s%N)
	eq "$rc" 1 "rc (one timed out)" || return 1
	[ $(((t1 - t0) / 1000000)) -lt 20000 ] || return 1
	sleep 0.2
	if pgrep -f "sleep $mark" >/dev/null; then
		echo "grandchild 'sleep $mark' survived the timeout" >&2
		pkill -f "sleep $mark"
		return 1
	fi
	eq "$(sed -n 3p "$T/log" | cut -f7,8)" "-1	9" "exitval, signal of the timed-out job" &&
		eq "$(cat "$T/err")" "fanout map: job 2 timed out: sh -c sleep \$1 & sleep \$1; wait sh $mark" stderr
}

t_retries() {
	# each job fails until its third attempt
	local job='f=$0/$1; n=$(cat $f 2>/dev/null || echo 0); echo $((n + 1)) >$f; echo try$n; [ $n -ge 2 ]'
	seq 1 5 | fo map -j2 -k --retries 2 -- sh -c "$job" "$T" {}
	eq "$rc" 0 "rc with 2 retries" || return 1
	eq "$(cat "$T/out" | sort -u)" "try2" "only the last attempt's output" || return 1
	eq "$(cat "$T/1")" 3 attempts || return 1
	rm -f "$T"/[0-9]*
	seq 1 5 | fo map -j2 --retries 1 -- sh -c "$job" "$T" {}
	eq "$rc" 5 "rc with 1 retry" && eq "$(cat "$T/2")" 2 attempts
}

t_halt_on_error() {
	seq 1 100 | fo map -j1 -k --halt-on-error -- sh -c '[ $1 -ne 3 ] && echo $1' sh {}
	eq "$rc" 1 rc && eq "$(cat "$T/out")" "1
2" out || return 1
	seq 1 1000 | fo map -j2 --halt-on-error -- sh -c '[ $1 -ne 5 ] && echo $1' sh {}
	eq "$rc" 1 rc && [ "$(wc -l <"$T/out")" -lt 20 ]
}

t_joblog_format() {
	printf 'a\nb c\n' | fo map -j2 -k --joblog "$T/log" -- sh -c 'printf %s "$1"; exit 3' sh {}
	eq "$rc" 2 rc || return 1
	eq "$(head -1 "$T/log")" "$(printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand')" header || return 1
	awk -F'\t' 'NR > 1 { if (NF != 9 || $2 != ":" || $7 != 3 || $8 != 0 || $3 !~ /^[0-9]+\.[0-9]+$/) exit 1 } END { if (NR != 3) exit 1 }' "$T/log" || return 1
	eq "$(cut -f1,6,9 "$T/log" | sed 1d | sort)" "1	1	sh -c printf %s \"\$1\"; exit 3 sh a
2	3	sh -c printf %s \"\$1\"; exit 3 sh b c" "seq, receive, command"
}

t_bar_only_on_a_terminal() {
	seq 1 5 | fo map --bar -- true
	eq "$rc" 0 rc && [ ! -s "$T/err" ]
}

t_bar_on_a_terminal() {
	command -v script >/dev/null || return 0 # bsdutils: a pseudo-terminal for stderr
	script -qec "seq 1 5 | '$FANOUT' map --bar -- true" /dev/null >"$T/out" 2>&1
	grep -q '100% 5/5 jobs, 0 failed' "$T/out"
}

t_stdout_closed_early() {
	# the reader of fanout's stdout goes away: fanout stops, as a filter does
	seq 1 100000 | "$FANOUT" map -j2 -k -- echo {} 2>"$T/err" | head -3 >"$T/out"
	eq "$(cat "$T/out")" "$(seq 1 3)" out && ! grep -q Sanitizer "$T/err"
}

run_tests

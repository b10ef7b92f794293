#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# fanout pub / sub against a real redis-server (run under tests/bridges/servers.sh, which
# exports FO_REDIS_URL).
. "$(dirname "$0")/lib.sh"
: "${FO_REDIS_URL:?run under tests/bridges/servers.sh run redis --}"

t_pub_then_sub_every_line() {
	printf '%s\n' 'a b' "it's" '' 'last' >"$T/in"
	seq 1 20000 >>"$T/in"
	fo pub "$FO_REDIS_URL" k1 <"$T/in"
	eq "$rc" 0 "rc of pub" || return 1
	fo sub --count "$(wc -l <"$T/in")" "$FO_REDIS_URL" k1 </dev/null
	eq "$rc" 0 "rc of sub" && cmp -s "$T/out" "$T/in"
}

t_same_consumer_resumes_without_loss() {
	seq 1 1000 | fo pub "$FO_REDIS_URL" k2
	eq "$rc" 0 "rc of pub" || return 1
	# what the first run read ahead but did not write stays pending for c1: the second gets it
	"$FANOUT" sub --group g --consumer c1 --count 400 "$FO_REDIS_URL" k2 >"$T/a" || return 1
	"$FANOUT" sub --group g --consumer c1 --count 600 "$FO_REDIS_URL" k2 >"$T/b" || return 1
	eq "$(cat "$T/a" "$T/b")" "$(seq 1 1000)" entries
}

t_bad_url_and_refused() {
	echo x | fo pub "redis://127.0.0.1:1" k
	eq "$rc" 1 "rc, connection refused" && eq "$(wc -l <"$T/err")" 1 "stderr lines" || return 1
	echo x | fo pub "http://nowhere" k
	eq "$rc" 2 "rc, bad url" || return 1
	fo pub "$FO_REDIS_URL"
	eq "$rc" 2 "rc, missing KEY" || return 1
	fo sub --count x "$FO_REDIS_URL" k
	eq "$rc" 2 "rc, bad --count"
}

run_tests

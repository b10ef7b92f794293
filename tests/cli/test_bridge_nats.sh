#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# fanout pub / sub against a real nats-server -js (run under tests/bridges/servers.sh run nats,
# which exports FO_NATS_URL).
. "$(dirname "$0")/lib.sh"
: "${FO_NATS_URL:?run under tests/bridges/servers.sh run nats --}"

t_pub_then_sub_every_line() {
	printf '%s\n' 'a b' "it's" '' 'last' >"$T/in"
	seq 1 20000 >>"$T/in"
	fo pub "$FO_NATS_URL" cli.k1 <"$T/in"
	eq "$rc" 0 "rc of pub" || return 1
	fo sub --count "$(wc -l <"$T/in")" "$FO_NATS_URL" cli.k1 </dev/null
	eq "$rc" 0 "rc of sub" && cmp -s "$T/out" "$T/in"
}

t_group_resumes_without_loss() {
	seq 1 1000 | fo pub --stream CLI_K2 "$FO_NATS_URL" cli.k2
	eq "$rc" 0 "rc of pub" || return 1
	# a durable: the second run goes on where the first stopped; what the first read ahead
	# but did not write, it gave back at exit (NAK): the second gets it at once, so the
	# two runs share every entry, once, though not in the published order
	"$FANOUT" sub --stream CLI_K2 --group g --count 400 "$FO_NATS_URL" cli.k2 >"$T/a" || return 1
	"$FANOUT" sub --stream CLI_K2 --group g --count 600 "$FO_NATS_URL" cli.k2 >"$T/b" || return 1
	eq "$(cat "$T/a" "$T/b" | sort -n)" "$(seq 1 1000)" entries
}

t_nul_records() {
	printf 'a\nb\0c\0' | fo pub -0 "$FO_NATS_URL" cli.k3
	eq "$rc" 0 "rc of pub" || return 1
	fo sub -0 --count 2 "$FO_NATS_URL" cli.k3 </dev/null
	eq "$rc" 0 "rc of sub" && eq "$(od -An -c "$T/out" | tr -s ' ')" "$(printf 'a\nb\0c\0' | od -An -c | tr -s ' ')" records
}

t_bad_usage_and_refused() {
	echo x | fo pub "nats://127.0.0.1:1" k
	eq "$rc" 1 "rc, connection refused" && eq "$(wc -l <"$T/err")" 1 "stderr lines" || return 1
	fo sub --consumer c "$FO_NATS_URL" k
	eq "$rc" 2 "rc, --consumer with NATS" || return 1
	fo sub --group a.b "$FO_NATS_URL" k
	eq "$rc" 2 "rc, a group name with a dot" || return 1
	fo pub --stream S "redis://127.0.0.1:1" k </dev/null
	eq "$rc" 2 "rc, --stream with Redis"
}

run_tests

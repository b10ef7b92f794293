#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# fanout: --version, --help, bad flags (exit 2, one line on stderr), empty input.
. "$(dirname "$0")/lib.sh"

t_version() {
	fo --version
	eq "$rc" 0 rc && grep -Eq '^fanout [0-9]+\.[0-9]+\.[0-9]+' "$T/out"
}

t_help_everywhere() {
	for args in "--help" "tee --help" "map --help" "tee -h" "map -h"; do
		# shellcheck disable=SC2086
		fo $args
		eq "$rc" 0 "rc of $args" || return 1
		grep -q '^usage: fanout' "$T/out" || return 1
		[ ! -s "$T/err" ] || return 1
	done
}

# usage_error ARGS...: exit 2 and exactly one line on stderr.
usage_error() {
	fo "$@" </dev/null
	eq "$rc" 2 "rc of fanout $*" || return 1
	eq "$(wc -l <"$T/err")" 1 "stderr lines of fanout $*" || return 1
}

t_bad_flags() {
	usage_error &&
		usage_error bogus &&
		usage_error --bogus &&
		usage_error map --nope -- echo &&
		usage_error map -j x -- echo &&
		usage_error map -j 0 -- echo &&
		usage_error map --timeout -1 -- echo &&
		usage_error map --timeout abc -- echo &&
		usage_error map --retries -2 -- echo &&
		usage_error map --timeout &&
		usage_error map &&
		usage_error map -- &&
		usage_error map --joblog /nonexistent/dir/log -- echo &&
		usage_error tee &&
		usage_error tee --buffer 0 cat &&
		usage_error tee --buffer 1x cat &&
		usage_error tee --tap &&
		usage_error tee --what cat &&
		usage_error pub &&
		usage_error sub
}

t_empty_input_map() {
	fo map -- touch "$T/ran" </dev/null
	eq "$rc" 0 rc && [ ! -e "$T/ran" ] && [ ! -s "$T/out" ]
}

t_empty_input_tee() {
	fo tee 'wc -l' 'wc -c' </dev/null
	eq "$rc" 0 rc && eq "$(tr -d ' ' <"$T/out" | tr '\n' ,)" "0,0," out
}

run_tests

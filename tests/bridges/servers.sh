#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Real servers for the bridge tests and benchmarks, on free loopback ports, in a temporary
# directory, stopped by a trap whatever happens.
#
#   servers.sh run [redis] [nats] -- CMD ARGS...
#       start the servers, export their URLs, run CMD, stop the servers, exit with CMD's code.
#       Exports: FO_REDIS_URL=redis://127.0.0.1:PORT  FO_REDIS_PORT  FO_REDIS_DIR
#                FO_NATS_URL=nats://127.0.0.1:PORT    FO_NATS_PORT   FO_NATS_DIR
#                FO_SERVERS_SH (this script, for the restart commands below)
#   servers.sh redis-restart [kill|term] [SECONDS_DOWN]   (from inside CMD)
#       stop redis-server (SIGKILL by default: a crash; AOF with appendfsync always keeps
#       every acknowledged write), wait SECONDS_DOWN (default 0), start it again on the
#       same port and directory; returns once it answers PING.
#   servers.sh nats-restart [kill|term] [SECONDS_DOWN]     the same for nats-server.
#
# redis-server: appendonly yes, appendfsync always, no RDB snapshots, bound to 127.0.0.1
# (FO_REDIS_AOF=no turns the append-only file off: benchmarks measure the clients, not fsync).
# nats-server: -js with its store in the temporary directory, bound to 127.0.0.1.
set -uo pipefail

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

die() {
	echo "servers.sh: $*" >&2
	exit 2
}

# A port nobody listens on now (the server's own bind is the final check: callers retry).
pick_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

redis_ping() {
	redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG
}

# redis_start DIR PORT: start redis-server, wait until it answers (60 s: a loaded machine
# replaying a long append-only file is slow).
redis_start() {
	local dir=$1 port=$2 aof=${FO_REDIS_AOF:-yes}
	# In a subshell that exits at once: the server is reaped by init, not left a zombie of
	# this shell (kill -0 would then never see it gone).
	(
		redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly "$aof" \
			--appendfsync always --save "" --daemonize no --logfile "$dir/redis.log" \
			--protected-mode no </dev/null >/dev/null 2>&1 &
		echo $! >"$dir/redis.pid"
	)
	for _ in $(seq 1 1200); do
		if redis_ping "$port"; then
			return 0
		fi
		if ! kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
			return 1
		fi
		sleep 0.05
	done
	return 1
}


# nats_ready_count DIR: how many times the log says the server is ready.
nats_ready_count() {
	local n
	n=$(grep -c "Server is ready" "$1/nats.log" 2>/dev/null)
	echo "${n:-0}"
}

# nats_start DIR PORT: start nats-server -js, wait until it accepts connections (10 s). The
# log is appended to across restarts: wait for one more "Server is ready" than it had.
nats_start() {
	local dir=$1 port=$2 before
	before=$(nats_ready_count "$dir")
	(
		nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/js" -l "$dir/nats.log" \
			</dev/null >/dev/null 2>&1 &
		echo $! >"$dir/nats.pid"
	)
	for _ in $(seq 1 200); do
		if [ "$(nats_ready_count "$dir")" -gt "$before" ]; then
			return 0
		fi
		if ! kill -0 "$(cat "$dir/nats.pid")" 2>/dev/null; then
			return 1
		fi
		sleep 0.05
	done
	return 1
}

# stop_pid PIDFILE SIGNAL: stop the process and wait for it to be gone.
stop_pid() {
	local pidfile=$1 sig=${2:-TERM} pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	kill "-$sig" "$pid" 2>/dev/null || true
	for _ in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

# start_on_free_port NAME: start NAME-server (NAME_start) in $tmp/NAME on a free port (5
# tries: another process may take the port first); sets port.
start_on_free_port() {
	local name=$1 dir="$tmp/$1"
	command -v "$name-server" >/dev/null || die "$name-server not installed (scripts/deps.sh)"
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$(pick_port) || die "no free port"
		if "${name}_start" "$dir" "$port"; then
			return 0
		fi
		stop_pid "$dir/$name.pid" KILL
	done
	cat "$dir/$name.log" >&2
	die "$name-server did not start"
}

cmd=${1:-}
shift || true
case "$cmd" in
run)
	want_redis=0 want_nats=0
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		case "$1" in
		redis) want_redis=1 ;;
		nats) want_nats=1 ;;
		*) die "unknown server '$1'" ;;
		esac
		shift
	done
	[ "${1:-}" = "--" ] || die "usage: servers.sh run [redis] [nats] -- CMD ARGS..."
	shift
	[ $# -gt 0 ] || die "no command to run"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/fanout-servers.XXXXXX") || die "mktemp failed"
	cleanup() {
		stop_pid "$tmp/redis/redis.pid" KILL
		stop_pid "$tmp/nats/nats.pid" KILL
		rm -rf "$tmp"
	}
	trap cleanup EXIT
	trap 'exit 130' INT TERM HUP
	export FO_SERVERS_SH="$self"
	if [ $want_redis = 1 ]; then
		start_on_free_port redis
		export FO_REDIS_PORT=$port FO_REDIS_DIR="$tmp/redis" FO_REDIS_URL="redis://127.0.0.1:$port"
	fi
	if [ $want_nats = 1 ]; then
		start_on_free_port nats
		export FO_NATS_PORT=$port FO_NATS_DIR="$tmp/nats" FO_NATS_URL="nats://127.0.0.1:$port"
	fi
	"$@"
	exit $?
	;;
redis-restart | nats-restart)
	name=${cmd%-restart}
	dirvar=FO_${name^^}_DIR portvar=FO_${name^^}_PORT
	[ -n "${!dirvar:-}" ] || die "$cmd: not under 'servers.sh run $name'"
	sig=KILL
	[ "${1:-kill}" = term ] && sig=TERM
	stop_pid "${!dirvar}/$name.pid" "$sig"
	sleep "${2:-0}"
	"${name}_start" "${!dirvar}" "${!portvar}" || {
		tail -20 "${!dirvar}/$name.log" >&2
		die "$name-server did not restart"
	}
	;;
*)
	die "usage: servers.sh run [redis] [nats] -- CMD ARGS... | redis-restart | nats-restart"
	;;
esac

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Install the Debian 12 packages fanout needs, if any are missing.
# As root it installs them; otherwise it prints the command to run and exits 1.
#
#   bash scripts/deps.sh          # everything scripts/test.sh needs: build, tests, sanitizers,
#                                 # benchmarks, model checking (the full list below)
#   bash scripts/deps.sh --demo   # only what scripts/demo.sh needs: build the library and
#                                 # examples/event_bus.c
set -euo pipefail

# What building the library needs (also the demo's whole list).
demo_packages=(
	build-essential cmake pkg-config
	liburcu-dev                    # the library's one dependency (liburcu-bp)
)

mode=full
case "${1:-}" in
"") ;;
--demo) mode=demo ;;
*)
	echo "usage: deps.sh [--demo]" >&2
	exit 2
	;;
esac

packages=(
	"${demo_packages[@]}"
	libck-dev                      # benchmark peer (ck_ring); src/ only if it includes <ck_*.h>
	libcmocka-dev                  # unit tests
	clang libclang-rt-14-dev       # ASan/UBSan/TSan builds (clang's sanitizer runtimes)
	clang-format                   # format-check target
	doxygen                        # fo_*(3) man pages; scripts/check_api_docs.sh
	libzmq3-dev                    # benchmark peer
	valgrind                       # callgrind instruction counts in bench/
	libuv1-dev                     # include/fanout/uv.h adapter: examples/uv_subscriber.c
	spin                           # model checking: scripts/check_models.sh (docs/models/)
	libjemalloc2                   # bench B12: allocator independence (LD_PRELOAD)
	libfiu-dev fiu-utils           # random faults: scripts/faults.sh (tests/fault)
	scdoc                          # cli/fanout.1.scd -> the fanout(1) man page
	parallel moreutils             # bench B17/B17b peers: GNU parallel, pee
	libhiredis-dev redis-server    # bridges: fanout::redis (hiredis) and its tests/bench (server)
	libnats-dev nats-server        # bridges: NATS JetStream client and server (-js)
)
if [ "$mode" = demo ]; then
	packages=("${demo_packages[@]}")
fi

if ! command -v dpkg >/dev/null 2>&1; then
	echo "deps.sh: no dpkg (not Debian?): install the equivalents of: ${packages[*]}" >&2
	exit 0
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps.sh: all packages installed ($mode list)"
	exit 0
fi

echo "deps.sh: missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
else
	echo "deps.sh: run this, then try again:" >&2
	echo "  sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi

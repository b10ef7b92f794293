#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Build and run the demo: examples/event_bus.c (an event bus with subscribers, a
# work-sharing group and a stats tap).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Only what the demo needs (a compiler, cmake, pkg-config, liburcu): no test, sanitizer or
# benchmark packages, and no cmocka (the tests are not built).
bash scripts/deps.sh --demo
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFANOUT_BUILD_EXAMPLES=ON \
	-DFANOUT_BUILD_TESTS=OFF -DFANOUT_BUILD_BENCH=OFF
cmake --build build/demo -j 2 --target event_bus
exec ./build/demo/examples/event_bus "$@"

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Build and run the demo: examples/event_bus.c (an event bus with subscribers, a
# work-sharing group and a stats tap).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFANOUT_BUILD_EXAMPLES=ON
cmake --build build/release -j 2 --target event_bus
exec ./build/release/examples/event_bus "$@"

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Every public header compiles on its own, warning-free, the way users include it:
#   C    -std=c11 -Wall -Wextra -Wpedantic -Werror      (gcc, and clang when installed)
#   C++  -std=c++11 -Wall -Wextra -Wpedantic -Werror    (g++, and clang++ when installed)
# <fanout/uv.h> needs libuv (libuv1-dev) and, under strict -std=c11, _POSIX_C_SOURCE: it is
# compiled with -D_POSIX_C_SOURCE=200809L, and without it must stop with its own #error
# (not an obscure error from inside libuv). Then a small program checks that
# fo_uv_watch_init() leaves the caller's w->data alone.
#
#   bash scripts/check_headers.sh [BUILD_DIR]   # BUILD_DIR: a built fanout (default
#                                               # build/release): version.h, libfanout.so
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build/release}" 2>/dev/null && pwd) || {
	echo "check_headers.sh: no build directory ${1:-build/release}" >&2
	exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/fanout-headers.XXXXXX")
trap 'rm -rf "$work"' EXIT
inc=(-I"$root/include" -I"$build/include")
warn=(-Wall -Wextra -Wpedantic -Werror)
failed=0 checked=0

compilers=()
for c in "gcc -x c -std=c11" "clang -x c -std=c11" "g++ -x c++ -std=c++11" \
	"clang++ -x c++ -std=c++11"; do
	command -v "${c%% *}" >/dev/null 2>&1 && compilers+=("$c")
done
uv_flags=()
have_uv=0
if pkg-config --exists libuv 2>/dev/null; then
	read -r -a uv_flags <<<"$(pkg-config --cflags libuv)"
	have_uv=1
fi

headers=()
for h in "$root"/include/fanout/*.h "$build"/include/fanout/version.h; do
	headers+=("$(basename "$h")")
done
for h in "${headers[@]}"; do
	extra=()
	if [ "$h" = uv.h ]; then
		if [ "$have_uv" = 0 ]; then
			echo "skip  uv.h (libuv not found: libuv1-dev)"
			continue
		fi
		extra=(-D_POSIX_C_SOURCE=200809L "${uv_flags[@]}")
	fi
	printf '#include <fanout/%s>\ntypedef int fo_check_nonempty;\n' "$h" >"$work/t.c"
	for c in "${compilers[@]}"; do
		# shellcheck disable=SC2086 # $c is "compiler -x lang -std=..."
		if ! $c "${warn[@]}" "${inc[@]}" "${extra[@]}" -fsyntax-only "$work/t.c" \
			>"$work/log" 2>&1; then
			sed 's/^/      /' "$work/log" | head -10
			echo "FAIL  <fanout/$h> with $c"
			failed=1
		fi
		checked=$((checked + 1))
	done
done

if [ "$have_uv" = 1 ]; then
	# Strict C11 without _POSIX_C_SOURCE: uv.h's own message, first.
	printf '#include <fanout/uv.h>\n' >"$work/t.c"
	if gcc -std=c11 "${inc[@]}" "${uv_flags[@]}" -fsyntax-only "$work/t.c" >"$work/log" 2>&1; then
		echo "FAIL  <fanout/uv.h> under -std=c11 without _POSIX_C_SOURCE compiled: the check is stale"
		failed=1
	elif ! head -3 "$work/log" | grep -q '#error.*_POSIX_C_SOURCE'; then
		head -5 "$work/log"
		echo "FAIL  <fanout/uv.h> under -std=c11: the first error is not uv.h's own #error"
		failed=1
	fi
	# fo_uv_watch_init() keeps w->data.
	cat >"$work/data.c" <<'EOF'
#include <fanout/fanout.h>
#include <fanout/uv.h>
#include <stdio.h>

int main(void)
{
	int mine = 42;
	fo_stream *s;
	fo_cursor *c;
	fo_uv_watch w;

	if (fo_stream_create(&s, NULL) != FO_OK || fo_stream_cursor(s, &c, FO_ACTIVE) != FO_OK)
		return 2;
	w.data = &mine; /* set before init, as with libuv handles */
	if (fo_uv_watch_init(uv_default_loop(), &w, c) != FO_OK)
		return 3;
	if (w.data != &mine) {
		puts("fo_uv_watch_init() cleared w->data");
		return 1;
	}
	fo_uv_watch_close(&w, NULL);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	return uv_loop_close(uv_default_loop()) == 0 ? 0 : 4;
}
EOF
	# shellcheck disable=SC2046
	if ! gcc -std=c11 -D_POSIX_C_SOURCE=200809L "${warn[@]}" "${inc[@]}" -o "$work/data" \
		"$work/data.c" -L"$build" -lfanout -Wl,-rpath,"$build" \
		$(pkg-config --cflags --libs libuv) >"$work/log" 2>&1; then
		cat "$work/log"
		echo "FAIL  fo_uv_watch_init() data check: compile"
		failed=1
	elif ! "$work/data"; then
		echo "FAIL  fo_uv_watch_init() keeps w->data (exit $?)"
		failed=1
	else
		echo "ok    fo_uv_watch_init() keeps w->data; uv.h under strict C11 gives its own #error"
	fi
fi

if [ "$failed" -ne 0 ]; then
	echo "check_headers.sh: FAILED"
	exit 1
fi
echo "check_headers.sh: ${#headers[@]} headers x ${#compilers[@]} compilers ($checked builds)" \
	"clean under -Wall -Wextra -Wpedantic -Werror"

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Compile every C example of the documentation: each ```c block of README.md and
# docs/**/*.md is written to its own file and compiled as C11 with -Wall -Wextra -Werror.
# A block with a main() is linked against libfanout and run (it must exit 0 within 20 s);
# one without main() must still compile as a translation unit (-c; its static functions
# may go unused), after <fanout/fanout.h>, <stdbool.h>, <stddef.h> and <stdint.h>: so a
# synopsis of prototypes compiles only if it matches the headers.
#
# Convention: a block that is a fragment (a synopsis, a recipe that leaves out the
# surrounding program) says so with an HTML comment, invisible in rendered Markdown, on the
# line right before its fence:
#
#   <!-- fragment -->
#   ```c
#
# Fragments are counted, not compiled. Every other ```c block is a complete example.
#
#   bash scripts/check_doc_examples.sh [BUILD_DIR]   # a configured and built fanout build
#                                                    # (default build/release, else a fresh one)
#   KEEP=1 bash scripts/check_doc_examples.sh        # keep the extracted files
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=${CC:-cc}
work=$(mktemp -d "${TMPDIR:-/tmp}/fanout-docex.XXXXXX")
if [ "${KEEP:-0}" != 1 ]; then
	trap 'rm -rf "$work"' EXIT
else
	echo "check_doc_examples.sh: work directory $work"
fi

build=${1:-}
if [ -z "$build" ] && [ -f "$root/build/release/libfanout.so" ]; then
	build="$root/build/release"
fi
if [ -z "$build" ]; then
	build="$work/build"
	if ! cmake -S "$root" -B "$build" -DFANOUT_BUILD_TESTS=OFF -DFANOUT_BUILD_EXAMPLES=OFF \
		>"$work/configure.log" 2>&1 || ! cmake --build "$build" -j 2 >"$work/build.log" 2>&1; then
		cat "$work/configure.log" "$work/build.log" 2>/dev/null | tail -30
		echo "check_doc_examples.sh: FAILED (building the library)"
		exit 1
	fi
fi
build=$(cd "$build" && pwd)
if [ ! -f "$build/libfanout.so" ] || [ ! -f "$build/include/fanout/version.h" ]; then
	echo "check_doc_examples.sh: $build has no libfanout.so or include/fanout/version.h" >&2
	exit 1
fi

cflags=(-std=c11 -Wall -Wextra -Werror -I"$root/include" -I"$build/include")
libs=(-L"$build" -lfanout -Wl,-rpath,"$build" -pthread)
uv_flags=()
if pkg-config --exists libuv 2>/dev/null; then
	read -r -a uv_flags <<<"$(pkg-config --cflags --libs libuv)"
fi

# Extract: one file per block, named after the document and the fence's line number.
docs=("$root/README.md")
while IFS= read -r f; do docs+=("$f"); done < <(find "$root/docs" -name '*.md' | sort)
for doc in "${docs[@]}"; do
	rel=${doc#"$root"/}
	awk -v rel="$rel" -v dir="$work" '
		function name(line) { r = rel; gsub(/[\/.]/, "_", r); return dir "/" r "_" line }
		inb && /^```/ { inb = 0; close(out); next }
		inb { print > out; next }
		/^```c[ \t]*$/ {
			inb = 1
			out = name(NR) (prev ~ /<!--[ \t]*fragment[ \t]*-->/ ? ".fragment" : ".c")
			print "#line " NR + 1 " \"" rel "\"" > out
			next
		}
		{ prev = $0 }
	' "$doc"
done

failed=0 compiled=0 ran=0 fragments=0
for f in "$work"/*.fragment; do
	[ -e "$f" ] && fragments=$((fragments + 1))
done
for f in "$work"/*.c; do
	[ -e "$f" ] || continue
	where=$(sed -n '1s/^#line \([0-9]*\) "\(.*\)"/\2:\1/p' "$f")
	extra=()
	if grep -q '<uv\.h>\|<fanout/uv\.h>' "$f"; then
		if [ ${#uv_flags[@]} -eq 0 ]; then
			echo "skip  $where (needs libuv: libuv1-dev)"
			continue
		fi
		extra=("${uv_flags[@]}")
	fi
	if grep -qE '^[a-z].*[ *]main\(' "$f"; then
		if ! "$cc" "${cflags[@]}" -o "${f%.c}" "$f" "${libs[@]}" "${extra[@]}" 2>"$f.log"; then
			cat "$f.log"
			echo "FAIL  $where: compile/link (a fragment? put <!-- fragment --> on the line before its fence)"
			failed=1
			continue
		fi
		compiled=$((compiled + 1))
		if ! (cd "$work" && timeout 20 "${f%.c}" >"$f.out" 2>&1); then
			tail -20 "$f.out"
			echo "FAIL  $where: the program failed"
			failed=1
			continue
		fi
		ran=$((ran + 1))
		echo "ok    $where (compiled, linked, ran)"
	else
		{
			printf '#include <fanout/fanout.h>\n#include <stdbool.h>\n'
			printf '#include <stddef.h>\n#include <stdint.h>\n'
			cat "$f"
		} >"${f%.c}.tu.c"
		if ! "$cc" "${cflags[@]}" -Wno-unused-function "${extra[@]}" -c -o "${f%.c}.o" \
			"${f%.c}.tu.c" 2>"$f.log"; then
			cat "$f.log"
			echo "FAIL  $where: compile (a fragment? put <!-- fragment --> on the line before its fence)"
			failed=1
			continue
		fi
		compiled=$((compiled + 1))
		echo "ok    $where (compiled)"
	fi
done

echo "check_doc_examples.sh: $compiled compiled ($ran of them ran), $fragments fragments skipped"
if [ "$failed" -ne 0 ]; then
	echo "check_doc_examples.sh: FAILED"
	exit 1
fi

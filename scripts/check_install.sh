#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# Install fanout into a temporary prefix and build examples/hello.c against it the way a
# user would, four ways, running each program (then the installed examples, with their own
# CMakeLists.txt):
#   pkg-config, libfanout.so      cc app.c $(pkg-config --cflags --libs fanout)
#   pkg-config, libfanout.a       ... --static, -l:libfanout.a
#   CMake find_package            fanout::fanout and fanout::fanout_static
# pkg-config sees ONLY the installed fanout.pc (PKG_CONFIG_LIBDIR=<prefix>/lib/pkgconfig):
# no ck.pc, no liburcu*.pc, as on a machine without libck-dev or liburcu-dev. The CMake
# consumer is configured the same way. As root, the pkg-config builds are repeated in a private
# mount namespace where every file of libck-dev and libck0 is hidden (a machine without them). Also checks that fanout.pc's flags carry nothing
# but the include directory and the libraries actually linked.
#
#   bash scripts/check_install.sh [BUILD_DIR]   # BUILD_DIR: an existing build to install
#                                               # (default: a fresh one in the work dir)
#   KEEP=1 bash scripts/check_install.sh        # keep the work directory
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=${CC:-cc}
work=$(mktemp -d "${TMPDIR:-/tmp}/fanout-install.XXXXXX")
if [ "${KEEP:-0}" != 1 ]; then
	trap 'rm -rf "$work"' EXIT
else
	echo "check_install.sh: work directory $work"
fi
failed=0
ok() { printf 'ok    %s\n' "$*"; }
fail() {
	printf 'FAIL  %s\n' "$*"
	failed=1
}

build=${1:-}
if [ -z "$build" ]; then
	build="$work/build"
	if ! cmake -S "$root" -B "$build" -DFANOUT_BUILD_TESTS=OFF -DFANOUT_BUILD_EXAMPLES=OFF \
		-DFANOUT_BUILD_BENCH=OFF >"$work/configure.log" 2>&1 ||
		! cmake --build "$build" -j 2 >"$work/build.log" 2>&1; then
		cat "$work/configure.log" "$work/build.log" 2>/dev/null | tail -30
		echo "check_install.sh: FAILED (building the library)"
		exit 1
	fi
fi

prefix="$work/prefix"
if ! cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
	cat "$work/install.log"
	echo "check_install.sh: FAILED (cmake --install)"
	exit 1
fi
libdir=$(cd "$prefix" && ls -d lib*/pkgconfig | head -1 | xargs dirname)
ok "installed into a temporary prefix (libdir $libdir)"

# pkg-config sees our .pc file and nothing else.
export PKG_CONFIG_LIBDIR="$prefix/$libdir/pkgconfig"
export PKG_CONFIG_PATH=
unset PKG_CONFIG_SYSROOT_DIR

cflags=$(pkg-config --cflags fanout 2>&1) || fail "pkg-config --cflags fanout: $cflags"
libs=$(pkg-config --libs fanout 2>&1) || fail "pkg-config --libs fanout: $libs"
slibs=$(pkg-config --static --libs fanout 2>&1) || fail "pkg-config --static --libs fanout: $slibs"
echo "      --cflags:        $cflags"
echo "      --libs:          $libs"
echo "      --static --libs: $slibs"
read -r -a cwords <<<"$cflags"
if [ "${#cwords[@]}" -ne 1 ] || [ "${cwords[0]#-I}" = "${cwords[0]}" ] ||
	[ "$(realpath "${cwords[0]#-I}")" != "$(realpath "$prefix/include")" ]; then
	fail "pkg-config --cflags fanout should be only -I<prefix>/include"
else
	ok "pkg-config --cflags/--libs without ck.pc or liburcu*.pc"
fi
if [ "$(pkg-config --modversion fanout)" != "$(sed -n 's/^Version: //p' "$PKG_CONFIG_LIBDIR/fanout.pc")" ]; then
	fail "pkg-config --modversion"
fi

# The ABI surface: libfanout.so exports fo_* functions only, under SONAME libfanout.so.MAJOR.
so=$(ls "$prefix/$libdir"/libfanout.so.*.*.* 2>/dev/null | head -1)
version=$(sed -n 's/^#define FO_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/fanout/version.h")
if [ -z "$so" ] || [ -z "$version" ]; then
	fail "installed libfanout.so.X.Y.Z and fanout/version.h"
else
	others=$(nm -D --defined-only "$so" | awk '$3 !~ /^fo_[a-z]/ {print $3}')
	soname=$(readelf -d "$so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
	if [ -n "$others" ]; then
		fail "libfanout.so exports symbols other than fo_*: $others"
	elif [ "$soname" != "libfanout.so.${version%%.*}" ]; then
		fail "SONAME $soname does not follow the major version of $version"
	else
		ok "libfanout.so: SONAME $soname, $(nm -D --defined-only "$so" | grep -c ' T fo_') fo_* functions exported, nothing else"
	fi
fi

hello="$root/examples/hello.c"
expect="tap sees 5 ready"
run() { # NAME PROGRAM
	local out
	if ! out=$("$2" 2>&1); then
		fail "$1: the program failed: $out"
	elif ! grep -q "$expect" <<<"$out"; then
		fail "$1: unexpected output: $out"
	else
		ok "$1"
	fi
}

# shellcheck disable=SC2086 # word splitting of pkg-config output is intended
if "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/hello_pc_shared" "$hello" $cflags $libs \
	-Wl,-rpath,"$prefix/$libdir" 2>"$work/cc.log"; then
	if readelf -d "$work/hello_pc_shared" | grep -q 'NEEDED.*libfanout\.so'; then
		run "pkg-config, libfanout.so" "$work/hello_pc_shared"
	else
		fail "pkg-config, libfanout.so: the program does not load libfanout.so"
	fi
else
	cat "$work/cc.log"
	fail "pkg-config, libfanout.so: compile/link"
fi

# fo_version() at run time agrees with the installed header.
printf '%s\n' '#include <fanout/fanout.h>' '#include <stdio.h>' '#include <string.h>' \
	'int main(void) { puts(fo_version()); return strcmp(fo_version(), FO_VERSION_STRING) != 0; }' \
	>"$work/version.c"
# shellcheck disable=SC2086
if "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/version" "$work/version.c" $cflags $libs \
	-Wl,-rpath,"$prefix/$libdir" 2>"$work/cc.log" && [ "$("$work/version")" = "$version" ]; then
	ok "fo_version() = FO_VERSION_STRING = $version"
else
	cat "$work/cc.log"
	fail "fo_version() against fanout/version.h"
fi

# shellcheck disable=SC2086
if "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/hello_pc_static" "$hello" $cflags \
	${slibs//-lfanout/-l:libfanout.a} 2>"$work/cc.log"; then
	if readelf -d "$work/hello_pc_static" | grep -q 'NEEDED.*libfanout'; then
		fail "pkg-config, libfanout.a: the program still loads libfanout.so"
	else
		run "pkg-config, libfanout.a" "$work/hello_pc_static"
	fi
else
	cat "$work/cc.log"
	fail "pkg-config, libfanout.a: compile/link"
fi

# CMake consumer: find_package, both targets, with the same pkg-config view.
mkdir -p "$work/consumer"
cp "$hello" "$work/consumer/hello.c"
cat >"$work/consumer/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(consumer LANGUAGES C)
find_package(fanout CONFIG REQUIRED)
add_executable(hello_shared hello.c)
target_link_libraries(hello_shared PRIVATE fanout::fanout)
add_executable(hello_static hello.c)
target_link_libraries(hello_static PRIVATE fanout::fanout_static)
foreach(t hello_shared hello_static)
  target_compile_options(${t} PRIVATE -Wall -Wextra -Werror)
  set_target_properties(${t} PROPERTIES C_STANDARD 11 C_EXTENSIONS OFF)
endforeach()
EOF
if cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" \
	>"$work/cmake.log" 2>&1 && cmake --build "$work/consumer/build" >>"$work/cmake.log" 2>&1; then
	if grep -q -- '-D__x86_64__\|urcu\|/ck' "$work/consumer/build/CMakeFiles/hello_shared.dir/flags.make"; then
		fail "find_package: a dependency's compile flags reached the consumer"
	fi
	run "find_package, fanout::fanout" "$work/consumer/build/hello_shared"
	run "find_package, fanout::fanout_static" "$work/consumer/build/hello_static"
	if readelf -d "$work/consumer/build/hello_static" | grep -q 'NEEDED.*libfanout'; then
		fail "find_package, fanout::fanout_static: the program still loads libfanout.so"
	fi
else
	tail -30 "$work/cmake.log"
	fail "find_package consumer: configure/build"
fi

# The fanout command (cli/, FANOUT_BUILD_CLI): installed to bin/, runs, and has its man page
# when scdoc was found at configure time.
if grep -q '^FANOUT_BUILD_CLI:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	if [ "$("$prefix/bin/fanout" --version 2>&1)" = "fanout $version" ] &&
		[ "$(printf 'a b\n' | "$prefix/bin/fanout" map -- printf '<%s>')" = "<a b>" ]; then
		ok "bin/fanout runs (--version, map)"
	else
		fail "bin/fanout: missing, or --version is not 'fanout $version'"
	fi
	if grep -q '^FANOUT_SCDOC:FILEPATH=/' "$build/CMakeCache.txt" &&
		[ ! -f "$prefix/share/man/man1/fanout.1" ]; then
		fail "share/man/man1/fanout.1 not installed (scdoc was found)"
	fi
fi

# Installed documentation and examples (share/doc/fanout, share/fanout/examples): the
# examples build against the installed package with their own CMakeLists.txt.
for f in share/doc/fanout/README.md share/doc/fanout/LICENSE share/doc/fanout/CHANGELOG.md \
	share/doc/fanout/api/stream.md share/fanout/examples/hello.c \
	share/fanout/examples/CMakeLists.txt; do
	[ -f "$prefix/$f" ] || fail "not installed: $f"
done
# The reference: one man page per exported function (when doxygen built them).
if [ -d "$build/doxygen/man/man3" ]; then
	pages=0
	for s in $(nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }'); do
		if [ -f "$prefix/share/man/man3/$s.3" ]; then
			pages=$((pages + 1))
		else
			fail "no man page share/man/man3/$s.3"
		fi
	done
	ok "$pages man pages fo_*(3) installed under share/man/man3"
	if command -v man >/dev/null 2>&1 &&
		! MANPATH="$prefix/share/man" man -P cat fo_stream_create 2>/dev/null | grep -q 'make a new'; then
		fail "MANPATH=<prefix>/share/man man fo_stream_create"
	fi
fi

if cmake -S "$prefix/share/fanout/examples" -B "$work/examples" -DCMAKE_PREFIX_PATH="$prefix" \
	>"$work/examples.log" 2>&1 && cmake --build "$work/examples" -j 2 >>"$work/examples.log" 2>&1; then
	run "share/fanout/examples built against the prefix: hello" "$work/examples/hello"
else
	tail -30 "$work/examples.log"
	fail "share/fanout/examples: configure/build"
fi

# As on a machine without libck-dev: in a private mount namespace (root only), every file of
# Debian's libck-dev and libck0 is hidden under an empty bind mount, then hello.c is built from
# the prefix with pkg-config, shared and static, and run.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 && dpkg -L libck-dev >/dev/null 2>&1; then
	if out=$(unshare -m bash -c '
		set -e
		for f in $(dpkg -L libck-dev libck0 2>/dev/null); do
			if [ -f "$f" ]; then mount --bind /dev/null "$f"; fi
		done
		if [ -s /usr/include/ck_ring.h ]; then echo "ck headers still visible"; exit 1; fi
		"$1" -std=c11 -Wall -Wextra -Werror -o "$2/hello_nock" "$3" $4 $5 -Wl,-rpath,"$6"
		"$1" -std=c11 -Wall -Wextra -Werror -o "$2/hello_nock_static" "$3" $4 "$6/libfanout.a" \
			$(sed "s/-lfanout//" <<<"$7")
		"$2/hello_nock" && "$2/hello_nock_static"' _ "$cc" "$work" "$hello" "$cflags" "$libs" \
		"$prefix/$libdir" "$slibs" 2>&1) && grep -q "$expect" <<<"$out"; then
		ok "without libck-dev (its files hidden): pkg-config builds, shared and static, run"
	else
		fail "without libck-dev: $out"
	fi
fi

if [ "$failed" -ne 0 ]; then
	echo "check_install.sh: FAILED"
	exit 1
fi
echo "check_install.sh: the installed package builds and runs hello.c four ways, and its examples"

# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
#
# FanoutTesting: one place that builds and registers every test program.
#
#   fanout_add_test(NAME unit_stream SOURCES test_stream.c LABELS unit TIMEOUT 60
#                   [ARGS --seed 1 ...] [LIBRARIES extra ...] [TEST_HOOKS])
#
# builds executable NAME linked to fanout::fanout_static (static, so sanitizers see the
# library's code too), the tests/common helpers and, for label `unit`, cmocka; registers it
# with CTest with its LABELS, the sanitizer environment and TIMEOUT scaled for sanitizer
# builds (x3 address, x5 thread). TEST_HOOKS links fanout_static_hooks instead (the library
# with its test-only hooks, FO_TEST_HOOKS; CMakeLists.txt) and defines FO_TEST_HOOKS.
#
#   fanout_register_test(NAME name TARGET target LABELS ... TIMEOUT seconds [ARGS ...])
#
# registers an already built executable (used for examples) the same way.

include_guard(GLOBAL)

set(FANOUT_TESTS_DIR "${PROJECT_SOURCE_DIR}/tests")

# Timeout multiplier for sanitizer builds.
if(FANOUT_SANITIZE STREQUAL "address")
  set(FANOUT_TIMEOUT_SCALE 3)
elseif(FANOUT_SANITIZE STREQUAL "thread")
  set(FANOUT_TIMEOUT_SCALE 5)
else()
  set(FANOUT_TIMEOUT_SCALE 1)
endif()

# Environment of every test. Suppression files are picked up only if they exist; each entry
# in them must carry a written reason (see TESTING.md).
set(FANOUT_TSAN_OPTIONS "halt_on_error=1:second_deadlock_stack=1")
if(EXISTS "${FANOUT_TESTS_DIR}/tsan.supp")
  string(APPEND FANOUT_TSAN_OPTIONS ":suppressions=${FANOUT_TESTS_DIR}/tsan.supp")
endif()
set(FANOUT_TEST_ENVIRONMENT
    "TSAN_OPTIONS=${FANOUT_TSAN_OPTIONS}"
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1"
    "FO_SANITIZE=${FANOUT_SANITIZE}")
if(EXISTS "${FANOUT_TESTS_DIR}/lsan.supp")
  list(APPEND FANOUT_TEST_ENVIRONMENT "LSAN_OPTIONS=suppressions=${FANOUT_TESTS_DIR}/lsan.supp")
endif()

if(FANOUT_BUILD_TESTS)
  pkg_check_modules(FANOUT_CMOCKA REQUIRED IMPORTED_TARGET GLOBAL cmocka)

  # Shared helpers in tests/common: a static library when there are .c files, else just the
  # include directory.
  file(GLOB FANOUT_TEST_COMMON_SOURCES CONFIGURE_DEPENDS "${FANOUT_TESTS_DIR}/common/*.c")
  if(FANOUT_TEST_COMMON_SOURCES)
    add_library(fanout_test_common STATIC ${FANOUT_TEST_COMMON_SOURCES})
    target_include_directories(fanout_test_common PUBLIC "${FANOUT_TESTS_DIR}/common")
    target_link_libraries(fanout_test_common PUBLIC fanout::fanout_static Threads::Threads)
    target_compile_options(fanout_test_common PRIVATE -Wall -Wextra -UNDEBUG)
  else()
    add_library(fanout_test_common INTERFACE)
    target_include_directories(fanout_test_common INTERFACE "${FANOUT_TESTS_DIR}/common")
    target_link_libraries(fanout_test_common INTERFACE fanout::fanout_static Threads::Threads)
  endif()
endif()

function(fanout_register_test)
  cmake_parse_arguments(PARSE_ARGV 0 T "" "NAME;TARGET;TIMEOUT" "LABELS;ARGS")
  if(NOT T_NAME OR NOT T_TARGET)
    message(FATAL_ERROR "fanout_register_test: NAME and TARGET are required")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  math(EXPR timeout "${T_TIMEOUT} * ${FANOUT_TIMEOUT_SCALE}")
  add_test(NAME ${T_NAME} COMMAND ${T_TARGET} ${T_ARGS})
  set_tests_properties(${T_NAME} PROPERTIES
    LABELS "${T_LABELS}"
    TIMEOUT ${timeout}
    ENVIRONMENT "${FANOUT_TEST_ENVIRONMENT}")
  # Stress tests oversubscribe both cores on purpose: let `ctest -j2` run them alone.
  if("stress" IN_LIST T_LABELS)
    set_tests_properties(${T_NAME} PROPERTIES PROCESSORS 2)
  endif()
endfunction()

function(fanout_add_test)
  cmake_parse_arguments(PARSE_ARGV 0 T "TEST_HOOKS" "NAME;TIMEOUT" "SOURCES;LABELS;ARGS;LIBRARIES")
  if(NOT T_NAME OR NOT T_SOURCES)
    message(FATAL_ERROR "fanout_add_test: NAME and SOURCES are required")
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  if(T_TEST_HOOKS)
    # First on the link line: every library symbol resolves to this complete copy, so
    # nothing is taken from libfanout.a (which fanout_test_common brings too).
    target_link_libraries(${T_NAME} PRIVATE fanout_static_hooks)
    target_compile_definitions(${T_NAME} PRIVATE FO_TEST_HOOKS)
  endif()
  target_link_libraries(${T_NAME} PRIVATE fanout_test_common fanout::fanout_static
                                          Threads::Threads ${T_LIBRARIES})
  if("unit" IN_LIST T_LABELS)
    target_link_libraries(${T_NAME} PRIVATE PkgConfig::FANOUT_CMOCKA)
  endif()
  # Tests check with assert() too: keep it in RelWithDebInfo/Release builds.
  target_compile_options(${T_NAME} PRIVATE -Wall -Wextra -UNDEBUG)
  fanout_register_test(NAME ${T_NAME} TARGET ${T_NAME} TIMEOUT ${T_TIMEOUT}
                       LABELS ${T_LABELS} ARGS ${T_ARGS})
endfunction()

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* test_version.c - fanout/version.h and fo_version() agree with each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <fanout/fanout.h>

static void version_string_matches_numbers(void **state)
{
	char buf[64];

	(void)state;
	snprintf(buf, sizeof buf, "%d.%d.%d", FO_VERSION_MAJOR, FO_VERSION_MINOR, FO_VERSION_PATCH);
	assert_string_equal(buf, FO_VERSION_STRING);
	assert_non_null(fo_version());
	assert_string_equal(fo_version(), FO_VERSION_STRING);
	assert_true(FO_VERSION_NUMBER ==
	            FO_VERSION_ENCODE(FO_VERSION_MAJOR, FO_VERSION_MINOR, FO_VERSION_PATCH));
	assert_true(FO_VERSION_NUMBER >= FO_VERSION_ENCODE(0, 1, 0));
	assert_true(FO_VERSION_ENCODE(1, 0, 0) > FO_VERSION_ENCODE(0, 999, 999));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(version_string_matches_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

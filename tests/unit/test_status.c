/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_status.c - fanout/status.h: the codes, fo_strerror() and fo_status_name().
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <fanout/status.h>

struct code_row {
	int code;
	const char *name;
	const char *message;
};

static const struct code_row all_codes[] = {
#define ROW(name, value, msg) {name, #name, msg},
    FO_STATUS_MAP(ROW)
#undef ROW
};

#define NCODES (sizeof(all_codes) / sizeof(all_codes[0]))

/* The documented table: 14 codes, FO_OK 0, the rest away from small integers. */
static void test_codes_have_documented_values(void **state)
{
	(void)state;
	assert_int_equal(NCODES, 14);
	assert_int_equal(FO_OK, 0);
	assert_int_equal(FO_END, 1001);
	assert_int_equal(FO_NEED_WORK, 1007);
	assert_int_equal(FO_ECLOSED, -1001);
	assert_int_equal(FO_EBUSY, -1006);
	for (size_t i = 0; i < NCODES; i++) {
		int c = all_codes[i].code;
		assert_true(c == 0 || (c >= 1001 && c <= 1099) || (c <= -1001 && c >= -1099));
		assert_false(FO_IS_USER(c));
	}
}

/* A callback returning C's usual -1 / 1 / -errno is not read as a library code. */
static void test_small_integers_are_not_library_codes(void **state)
{
	(void)state;
	const int foreign[] = {1, -1, 2, -5, -22};
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		for (size_t j = 0; j < NCODES; j++)
			assert_int_not_equal(foreign[i], all_codes[j].code);
		assert_string_equal(fo_strerror(foreign[i]), "unknown status");
	}
	assert_string_equal(fo_status_name(-1), "FO_UNKNOWN(-1)");
	assert_string_equal(fo_status_name(1), "FO_UNKNOWN(1)");
}

/* FO_USER(n): its own range, named "FO_USER(n)", negative like every error. */
static void test_user_codes(void **state)
{
	(void)state;
	const int ns[] = {0, 1, 3, 4242, FO_USER_MAX};
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		int c = FO_USER(ns[i]);
		char want[32];
		assert_true(c < 0);
		assert_true(FO_IS_USER(c));
		assert_int_equal(FO_USER_NUM(c), ns[i]);
		for (size_t j = 0; j < NCODES; j++)
			assert_int_not_equal(c, all_codes[j].code);
		snprintf(want, sizeof(want), "FO_USER(%d)", ns[i]);
		assert_string_equal(fo_status_name(c), want);
		assert_string_equal(fo_strerror(c), "user-defined error");
	}
	assert_false(FO_IS_USER(-99999));
	assert_false(FO_IS_USER(INT_MIN));
}

/* fo_fail returns its code, keeps errno, and formats its message. */
static void test_fo_fail_returns_code_and_keeps_errno(void **state)
{
	(void)state;
	errno = EIO;
	assert_int_equal(fo_fail(FO_USER(3), "line %d: bad field %s", 7, "x"), FO_USER(3));
	assert_int_equal(errno, EIO);
	assert_int_equal(fo_fail(FO_ESYS, NULL), FO_ESYS);
	assert_int_equal(errno, EIO);
}

/* `rc < 0` means "refused": every FO_E* code is negative, every other code is >= 0. */
static void test_error_codes_are_negative_outcomes_are_not(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		bool is_error = strncmp(all_codes[i].name, "FO_E", 4) == 0 &&
		                strcmp(all_codes[i].name, "FO_END") != 0 &&
		                strcmp(all_codes[i].name, "FO_EMPTY") != 0;
		if (is_error)
			assert_true(all_codes[i].code < 0);
		else
			assert_true(all_codes[i].code >= 0);
	}
}

/* Every code maps to its own identifier. */
static void test_status_name_of_every_code_is_its_identifier(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		const char *name = fo_status_name(all_codes[i].code);
		assert_non_null(name);
		assert_string_equal(name, all_codes[i].name);
	}
}

/* Every code maps to its documented message, and no two codes share a message. */
static void test_strerror_of_every_code_is_its_message(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		const char *msg = fo_strerror(all_codes[i].code);
		assert_non_null(msg);
		assert_true(msg[0] != '\0');
		assert_string_equal(msg, all_codes[i].message);
		assert_string_not_equal(msg, "unknown status");
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(msg, fo_strerror(all_codes[j].code));
	}
}

/* Unknown codes, including the extremes and the gaps next to the known range. */
static void test_unknown_codes_give_fallback_strings(void **state)
{
	(void)state;
	const int unknown[] = {8,     9,     100,   -7,     -8,      -100,    1000,       1008,
	                       -1000, -1007, 12345, -99999, INT_MAX, INT_MIN, INT_MIN + 1};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		char want[32];
		snprintf(want, sizeof(want), "FO_UNKNOWN(%d)", unknown[i]);
		assert_string_equal(fo_strerror(unknown[i]), "unknown status");
		assert_string_equal(fo_status_name(unknown[i]), want);
	}
}

/* Library codes' strings are static: the same pointer every time, usable after any later call. */
static void test_strings_are_static(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		assert_ptr_equal(fo_strerror(all_codes[i].code), fo_strerror(all_codes[i].code));
		assert_ptr_equal(fo_status_name(all_codes[i].code),
		                 fo_status_name(all_codes[i].code));
	}
	const char *first = fo_strerror(FO_EINVAL);
	(void)fo_strerror(FO_ENOMEM);
	(void)fo_status_name(-999);
	assert_string_equal(first, "invalid argument");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_codes_have_documented_values),
	    cmocka_unit_test(test_small_integers_are_not_library_codes),
	    cmocka_unit_test(test_user_codes),
	    cmocka_unit_test(test_fo_fail_returns_code_and_keeps_errno),
	    cmocka_unit_test(test_error_codes_are_negative_outcomes_are_not),
	    cmocka_unit_test(test_status_name_of_every_code_is_its_identifier),
	    cmocka_unit_test(test_strerror_of_every_code_is_its_message),
	    cmocka_unit_test(test_unknown_codes_give_fallback_strings),
	    cmocka_unit_test(test_strings_are_static),
	};
	return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}

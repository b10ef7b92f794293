/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_status.c - fanout/status.h: the codes, fo_strerror() and fo_status_name().
 */
#include <limits.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* The documented table: 14 codes with these exact values. */
static void test_codes_have_documented_values(void **state)
{
	(void)state;
	assert_int_equal(NCODES, 14);
	assert_int_equal(FO_OK, 0);
	assert_int_equal(FO_END, 1);
	assert_int_equal(FO_EMPTY, 2);
	assert_int_equal(FO_FULL, 3);
	assert_int_equal(FO_TIMEDOUT, 4);
	assert_int_equal(FO_LAGGED, 5);
	assert_int_equal(FO_FAILED, 6);
	assert_int_equal(FO_NEED_WORK, 7);
	assert_int_equal(FO_ECLOSED, -1);
	assert_int_equal(FO_EINVAL, -2);
	assert_int_equal(FO_ENOMEM, -3);
	assert_int_equal(FO_ECANCELED, -4);
	assert_int_equal(FO_ESYS, -5);
	assert_int_equal(FO_EBUSY, -6);
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
	const int unknown[] = {8, 9, 100, -7, -8, -100, 12345, INT_MAX, INT_MIN, INT_MIN + 1};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		assert_string_equal(fo_strerror(unknown[i]), "unknown status");
		assert_string_equal(fo_status_name(unknown[i]), "FO_UNKNOWN");
	}
}

/* The strings are static: the same pointer every time, usable after any later call. */
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
	    cmocka_unit_test(test_error_codes_are_negative_outcomes_are_not),
	    cmocka_unit_test(test_status_name_of_every_code_is_its_identifier),
	    cmocka_unit_test(test_strerror_of_every_code_is_its_message),
	    cmocka_unit_test(test_unknown_codes_give_fallback_strings),
	    cmocka_unit_test(test_strings_are_static),
	};
	return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}

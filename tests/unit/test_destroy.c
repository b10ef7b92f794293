/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_destroy.c - fo_stream_destroy() closes the stream: a reader blocked on a stream
 * whose creator destroys it without fo_stream_close() gets every item pushed before,
 * then FO_END, instead of waiting forever.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

struct reader {
	fo_cursor *c;
	atomic_int got;   /* items read so far */
	atomic_int phase; /* 1: about to wait for the 4th item */
	int last_rc;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;
	void *it;
	int rc;

	for (;;) {
		if (atomic_load(&r->got) == 3)
			atomic_store(&r->phase, 1);
		/* 30 s: far beyond the test's wait; a hang shows as FO_TIMEDOUT, not a stuck CI */
		rc = fo_cursor_timed_next(r->c, &it, FT_MS(30000));
		if (rc != FO_OK)
			break;
		atomic_fetch_add(&r->got, 1);
	}
	r->last_rc = rc;
	return NULL;
}

static void destroy_wakes_a_blocked_reader_with_end(void **state)
{
	fo_stream *s;
	struct reader r = {.got = 0, .phase = 0, .last_rc = 0};
	pthread_t t;

	(void)state;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &r.c, FO_ACTIVE), FO_OK);
	for (size_t i = 1; i <= 3; i++)
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
	assert_int_equal(pthread_create(&t, NULL, read_all, &r), 0);
	while (atomic_load(&r.phase) == 0)
		ft_sleep_ms(1);
	ft_sleep_ms(20); /* let it block in the read (the result is the same if it has not) */

	fo_stream_destroy(s); /* no fo_stream_close() */
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&r.got), 3);
	assert_int_equal(r.last_rc, FO_END);
	assert_int_equal(fo_cursor_next(r.c, &(void *){NULL}), FO_END); /* sticky */
	fo_cursor_close(r.c);
}

static void destroy_after_close_or_fail_keeps_the_first_end(void **state)
{
	fo_stream *s;
	fo_cursor *c;
	void *it;

	(void)state;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_stream_push(s, ft_tok(1)), FO_OK);
	assert_int_equal(fo_stream_fail(s, FO_ECANCELED, "stopped"), FO_OK);
	fo_stream_destroy(s); /* the failure stays: destroy's close comes second */
	assert_int_equal(fo_cursor_next(c, &it), FO_OK);
	assert_int_equal(fo_cursor_next(c, &it), FO_FAILED);
	assert_int_equal(fo_cursor_error(c)->code, FO_ECANCELED);
	fo_cursor_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(destroy_wakes_a_blocked_reader_with_end),
	    cmocka_unit_test(destroy_after_close_or_fail_keeps_the_first_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_timeouts.c - status.h's one timeout convention for every public timed call:
 * int64_t timeout_ns, relative; 0 = do not wait; negative = no limit, exactly as the call
 * without a timeout.  Each negative-timeout call below has to wait for another thread
 * (about 20 ms) and must then succeed, never FO_TIMEDOUT or FO_EINVAL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

/* A thread that runs fn(arg) after 20 ms. */
struct later {
	pthread_t t;
	void (*fn)(void *);
	void *arg;
};

static void *later_main(void *p)
{
	struct later *l = p;
	ft_sleep_ms(20);
	l->fn(l->arg);
	return NULL;
}

static void later_start(struct later *l, void (*fn)(void *), void *arg)
{
	l->fn = fn;
	l->arg = arg;
	assert_int_equal(pthread_create(&l->t, NULL, later_main, l), 0);
}

static void later_join(struct later *l)
{
	assert_int_equal(pthread_join(l->t, NULL), 0);
}

static void push_one(void *s)
{
	fo_stream_push(s, ft_tok(7));
}

static void read_one(void *c)
{
	void *it;
	fo_cursor_next(c, &it);
}

static void cursor_and_iter_reads_wait_without_limit(void **state)
{
	fo_stream *s;
	fo_cursor *c, *c2;
	fo_iter *it;
	struct later l;
	void *x;

	(void)state;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_cursor_fork(c, &c2, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_cursor_timed_next(c, &x, 0), FO_TIMEDOUT); /* 0: do not wait */
	later_start(&l, push_one, s);
	assert_int_equal(fo_cursor_timed_next(c, &x, -1), FO_OK);
	later_join(&l);
	assert_int_equal(ft_seq(x), 7);

	assert_int_equal(fo_iter_from_cursor(&it, c2, NULL, NULL, NULL), FO_OK); /* takes c2 */
	assert_int_equal(fo_iter_timed_next(it, &x, -1), FO_OK); /* the 7 already there */
	assert_int_equal(fo_iter_timed_next(it, &x, 0), FO_TIMEDOUT);
	later_start(&l, push_one, s);
	assert_int_equal(fo_iter_timed_next(it, &x, -1), FO_OK);
	later_join(&l);
	fo_iter_close(it);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void timed_push_and_wait_room_wait_without_limit(void **state)
{
	fo_stream_opts o;
	fo_stream *s;
	fo_cursor *c;
	struct later l;

	(void)state;
	fo_stream_opts_init(&o);
	o.capacity = 1;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_stream_push(s, ft_tok(1)), FO_OK); /* full now */
	assert_int_equal(fo_stream_timed_push(s, ft_tok(2), 0), FO_TIMEDOUT);
	later_start(&l, read_one, c);
	assert_int_equal(fo_stream_timed_push(s, ft_tok(2), -1), FO_OK);
	later_join(&l);
	later_start(&l, read_one, c);
	assert_int_equal(fo_stream_wait_room(s, 1, -1), FO_OK);
	later_join(&l);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static int slow_job(void *arg, void **value)
{
	ft_sleep_ms(20);
	*value = arg;
	return FO_OK;
}

static void futures_and_sets_wait_without_limit(void **state)
{
	static int v;
	fo_future *f, *got;
	fo_waitfor *w;
	int rc;

	(void)state;
	assert_int_equal(fo_task_spawn(&f, slow_job, &v, NULL), FO_OK);
	assert_int_equal(fo_future_timed_wait(f, -1), FO_OK);
	fo_future_destroy(f);

	assert_int_equal(fo_waitfor_create(&w, 0), FO_OK); /* limit 0: never asks for work */
	assert_int_equal(fo_task_spawn(&f, slow_job, &v, NULL), FO_OK);
	assert_int_equal(fo_waitfor_add(w, f), FO_OK);
	rc = fo_waitfor_timed_next(w, &got, -1);
	assert_int_equal(rc, FO_OK);
	assert_ptr_equal(got, f);
	fo_future_destroy(got);
	assert_int_equal(fo_waitfor_timed_next(w, &got, -1), FO_END); /* drained */
	fo_waitfor_destroy(w);
}

static void feed_reads_wait_without_limit(void **state)
{
	void *items[2] = {ft_tok(1), ft_tok(2)};
	fo_iter *src;
	fo_feeder *f;
	fo_cursor *c;
	fo_feed_opts o;
	void *x;

	(void)state;
	assert_int_equal(fo_iter_from_array(&src, items, 2), FO_OK);
	fo_feed_opts_init(&o);
	o.mode = FO_FEED_ON_DEMAND;
	assert_int_equal(fo_feed_create(&f, &c, src, &o), FO_OK);
	assert_int_equal(fo_feed_timed_next(f, c, &x, -1), FO_OK);
	assert_int_equal(ft_seq(x), 1);
	assert_int_equal(fo_feed_timed_next(f, c, &x, 0), FO_OK);
	assert_int_equal(fo_feed_timed_next(f, c, &x, -1), FO_END);
	fo_feed_destroy(f);
	fo_cursor_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cursor_and_iter_reads_wait_without_limit),
	    cmocka_unit_test(timed_push_and_wait_room_wait_without_limit),
	    cmocka_unit_test(futures_and_sets_wait_without_limit),
	    cmocka_unit_test(feed_reads_wait_without_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

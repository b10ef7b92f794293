/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_gate.c - fanout/gate.h: credits, no read-ahead, close semantics, every return code,
 * and the SEMANTICS.md §8 "gated release" row (named after its edge cases).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ft_flow.h"

typedef struct rig {
	ft_valve v;
	ft_counter cnt;
	fo_gate *g;
	fo_iter *it;
} rig;

static void rig_up(rig *r, size_t n)
{
	ft_valve_init(&r->v, n, 0);
	ft_valve_open(&r->v, SIZE_MAX);
	ft_counter_init(&r->cnt, 0);
	assert_int_equal(fo_gate_create(&r->g, ft_valve_iter(&r->v, &r->cnt)), FO_OK);
	r->it = fo_gate_iter(r->g);
	assert_non_null(r->it);
}

static void rig_down(rig *r)
{
	fo_iter_close(r->it);
	fo_gate_destroy(r->g);
	assert_int_equal(atomic_load(&r->v.closes), 1);
	ft_valve_fini(&r->v);
}

static size_t take(rig *r)
{
	void *x;
	assert_int_equal(fo_iter_next(r->it, &x), FO_OK);
	size_t s = ((ft_item *)x)->seq;
	fo_iter_release(r->it, x);
	return s;
}

static void test_gate_release_n_lets_exactly_n_through(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	void *x;
	assert_int_equal(fo_iter_try_next(r.it, &x), FO_EMPTY); /* no credit */
	assert_int_equal(fo_iter_timed_next(r.it, &x, FT_MS(2)), FO_TIMEDOUT);
	assert_int_equal(fo_gate_release(r.g, 3), FO_OK);
	assert_int_equal(fo_gate_credits(r.g), 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(take(&r), i);
	assert_int_equal(fo_gate_credits(r.g), 0);
	assert_int_equal(fo_iter_try_next(r.it, &x), FO_EMPTY);
	assert_int_equal(ft_valve_pulls(&r.v), 3);
	rig_down(&r);
	assert_int_equal(ft_freed(&r.cnt), 3);
}

static void test_gate_no_read_ahead_item_lost_on_close(void **state)
{
	(void)state;
	/* aiter's gate pulls one item before it has a token and drops it on stop. */
	rig r;
	rig_up(&r, 100);
	assert_int_equal(fo_gate_release(r.g, 2), FO_OK);
	take(&r);
	take(&r);
	void *x;
	assert_int_equal(fo_iter_timed_next(r.it, &x, FT_MS(5)), FO_TIMEDOUT);
	assert_int_equal(ft_valve_pulls(&r.v), 2); /* not 3 */
	assert_int_equal(atomic_load(&r.v.calls), 2);
	assert_int_equal(fo_gate_close(r.g), FO_OK);
	assert_int_equal(fo_iter_next(r.it, &x), FO_END);
	assert_int_equal(ft_valve_pulls(&r.v), 2); /* nothing pulled and dropped */
	rig_down(&r);
	assert_int_equal(ft_freed(&r.cnt), 2);
}

static void test_gate_close_lets_released_items_flow_then_end(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	assert_int_equal(fo_gate_release(r.g, 4), FO_OK);
	assert_int_equal(fo_gate_close(r.g), FO_OK);
	assert_int_equal(fo_gate_close(r.g), FO_OK); /* idempotent */
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(take(&r), i);
	void *x;
	assert_int_equal(fo_iter_next(r.it, &x), FO_END);
	assert_int_equal(fo_iter_try_next(r.it, &x), FO_END);
	rig_down(&r);
}

static void test_gate_push_after_stop_refused_consistently(void **state)
{
	(void)state;
	/* aiter: ignored if the tokens were drained, ValueError if not.  Here: FO_ECLOSED always.
	 */
	rig r;
	rig_up(&r, 100);
	assert_int_equal(fo_gate_release(r.g, 1), FO_OK);
	assert_int_equal(fo_gate_close(r.g), FO_OK);
	assert_int_equal(fo_gate_release(r.g, 1), FO_ECLOSED); /* a credit still unused */
	take(&r);
	assert_int_equal(fo_gate_release(r.g, 1), FO_ECLOSED); /* credits drained */
	assert_int_equal(fo_gate_release(r.g, 5), FO_ECLOSED);
	assert_int_equal(fo_gate_credits(r.g), 0);
	rig_down(&r);
}

static void test_gate_release_nonpositive_is_einval(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	assert_int_equal(fo_gate_release(r.g, 0), FO_EINVAL);
	assert_int_equal(fo_gate_release(r.g, -3), FO_EINVAL);
	assert_int_equal(fo_gate_release(NULL, 1), FO_EINVAL);
	assert_int_equal(fo_gate_credits(r.g), 0);
	assert_int_equal(fo_gate_release(r.g, INT64_MAX), FO_OK);
	assert_int_equal(fo_gate_release(r.g, INT64_MAX), FO_OK); /* saturates */
	assert_int_equal(fo_gate_credits(r.g), INT64_MAX);
	rig_down(&r);
}

static void test_gate_invalid_arguments(void **state)
{
	(void)state;
	fo_gate *g = NULL;
	fo_iter *src;
	assert_int_equal(fo_iter_from_array(&src, NULL, 0), FO_OK);
	assert_int_equal(fo_gate_create(NULL, src), FO_EINVAL);
	assert_int_equal(fo_gate_create(&g, NULL), FO_EINVAL);
	assert_null(g);
	assert_int_equal(fo_gate_close(NULL), FO_EINVAL);
	assert_int_equal(fo_gate_credits(NULL), 0);
	assert_null(fo_gate_iter(NULL));
	fo_gate_destroy(NULL);
	assert_int_equal(fo_gate_create(&g, src), FO_OK);
	fo_iter *it = fo_gate_iter(g);
	assert_non_null(it);
	assert_null(fo_gate_iter(g)); /* once */
	fo_gate_destroy(g);           /* handle first, iterator later: fine */
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_END); /* destroy closed the gate */
	fo_iter_close(it);
}

static void test_gate_destroy_without_iter_closes_source(void **state)
{
	(void)state;
	ft_valve v;
	ft_counter cnt;
	ft_valve_init(&v, 3, 0);
	ft_counter_init(&cnt, 0);
	fo_gate *g;
	assert_int_equal(fo_gate_create(&g, ft_valve_iter(&v, &cnt)), FO_OK);
	fo_gate_destroy(g);
	assert_int_equal(atomic_load(&v.closes), 1);
	ft_valve_fini(&v);
}

static void test_gate_release_after_iter_closed_is_eclosed(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 3);
	fo_iter_close(r.it);
	r.it = NULL;
	assert_int_equal(fo_gate_release(r.g, 1), FO_ECLOSED);
	rig_down(&r);
}

static void test_gate_source_ends_first_credits_ignored(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 2);
	assert_int_equal(fo_gate_release(r.g, 10), FO_OK);
	take(&r);
	take(&r);
	void *x;
	assert_int_equal(fo_iter_next(r.it, &x), FO_END);
	rig_down(&r);
}

static void test_gate_source_error_passes_through(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	r.v.fail_at = 1;
	r.v.fail_code = 71;
	assert_int_equal(fo_gate_release(r.g, 5), FO_OK);
	take(&r);
	void *x;
	assert_int_equal(fo_iter_next(r.it, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(r.it)->code, 71);
	rig_down(&r);
}

static void test_gate_empty_source_keeps_the_credit(void **state)
{
	(void)state;
	rig r;
	ft_valve_init(&r.v, 10, 0); /* closed valve: the source has nothing yet */
	ft_counter_init(&r.cnt, 0);
	assert_int_equal(fo_gate_create(&r.g, ft_valve_iter(&r.v, &r.cnt)), FO_OK);
	r.it = fo_gate_iter(r.g);
	assert_int_equal(fo_gate_release(r.g, 1), FO_OK);
	void *x;
	assert_int_equal(fo_iter_try_next(r.it, &x), FO_EMPTY);
	assert_int_equal(fo_gate_credits(r.g), 1);
	assert_int_equal(fo_iter_timed_next(r.it, &x, FT_MS(3)), FO_TIMEDOUT);
	assert_int_equal(fo_gate_credits(r.g), 1);
	ft_valve_open(&r.v, 1);
	assert_int_equal(take(&r), 0);
	assert_int_equal(fo_gate_credits(r.g), 0);
	rig_down(&r);
}

/* A reader blocked for a credit is woken by a release (or a close) from another thread. */
typedef struct waiter {
	fo_iter *it;
	int rc;
	size_t got;
} waiter;

static void *wait_main(void *arg)
{
	waiter *w = arg;
	void *x;
	while ((w->rc = fo_iter_next(w->it, &x)) == FO_OK) {
		fo_iter_release(w->it, x);
		w->got++;
	}
	return NULL;
}

static void test_gate_close_with_zero_tokens_ends_a_waiting_consumer(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	waiter w = {r.it, 0, 0};
	pthread_t th;
	pthread_create(&th, NULL, wait_main, &w);
	ft_sleep_ms(5);
	assert_int_equal(fo_gate_release(r.g, 2), FO_OK);
	FT_WAIT_UNTIL(ft_valve_pulls(&r.v) == 2, 2000);
	ft_sleep_ms(5);
	assert_int_equal(fo_gate_close(r.g), FO_OK);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, FO_END);
	assert_int_equal(w.got, 2);
	rig_down(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gate_release_n_lets_exactly_n_through),
	    cmocka_unit_test(test_gate_no_read_ahead_item_lost_on_close),
	    cmocka_unit_test(test_gate_close_lets_released_items_flow_then_end),
	    cmocka_unit_test(test_gate_push_after_stop_refused_consistently),
	    cmocka_unit_test(test_gate_release_nonpositive_is_einval),
	    cmocka_unit_test(test_gate_invalid_arguments),
	    cmocka_unit_test(test_gate_destroy_without_iter_closes_source),
	    cmocka_unit_test(test_gate_release_after_iter_closed_is_eclosed),
	    cmocka_unit_test(test_gate_source_ends_first_credits_ignored),
	    cmocka_unit_test(test_gate_source_error_passes_through),
	    cmocka_unit_test(test_gate_empty_source_keeps_the_credit),
	    cmocka_unit_test(test_gate_close_with_zero_tokens_ends_a_waiting_consumer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

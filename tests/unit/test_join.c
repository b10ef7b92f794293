/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_join.c - fanout/join.h: dynamic merge, seal, per-source order, cursor sources without
 * threads, fail-fast (helpers stopped and joined, sources closed) and continue policies,
 * join_iters, every return code; SEMANTICS.md §8 "join (dynamic merge)" edge cases by name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ft_flow.h"

static ft_counter cnt;

static fo_join_opts jopts(fo_join_policy p)
{
	fo_join_opts o;
	fo_join_opts_init(&o);
	o.on_error = p;
	o.item_free = ft_valve_item_free;
	o.item_free_ctx = &cnt;
	return o;
}

/* Read everything; per-tag order checked; returns the final code. */
static int drain(fo_iter *it, size_t *per_tag, size_t ntags, size_t *errs)
{
	void *x;
	int rc;
	while ((rc = fo_iter_next(it, &x)) == FO_OK) {
		if (fo_iter_is_error(it)) {
			(*errs)++;
			fo_error_item_free(x);
			continue;
		}
		ft_item *t = x;
		assert_true(t->producer < ntags);
		assert_int_equal(t->seq, per_tag[t->producer]); /* per-source FIFO */
		per_tag[t->producer]++;
		fo_iter_release(it, x);
	}
	return rc;
}

static void test_join_zero_sources_plus_seal_ends_at_once(void **state)
{
	(void)state;
	fo_join *j;
	assert_int_equal(fo_join_create(&j, NULL), FO_OK);
	fo_iter *it = fo_join_iter(j);
	void *x;
	assert_int_equal(fo_iter_try_next(it, &x), FO_EMPTY);
	assert_int_equal(fo_iter_timed_next(it, &x, FT_MS(2)), FO_TIMEDOUT);
	assert_int_equal(fo_join_seal(j), FO_OK);
	assert_int_equal(fo_join_seal(j), FO_OK);
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	fo_iter *src;
	assert_int_equal(fo_iter_from_array(&src, NULL, 0), FO_OK);
	assert_int_equal(fo_join_add(j, src), FO_ECLOSED); /* sealed; caller keeps src */
	fo_iter_close(src);
	fo_join_destroy(j);
	fo_iter_close(it);
}

static void test_join_merges_thread_sources_keeping_per_source_order(void **state)
{
	(void)state;
	ft_counter_init(&cnt, 0);
	fo_join_opts o = jopts(FO_JOIN_FAIL_FAST);
	o.buffer = 8; /* helpers wait for room */
	fo_join *j;
	assert_int_equal(fo_join_create(&j, &o), FO_OK);
	ft_valve v[4];
	for (int i = 0; i < 4; i++) {
		ft_valve_init(&v[i], 500, (uint64_t)i);
		ft_valve_open(&v[i], SIZE_MAX);
		assert_int_equal(fo_join_add(j, ft_valve_iter(&v[i], &cnt)), FO_OK);
	}
	assert_int_equal(fo_join_threads(j), 4);
	fo_join_seal(j);
	fo_iter *it = fo_join_iter(j);
	size_t per[4] = {0}, errs = 0;
	assert_int_equal(drain(it, per, 4, &errs), FO_END);
	for (int i = 0; i < 4; i++)
		assert_int_equal(per[i], 500);
	fo_iter_close(it);
	fo_join_destroy(j);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(atomic_load(&v[i].closes), 1);
		ft_valve_fini(&v[i]);
	}
	assert_int_equal(ft_freed(&cnt), 2000);
}

static void *copy_item(const void *item, void *ctx)
{
	(void)ctx;
	const ft_item *t = item;
	ft_item *c = ft_item_new(t->seq);
	c->producer = t->producer;
	return c;
}

typedef struct producer {
	fo_stream *s;
	size_t n;
	uint64_t tag;
} producer;

static void *produce(void *arg)
{
	producer *p = arg;
	for (size_t i = 0; i < p->n; i++) {
		ft_item *t = ft_item_new(i);
		t->producer = p->tag;
		fo_stream_push(p->s, t);
		if (i % 64 == 0)
			ft_sleep_ms(1);
	}
	fo_stream_close(p->s);
	return NULL;
}

static void test_join_cursor_sources_need_no_thread(void **state)
{
	(void)state;
	ft_counter_init(&cnt, 0);
	ft_counter scnt;
	ft_counter_init(&scnt, 0);
	fo_join_opts o = jopts(FO_JOIN_FAIL_FAST);
	fo_join *j;
	assert_int_equal(fo_join_create(&j, &o), FO_OK);
	fo_stream *s[3];
	producer p[3];
	pthread_t t[3];
	for (int i = 0; i < 3; i++) {
		fo_stream_opts so = ft_heap_opts(&scnt);
		assert_int_equal(fo_stream_create(&s[i], &so), FO_OK);
		fo_cursor *c;
		assert_int_equal(fo_stream_cursor(s[i], &c, FO_ACTIVE), FO_OK);
		fo_iter *ci;
		assert_int_equal(fo_iter_from_cursor(&ci, c, NULL, NULL, NULL), FO_OK);
		assert_int_equal(fo_join_add(j, ci), FO_EINVAL); /* borrowing */
		fo_iter_close(ci);
		assert_int_equal(fo_stream_cursor(s[i], &c, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_iter_from_cursor(&ci, c, copy_item, ft_item_free, NULL), FO_OK);
		assert_int_equal(fo_join_add(j, ci), FO_EINVAL); /* destructor ctx differs */
		fo_iter_close(ci);
		assert_int_equal(fo_stream_cursor(s[i], &c, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_iter_from_cursor(&ci, c, copy_item, ft_valve_item_free, &cnt),
		                 FO_OK);
		assert_int_equal(fo_join_add(j, ci), FO_OK);
		p[i] = (producer){s[i], 2000, (uint64_t)i};
	}
	assert_int_equal(fo_join_threads(j), 0);
	fo_iter *it = fo_join_iter(j);
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, produce, &p[i]); /* the reader sleeps; pushes wake it */
	/* outer closes (seal) with live sources: later items still come */
	fo_join_seal(j);
	size_t per[3] = {0}, errs = 0;
	assert_int_equal(drain(it, per, 3, &errs), FO_END);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(per[i], 2000);
		fo_stream_destroy(s[i]);
	}
	fo_iter_close(it);
	fo_join_destroy(j);
	assert_int_equal(ft_freed(&cnt), 6000);
	assert_int_equal(ft_freed(&scnt), 6000);
}

static void test_join_source_added_just_before_the_outer_closes(void **state)
{
	(void)state;
	ft_counter_init(&cnt, 0);
	fo_join_opts o = jopts(FO_JOIN_FAIL_FAST);
	fo_join *j;
	assert_int_equal(fo_join_create(&j, &o), FO_OK);
	fo_iter *it = fo_join_iter(j);
	ft_valve v;
	ft_valve_init(&v, 10, 0);
	void *x;
	assert_int_equal(fo_iter_try_next(it, &x), FO_EMPTY);
	assert_int_equal(fo_join_add(j, ft_valve_iter(&v, &cnt)), FO_OK);
	assert_int_equal(fo_join_seal(j), FO_OK);
	assert_int_equal(fo_iter_timed_next(it, &x, FT_MS(10)), FO_TIMEDOUT); /* still live */
	ft_valve_open(&v, SIZE_MAX);
	size_t per[1] = {0}, errs = 0;
	assert_int_equal(drain(it, per, 1, &errs), FO_END);
	assert_int_equal(per[0], 10);
	fo_join_destroy(j);
	fo_iter_close(it);
	ft_valve_fini(&v);
}

static void test_join_source_error_fails_fast_and_other_pumps_are_joined(void **state)
{
	(void)state;
	ft_counter_init(&cnt, 0);
	fo_join_opts o = jopts(FO_JOIN_FAIL_FAST);
	o.buffer = 4;
	fo_join *j;
	assert_int_equal(fo_join_create(&j, &o), FO_OK);
	ft_valve v[3];
	for (int i = 0; i < 3; i++) {
		ft_valve_init(&v[i], 1000000, (uint64_t)i);
		ft_valve_open(&v[i], SIZE_MAX); /* endless-ish and fast: helpers wait for room */
	}
	v[1].fail_at = 5;
	v[1].fail_code = 808;
	for (int i = 0; i < 3; i++)
		assert_int_equal(fo_join_add(j, ft_valve_iter(&v[i], &cnt)), FO_OK);
	fo_join_seal(j);
	fo_iter *it = fo_join_iter(j);
	size_t per[3] = {0}, errs = 0;
	assert_int_equal(drain(it, per, 3, &errs), FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, 808);
	assert_int_equal(per[1], 5); /* everything source 1 produced came first */
	fo_iter_close(it);           /* joins every helper, closes every source */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(atomic_load(&v[i].closes), 1);
		assert_true(ft_valve_pulls(&v[i]) < 1000000); /* stopped, not drained */
	}
	fo_join_destroy(j);
	size_t pulled = 0;
	for (int i = 0; i < 3; i++) {
		pulled += ft_valve_pulls(&v[i]);
		ft_valve_fini(&v[i]);
	}
	assert_int_equal(ft_freed(&cnt), pulled); /* every pulled item freed exactly once */
}

static void test_join_continue_mode_emits_error_items(void **state)
{
	(void)state;
	ft_counter_init(&cnt, 0);
	fo_join_opts o = jopts(FO_JOIN_CONTINUE);
	fo_join *j;
	assert_int_equal(fo_join_create(&j, &o), FO_OK);
	ft_valve v[3];
	for (int i = 0; i < 3; i++) {
		ft_valve_init(&v[i], 100, (uint64_t)i);
		ft_valve_open(&v[i], SIZE_MAX);
	}
	v[2].fail_at = 7;
	v[2].fail_code = 17;
	for (int i = 0; i < 3; i++)
		assert_int_equal(fo_join_add(j, ft_valve_iter(&v[i], &cnt)), FO_OK);
	fo_join_destroy(j); /* seals; the iterator was not taken: closes everything */
	for (int i = 0; i < 3; i++)
		ft_valve_fini(&v[i]);

	ft_counter_init(&cnt, 0);
	assert_int_equal(fo_join_create(&j, &o), FO_OK);
	for (int i = 0; i < 3; i++) {
		ft_valve_init(&v[i], 100, (uint64_t)i);
		ft_valve_open(&v[i], SIZE_MAX);
	}
	v[2].fail_at = 7;
	v[2].fail_code = 17;
	for (int i = 0; i < 3; i++)
		assert_int_equal(fo_join_add(j, ft_valve_iter(&v[i], &cnt)), FO_OK);
	fo_join_seal(j);
	fo_iter *it = fo_join_iter(j);
	assert_true(fo_iter_emits_errors(it));
	size_t per[3] = {0}, errs = 0;
	assert_int_equal(drain(it, per, 3, &errs), FO_END);
	assert_int_equal(per[0], 100);
	assert_int_equal(per[1], 100);
	assert_int_equal(per[2], 7);
	assert_int_equal(errs, 1);
	fo_iter_close(it);
	fo_join_destroy(j);
	for (int i = 0; i < 3; i++)
		ft_valve_fini(&v[i]);
	assert_int_equal(ft_freed(&cnt), 207);
}

static int keep_all(void *ctx, const void *in)
{
	(void)ctx;
	(void)in;
	return 1;
}

static void test_join_invalid_arguments(void **state)
{
	(void)state;
	fo_join *j = NULL;
	fo_join_opts o;
	fo_join_opts_init(&o);
	o.on_error = (fo_join_policy)9;
	assert_int_equal(fo_join_create(&j, &o), FO_EINVAL);
	assert_int_equal(fo_join_create(NULL, NULL), FO_EINVAL);
	assert_null(j);
	assert_int_equal(fo_join_create(&j, NULL), FO_OK);
	assert_int_equal(fo_join_add(j, NULL), FO_EINVAL);
	assert_int_equal(fo_join_add(NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_join_seal(NULL), FO_EINVAL);
	assert_int_equal(fo_join_threads(NULL), 0);
	assert_null(fo_join_iter(NULL));
	/* an error-emitting source needs continue mode */
	void *items[1] = {ft_tok(0)};
	fo_iter *src, *m;
	assert_int_equal(fo_iter_from_array(&src, items, 1), FO_OK);
	fo_adapt_opts ao;
	fo_adapt_opts_init(&ao);
	ao.on_error = FO_ERR_EMIT;
	assert_int_equal(fo_filter(&m, src, keep_all, NULL, &ao), FO_OK);
	assert_int_equal(fo_join_add(j, m), FO_EINVAL);
	fo_iter *it = fo_join_iter(j);
	assert_null(fo_join_iter(j));
	fo_iter_close(it);
	assert_int_equal(fo_join_add(j, m), FO_EINVAL);
	fo_iter_close(m);
	assert_int_equal(fo_iter_from_array(&src, items, 1), FO_OK);
	assert_int_equal(fo_join_add(j, src), FO_ECLOSED); /* the output is closed */
	fo_iter_close(src);
	fo_join_destroy(j);
	fo_join_destroy(NULL);
	fo_join_opts_init(NULL);
}

/* join_iters: a stream of iterators, closed by the join when done (fo_iter_close_item). */
static void test_join_iters_merges_an_iterator_of_iterators(void **state)
{
	(void)state;
	ft_counter_init(&cnt, 0);
	fo_stream_opts so;
	fo_stream_opts_init(&so);
	so.item_free = fo_iter_close_item;
	fo_stream *outer_s;
	fo_cursor *oc;
	assert_int_equal(fo_stream_create(&outer_s, &so), FO_OK);
	assert_int_equal(fo_stream_cursor(outer_s, &oc, FO_ACTIVE), FO_OK);
	/* The outer iterator owns its elements: copy = identity (ownership moves), close_item. */
	fo_iter *outer;
	assert_int_equal(fo_iter_from_cursor(&outer, oc, NULL, NULL, NULL), FO_OK);
	fo_iter *bad;
	assert_int_equal(fo_join_iters(&bad, outer, NULL), FO_EINVAL); /* borrowing outer */
	fo_iter_close(outer);
	fo_stream_destroy(outer_s);

	ft_valve v[5];
	void *elems[5];
	for (int i = 0; i < 5; i++) {
		ft_valve_init(&v[i], 50, (uint64_t)i);
		ft_valve_open(&v[i], SIZE_MAX);
		elems[i] = ft_valve_iter(&v[i], &cnt);
	}
	assert_int_equal(fo_iter_from_array(&outer, elems, 5), FO_OK); /* caller keeps elements */
	fo_join_opts o = jopts(FO_JOIN_FAIL_FAST);
	fo_iter *it;
	assert_int_equal(fo_join_iters(&it, outer, &o), FO_OK);
	size_t per[5] = {0}, errs = 0;
	assert_int_equal(drain(it, per, 5, &errs), FO_END);
	for (int i = 0; i < 5; i++)
		assert_int_equal(per[i], 50);
	fo_iter_close(it);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(atomic_load(&v[i].closes), 0); /* NULL destructor: ours to close */
		fo_iter_close(elems[i]);
		ft_valve_fini(&v[i]);
	}
	assert_int_equal(ft_freed(&cnt), 250);
}

/* Issue 12 bug 4: a source's FO_ESYS + errno (and its fo_fail() message) reaches the reader (fail
 * fast) or the error item (continue) with its sys_errno. */
static void test_join_callback_errno_dropped(void **state)
{
	(void)state;
	for (int pol = 0; pol < 2; pol++) {
		ft_counter_init(&cnt, 0);
		fo_join_opts o = jopts(pol ? FO_JOIN_CONTINUE : FO_JOIN_FAIL_FAST);
		fo_join *j;
		assert_int_equal(fo_join_create(&j, &o), FO_OK);
		ft_valve v;
		ft_valve_init(&v, 10, 0);
		ft_valve_open(&v, SIZE_MAX);
		v.fail_at = 3;
		v.fail_code = FO_ESYS;
		v.fail_errno = EIO;
		v.fail_msg = "valve: EIO";
		assert_int_equal(fo_join_add(j, ft_valve_iter(&v, &cnt)), FO_OK);
		fo_join_seal(j);
		fo_iter *it = fo_join_iter(j);
		void *x;
		for (int i = 0; i < 3; i++) {
			assert_int_equal(fo_iter_next(it, &x), FO_OK);
			fo_iter_release(it, x);
		}
		if (pol) {
			assert_int_equal(fo_iter_next(it, &x), FO_OK);
			assert_true(fo_iter_is_error(it));
			assert_int_equal(((fo_error_item *)x)->err.code, FO_ESYS);
			assert_int_equal(((fo_error_item *)x)->err.sys_errno, EIO);
			assert_string_equal(((fo_error_item *)x)->err.message, "valve: EIO");
			fo_error_item_free(x);
			assert_int_equal(fo_iter_next(it, &x), FO_END);
		} else {
			assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
			assert_int_equal(fo_iter_error(it)->code, FO_ESYS);
			assert_int_equal(fo_iter_error(it)->sys_errno, EIO);
			assert_string_equal(fo_iter_error(it)->message, "valve: EIO");
		}
		fo_iter_close(it);
		fo_join_destroy(j);
		assert_int_equal(ft_freed(&cnt), 3);
		ft_valve_fini(&v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_join_zero_sources_plus_seal_ends_at_once),
	    cmocka_unit_test(test_join_merges_thread_sources_keeping_per_source_order),
	    cmocka_unit_test(test_join_cursor_sources_need_no_thread),
	    cmocka_unit_test(test_join_source_added_just_before_the_outer_closes),
	    cmocka_unit_test(test_join_source_error_fails_fast_and_other_pumps_are_joined),
	    cmocka_unit_test(test_join_continue_mode_emits_error_items),
	    cmocka_unit_test(test_join_invalid_arguments),
	    cmocka_unit_test(test_join_iters_merges_an_iterator_of_iterators),
	    cmocka_unit_test(test_join_callback_errno_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

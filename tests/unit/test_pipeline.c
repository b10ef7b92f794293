/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_pipeline.c - fanout/pipeline.h: lazy start, exact prefetch, order, root errors through
 * every stage, early close, fd/arm, progress, every return code; and the SEMANTICS.md §8 rows
 * "buffered pipeline" (asyncio-buffered-pipeline) and "preload" (iterlib, aiter), named after
 * their edge cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <poll.h>

#include "ft_flow.h"

#define MAXSTAGES 6

typedef struct rig {
	ft_valve v;
	ft_counter cnt;
	fo_pipeline *p;
	fo_iter *out;
	long map_fail_at; /* a map between stage map_after and the next fails here */
	size_t map_after;
} rig;

static int ident(void *ctx, void *in, void **out)
{
	rig *r = ctx;
	if ((long)((ft_item *)in)->seq == r->map_fail_at)
		return FO_ESYS;
	*out = in;
	return FO_OK;
}

static void rig_up(rig *r, size_t n)
{
	ft_valve_init(&r->v, n, 0);
	ft_valve_open(&r->v, SIZE_MAX);
	ft_counter_init(&r->cnt, 0);
	r->map_fail_at = -1;
	r->map_after = SIZE_MAX;
	assert_int_equal(fo_pipeline_create(&r->p, NULL), FO_OK);
}

/* @stages buffered stages of size @n over the valve (a map after stage map_after). */
static void rig_chain(rig *r, size_t stages, size_t n)
{
	fo_iter *it = ft_valve_iter(&r->v, &r->cnt);
	for (size_t s = 0; s < stages; s++) {
		fo_iter *next;
		assert_int_equal(fo_pipeline_buffer(r->p, &next, it, n), FO_OK);
		it = next;
		if (s == r->map_after) {
			fo_adapt_opts ao;
			fo_adapt_opts_init(&ao);
			ao.item_free = ft_item_free;
			ao.item_free_ctx = &r->cnt;
			assert_int_equal(fo_map(&next, it, ident, r, &ao), FO_OK);
			it = next;
		}
	}
	r->out = it;
}

static void rig_down(rig *r)
{
	fo_iter_close(r->out);
	fo_pipeline_destroy(r->p);
	assert_int_equal(atomic_load(&r->v.closes), 1);
	assert_int_equal(ft_freed(&r->cnt), ft_valve_pulls(&r->v)); /* each item freed once */
	ft_valve_fini(&r->v);
	ft_counter_fini(&r->cnt);
}

static void read_in_order(fo_iter *it, size_t from, size_t to)
{
	void *x;
	for (size_t i = from; i < to; i++) {
		assert_int_equal(fo_iter_next(it, &x), FO_OK);
		assert_int_equal(((ft_item *)x)->seq, i);
		fo_iter_release(it, x);
	}
}

static void test_pipeline_einval(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 3);
	fo_iter *src = ft_valve_iter(&r.v, &r.cnt), *out = NULL;
	assert_int_equal(fo_pipeline_create(NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_pipeline_buffer(NULL, &out, src, 1), FO_EINVAL);
	assert_int_equal(fo_pipeline_buffer(r.p, NULL, src, 1), FO_EINVAL);
	assert_int_equal(fo_pipeline_buffer(r.p, &out, NULL, 1), FO_EINVAL);
	assert_int_equal(fo_pipeline_buffer(r.p, &out, src, 0), FO_EINVAL);
	fo_stream *s;
	fo_cursor *c;
	fo_iter *bor;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_iter_from_cursor(&bor, c, NULL, NULL, NULL), FO_OK);
	assert_int_equal(fo_pipeline_buffer(r.p, &out, bor, 1), FO_EINVAL); /* borrows */
	fo_iter_close(bor);
	fo_stream_destroy(s);
	fo_progress pr;
	assert_int_equal(fo_pipeline_progress_get(NULL, 0, &pr), FO_EINVAL);
	assert_int_equal(fo_pipeline_progress_get(r.p, 0, &pr), FO_EINVAL); /* no stage 0 */
	assert_int_equal(fo_pipeline_progress_get(r.p, 0, NULL), FO_EINVAL);
	fo_pipeline_opts_init(NULL);
	fo_pipeline_destroy(NULL);
	r.out = src;
	rig_down(&r);
}

/* buffered-pipeline: lazy start at the first pull, and exactly n prefetched (not n + 1). */
static void test_buffered_pipeline_lazy_start_and_exact_buffer_size_prefetch(void **state)
{
	(void)state;
	for (size_t n = 1; n <= 3; n++) {
		rig r;
		rig_up(&r, SIZE_MAX);
		rig_chain(&r, 1, n);
		ft_sleep_ms(20);
		assert_int_equal(ft_valve_pulls(&r.v), 0); /* nothing before the first read */
		read_in_order(r.out, 0, 1);
		FT_WAIT_UNTIL(ft_valve_pulls(&r.v) >= 1 + n, 1000);
		ft_sleep_ms(30);
		assert_int_equal(ft_valve_pulls(&r.v), 1 + n); /* consumed + exactly n */
		fo_progress pr;
		assert_int_equal(fo_pipeline_progress_get(r.p, 0, &pr), FO_OK);
		assert_int_equal(pr.in_flight, n);
		rig_down(&r);
	}
}

static void test_buffered_pipeline_order_kept_end_after_every_thread_joined(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 300);
	rig_chain(&r, 3, 2);
	read_in_order(r.out, 0, 300);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	assert_int_equal(atomic_load(&r.v.closes), 1); /* joined before END was returned */
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
}

/* buffered-pipeline: with 2+ buffered stages downstream the caller got CancelledError. */
static void test_buffered_pipeline_error_in_stage_1_of_4_caller_gets_root_cause(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	r.v.fail_at = 5;
	r.v.fail_code = FO_ENOMEM;
	rig_chain(&r, 4, 2);
	read_in_order(r.out, 0, 5); /* the items before it ([0,1] in the seed, not [0..4]) */
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	const fo_error *e = fo_iter_error(r.out);
	assert_int_equal(e->code, FO_ENOMEM);
	assert_string_equal(e->message, fo_strerror(FO_ENOMEM));
	assert_int_equal(atomic_load(&r.v.closes), 1); /* every stage stopped and joined */
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	rig_down(&r);
}

static void test_buffered_pipeline_error_in_middle_stage_stops_upstream_reaches_reader(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, SIZE_MAX); /* endless: upstream must be stopped, not drained */
	r.map_fail_at = 7;
	r.map_after = 1; /* stage 0 -> stage 1 -> map -> stage 2 -> stage 3 */
	rig_chain(&r, 4, 3);
	read_in_order(r.out, 0, 7);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(r.out)->code, FO_ESYS);
	assert_string_equal(fo_iter_error(r.out)->message, "map callback failed");
	assert_int_equal(atomic_load(&r.v.closes), 1);
	size_t pulls = ft_valve_pulls(&r.v);
	ft_sleep_ms(20);
	assert_int_equal(ft_valve_pulls(&r.v), pulls); /* nothing runs any more */
	rig_down(&r);
}

static void test_buffered_pipeline_early_consumer_close_joins_every_thread(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, SIZE_MAX);
	rig_chain(&r, 4, 2);
	read_in_order(r.out, 0, 3);
	FT_WAIT_UNTIL(ft_valve_pulls(&r.v) >= 3 + 8, 1000); /* every buffer full */
	rig_down(&r); /* joins all four threads, frees every buffered item */
}

static void test_buffered_pipeline_close_before_first_read_runs_nothing(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	rig_chain(&r, 3, 2);
	rig_down(&r);
}

/* preload (iterlib, aiter): a source slower or faster than the consumer. */
static void test_preload_source_slower_or_faster_than_consumer(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 20);
	r.v.delay_ns = FT_MS(2); /* slower */
	rig_chain(&r, 1, 4);
	read_in_order(r.out, 0, 20);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);

	rig_up(&r, 20); /* faster: the consumer sleeps */
	rig_chain(&r, 1, 4);
	for (size_t i = 0; i < 20; i++) {
		ft_sleep_ms(1);
		read_in_order(r.out, i, i + 1);
		assert_true(ft_valve_pulls(&r.v) <= i + 1 + 4);
	}
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
}

static void test_preload_source_error_after_k_items_then_error_sticky(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 50);
	r.v.fail_at = 9;
	r.v.fail_code = FO_ESYS;
	rig_chain(&r, 1, 4);
	read_in_order(r.out, 0, 9);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(r.out)->code, FO_ESYS);
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED); /* once is not enough: sticky */
	rig_down(&r);
}

static void test_pipeline_try_timed_and_fd_arm(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 5);
	ft_valve_init(&r.v, 5, 0); /* closed valve */
	rig_chain(&r, 1, 2);
	int fd = fo_iter_fd(r.out);
	assert_true(fd >= 0);
	assert_int_equal(fo_iter_arm(r.out), 0); /* starts the thread, nothing yet */
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 20), 0);
	void *x;
	assert_int_equal(fo_iter_try_next(r.out, &x), FO_EMPTY);
	assert_int_equal(fo_iter_timed_next(r.out, &x, FT_MS(10)), FO_TIMEDOUT);
	assert_int_equal(fo_iter_arm(r.out), 0);
	ft_valve_open(&r.v, SIZE_MAX);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(fo_iter_arm(r.out), 1);
	read_in_order(r.out, 0, 5);
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	assert_int_equal(fo_iter_arm(r.out), 1);
	rig_down(&r);
}

static int emit_fail2(void *ctx, void *in, void **out)
{
	(void)ctx;
	if (((ft_item *)in)->seq == 2)
		return FO_ESYS;
	*out = in;
	return FO_OK;
}

static void test_pipeline_error_items_pass_through(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 5);
	fo_adapt_opts ao;
	fo_adapt_opts_init(&ao);
	ao.on_error = FO_ERR_EMIT;
	ao.item_free = ft_item_free;
	ao.item_free_ctx = &r.cnt;
	fo_iter *m;
	assert_int_equal(fo_map(&m, ft_valve_iter(&r.v, &r.cnt), emit_fail2, NULL, &ao), FO_OK);
	assert_int_equal(fo_pipeline_buffer(r.p, &r.out, m, 2), FO_OK);
	assert_true(fo_iter_emits_errors(r.out));
	void *x;
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		if (i == 2) {
			assert_true(fo_iter_is_error(r.out));
			fo_error_item_free(x);
		} else {
			assert_false(fo_iter_is_error(r.out));
			fo_iter_release(r.out, x);
		}
	}
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
}

static atomic_size_t hook_calls, hook_out[MAXSTAGES];
static void on_stage(void *ctx, size_t stage, const fo_progress *p)
{
	(void)ctx;
	atomic_fetch_add(&hook_calls, 1);
	/* The hook runs on the stage's thread and on the reader's, so calls may
	 * arrive out of order: keep the largest count seen. */
	if (stage < MAXSTAGES) {
		size_t cur = atomic_load(&hook_out[stage]);
		while (p->out > cur &&
		       !atomic_compare_exchange_weak(&hook_out[stage], &cur, p->out))
			;
	}
}

static void test_pipeline_progress_hook_per_stage(void **state)
{
	(void)state;
	rig r;
	ft_valve_init(&r.v, 30, 0);
	ft_valve_open(&r.v, SIZE_MAX);
	ft_counter_init(&r.cnt, 0);
	r.map_after = SIZE_MAX;
	fo_pipeline_opts o;
	fo_pipeline_opts_init(&o);
	o.progress = on_stage;
	atomic_store(&hook_calls, 0);
	assert_int_equal(fo_pipeline_create(&r.p, &o), FO_OK);
	rig_chain(&r, 2, 3);
	read_in_order(r.out, 0, 30);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	assert_true(atomic_load(&hook_calls) >= 4 * 30);
	assert_int_equal(atomic_load(&hook_out[0]), 30);
	assert_int_equal(atomic_load(&hook_out[1]), 30);
	fo_progress pr;
	assert_int_equal(fo_pipeline_progress_get(r.p, 1, &pr), FO_OK);
	assert_int_equal(pr.in, 30);
	assert_int_equal(pr.out, 30);
	assert_int_equal(pr.failed, 0);
	rig_down(&r);
}

/* ---- two stages of one pipeline merged (issue 12, bugs 2 and 3) ----------------------------- */

/* Stages sa (over valve a, tag 1) and sb (over valve b, tag 2) of one pipeline, merged by a
 * join (FLAT false) or by a flatten over [sb, sa] (FLAT true). */
typedef struct branches {
	ft_valve a, b;
	ft_counter cnt;
	fo_pipeline *p;
	fo_join *j;
	fo_iter *out;
	unsigned close_ms; /* b's source close sleeps this long */
} branches;

static void slow_close(void *ctx)
{
	ft_valve *v = ctx;
	branches *br = (branches *)((char *)v - offsetof(branches, b));
	ft_sleep_ms(br->close_ms);
	ft_valve_close(v);
}

static int yield_two(void *ctx, void **item, uint64_t deadline)
{
	(void)deadline;
	fo_iter **pair = ctx;
	for (int k = 0; k < 2; k++) {
		if (pair[k]) {
			*item = pair[k];
			pair[k] = NULL;
			return FO_OK;
		}
	}
	return FO_END;
}

static void branches_up(branches *br, size_t na, size_t nb)
{
	ft_valve_init(&br->a, na, 1);
	ft_valve_init(&br->b, nb, 2);
	ft_valve_open(&br->a, SIZE_MAX);
	ft_valve_open(&br->b, SIZE_MAX);
	ft_counter_init(&br->cnt, 0);
	assert_int_equal(fo_pipeline_create(&br->p, NULL), FO_OK);
}

static void branches_merge(branches *br, bool flat, fo_iter **pair)
{
	fo_iter *a = ft_valve_iter(&br->a, &br->cnt), *b, *sa, *sb;
	assert_int_equal(
	    fo_iter_from_fn(&b, ft_valve_next, slow_close, &br->b, ft_valve_item_free, &br->cnt),
	    FO_OK);
	assert_int_equal(fo_pipeline_buffer(br->p, &sa, a, 2), FO_OK); /* stage 0 */
	assert_int_equal(fo_pipeline_buffer(br->p, &sb, b, 2), FO_OK); /* stage 1 */
	br->j = NULL;
	if (flat) {
		pair[0] = sb;
		pair[1] = sa;
		fo_iter *outer;
		assert_int_equal(
		    fo_iter_from_fn(&outer, yield_two, NULL, pair, fo_iter_close_item, NULL),
		    FO_OK);
		fo_adapt_opts ao;
		fo_adapt_opts_init(&ao);
		ao.item_free = ft_valve_item_free;
		ao.item_free_ctx = &br->cnt;
		assert_int_equal(fo_flatten(&br->out, outer, &ao), FO_OK);
	} else {
		fo_join_opts jo;
		fo_join_opts_init(&jo);
		jo.item_free = ft_valve_item_free;
		jo.item_free_ctx = &br->cnt;
		jo.buffer = 4;
		assert_int_equal(fo_join_create(&br->j, &jo), FO_OK);
		assert_int_equal(fo_join_add(br->j, sa), FO_OK);
		assert_int_equal(fo_join_add(br->j, sb), FO_OK);
		assert_int_equal(fo_join_seal(br->j), FO_OK);
		br->out = fo_join_iter(br->j);
	}
	fo_pipeline_destroy(br->p);
}

/* Reads until the end: counts items per tag, returns the end code. */
static int branches_drain(branches *br, size_t *na, size_t *nb)
{
	void *x;
	int rc;
	*na = *nb = 0;
	while ((rc = fo_iter_next(br->out, &x)) == FO_OK) {
		if (((ft_item *)x)->producer == 1)
			(*na)++;
		else
			(*nb)++;
		fo_iter_release(br->out, x);
	}
	return rc;
}

static void branches_down(branches *br)
{
	fo_iter_close(br->out);
	fo_join_destroy(br->j);
	assert_int_equal(atomic_load(&br->a.closes), 1);
	assert_int_equal(atomic_load(&br->b.closes), 1);
	assert_int_equal(ft_freed(&br->cnt), ft_valve_pulls(&br->a) + ft_valve_pulls(&br->b));
	ft_valve_fini(&br->a);
	ft_valve_fini(&br->b);
	ft_counter_fini(&br->cnt);
}

/* Issue 12 bug 2: when stage 1 ended normally, its close halted stage 0 (created before it,
 * but not upstream of it): the reader got 2-3 of stage 0's items, then FO_FAILED. */
static void test_merged_pipeline_stages_lose_items_when_one_ends(void **state)
{
	(void)state;
	for (int flat = 0; flat <= 1; flat++) {
		branches br = {.close_ms = 0};
		fo_iter *pair[2];
		branches_up(&br, 20, 2);
		br.a.delay_ns = FT_MS(1); /* stage 0 still runs when stage 1 ends */
		branches_merge(&br, flat, pair);
		size_t na, nb;
		assert_int_equal(branches_drain(&br, &na, &nb), FO_END);
		assert_int_equal(na, 20);
		assert_int_equal(nb, 2);
		branches_down(&br);
	}
}

/* Issue 12 bug 3: stage 1 failing halted stage 0, whose FO_ECANCELED could reach the join
 * before stage 1's own error (stage 1 closes its source before publishing it: made slow
 * here, so the cancellation always won before the fix). */
static void test_merged_pipeline_stages_root_error_replaced_by_cancellation(void **state)
{
	(void)state;
	for (int run = 0; run < 20; run++) {
		branches br = {.close_ms = run % 2 ? 20 : 0};
		fo_iter *pair[2];
		branches_up(&br, SIZE_MAX, 10);
		br.b.fail_at = 3;
		br.b.fail_code = FO_ENOMEM;
		branches_merge(&br, false, pair);
		size_t na, nb;
		assert_int_equal(branches_drain(&br, &na, &nb), FO_FAILED);
		const fo_error *e = fo_iter_error(br.out);
		assert_int_equal(e->code, FO_ENOMEM); /* never FO_ECANCELED */
		assert_string_equal(e->message, fo_strerror(FO_ENOMEM));
		assert_true(nb <= 3);
		branches_down(&br);
	}
}

/* Issue 12 bug 4: a source's FO_ESYS + errno, and a map's, reach the reader through every
 * stage with their sys_errno. */
static int map_eio(void *ctx, void *in, void **out)
{
	if (((ft_item *)in)->seq == 4) {
		errno = EIO;
		return ctx ? fo_fail(FO_ESYS, "%s", (const char *)ctx) : FO_ESYS;
	}
	*out = in;
	return FO_OK;
}

static void test_pipeline_callback_errno_dropped(void **state)
{
	(void)state;
	for (int run = 0; run < 4; run++) {
		bool in_map = run & 1;
		const char *msg = run & 2 ? "stage work: EIO" : NULL;
		rig r;
		rig_up(&r, 50);
		if (!in_map) {
			r.v.fail_at = 4;
			r.v.fail_code = FO_ESYS;
			r.v.fail_errno = EIO;
			r.v.fail_msg = msg;
			rig_chain(&r, 3, 2);
		} else { /* stage 0 -> map -> stage 1 -> stage 2 */
			fo_iter *s0, *m, *s1;
			assert_int_equal(
			    fo_pipeline_buffer(r.p, &s0, ft_valve_iter(&r.v, &r.cnt), 2), FO_OK);
			fo_adapt_opts ao;
			fo_adapt_opts_init(&ao);
			ao.item_free = ft_item_free;
			ao.item_free_ctx = &r.cnt;
			assert_int_equal(fo_map(&m, s0, map_eio, (void *)msg, &ao), FO_OK);
			assert_int_equal(fo_pipeline_buffer(r.p, &s1, m, 2), FO_OK);
			assert_int_equal(fo_pipeline_buffer(r.p, &r.out, s1, 2), FO_OK);
		}
		read_in_order(r.out, 0, 4);
		void *x;
		assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
		const fo_error *e = fo_iter_error(r.out);
		assert_int_equal(e->code, FO_ESYS);
		assert_int_equal(e->sys_errno, EIO);
		assert_string_equal(e->message, msg      ? msg
		                                : in_map ? "map callback failed"
		                                         : fo_strerror(FO_ESYS));
		rig_down(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pipeline_einval),
	    cmocka_unit_test(test_buffered_pipeline_lazy_start_and_exact_buffer_size_prefetch),
	    cmocka_unit_test(test_buffered_pipeline_order_kept_end_after_every_thread_joined),
	    cmocka_unit_test(test_buffered_pipeline_error_in_stage_1_of_4_caller_gets_root_cause),
	    cmocka_unit_test(
	        test_buffered_pipeline_error_in_middle_stage_stops_upstream_reaches_reader),
	    cmocka_unit_test(test_buffered_pipeline_early_consumer_close_joins_every_thread),
	    cmocka_unit_test(test_buffered_pipeline_close_before_first_read_runs_nothing),
	    cmocka_unit_test(test_preload_source_slower_or_faster_than_consumer),
	    cmocka_unit_test(test_preload_source_error_after_k_items_then_error_sticky),
	    cmocka_unit_test(test_pipeline_try_timed_and_fd_arm),
	    cmocka_unit_test(test_pipeline_error_items_pass_through),
	    cmocka_unit_test(test_pipeline_progress_hook_per_stage),
	    cmocka_unit_test(test_merged_pipeline_stages_lose_items_when_one_ends),
	    cmocka_unit_test(test_merged_pipeline_stages_root_error_replaced_by_cancellation),
	    cmocka_unit_test(test_pipeline_callback_errno_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_stream.c - fanout/stream.h: streams, cursors (active, passive, shared), every public
 * function and every return code the header documents, plus the failing-allocator loop.
 *
 * Items are tokens (ft_tok(seq)) unless a test needs real memory (ft_item_new), so that ASan
 * catches an item freed too early or twice.  Worker threads never call assert_*: they record
 * results and the main thread asserts after joining them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

/* Generous bound on items a stalled passive cursor may pin beyond the window (segments). */
#define SEGMENT_SLACK 4096

/* ---- helpers (main thread only) ------------------------------------------------------------ */

static fo_stream *make_stream(ft_counter *cnt, size_t capacity, size_t window)
{
	fo_stream_opts o = ft_opts(cnt);
	o.capacity = capacity;
	o.passive_window = window;
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_non_null(s);
	return s;
}

static fo_cursor *open_cursor(fo_stream *s, unsigned flags)
{
	fo_cursor *c = NULL;
	assert_int_equal(fo_stream_cursor(s, &c, flags), FO_OK);
	assert_non_null(c);
	return c;
}

static fo_cursor *fork_cursor(fo_cursor *parent, unsigned flags)
{
	fo_cursor *c = NULL;
	assert_int_equal(fo_cursor_fork(parent, &c, flags), FO_OK);
	assert_non_null(c);
	return c;
}

/* Push tokens [from, to) with fo_stream_push. */
static void push_range(fo_stream *s, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
}

/* Read tokens [from, to) from @c with try_next, in order. */
static void expect_range(fo_cursor *c, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		void *it = NULL;
		assert_int_equal(fo_cursor_try_next(c, &it), FO_OK);
		assert_int_equal(ft_seq(it), i);
	}
}

static size_t read_one(fo_cursor *c)
{
	void *it = NULL;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_OK);
	assert_non_null(it);
	return ft_seq(it);
}

static void expect_empty(fo_cursor *c)
{
	void *it = NULL;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_EMPTY);
}

static void expect_end(fo_cursor *c)
{
	void *it = NULL;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_END);
}

/* Drain everything ready from @c (try_next until not FO_OK); returns the final code. */
static int drain_count(fo_cursor *c, size_t *count)
{
	void *it;
	int rc;
	*count = 0;
	while ((rc = fo_cursor_try_next(c, &it)) == FO_OK)
		(*count)++;
	return rc;
}

/* ---- threads --------------------------------------------------------------------------------- */

struct push_job {
	pthread_t tid;
	fo_stream *s;
	void *items[8];
	size_t n; /* 1: fo_stream_push, > 1: fo_stream_push_many */
	int rc;
	atomic_bool done;
};

static void *push_job_main(void *arg)
{
	struct push_job *j = arg;
	if (j->n == 1)
		j->rc = fo_stream_push(j->s, j->items[0]);
	else
		j->rc = fo_stream_push_many(j->s, j->items, j->n);
	atomic_store(&j->done, true);
	return NULL;
}

static void push_job_start(struct push_job *j)
{
	atomic_init(&j->done, false);
	j->rc = 12345;
	assert_int_equal(pthread_create(&j->tid, NULL, push_job_main, j), 0);
}

struct next_job {
	pthread_t tid;
	fo_cursor *c;
	void *item;
	int rc;
};

static void *next_job_main(void *arg)
{
	struct next_job *j = arg;
	j->rc = fo_cursor_next(j->c, &j->item);
	return NULL;
}

/* ======================================================================================== */
/* Failing allocator (TESTING.md section 5).  Runs first: fo_set_allocator() may only be   */
/* called while no fanout object exists, and earlier tests could leave deferred frees.     */
/* ======================================================================================== */

#define FI_ITEMS 3000

struct fi_run {
	ft_failalloc *fa;
	ft_counter cnt;
	size_t accepted;
	size_t refused;
	size_t accepted_list[FI_ITEMS];
	size_t a_read;        /* items cursor a returned (checked against accepted_list) */
	long allocations;     /* allocation calls of the last run */
	size_t total_refused; /* pushes refused with FO_ENOMEM over all runs */
};

static bool ok_or_enomem(int rc)
{
	return rc == FO_OK || rc == FO_ENOMEM;
}

/* A refused push: the caller still owns the item and its destructor never ran. */
static void fi_refused(struct fi_run *r, ft_item *it)
{
	assert_int_equal(ft_mark(&r->cnt, (size_t)it->seq), 0);
	assert_true(ft_item_ok(it));
	free(it);
	r->refused++;
	r->total_refused++;
}

static void fi_read_a(struct fi_run *r, fo_cursor *a, size_t max)
{
	void *items[64];
	size_t n = 0;
	if (max > 64)
		max = 64;
	int rc = fo_cursor_next_many(a, items, max, &n);
	assert_true(rc == FO_OK || rc == FO_EMPTY);
	for (size_t i = 0; i < n; i++) {
		assert_true(ft_item_ok(items[i]));
		assert_true(r->a_read < r->accepted);
		assert_int_equal(((ft_item *)items[i])->seq, r->accepted_list[r->a_read]);
		r->a_read++;
	}
}

static void fi_read_any(fo_cursor *c, size_t k)
{
	for (size_t i = 0; c && i < k; i++) {
		void *it = NULL;
		int rc = fo_cursor_try_next(c, &it);
		assert_true(rc == FO_OK || rc == FO_EMPTY || rc == FO_LAGGED);
		if (rc == FO_OK)
			assert_true(ft_item_ok(it));
		if (rc == FO_EMPTY)
			break;
	}
}

static fo_cursor *fi_fork(fo_cursor *parent, unsigned flags)
{
	fo_cursor *c = NULL;
	if (!parent)
		return NULL;
	int rc = fo_cursor_fork(parent, &c, flags);
	assert_true(ok_or_enomem(rc));
	if (rc != FO_OK)
		return NULL;
	assert_non_null(c);
	return c;
}

/* Drain @c to its end; returns FO_END or FO_FAILED. */
static int fi_finish(fo_cursor *c)
{
	void *it;
	int rc;
	while ((rc = fo_cursor_try_next(c, &it)) == FO_OK || rc == FO_LAGGED)
		if (rc == FO_OK)
			assert_true(ft_item_ok(it));
	return rc;
}

/* One scenario with allocation number @fail_at failing.  Returns true if a failure was
 * injected (the loop goes on until a run completes without one). */
static bool fi_scenario(struct fi_run *r, long fail_at)
{
	ft_failalloc *fa = r->fa;
	ft_counter_init(&r->cnt, FI_ITEMS);
	r->accepted = r->refused = r->a_read = 0;
	ft_failalloc_arm(fa, fail_at);

	fo_stream_opts o = ft_heap_opts(&r->cnt);
	o.passive_window = 256;
	fo_stream *s = NULL;
	int rc = fo_stream_create(&s, &o);
	assert_true(ok_or_enomem(rc));
	if (rc != FO_OK)
		goto out;

	fo_cursor *a = NULL, *p = NULL, *f = NULL, *g1 = NULL, *g2 = NULL, *q = NULL;
	rc = fo_stream_cursor(s, &a, FO_ACTIVE);
	assert_true(ok_or_enomem(rc));
	if (rc != FO_OK)
		a = NULL;
	p = fi_fork(a, FO_PASSIVE);
	rc = fo_stream_cursor(s, &g1, FO_SHARED);
	assert_true(ok_or_enomem(rc));
	if (rc != FO_OK)
		g1 = NULL;
	g2 = fi_fork(g1, FO_SHARED);
	rc = fo_stream_cursor(s, &q, FO_PASSIVE);
	assert_true(ok_or_enomem(rc));
	if (rc != FO_OK)
		q = NULL;

	for (size_t i = 0; i < FI_ITEMS;) {
		if (i % 500 == 250) {
			/* push_many of 10 */
			ft_item *batch[10];
			for (size_t k = 0; k < 10; k++)
				batch[k] = ft_item_new(i + k);
			rc = fo_stream_push_many(s, (void *const *)batch, 10);
			assert_true(ok_or_enomem(rc));
			for (size_t k = 0; k < 10; k++) {
				if (rc == FO_OK)
					r->accepted_list[r->accepted++] = i + k;
				else
					fi_refused(r, batch[k]);
			}
			i += 10;
		} else {
			ft_item *it = ft_item_new(i);
			switch (i % 3) {
			case 0:
				rc = fo_stream_push(s, it);
				break;
			case 1:
				rc = fo_stream_try_push(s, it);
				break;
			default:
				rc = fo_stream_timed_push(s, it, FT_MS(100));
				break;
			}
			assert_true(ok_or_enomem(rc));
			if (rc == FO_OK)
				r->accepted_list[r->accepted++] = i;
			else
				fi_refused(r, it);
			i++;
		}
		if (i == FI_ITEMS / 2 && !f)
			f = fi_fork(a, FO_ACTIVE);
		if (i % 100 == 0) {
			if (a)
				fi_read_a(r, a, 50);
			fi_read_any(g1, 20);
			fi_read_any(g2, 20);
			fi_read_any(p, 5);
			fi_read_any(f, 80);
		}
	}

	rc = fo_stream_fail(s, FO_ESYS, "injected failure");
	assert_true(ok_or_enomem(rc));
	if (rc == FO_ENOMEM)
		assert_false(fo_stream_is_closed(s));
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_true(fo_stream_is_closed(s));
	int end = rc == FO_OK ? FO_FAILED : FO_END;

	if (a) {
		while (r->a_read < r->accepted)
			fi_read_a(r, a, 64);
		assert_int_equal(fi_finish(a), end);
	}
	if (f)
		assert_int_equal(fi_finish(f), end);

	/* Alternate which handle goes last. */
	if (fail_at % 2)
		fo_stream_destroy(s);
	fo_cursor_close(a);
	fo_cursor_close(g1);
	if (p)
		assert_int_equal(fi_finish(p), end);
	fo_cursor_close(p);
	fo_cursor_close(f);
	if (g2)
		assert_int_equal(fi_finish(g2), end);
	fo_cursor_close(q);
	fo_cursor_close(g2);
	if (!(fail_at % 2))
		fo_stream_destroy(s);

	/* Every accepted item freed exactly once, every refused one never. */
	assert_int_equal(ft_freed(&r->cnt), r->accepted);
	assert_int_equal(atomic_load(&r->cnt.out_of_range), 0);
	for (size_t k = 0; k < r->accepted; k++)
		assert_int_equal(ft_mark(&r->cnt, r->accepted_list[k]), 1);
	assert_int_equal(r->accepted + r->refused, FI_ITEMS);
out:;
	bool injected = atomic_load(&fa->failures) > 0;
	r->allocations = atomic_load(&fa->calls);
	ft_failalloc_arm(fa, 0);
	/* Nothing leaks once the last handle is gone (allowing deferred reclamation). */
	assert_int_equal(ft_failalloc_settle(fa, 2000), 0);
	assert_int_equal(atomic_load(&fa->bad_free), 0);
	ft_counter_fini(&r->cnt);
	return injected;
}

static ft_failalloc fa;

/* If the test fails half-way, later tests must not run on the failing allocator.  Its blocks
 * come from posix_memalign, so free() is right for any of them still live. */
static int fi_teardown(void **state)
{
	(void)state;
	ft_failalloc_arm(&fa, 0);
	fo_set_allocator(NULL);
	return 0;
}

static void test_every_allocation_failure_gives_enomem_loses_and_leaks_nothing(void **state)
{
	(void)state;
	static struct fi_run run;
	ft_failalloc_init(&fa);
	run.fa = &fa;
	ft_failalloc_install(&fa);

	long n;
	const long limit = 20000;
	for (n = 1; n < limit; n++)
		if (!fi_scenario(&run, n))
			break;
	assert_true(n < limit);
	/* The last run had no injected failure: every allocation of it succeeded. */
	assert_true(atomic_load(&fa.total) > 0);
	/* Some runs failed inside a push (a new segment) and the push said so. */
	assert_true(run.total_refused > 0);
	print_message("fault injection: %ld runs, %ld allocations in a full run, %zu pushes "
	              "refused\n",
	              n, run.allocations, run.total_refused);

	assert_int_equal(ft_failalloc_settle(&fa, 2000), 0);
	fo_set_allocator(NULL);
}

/* ======================================================================================== */
/* Options, creation, NULL handles                                                          */
/* ======================================================================================== */

static void test_opts_init_fills_defaults(void **state)
{
	(void)state;
	fo_stream_opts o;
	memset(&o, 0xa5, sizeof(o));
	fo_stream_opts_init(&o);
	assert_int_equal(o.capacity, 0);
	assert_true(o.passive_window == 0 || o.passive_window == FO_DEFAULT_PASSIVE_WINDOW);
	assert_null(o.item_free);
	assert_null(o.item_free_ctx);
	fo_stream_opts_init(NULL); /* no-op */
}

static void test_create_accepts_null_opts_and_rejects_null_out(void **state)
{
	(void)state;
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	assert_int_equal(fo_stream_create(NULL, &o), FO_EINVAL);
	assert_int_equal(fo_stream_create(NULL, NULL), FO_EINVAL);

	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_non_null(s);
	assert_false(fo_stream_is_closed(s));
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 3);
	expect_range(c, 0, 3);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_null_handles_are_rejected_or_ignored(void **state)
{
	(void)state;
	void *it = NULL;
	void *items[2] = {ft_tok(0), ft_tok(1)};
	size_t n = 99;
	fo_cursor *c = NULL;
	fo_stream_stats st;

	assert_int_equal(fo_stream_push(NULL, ft_tok(0)), FO_EINVAL);
	assert_int_equal(fo_stream_try_push(NULL, ft_tok(0)), FO_EINVAL);
	assert_int_equal(fo_stream_timed_push(NULL, ft_tok(0), FT_MS(1)), FO_EINVAL);
	assert_int_equal(fo_stream_push_many(NULL, items, 2), FO_EINVAL);
	assert_int_equal(fo_stream_close(NULL), FO_EINVAL);
	assert_int_equal(fo_stream_fail(NULL, FO_ESYS, "x"), FO_EINVAL);
	assert_true(fo_stream_is_closed(NULL));
	assert_int_equal(fo_stream_cursor(NULL, &c, FO_ACTIVE), FO_EINVAL);
	assert_null(c);
	assert_int_equal(fo_stream_get_stats(NULL, &st), FO_EINVAL);
	fo_stream_destroy(NULL);

	assert_int_equal(fo_cursor_next(NULL, &it), FO_EINVAL);
	assert_int_equal(fo_cursor_try_next(NULL, &it), FO_EINVAL);
	assert_int_equal(fo_cursor_timed_next(NULL, &it, FT_MS(1)), FO_EINVAL);
	assert_int_equal(fo_cursor_next_many(NULL, items, 2, &n), FO_EINVAL);
	assert_int_equal(fo_cursor_available(NULL), 0);
	assert_true(fo_cursor_at_least(NULL, 0));
	assert_false(fo_cursor_at_least(NULL, 1));
	assert_true(fo_cursor_is_drained(NULL));
	assert_int_equal(fo_cursor_fork(NULL, &c, FO_ACTIVE), FO_EINVAL);
	assert_int_equal(fo_cursor_lagged(NULL), 0);
	assert_null(fo_cursor_error(NULL));
	fo_cursor_close(NULL);

	/* NULL out-parameters on valid handles. */
	fo_stream *s = make_stream(NULL, 0, 0);
	assert_int_equal(fo_stream_cursor(s, NULL, FO_ACTIVE), FO_EINVAL);
	assert_int_equal(fo_stream_get_stats(s, NULL), FO_EINVAL);
	c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 2);
	assert_int_equal(fo_cursor_next(c, NULL), FO_EINVAL);
	assert_int_equal(fo_cursor_try_next(c, NULL), FO_EINVAL);
	assert_int_equal(fo_cursor_timed_next(c, NULL, FT_MS(1)), FO_EINVAL);
	assert_int_equal(fo_cursor_next_many(c, NULL, 2, &n), FO_EINVAL);
	assert_int_equal(fo_cursor_next_many(c, items, 2, NULL), FO_EINVAL);
	assert_int_equal(fo_cursor_fork(c, NULL, FO_ACTIVE), FO_EINVAL);
	/* None of the refused calls consumed anything. */
	expect_range(c, 0, 2);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

/* ======================================================================================== */
/* Push                                                                                     */
/* ======================================================================================== */

static void test_push_of_null_item_is_rejected_and_changes_nothing(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 4, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);

	assert_int_equal(fo_stream_push(s, NULL), FO_EINVAL);
	assert_int_equal(fo_stream_try_push(s, NULL), FO_EINVAL);
	assert_int_equal(fo_stream_timed_push(s, NULL, FT_MS(1)), FO_EINVAL);
	expect_empty(c);
	assert_int_equal(fo_cursor_available(c), 0);
	assert_int_equal(ft_stats(s).pushed, 0);

	push_range(s, 0, 1);
	expect_range(c, 0, 1);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 1);
	ft_counter_fini(&cnt);
}

static void test_push_after_close_returns_eclosed_and_caller_keeps_item(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 16);
	fo_stream_opts o = ft_heap_opts(&cnt);
	o.capacity = 8;
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	assert_int_equal(fo_stream_push(s, ft_item_new(0)), FO_OK);
	assert_int_equal(fo_stream_close(s), FO_OK);

	ft_item *a = ft_item_new(1), *b = ft_item_new(2), *d = ft_item_new(3);
	ft_item *batch[2] = {ft_item_new(4), ft_item_new(5)};
	assert_int_equal(fo_stream_push(s, a), FO_ECLOSED);
	assert_int_equal(fo_stream_try_push(s, b), FO_ECLOSED);
	assert_int_equal(fo_stream_timed_push(s, d, FT_MS(5)), FO_ECLOSED);
	assert_int_equal(fo_stream_push_many(s, (void *const *)batch, 2), FO_ECLOSED);
	assert_int_equal(ft_freed(&cnt), 0);
	assert_int_equal(ft_stats(s).pushed, 1);

	/* The cursor still gets the one accepted item, then the end. */
	void *it = NULL;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_OK);
	assert_true(ft_item_ok(it));
	assert_int_equal(((ft_item *)it)->seq, 0);
	expect_end(c);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 1);
	assert_int_equal(ft_mark(&cnt, 0), 1);

	/* The refused items are still ours, untouched. */
	assert_true(ft_item_ok(a) && ft_item_ok(b) && ft_item_ok(d));
	assert_true(ft_item_ok(batch[0]) && ft_item_ok(batch[1]));
	free(a);
	free(b);
	free(d);
	free(batch[0]);
	free(batch[1]);
	ft_counter_fini(&cnt);
}

static void test_close_is_idempotent(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 2);
	assert_false(fo_stream_is_closed(s));
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_true(fo_stream_is_closed(s));
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_true(fo_stream_is_closed(s));
	expect_range(c, 0, 2);
	expect_end(c);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_items_pushed_with_no_cursor_are_freed_at_once(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 200);
	fo_stream *s = make_stream(&cnt, 0, 0);

	for (size_t i = 0; i < 50; i++) {
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
		assert_int_equal(ft_freed(&cnt), i + 1);
		assert_int_equal(ft_mark(&cnt, i), 1);
	}
	void *batch[10];
	for (size_t i = 0; i < 10; i++)
		batch[i] = ft_tok(50 + i);
	assert_int_equal(fo_stream_push_many(s, batch, 10), FO_OK);
	assert_int_equal(ft_freed(&cnt), 60);

	/* Also after the only cursor closed: nothing can return the item. */
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 60, 70);
	expect_range(c, 60, 63);
	fo_cursor_close(c);
	assert_int_equal(ft_freed(&cnt), 70);
	assert_int_equal(fo_stream_try_push(s, ft_tok(70)), FO_OK);
	assert_int_equal(ft_freed(&cnt), 71);
	assert_int_equal(fo_stream_timed_push(s, ft_tok(71), FT_MS(1)), FO_OK);
	assert_int_equal(ft_freed(&cnt), 72);
	assert_int_equal(ft_stats(s).retained_items, 0);

	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 72);
	for (size_t i = 0; i < 72; i++)
		assert_int_equal(ft_mark(&cnt, i), 1);
	ft_counter_fini(&cnt);
}

static void test_closing_last_cursor_frees_its_unread_items(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 100);
	fo_stream *s = make_stream(&cnt, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 100);
	expect_range(c, 0, 10);
	fo_cursor_close(c);
	/* fo_cursor_close: "items only it still needed are freed". */
	assert_int_equal(ft_freed(&cnt), 100);
	assert_int_equal(ft_stats(s).retained_items, 0);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 100);
	ft_counter_fini(&cnt);
}

static void test_cursor_sees_only_items_pushed_after_its_creation(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 0, 0);
	push_range(s, 0, 5);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	push_range(s, 5, 10);
	fo_cursor *b = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	fo_cursor *g = open_cursor(s, FO_SHARED);
	push_range(s, 10, 12);
	expect_range(a, 5, 12);
	expect_range(b, 10, 12);
	expect_range(p, 10, 12);
	expect_range(g, 10, 12);
	expect_empty(a);
	expect_empty(b);
	expect_empty(p);
	expect_empty(g);
	fo_cursor_close(a);
	fo_cursor_close(b);
	fo_cursor_close(p);
	fo_cursor_close(g);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 12);
	ft_counter_fini(&cnt);
}

static void test_push_many_is_contiguous_and_in_order(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);

	push_range(s, 0, 3);
	void *batch[5];
	for (size_t i = 0; i < 5; i++)
		batch[i] = ft_tok(3 + i);
	assert_int_equal(fo_stream_push_many(s, batch, 5), FO_OK);
	push_range(s, 8, 10);
	assert_int_equal(fo_stream_push_many(s, batch, 1), FO_OK); /* n = 1 is a batch too */
	expect_range(c, 0, 8);
	expect_range(c, 8, 10);
	expect_range(c, 3, 4);

	/* A batch larger than any segment, on an unbounded stream. */
	const size_t big = 5000;
	void **many = malloc(big * sizeof(*many));
	assert_non_null(many);
	for (size_t i = 0; i < big; i++)
		many[i] = ft_tok(100 + i);
	assert_int_equal(fo_stream_push_many(s, many, big), FO_OK);
	assert_int_equal(fo_cursor_available(c), big);
	expect_range(c, 100, 100 + big);
	expect_empty(c);
	free(many);

	fo_cursor_close(c);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 11 + big);
	ft_counter_fini(&cnt);
}

static void test_push_many_is_all_or_nothing(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 4, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	void *batch[5] = {ft_tok(0), ft_tok(1), NULL, ft_tok(3), ft_tok(4)};

	assert_int_equal(fo_stream_push_many(s, batch, 5), FO_EINVAL); /* NULL inside */
	assert_int_equal(fo_stream_push_many(s, batch, 3), FO_EINVAL); /* NULL last */
	assert_int_equal(fo_stream_push_many(s, batch, 0), FO_EINVAL); /* n = 0 */
	assert_int_equal(fo_stream_push_many(s, NULL, 2), FO_EINVAL);  /* no array */
	batch[2] = ft_tok(2);
	assert_int_equal(fo_stream_push_many(s, batch, 5), FO_EINVAL); /* n > capacity */
	expect_empty(c);
	assert_int_equal(fo_cursor_available(c), 0);
	assert_int_equal(ft_stats(s).pushed, 0);
	assert_int_equal(ft_freed(&cnt), 0);

	/* The same items with no cursor: a rejected batch runs no destructor either. */
	fo_stream *s2 = make_stream(&cnt, 0, 0);
	batch[2] = NULL;
	assert_int_equal(fo_stream_push_many(s2, batch, 5), FO_EINVAL);
	assert_int_equal(ft_freed(&cnt), 0);
	fo_stream_destroy(s2);
	batch[2] = ft_tok(2);

	/* n == capacity fits an empty bounded stream. */
	assert_int_equal(fo_stream_push_many(s, batch, 4), FO_OK);
	expect_range(c, 0, 4);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 4);
	ft_counter_fini(&cnt);
}

/* Two producers push batches of 8 concurrently: each batch stays contiguous. */
struct batch_producer {
	pthread_t tid;
	fo_stream *s;
	size_t id;
	size_t batches;
	int bad_rc;
};

#define BATCH 8

static void *batch_producer_main(void *arg)
{
	struct batch_producer *p = arg;
	void *items[BATCH];
	for (size_t b = 0; b < p->batches; b++) {
		for (size_t j = 0; j < BATCH; j++)
			items[j] = ft_tok((p->id << 40) | (b << 8) | j);
		int rc = fo_stream_push_many(p->s, items, BATCH);
		if (rc != FO_OK) {
			p->bad_rc = rc;
			break;
		}
	}
	return NULL;
}

static void test_push_many_batches_from_two_threads_stay_contiguous(void **state)
{
	(void)state;
	const size_t batches = ft_scale(5000);
	fo_stream *s = make_stream(NULL, 256, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	struct batch_producer prod[2];
	for (size_t i = 0; i < 2; i++) {
		prod[i] = (struct batch_producer){.s = s, .id = i + 1, .batches = batches};
		assert_int_equal(pthread_create(&prod[i].tid, NULL, batch_producer_main, &prod[i]),
		                 0);
	}
	size_t next_batch[2] = {0, 0};
	size_t total = 2 * batches * BATCH, got = 0;
	bool contiguous = true, ordered = true;
	size_t cur_id = 0, cur_b = 0, cur_j = BATCH;
	while (got < total) {
		void *it = NULL;
		int rc = fo_cursor_next(c, &it);
		if (rc != FO_OK)
			break;
		size_t v = ft_seq(it), id = v >> 40, b = (v >> 8) & 0xffffffff, j = v & 0xff;
		if (cur_j < BATCH) {
			/* inside a batch: must be the next item of the same batch */
			if (id != cur_id || b != cur_b || j != cur_j)
				contiguous = false;
		} else {
			if (j != 0 || id < 1 || id > 2 || b != next_batch[id - 1])
				ordered = false;
			else
				next_batch[id - 1]++;
			cur_id = id;
			cur_b = b;
		}
		cur_j = j + 1;
		got++;
	}
	for (size_t i = 0; i < 2; i++)
		pthread_join(prod[i].tid, NULL);
	assert_int_equal(got, total);
	assert_true(contiguous);
	assert_true(ordered);
	assert_int_equal(prod[0].bad_rc, 0);
	assert_int_equal(prod[1].bad_rc, 0);
	assert_int_equal(next_batch[0], batches);
	assert_int_equal(next_batch[1], batches);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

/* Items of one producer thread keep that thread's order (two producers, bounded). */
struct seq_producer {
	pthread_t tid;
	fo_stream *s;
	size_t id;
	size_t n;
	int bad_rc;
};

static void *seq_producer_main(void *arg)
{
	struct seq_producer *p = arg;
	for (size_t i = 0; i < p->n; i++) {
		int rc = fo_stream_push(p->s, ft_tok((p->id << 40) | i));
		if (rc != FO_OK) {
			p->bad_rc = rc;
			break;
		}
	}
	return NULL;
}

static void test_each_producer_thread_keeps_its_order(void **state)
{
	(void)state;
	const size_t per = ft_scale(100000);
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 64, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	struct seq_producer prod[2];
	for (size_t i = 0; i < 2; i++) {
		prod[i] = (struct seq_producer){.s = s, .id = i, .n = per};
		assert_int_equal(pthread_create(&prod[i].tid, NULL, seq_producer_main, &prod[i]),
		                 0);
	}
	size_t next[2] = {0, 0}, got = 0;
	bool ordered = true;
	while (got < 2 * per) {
		void *it = NULL;
		if (fo_cursor_next(c, &it) != FO_OK)
			break;
		size_t v = ft_seq(it), id = v >> 40, i = v & ((1ull << 40) - 1);
		if (id > 1 || i != next[id])
			ordered = false;
		else
			next[id]++;
		got++;
	}
	for (size_t i = 0; i < 2; i++)
		pthread_join(prod[i].tid, NULL);
	assert_int_equal(prod[0].bad_rc, 0);
	assert_int_equal(prod[1].bad_rc, 0);
	assert_int_equal(got, 2 * per);
	assert_true(ordered);
	assert_int_equal(fo_stream_close(s), FO_OK);
	expect_end(c);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 2 * per);
	ft_counter_fini(&cnt);
}

/* ======================================================================================== */
/* Capacity                                                                                 */
/* ======================================================================================== */

static void test_try_push_on_full_bounded_stream_returns_full(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 4, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);
	assert_int_equal(fo_stream_try_push(s, ft_tok(4)), FO_FULL);
	assert_int_equal(fo_stream_try_push(s, ft_tok(4)), FO_FULL);
	assert_int_equal(ft_freed(&cnt), 0); /* refused: the caller keeps the item */

	expect_range(c, 0, 1);
	assert_int_equal(fo_stream_try_push(s, ft_tok(4)), FO_OK);
	assert_int_equal(fo_stream_try_push(s, ft_tok(5)), FO_FULL);
	expect_range(c, 1, 5);
	expect_empty(c);
	for (size_t i = 5; i < 9; i++)
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);
	assert_int_equal(fo_stream_try_push(s, ft_tok(9)), FO_FULL);
	expect_range(c, 5, 9);
	assert_int_equal(ft_stats(s).pushed, 9);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 9);
	ft_counter_fini(&cnt);
}

static void test_timed_push_on_full_stream_times_out(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 2, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	assert_int_equal(fo_stream_timed_push(s, ft_tok(0), FT_MS(20)), FO_OK);
	assert_int_equal(fo_stream_timed_push(s, ft_tok(1), 0), FO_OK);
	assert_int_equal(fo_stream_timed_push(s, ft_tok(2), FT_MS(20)), FO_TIMEDOUT);
	assert_int_equal(fo_stream_timed_push(s, ft_tok(2), 0), FO_TIMEDOUT);
	assert_int_equal(ft_freed(&cnt), 0);
	/* The timeout changed nothing: the stream still works. */
	expect_range(c, 0, 1);
	assert_int_equal(fo_stream_timed_push(s, ft_tok(2), FT_MS(20)), FO_OK);
	expect_range(c, 1, 3);
	expect_empty(c);
	assert_int_equal(ft_stats(s).pushed, 3);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 3);
	ft_counter_fini(&cnt);
}

static void test_push_waits_for_room_then_succeeds(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 2, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 2);
	struct push_job j = {.s = s, .items = {ft_tok(2)}, .n = 1};
	push_job_start(&j);
	ft_sleep_ms(20);
	assert_false(atomic_load(&j.done)); /* full: the push must still be waiting */
	expect_range(c, 0, 1);
	pthread_join(j.tid, NULL);
	assert_int_equal(j.rc, FO_OK);
	expect_range(c, 1, 3);

	/* push_many waits for room for the whole batch. */
	push_range(s, 3, 5);
	expect_range(c, 3, 4); /* one unread (4), room for one */
	struct push_job m = {.s = s, .items = {ft_tok(5), ft_tok(6)}, .n = 2};
	push_job_start(&m);
	ft_sleep_ms(20);
	assert_false(atomic_load(&m.done));
	expect_range(c, 4, 5);
	pthread_join(m.tid, NULL);
	assert_int_equal(m.rc, FO_OK);
	expect_range(c, 5, 7);
	expect_empty(c);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

/* The first thread to push into a default stream (with membarrier, the
 * owner of its biased claim, design.md §4) pushes 0 and 1, then 2, which
 * waits for room. */
struct first_pusher {
	pthread_t tid;
	fo_stream *s;
	int rc[3];
	atomic_int pushed;
};

static void *first_pusher_main(void *arg)
{
	struct first_pusher *j = arg;
	for (int i = 0; i < 3; i++) {
		j->rc[i] = fo_stream_push(j->s, ft_tok((size_t)i));
		atomic_store(&j->pushed, i + 1);
	}
	return NULL;
}

static void test_second_producer_while_first_waits_for_room(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 2, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	struct first_pusher j = {.s = s};
	atomic_init(&j.pushed, 0);
	assert_int_equal(pthread_create(&j.tid, NULL, first_pusher_main, &j), 0);
	while (atomic_load(&j.pushed) < 2)
		ft_sleep_ms(1);
	ft_sleep_ms(20);
	assert_int_equal(atomic_load(&j.pushed), 2); /* its third push waits for room */
	/* A second producer revokes the bias (the first waits outside its
	 * claim, so the revocation does not wait for it) and finds no room. */
	assert_int_equal(fo_stream_try_push(s, ft_tok(3)), FO_FULL);
	expect_range(c, 0, 1); /* room: the first producer's push goes on, by CAS */
	pthread_join(j.tid, NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(j.rc[i], FO_OK);
	expect_range(c, 1, 3);
	assert_int_equal(fo_stream_push(s, ft_tok(3)), FO_OK);
	assert_int_equal(fo_stream_push(s, ft_tok(4)), FO_OK);
	expect_range(c, 3, 5);
	expect_empty(c);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_push_waiting_for_room_returns_eclosed_on_close(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 8);
	fo_stream *s = make_stream(&cnt, 1, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 1);
	struct push_job j = {.s = s, .items = {ft_tok(1)}, .n = 1};
	struct push_job m = {.s = s, .items = {ft_tok(2), ft_tok(3)}, .n = 1};
	push_job_start(&j);
	ft_sleep_ms(10);
	assert_int_equal(fo_stream_close(s), FO_OK);
	pthread_join(j.tid, NULL);
	assert_int_equal(j.rc, FO_ECLOSED);
	push_job_start(&m);
	pthread_join(m.tid, NULL);
	assert_int_equal(m.rc, FO_ECLOSED);
	assert_int_equal(ft_mark(&cnt, 1), 0);
	expect_range(c, 0, 1);
	expect_end(c);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 1);
	assert_int_equal(ft_mark(&cnt, 1), 0);
	ft_counter_fini(&cnt);
}

static void test_capacity_counts_active_cursors_only(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 4, 256);

	/* Only a passive cursor: it never reads and never blocks a push. */
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	for (size_t i = 0; i < 100; i++)
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);

	/* An active cursor that keeps up plus a passive one that never reads. */
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p2 = fork_cursor(a, FO_PASSIVE);
	const size_t n = ft_scale(10000);
	for (size_t i = 100; i < 100 + n; i++) {
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);
		assert_int_equal(read_one(a), i);
	}
	/* The active one stops reading: now the stream fills at capacity. */
	for (size_t i = 100 + n; i < 104 + n; i++)
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);
	assert_int_equal(fo_stream_try_push(s, ft_tok(104 + n)), FO_FULL);

	fo_cursor_close(a);
	/* With the active cursor gone the stream never fills again. */
	for (size_t i = 104 + n; i < 200 + n; i++)
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);
	fo_cursor_close(p);
	fo_cursor_close(p2);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 200 + n);
	ft_counter_fini(&cnt);
}

static void test_stream_with_no_cursor_never_fills(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 2, 0);
	for (size_t i = 0; i < 1000; i++)
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);
	void *batch[2] = {ft_tok(1000), ft_tok(1001)};
	assert_int_equal(fo_stream_push_many(s, batch, 2), FO_OK);
	assert_int_equal(fo_stream_timed_push(s, ft_tok(1002), 0), FO_OK);
	assert_int_equal(ft_freed(&cnt), 1003);
	fo_stream_destroy(s);
	ft_counter_fini(&cnt);
}

/* ======================================================================================== */
/* Close, fail, end                                                                         */
/* ======================================================================================== */

static void test_fail_delivers_pending_items_then_failed_with_error(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 0, 0);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	push_range(s, 0, 3);
	assert_null(fo_cursor_error(a));

	char msg[32];
	strcpy(msg, "disk on fire");
	assert_int_equal(fo_stream_fail(s, FO_ESYS, msg), FO_OK);
	strcpy(msg, "overwritten"); /* the message was copied */
	assert_true(fo_stream_is_closed(s));
	assert_int_equal(fo_stream_push(s, ft_tok(3)), FO_ECLOSED);

	expect_range(a, 0, 3);
	assert_null(fo_cursor_error(a)); /* not before FO_FAILED is returned */
	assert_false(fo_cursor_is_drained(a));
	void *it = NULL;
	assert_int_equal(fo_cursor_next(a, &it), FO_FAILED);
	assert_true(fo_cursor_is_drained(a));
	const fo_error *e = fo_cursor_error(a);
	assert_non_null(e);
	assert_int_equal(e->code, FO_ESYS);
	assert_int_equal(e->sys_errno, 0);
	assert_non_null(e->message);
	assert_string_equal(e->message, "disk on fire");

	/* Sticky, in every read form. */
	size_t n = 99;
	void *items[4];
	assert_int_equal(fo_cursor_next(a, &it), FO_FAILED);
	assert_int_equal(fo_cursor_try_next(a, &it), FO_FAILED);
	assert_int_equal(fo_cursor_timed_next(a, &it, FT_MS(1)), FO_FAILED);
	assert_int_equal(fo_cursor_next_many(a, items, 4, &n), FO_FAILED);
	assert_int_equal(n, 0);

	/* The passive cursor sees the same. */
	expect_range(p, 0, 3);
	assert_int_equal(fo_cursor_try_next(p, &it), FO_FAILED);
	assert_string_equal(fo_cursor_error(p)->message, "disk on fire");
	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 3);
	ft_counter_fini(&cnt);
}

static void test_fail_with_code_zero_and_null_message_uses_defaults(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	assert_int_equal(fo_stream_fail(s, 0, NULL), FO_OK);
	void *it;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_FAILED);
	const fo_error *e = fo_cursor_error(c);
	assert_non_null(e);
	assert_int_equal(e->code, FO_FAILED);
	assert_non_null(e->message);
	assert_string_equal(e->message, fo_strerror(FO_FAILED));
	fo_cursor_close(c);
	fo_stream_destroy(s);

	s = make_stream(NULL, 0, 0);
	c = open_cursor(s, FO_ACTIVE);
	assert_int_equal(fo_stream_fail(s, FO_ECANCELED, NULL), FO_OK);
	assert_int_equal(fo_cursor_next(c, &it), FO_FAILED);
	assert_int_equal(fo_cursor_error(c)->code, FO_ECANCELED);
	assert_string_equal(fo_cursor_error(c)->message, fo_strerror(FO_ECANCELED));
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_first_end_wins_between_close_and_fail(void **state)
{
	(void)state;
	/* close, then fail: ECLOSED, readers see FO_END and no error. */
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 1);
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_int_equal(fo_stream_fail(s, FO_ESYS, "late"), FO_ECLOSED);
	expect_range(c, 0, 1);
	expect_end(c);
	assert_null(fo_cursor_error(c));
	fo_cursor_close(c);
	fo_stream_destroy(s);

	/* fail, then fail again or close: the first error stays. */
	s = make_stream(NULL, 0, 0);
	c = open_cursor(s, FO_ACTIVE);
	assert_int_equal(fo_stream_fail(s, FO_ESYS, "first"), FO_OK);
	assert_int_equal(fo_stream_fail(s, FO_ECANCELED, "second"), FO_ECLOSED);
	assert_int_equal(fo_stream_close(s), FO_OK);
	void *it;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_FAILED);
	assert_int_equal(fo_cursor_error(c)->code, FO_ESYS);
	assert_string_equal(fo_cursor_error(c)->message, "first");
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_closed_is_not_drained_until_end_is_returned(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 3);
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_true(fo_stream_is_closed(s));
	assert_false(fo_cursor_is_drained(c));
	assert_int_equal(fo_cursor_available(c), 3);
	expect_range(c, 0, 3);
	assert_false(fo_cursor_is_drained(c)); /* everything read, but END not returned yet */
	void *it;
	assert_int_equal(fo_cursor_next(c, &it), FO_END);
	assert_true(fo_cursor_is_drained(c));
	assert_null(fo_cursor_error(c));
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_end_is_sticky_for_every_read_form(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	assert_int_equal(fo_stream_close(s), FO_OK);
	void *it = NULL, *items[4];
	size_t n = 99;
	for (int round = 0; round < 3; round++) {
		assert_int_equal(fo_cursor_next(c, &it), FO_END);
		assert_int_equal(fo_cursor_try_next(c, &it), FO_END);
		assert_int_equal(fo_cursor_timed_next(c, &it, FT_MS(1)), FO_END);
		assert_int_equal(fo_cursor_timed_next(c, &it, 0), FO_END);
		n = 99;
		assert_int_equal(fo_cursor_next_many(c, items, 4, &n), FO_END);
		assert_int_equal(n, 0);
		assert_true(fo_cursor_is_drained(c));
	}
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_cursor_opened_on_closed_stream_reads_end(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	push_range(s, 0, 3);
	assert_int_equal(fo_stream_close(s), FO_OK);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	fo_cursor *g = open_cursor(s, FO_SHARED);
	expect_end(a);
	expect_end(p);
	expect_end(g);
	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_cursor_close(g);
	fo_stream_destroy(s);
}

/* Issue 12, bug 7: stream.h said FO_END; the error is the more useful answer. */
static void test_bug7_cursor_opened_on_failed_stream_reads_failed_with_error(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	push_range(s, 0, 3);
	assert_int_equal(fo_stream_fail(s, FO_ECANCELED, "upstream gone"), FO_OK);
	fo_cursor *c[3] = {open_cursor(s, FO_ACTIVE), open_cursor(s, FO_PASSIVE),
	                   open_cursor(s, FO_SHARED)};
	for (int i = 0; i < 3; i++) {
		void *it = NULL, *items[2];
		size_t n = 7;
		assert_false(fo_cursor_is_drained(c[i]));
		assert_null(fo_cursor_error(c[i]));
		assert_int_equal(fo_cursor_try_next(c[i], &it), FO_FAILED);
		assert_null(it);
		assert_true(fo_cursor_is_drained(c[i]));
		const fo_error *e = fo_cursor_error(c[i]);
		assert_non_null(e);
		assert_int_equal(e->code, FO_ECANCELED);
		assert_string_equal(e->message, "upstream gone");
		/* Sticky in every read form, and a fork inherits it. */
		assert_int_equal(fo_cursor_next(c[i], &it), FO_FAILED);
		assert_int_equal(fo_cursor_timed_next(c[i], &it, FT_MS(1)), FO_FAILED);
		assert_int_equal(fo_cursor_next_many(c[i], items, 2, &n), FO_FAILED);
		assert_int_equal(n, 0);
		fo_cursor *f = fork_cursor(c[i], FO_ACTIVE);
		assert_int_equal(fo_cursor_try_next(f, &it), FO_FAILED);
		assert_int_equal(fo_cursor_error(f)->code, FO_ECANCELED);
		fo_cursor_close(f);
	}
	for (int i = 0; i < 3; i++)
		fo_cursor_close(c[i]);
	fo_stream_destroy(s);
}

static void test_blocking_next_wakes_on_push_and_on_close(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	struct next_job j = {.c = c};
	assert_int_equal(pthread_create(&j.tid, NULL, next_job_main, &j), 0);
	ft_sleep_ms(10);
	push_range(s, 0, 1);
	pthread_join(j.tid, NULL);
	assert_int_equal(j.rc, FO_OK);
	assert_int_equal(ft_seq(j.item), 0);

	j.item = NULL;
	assert_int_equal(pthread_create(&j.tid, NULL, next_job_main, &j), 0);
	ft_sleep_ms(10);
	assert_int_equal(fo_stream_close(s), FO_OK);
	pthread_join(j.tid, NULL);
	assert_int_equal(j.rc, FO_END);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

/* ======================================================================================== */
/* Destruction and item lifetime                                                           */
/* ======================================================================================== */

static void test_destroy_first_then_last_cursor_close_frees_every_item(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 64);
	fo_stream_opts o = ft_heap_opts(&cnt);
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *b = open_cursor(s, FO_PASSIVE);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(fo_stream_push(s, ft_item_new(i)), FO_OK);
	assert_int_equal(fo_stream_close(s), FO_OK);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 0); /* a still needs all 64 */

	/* The cursors still read after the creator's handle is gone. */
	void *it = NULL;
	for (size_t i = 0; i < 10; i++) {
		assert_int_equal(fo_cursor_next(a, &it), FO_OK);
		assert_true(ft_item_ok(it));
		assert_int_equal(((ft_item *)it)->seq, i);
	}
	fo_cursor_close(b);
	assert_int_equal(fo_cursor_next(a, &it), FO_OK);
	assert_true(ft_item_ok(it));
	fo_cursor_close(a); /* the last handle */
	assert_int_equal(ft_freed(&cnt), 64);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(ft_mark(&cnt, i), 1);
	ft_counter_fini(&cnt);
}

static void test_close_cursors_first_then_destroy_frees_every_item(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 64);
	fo_stream_opts o = ft_heap_opts(&cnt);
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(fo_stream_push(s, ft_item_new(i)), FO_OK);
	void *it;
	assert_int_equal(fo_cursor_next(a, &it), FO_OK);
	assert_int_equal(fo_cursor_next(p, &it), FO_OK);
	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_stream_destroy(s); /* the last handle; the stream was never closed */
	assert_int_equal(ft_freed(&cnt), 64);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(ft_mark(&cnt, i), 1);
	ft_counter_fini(&cnt);
}

static void test_destructor_runs_once_per_item_with_every_cursor_kind(void **state)
{
	(void)state;
	const size_t n = 5000;
	ft_counter cnt;
	ft_counter_init(&cnt, n);
	fo_stream *s = make_stream(&cnt, 0, 1024);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	fo_cursor *g1 = open_cursor(s, FO_SHARED);
	fo_cursor *g2 = fork_cursor(g1, FO_SHARED);
	push_range(s, 0, n / 2);
	fo_cursor *f = fork_cursor(a, FO_ACTIVE);
	fo_cursor *fp = fork_cursor(a, FO_PASSIVE);
	expect_range(a, 0, n / 4);
	size_t k;
	(void)drain_count(g1, &k);
	push_range(s, n / 2, n);
	expect_range(f, 0, 100);
	fo_cursor_close(a);
	(void)drain_count(g2, &k);
	fo_cursor_close(g1);
	assert_int_equal(fo_stream_close(s), FO_OK);
	fo_stream_destroy(s);
	fo_cursor_close(g2);
	fo_cursor_close(f);
	/* p may have been lapped meanwhile; either way it reaches the end. */
	void *it;
	int rc;
	while ((rc = fo_cursor_try_next(p, &it)) == FO_OK || rc == FO_LAGGED)
		;
	assert_int_equal(rc, FO_END);
	fo_cursor_close(p);
	fo_cursor_close(fp); /* the last handle */
	assert_int_equal(ft_freed(&cnt), n);
	assert_int_equal(atomic_load(&cnt.out_of_range), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ft_mark(&cnt, i), 1);
	ft_counter_fini(&cnt);
}

/* ======================================================================================== */
/* Reads                                                                                    */
/* ======================================================================================== */

static void test_try_next_and_timed_next_on_empty_stream(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	void *it = NULL;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_EMPTY);
	assert_int_equal(fo_cursor_timed_next(c, &it, 0), FO_TIMEDOUT);
	assert_int_equal(fo_cursor_timed_next(c, &it, FT_MS(20)), FO_TIMEDOUT);
	assert_false(fo_cursor_is_drained(c));
	push_range(s, 0, 2);
	assert_int_equal(fo_cursor_timed_next(c, &it, FT_MS(20)), FO_OK);
	assert_int_equal(ft_seq(it), 0);
	assert_int_equal(fo_cursor_timed_next(c, &it, 0), FO_OK);
	assert_int_equal(ft_seq(it), 1);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_timeout_affects_neither_stream_nor_other_cursors(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 4, 0);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *b = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	void *it;
	assert_int_equal(fo_cursor_timed_next(a, &it, FT_MS(20)), FO_TIMEDOUT);
	assert_int_equal(fo_cursor_timed_next(p, &it, FT_MS(5)), FO_TIMEDOUT);
	assert_false(fo_stream_is_closed(s));
	push_range(s, 0, 1);
	expect_range(b, 0, 1);
	expect_range(p, 0, 1);
	expect_range(a, 0, 1);
	assert_int_equal(fo_cursor_timed_next(b, &it, FT_MS(5)), FO_TIMEDOUT);
	push_range(s, 1, 5);
	expect_range(a, 1, 5);
	expect_range(b, 1, 5);
	fo_cursor_close(a);
	fo_cursor_close(b);
	fo_cursor_close(p);
	fo_stream_destroy(s);
}

static void test_next_many_returns_partial_batches_then_empty(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	void *items[1024];
	size_t n = 99;
	assert_int_equal(fo_cursor_next_many(c, items, 0, &n), FO_EINVAL);
	n = 99;
	assert_int_equal(fo_cursor_next_many(c, items, 4, &n), FO_EMPTY);
	assert_int_equal(n, 0);

	push_range(s, 0, 5);
	size_t next = 0;
	while (next < 5) {
		n = 0;
		assert_int_equal(fo_cursor_next_many(c, items, 3, &n), FO_OK);
		assert_true(n >= 1 && n <= 3 && next + n <= 5);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(ft_seq(items[i]), next + i);
		next += n;
	}
	n = 99;
	assert_int_equal(fo_cursor_next_many(c, items, 3, &n), FO_EMPTY);
	assert_int_equal(n, 0);

	/* Many ready items across segment boundaries; a batch never includes a gap. */
	push_range(s, 5, 3005);
	while (next < 3005) {
		n = 0;
		assert_int_equal(fo_cursor_next_many(c, items, 1024, &n), FO_OK);
		assert_true(n >= 1 && n <= 1024 && next + n <= 3005);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(ft_seq(items[i]), next + i);
		next += n;
	}
	n = 99;
	assert_int_equal(fo_cursor_next_many(c, items, 1024, &n), FO_EMPTY);
	assert_int_equal(n, 0);

	push_range(s, 3005, 3007);
	assert_int_equal(fo_stream_close(s), FO_OK);
	n = 0;
	assert_int_equal(fo_cursor_next_many(c, items, 1024, &n), FO_OK);
	assert_true(n >= 1 && n <= 2);
	assert_int_equal(ft_seq(items[0]), 3005);
	if (n == 1)
		expect_range(c, 3006, 3007);
	n = 99;
	assert_int_equal(fo_cursor_next_many(c, items, 1024, &n), FO_END);
	assert_int_equal(n, 0);
	assert_true(fo_cursor_is_drained(c));
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_available_and_at_least_count_ready_items(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	assert_int_equal(fo_cursor_available(c), 0);
	assert_true(fo_cursor_at_least(c, 0));
	assert_false(fo_cursor_at_least(c, 1));

	push_range(s, 0, 1000); /* crosses segment boundaries */
	assert_int_equal(fo_cursor_available(c), 1000);
	assert_int_equal(fo_cursor_available(c), 1000); /* stable while nothing is read */
	assert_true(fo_cursor_at_least(c, 0));
	assert_true(fo_cursor_at_least(c, 1));
	assert_true(fo_cursor_at_least(c, 1000));
	assert_false(fo_cursor_at_least(c, 1001));

	push_range(s, 1000, 1500);
	assert_int_equal(fo_cursor_available(c), 1500);
	expect_range(c, 0, 700);
	assert_int_equal(fo_cursor_available(c), 800);
	assert_true(fo_cursor_at_least(c, 800));
	assert_false(fo_cursor_at_least(c, 801));
	/* A fork sees the same backlog. */
	fo_cursor *f = fork_cursor(c, FO_ACTIVE);
	assert_int_equal(fo_cursor_available(f), 800);
	expect_range(c, 700, 1500);
	assert_int_equal(fo_cursor_available(c), 0);
	assert_int_equal(fo_cursor_available(f), 800);
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_int_equal(fo_cursor_available(c), 0);
	assert_true(fo_cursor_at_least(c, 0));
	fo_cursor_close(f);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

/* ======================================================================================== */
/* Fork                                                                                     */
/* ======================================================================================== */

static void test_fork_of_lagging_cursor_sees_its_backlog(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 0, 0);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *b = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 20);
	expect_range(a, 0, 10);
	expect_range(b, 0, 3);
	fo_cursor *fa = fork_cursor(b, FO_ACTIVE);
	fo_cursor *fp = fork_cursor(b, FO_PASSIVE);
	fo_cursor *ff = fork_cursor(fa, FO_ACTIVE); /* fork of a fork */
	expect_range(fa, 3, 20);
	expect_empty(fa);
	push_range(s, 20, 25);
	expect_range(fa, 20, 25);
	expect_range(fp, 3, 25);
	expect_range(ff, 3, 25);
	expect_range(b, 3, 25);
	expect_range(a, 10, 25);
	expect_empty(b);
	expect_empty(fp);

	/* A fork of a cursor that never read sees everything since the parent was opened. */
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	fo_cursor *fc = fork_cursor(c, FO_ACTIVE);
	push_range(s, 25, 30);
	expect_range(fc, 25, 30);
	expect_range(c, 25, 30);

	fo_cursor_close(a);
	fo_cursor_close(b);
	fo_cursor_close(fa);
	fo_cursor_close(fp);
	fo_cursor_close(ff);
	fo_cursor_close(c);
	fo_cursor_close(fc);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 30);
	ft_counter_fini(&cnt);
}

static void test_fork_keeps_items_alive_after_parent_closes(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 600);
	fo_stream_opts o = ft_heap_opts(&cnt);
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	for (size_t i = 0; i < 600; i++)
		assert_int_equal(fo_stream_push(s, ft_item_new(i)), FO_OK);
	void *it;
	for (size_t i = 0; i < 100; i++)
		assert_int_equal(fo_cursor_next(a, &it), FO_OK);
	fo_cursor *f = fork_cursor(a, FO_ACTIVE);
	fo_cursor_close(a);
	/* Everything from the fork point on stays alive for f. */
	for (size_t i = 100; i < 600; i++) {
		assert_int_equal(ft_mark(&cnt, i), 0);
		assert_int_equal(fo_cursor_next(f, &it), FO_OK);
		assert_true(ft_item_ok(it));
		assert_int_equal(((ft_item *)it)->seq, i);
	}
	fo_cursor_close(f);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 600);
	ft_counter_fini(&cnt);
}

/* A fork counts for capacity at once: an active fork of an active cursor starts at or above
 * the minimum the producers cached, an active fork of a passive cursor may start below it
 * (and lowers it). */
static void test_active_fork_counts_for_capacity_at_once(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 8, 64);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	push_range(s, 0, 8);
	assert_int_equal(fo_stream_try_push(s, ft_tok(8)), FO_FULL);
	fo_cursor *fa = fork_cursor(a, FO_ACTIVE);
	expect_range(a, 0, 8);
	assert_int_equal(fo_stream_try_push(s, ft_tok(8)), FO_FULL); /* fa holds the room */
	expect_range(fa, 0, 8);
	fo_cursor_close(fa);

	/* The producer's rescan caches a minimum of 8, then 16, far above p's position 0. */
	push_range(s, 8, 16);
	expect_range(a, 8, 16);
	assert_int_equal(fo_stream_try_push(s, ft_tok(16)), FO_OK);
	fo_cursor *fp = fork_cursor(p, FO_ACTIVE);
	assert_int_equal(fo_stream_try_push(s, ft_tok(17)), FO_FULL);
	expect_range(fp, 0, 10);
	assert_int_equal(fo_stream_try_push(s, ft_tok(17)), FO_OK);
	expect_range(fp, 10, 18);
	expect_range(a, 16, 18);
	expect_range(p, 0, 18);

	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_cursor_close(fp);
	fo_stream_destroy(s);
}

static void test_fork_of_drained_cursor_is_drained_at_once(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 2);
	assert_int_equal(fo_stream_close(s), FO_OK);
	fo_cursor *before = fork_cursor(c, FO_ACTIVE); /* closed but not drained */
	expect_range(c, 0, 2);
	expect_end(c);
	fo_cursor *fa = fork_cursor(c, FO_ACTIVE);
	fo_cursor *fp = fork_cursor(c, FO_PASSIVE);
	fo_cursor *fs = fork_cursor(c, FO_SHARED);
	assert_true(fo_cursor_is_drained(fa));
	assert_true(fo_cursor_is_drained(fp));
	assert_true(fo_cursor_is_drained(fs));
	expect_end(fa);
	expect_end(fp);
	expect_end(fs);
	assert_false(fo_cursor_is_drained(before));
	expect_range(before, 0, 2);
	expect_end(before);
	fo_cursor_close(c);
	fo_cursor_close(fa);
	fo_cursor_close(fp);
	fo_cursor_close(fs);
	fo_cursor_close(before);
	fo_stream_destroy(s);

	/* Drained by a failure: the fork reports the same failure. */
	s = make_stream(NULL, 0, 0);
	c = open_cursor(s, FO_ACTIVE);
	assert_int_equal(fo_stream_fail(s, FO_ESYS, "gone"), FO_OK);
	void *it;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_FAILED);
	fa = fork_cursor(c, FO_ACTIVE);
	assert_true(fo_cursor_is_drained(fa));
	assert_int_equal(fo_cursor_try_next(fa, &it), FO_FAILED);
	assert_non_null(fo_cursor_error(fa));
	assert_int_equal(fo_cursor_error(fa)->code, FO_ESYS);
	assert_string_equal(fo_cursor_error(fa)->message, "gone");
	fo_cursor_close(fa);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_bad_flags_are_rejected(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *c = NULL;
	assert_int_equal(fo_stream_cursor(s, &c, FO_PASSIVE | FO_SHARED), FO_EINVAL);
	assert_int_equal(fo_stream_cursor(s, &c, 1u << 2), FO_EINVAL);
	assert_int_equal(fo_stream_cursor(s, &c, ~0u), FO_EINVAL);
	assert_null(c);

	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	fo_cursor *out = NULL;
	assert_int_equal(fo_cursor_fork(a, &out, FO_PASSIVE | FO_SHARED), FO_EINVAL);
	assert_int_equal(fo_cursor_fork(a, &out, 1u << 5), FO_EINVAL);
	assert_int_equal(fo_cursor_fork(a, &out, ~0u), FO_EINVAL);
	assert_int_equal(fo_cursor_fork(p, &out, FO_SHARED), FO_EINVAL);
	assert_int_equal(fo_cursor_fork(p, &out, FO_PASSIVE | FO_SHARED), FO_EINVAL);
	assert_null(out);
	fo_stream_stats st = ft_stats(s);
	assert_int_equal(st.cursors, 2);

	/* The refused calls did not disturb the cursors. */
	push_range(s, 0, 2);
	expect_range(a, 0, 2);
	expect_range(p, 0, 2);
	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_stream_destroy(s);
}

/* ======================================================================================== */
/* Passive cursors                                                                          */
/* ======================================================================================== */

static void test_lagged_is_zero_for_active_and_shared_cursors(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 256);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *g = open_cursor(s, FO_SHARED);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	push_range(s, 0, 10);
	assert_int_equal(fo_cursor_lagged(a), 0);
	assert_int_equal(fo_cursor_lagged(g), 0);
	assert_int_equal(fo_cursor_lagged(p), 0);
	expect_range(p, 0, 10);
	assert_int_equal(fo_cursor_lagged(p), 0);
	fo_cursor_close(a);
	fo_cursor_close(g);
	fo_cursor_close(p);
	fo_stream_destroy(s);
}

static void test_passive_cursor_within_window_sees_every_item(void **state)
{
	(void)state;
	const size_t window = 1024;
	fo_stream *s = make_stream(NULL, 8, window);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	size_t next_p = 0;
	/* The active reader keeps up; the passive one stays at most window/2 behind. */
	for (size_t i = 0; i < 20000; i++) {
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);
		assert_int_equal(read_one(a), i);
		if (i % (window / 2) == 0)
			while (next_p <= i)
				assert_int_equal(read_one(p), next_p++);
	}
	/* Now window - 1 items behind at most: still nothing skipped. */
	expect_range(p, next_p, 20000);
	expect_empty(p);
	assert_int_equal(fo_cursor_lagged(p), 0);
	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_stream_destroy(s);
}

/* Push @n items through an active reader, in chunks, while @p stands still. */
static void flow_past(fo_stream *s, fo_cursor *a, size_t from, size_t n)
{
	void *items[512];
	size_t next = from;
	for (size_t i = from; i < from + n;) {
		size_t chunk = from + n - i < 500 ? from + n - i : 500;
		for (size_t k = 0; k < chunk; k++)
			items[k] = ft_tok(i + k);
		assert_int_equal(fo_stream_push_many(s, items, chunk), FO_OK);
		i += chunk;
		while (next < i) {
			size_t got = 0;
			assert_int_equal(fo_cursor_next_many(a, items, 512, &got), FO_OK);
			for (size_t k = 0; k < got; k++)
				assert_int_equal(ft_seq(items[k]), next + k);
			next += got;
		}
	}
}

static void test_lapped_passive_cursor_reports_lagged_then_continues_in_order(void **state)
{
	(void)state;
	const size_t window = 256, n = ft_scale(100000);
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 0, window);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	fo_cursor *p2 = open_cursor(s, FO_PASSIVE);
	fo_cursor *p3 = open_cursor(s, FO_PASSIVE);
	push_range(s, 0, 1);
	expect_range(p2, 0, 1); /* p2 has read once before being lapped */
	expect_range(a, 0, 1);
	flow_past(s, a, 1, n - 1);

	void *it = NULL;
	assert_int_equal(fo_cursor_try_next(p, &it), FO_LAGGED);
	uint64_t lagged = fo_cursor_lagged(p);
	assert_true(lagged > 0);
	/* The next read continues at the oldest retained item, then in order. */
	assert_int_equal(fo_cursor_try_next(p, &it), FO_OK);
	size_t first = ft_seq(it);
	assert_true(first > 0);
	assert_true(first + window + SEGMENT_SLACK >= n);
	assert_int_equal(lagged, first); /* it skipped exactly the items before `first` */
	const size_t first_p = first;
	expect_range(p, first + 1, n);
	expect_empty(p);
	assert_int_equal(fo_cursor_lagged(p), lagged);

	/* Same for a cursor that had read before; next() (blocking form) reports it too. */
	assert_int_equal(fo_cursor_next(p2, &it), FO_LAGGED);
	assert_int_equal(fo_cursor_next(p2, &it), FO_OK);
	first = ft_seq(it);
	assert_int_equal(fo_cursor_lagged(p2), first - 1);
	expect_range(p2, first + 1, n);

	/* next_many reports the lap too, with no items, then continues. */
	void *batch[64];
	size_t got = 99;
	assert_int_equal(fo_cursor_next_many(p3, batch, 64, &got), FO_LAGGED);
	assert_int_equal(got, 0);
	assert_true(fo_cursor_lagged(p3) > 0);
	assert_int_equal(fo_cursor_next_many(p3, batch, 64, &got), FO_OK);
	assert_true(got >= 1);
	first = ft_seq(batch[0]);
	assert_int_equal(fo_cursor_lagged(p3), first);
	for (size_t i = 1; i < got; i++)
		assert_int_equal(ft_seq(batch[i]), first + i);
	expect_range(p3, first + got, n);
	fo_cursor_close(p3);

	/* A lapped passive cursor keeps working: lap it again.  Every item is either returned
	 * or counted as skipped. */
	flow_past(s, a, n, n);
	size_t k = 0, read_before = n - first_p;
	assert_int_equal(fo_cursor_try_next(p, &it), FO_LAGGED);
	assert_true(fo_cursor_lagged(p) > lagged);
	assert_int_equal(drain_count(p, &k), FO_EMPTY);
	assert_int_equal(fo_cursor_lagged(p) + read_before + k, 2 * n);

	/* An active fork of a lapped passive cursor starts at the oldest retained item. */
	flow_past(s, a, 2 * n, n);
	fo_cursor *f = fork_cursor(p2, FO_ACTIVE);
	assert_int_equal(fo_cursor_try_next(f, &it), FO_OK);
	first = ft_seq(it);
	assert_true(first >= 2 * n && first + window + SEGMENT_SLACK >= 3 * n);
	expect_range(f, first + 1, 3 * n);
	assert_int_equal(fo_cursor_lagged(f), 0);

	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_cursor_close(p2);
	fo_cursor_close(f);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 3 * n);
	ft_counter_fini(&cnt);
}

/* Check the stream pins a bounded amount while a passive cursor is stalled.  Reclamation may
 * be deferred (RCU), so an excess gets up to 2 s of quiet to settle before it counts. */
static bool bounded_now(fo_stream *s, ft_counter *cnt, uint64_t pushed, size_t item_bound,
                        size_t seg_bound, fo_stream_stats *last)
{
	int64_t deadline = ft_now_ns() + FT_MS(2000);
	for (;;) {
		*last = ft_stats(s);
		size_t mine = (size_t)(pushed - ft_freed(cnt));
		if (last->retained_items <= item_bound && mine <= item_bound &&
		    last->live_segments <= seg_bound)
			return true;
		if (ft_now_ns() > deadline)
			return false;
		ft_sleep_ms(1);
	}
}

static void test_stalled_passive_cursor_keeps_memory_bounded(void **state)
{
	(void)state;
	const size_t window = 1024, n = ft_scale(1000000), step = 10000;
	const size_t item_bound = window + SEGMENT_SLACK;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 0, window);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	push_range(s, 0, 1);
	expect_range(p, 0, 1); /* p stands on the first segment, holding item 0 */
	expect_range(a, 0, 1);

	/* Segments in use after the first step are the yardstick: they must not grow. */
	flow_past(s, a, 1, step - 1);
	fo_stream_stats st;
	assert_true(bounded_now(s, &cnt, step, item_bound, SIZE_MAX, &st));
	const size_t seg_bound = 2 * st.live_segments + 4;
	size_t max_retained = 0, max_segments = 0;
	for (size_t done = step; done < n; done += step) {
		flow_past(s, a, done, step);
		bool ok = bounded_now(s, &cnt, done + step, item_bound, seg_bound, &st);
		if (!ok)
			print_message(
			    "after %zu items: retained %zu, segments %zu (bound %zu / %zu)\n",
			    done + step, st.retained_items, st.live_segments, item_bound,
			    seg_bound);
		assert_true(ok);
		if (st.retained_items > max_retained)
			max_retained = st.retained_items;
		if (st.live_segments > max_segments)
			max_segments = st.live_segments;
		assert_int_equal(st.pushed, done + step);
		assert_int_equal(st.cursors, 2);
	}
	print_message("stalled passive: max retained %zu items, max %zu segments\n", max_retained,
	              max_segments);

	void *it;
	assert_int_equal(fo_cursor_try_next(p, &it), FO_LAGGED);
	assert_true(fo_cursor_lagged(p) > 0);
	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), n);
	ft_counter_fini(&cnt);
}

/* ======================================================================================== */
/* Shared cursors                                                                           */
/* ======================================================================================== */

static void test_shared_members_get_disjoint_items_whose_union_is_everything(void **state)
{
	(void)state;
	const size_t n = 1000;
	unsigned seen[1000] = {0};
	ft_counter cnt;
	ft_counter_init(&cnt, n);
	fo_stream *s = make_stream(&cnt, 0, 0);
	fo_cursor *g1 = open_cursor(s, FO_SHARED);
	fo_cursor *g2 = fork_cursor(g1, FO_SHARED);
	fo_cursor *g3 = fork_cursor(g2, FO_SHARED);
	fo_cursor *g[3] = {g1, g2, g3};
	push_range(s, 0, n);
	assert_int_equal(fo_cursor_available(g1), n); /* ready for the group */

	size_t last[3] = {0, 0, 0}, got[3] = {0, 0, 0}, total = 0;
	bool increasing = true;
	for (size_t round = 0; total < n; round++) {
		fo_cursor *c = g[round % 3];
		void *it = NULL;
		int rc = fo_cursor_try_next(c, &it);
		if (rc == FO_EMPTY)
			break;
		assert_int_equal(rc, FO_OK);
		size_t v = ft_seq(it), m = round % 3;
		assert_true(v < n);
		seen[v]++;
		if (got[m] && v <= last[m])
			increasing = false;
		last[m] = v;
		got[m]++;
		total++;
	}
	assert_int_equal(total, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(seen[i], 1);
	assert_true(increasing);
	assert_true(got[0] > 0 && got[1] > 0 && got[2] > 0);
	expect_empty(g1);
	expect_empty(g2);
	expect_empty(g3);

	/* Every member sees FO_END. */
	assert_int_equal(fo_stream_close(s), FO_OK);
	expect_end(g1);
	expect_end(g2);
	expect_end(g3);
	assert_true(fo_cursor_is_drained(g2));
	expect_end(g1);
	fo_cursor_close(g1);
	fo_cursor_close(g2);
	fo_cursor_close(g3);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ft_mark(&cnt, i), 1);
	ft_counter_fini(&cnt);
}

static void test_shared_group_counts_as_one_consumer_for_capacity(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 4, 0);
	fo_cursor *g1 = open_cursor(s, FO_SHARED);
	fo_cursor *g2 = fork_cursor(g1, FO_SHARED);
	push_range(s, 0, 4);
	assert_int_equal(fo_stream_try_push(s, ft_tok(4)), FO_FULL);
	(void)read_one(g1); /* the group took one item: room for one */
	assert_int_equal(fo_stream_try_push(s, ft_tok(4)), FO_OK);
	assert_int_equal(fo_stream_try_push(s, ft_tok(5)), FO_FULL);
	(void)read_one(g2);
	assert_int_equal(fo_stream_try_push(s, ft_tok(5)), FO_OK);
	assert_int_equal(fo_stream_try_push(s, ft_tok(6)), FO_FULL);

	/* One member reading everything keeps the stream flowing: g2 never reads again. */
	const size_t n = 1000;
	for (size_t i = 2; i < 6; i++)
		(void)read_one(g1);
	for (size_t i = 6; i < n; i++) {
		assert_int_equal(fo_stream_try_push(s, ft_tok(i)), FO_OK);
		assert_int_equal(read_one(g1), i);
	}
	expect_empty(g2);
	fo_cursor_close(g1);
	fo_cursor_close(g2);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), n);
	ft_counter_fini(&cnt);
}

static void test_closing_a_shared_member_loses_no_items(void **state)
{
	(void)state;
	const size_t n = 600;
	unsigned seen[600] = {0};
	ft_counter cnt;
	ft_counter_init(&cnt, n);
	fo_stream *s = make_stream(&cnt, 0, 0);
	fo_cursor *g1 = open_cursor(s, FO_SHARED);
	fo_cursor *g2 = fork_cursor(g1, FO_SHARED);
	push_range(s, 0, 300);
	seen[read_one(g1)]++;
	seen[read_one(g1)]++;
	seen[read_one(g2)]++;
	void *items[16];
	size_t k = 0;
	assert_int_equal(fo_cursor_next_many(g1, items, 16, &k), FO_OK);
	for (size_t i = 0; i < k; i++)
		seen[ft_seq(items[i])]++;
	fo_cursor_close(g1); /* everything g1 never returned goes to g2 */
	push_range(s, 300, n);
	void *it;
	int rc;
	while ((rc = fo_cursor_try_next(g2, &it)) == FO_OK)
		seen[ft_seq(it)]++;
	assert_int_equal(rc, FO_EMPTY);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(fo_stream_close(s), FO_OK);
	expect_end(g2);
	fo_cursor_close(g2);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), n);
	ft_counter_fini(&cnt);
}

static void test_timed_out_shared_member_loses_no_item(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *g1 = open_cursor(s, FO_SHARED);
	fo_cursor *g2 = fork_cursor(g1, FO_SHARED);
	void *it;
	assert_int_equal(fo_cursor_timed_next(g1, &it, FT_MS(20)), FO_TIMEDOUT);
	assert_int_equal(fo_cursor_timed_next(g1, &it, 0), FO_TIMEDOUT);
	push_range(s, 0, 1);
	/* g1 holds no claim on the item after timing out: g2 gets it. */
	assert_int_equal(read_one(g2), 0);
	expect_empty(g1);
	assert_int_equal(fo_cursor_timed_next(g2, &it, FT_MS(5)), FO_TIMEDOUT);
	push_range(s, 1, 3);
	size_t a = read_one(g1), b = read_one(g2);
	assert_true((a == 1 && b == 2) || (a == 2 && b == 1));
	fo_cursor_close(g1);
	fo_cursor_close(g2);
	fo_stream_destroy(s);
}

static void test_non_shared_fork_of_member_starts_at_next_unclaimed_item(void **state)
{
	(void)state;
	const size_t n = 10;
	unsigned seen[10] = {0};
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *g1 = open_cursor(s, FO_SHARED);
	fo_cursor *g2 = fork_cursor(g1, FO_SHARED);
	push_range(s, 0, n);
	/* The group as a whole takes items in stream order: 0, 1, 2 (whichever member). */
	seen[read_one(g1)]++;
	seen[read_one(g2)]++;
	seen[read_one(g1)]++;
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(seen[i], 1);
	fo_cursor *fa = fork_cursor(g2, FO_ACTIVE);
	fo_cursor *fp = fork_cursor(g1, FO_PASSIVE);
	/* The forks are independent: they see 3.. whatever the group does afterwards. */
	seen[read_one(g2)]++;
	expect_range(fa, 3, n);
	expect_range(fp, 3, n);
	size_t m = 0;
	void *it;
	while (fo_cursor_try_next(m++ % 2 ? g1 : g2, &it) == FO_OK)
		seen[ft_seq(it)]++;
	while (fo_cursor_try_next(g1, &it) == FO_OK)
		seen[ft_seq(it)]++;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(fo_cursor_lagged(fa), 0);
	fo_cursor_close(g1);
	fo_cursor_close(g2);
	fo_cursor_close(fa);
	fo_cursor_close(fp);
	fo_stream_destroy(s);
}

static void test_shared_fork_of_plain_cursor_splits_from_fork_point(void **state)
{
	(void)state;
	const size_t n = 100;
	unsigned seen[100] = {0};
	fo_stream *s = make_stream(NULL, 0, 0);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *other = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, n);
	expect_range(a, 0, 2);
	fo_cursor *b = fork_cursor(a, FO_SHARED); /* a and b now form a group */
	size_t m = 0;
	void *it;
	for (;;) {
		fo_cursor *c = m++ % 2 ? a : b;
		if (fo_cursor_try_next(c, &it) != FO_OK)
			break;
		seen[ft_seq(it)]++;
	}
	expect_empty(a);
	expect_empty(b);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(seen[i], 0);
	for (size_t i = 2; i < n; i++)
		assert_int_equal(seen[i], 1);
	/* A cursor outside the group is unaffected. */
	expect_range(other, 0, n);
	assert_int_equal(fo_stream_close(s), FO_OK);
	expect_end(a);
	expect_end(b);
	expect_end(other);
	fo_cursor_close(a);
	fo_cursor_close(b);
	fo_cursor_close(other);
	fo_stream_destroy(s);
}

/* Two members on two threads, the producer on the main thread. */
struct member_job {
	pthread_t tid;
	fo_cursor *c;
	size_t *got; /* sequences taken, in order */
	size_t cap;
	size_t n;
	int final_rc;
	bool overflow;
};

static void *member_job_main(void *arg)
{
	struct member_job *j = arg;
	void *it;
	int rc;
	while ((rc = fo_cursor_next(j->c, &it)) == FO_OK) {
		if (j->n == j->cap) {
			j->overflow = true;
			continue;
		}
		j->got[j->n++] = ft_seq(it);
	}
	j->final_rc = rc;
	return NULL;
}

static void test_shared_members_on_two_threads_split_everything(void **state)
{
	(void)state;
	const size_t n = ft_scale(200000);
	ft_counter cnt;
	ft_counter_init(&cnt, n);
	fo_stream *s = make_stream(&cnt, 128, 0);
	fo_cursor *g1 = open_cursor(s, FO_SHARED);
	fo_cursor *g2 = fork_cursor(g1, FO_SHARED);
	struct member_job j[2];
	for (size_t i = 0; i < 2; i++) {
		j[i] = (struct member_job){.c = i ? g2 : g1, .cap = n};
		j[i].got = malloc(n * sizeof(size_t));
		assert_non_null(j[i].got);
		assert_int_equal(pthread_create(&j[i].tid, NULL, member_job_main, &j[i]), 0);
	}
	push_range(s, 0, n);
	assert_int_equal(fo_stream_close(s), FO_OK);
	for (size_t i = 0; i < 2; i++)
		pthread_join(j[i].tid, NULL);

	unsigned char *seen = calloc(n, 1);
	assert_non_null(seen);
	bool increasing = true, dup = false, range = true;
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(j[i].final_rc, FO_END);
		assert_false(j[i].overflow);
		for (size_t k = 0; k < j[i].n; k++) {
			size_t v = j[i].got[k];
			if (v >= n) {
				range = false;
				continue;
			}
			if (seen[v])
				dup = true;
			seen[v] = 1;
			if (k && v <= j[i].got[k - 1])
				increasing = false;
		}
	}
	assert_true(range);
	assert_false(dup);
	assert_true(increasing);
	assert_int_equal(j[0].n + j[1].n, n);
	free(seen);
	free(j[0].got);
	free(j[1].got);
	fo_cursor_close(g1);
	fo_cursor_close(g2);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ft_mark(&cnt, i), 1);
	ft_counter_fini(&cnt);
}

/* ======================================================================================== */
/* Stats                                                                                    */
/* ======================================================================================== */

static void test_stats_count_pushed_cursors_and_retained_items(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream *s = make_stream(&cnt, 0, 0);
	fo_stream_stats st;
	memset(&st, 0xff, sizeof(st));
	assert_int_equal(fo_stream_get_stats(s, &st), FO_OK);
	assert_int_equal(st.pushed, 0);
	assert_int_equal(st.cursors, 0);
	assert_int_equal(st.retained_items, 0);
	assert_true(st.live_bytes > 0 || st.live_segments == 0);

	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	fo_cursor *g = fork_cursor(a, FO_SHARED);
	push_range(s, 0, 10);
	st = ft_stats(s);
	assert_int_equal(st.pushed, 10);
	assert_int_equal(st.cursors, 3);
	assert_int_equal(st.retained_items, 10);
	assert_true(st.live_segments >= 1);
	assert_true(st.live_bytes > 0);

	fo_cursor_close(g);
	fo_cursor_close(p);
	st = ft_stats(s);
	assert_int_equal(st.cursors, 1);
	fo_cursor_close(a);
	push_range(s, 10, 15);
	st = ft_stats(s);
	assert_int_equal(st.pushed, 15);
	assert_int_equal(st.cursors, 0);
	assert_int_equal(st.retained_items, 0);
	assert_int_equal(ft_freed(&cnt), 15);
	fo_stream_destroy(s);
	ft_counter_fini(&cnt);
}

/* single_producer: the same results as the default, with reclamation and a lapped tap. */
static void test_single_producer_stream_delivers_and_frees_everything(void **state)
{
	(void)state;
	const size_t n = ft_scale(200000), window = 512;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream_opts o = ft_opts(&cnt);
	o.single_producer = true;
	o.passive_window = window;
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	fo_cursor *a = open_cursor(s, FO_ACTIVE);
	fo_cursor *p = open_cursor(s, FO_PASSIVE);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
		if (i % 1000 == 999)
			expect_range(a, i - 999, i + 1);
	}
	void *it;
	assert_int_equal(fo_cursor_try_next(p, &it), FO_LAGGED);
	assert_true(fo_cursor_lagged(p) > 0);
	fo_stream_stats st = ft_stats(s);
	assert_true(st.retained_items <= window + 2 * 256 + 256);
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_int_equal(fo_cursor_try_next(a, &it), FO_END);
	fo_cursor_close(a);
	fo_cursor_close(p);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), n);
	ft_counter_fini(&cnt);
}

/* fo_stream_wait_room: room for n without pushing; exact for one producer. */
static void test_wait_room_reports_room_without_pushing(void **state)
{
	(void)state;
	fo_stream *s = make_stream(NULL, 4, 0);
	assert_int_equal(fo_stream_wait_room(NULL, 1, 0), FO_EINVAL);
	assert_int_equal(fo_stream_wait_room(s, 0, 0), FO_EINVAL);
	assert_int_equal(fo_stream_wait_room(s, 5, 0), FO_EINVAL);
	assert_int_equal(fo_stream_wait_room(s, 4, 0), FO_OK); /* no active cursor */
	fo_cursor *c = open_cursor(s, FO_ACTIVE);
	push_range(s, 0, 3);
	assert_int_equal(fo_stream_wait_room(s, 1, 0), FO_OK);
	assert_int_equal(fo_stream_wait_room(s, 2, 0), FO_FULL);
	assert_int_equal(fo_stream_wait_room(s, 2, FT_MS(10)), FO_TIMEDOUT);
	expect_range(c, 0, 1);
	assert_int_equal(fo_stream_wait_room(s, 2, -1), FO_OK);
	assert_int_equal(fo_cursor_kind(c), FO_ACTIVE);
	assert_int_equal(fo_cursor_kind(NULL), FO_EINVAL);
	fo_cursor *p = fork_cursor(c, FO_PASSIVE), *m = fork_cursor(c, FO_SHARED);
	assert_int_equal(fo_cursor_kind(p), FO_PASSIVE);
	assert_int_equal(fo_cursor_kind(m), FO_SHARED);
	assert_int_equal(fo_cursor_kind(c), FO_SHARED); /* c joined the group */
	assert_int_equal(fo_stream_close(s), FO_OK);
	assert_int_equal(fo_stream_wait_room(s, 1, 0), FO_ECLOSED);
	fo_cursor_close(p);
	fo_cursor_close(m);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    /* first: installs its own allocator while no fanout object exists */
	    cmocka_unit_test_teardown(
	        test_every_allocation_failure_gives_enomem_loses_and_leaks_nothing, fi_teardown),
	    cmocka_unit_test(test_opts_init_fills_defaults),
	    cmocka_unit_test(test_create_accepts_null_opts_and_rejects_null_out),
	    cmocka_unit_test(test_null_handles_are_rejected_or_ignored),
	    cmocka_unit_test(test_push_of_null_item_is_rejected_and_changes_nothing),
	    cmocka_unit_test(test_push_after_close_returns_eclosed_and_caller_keeps_item),
	    cmocka_unit_test(test_close_is_idempotent),
	    cmocka_unit_test(test_items_pushed_with_no_cursor_are_freed_at_once),
	    cmocka_unit_test(test_closing_last_cursor_frees_its_unread_items),
	    cmocka_unit_test(test_cursor_sees_only_items_pushed_after_its_creation),
	    cmocka_unit_test(test_push_many_is_contiguous_and_in_order),
	    cmocka_unit_test(test_push_many_is_all_or_nothing),
	    cmocka_unit_test(test_push_many_batches_from_two_threads_stay_contiguous),
	    cmocka_unit_test(test_each_producer_thread_keeps_its_order),
	    cmocka_unit_test(test_try_push_on_full_bounded_stream_returns_full),
	    cmocka_unit_test(test_timed_push_on_full_stream_times_out),
	    cmocka_unit_test(test_push_waits_for_room_then_succeeds),
	    cmocka_unit_test(test_second_producer_while_first_waits_for_room),
	    cmocka_unit_test(test_push_waiting_for_room_returns_eclosed_on_close),
	    cmocka_unit_test(test_capacity_counts_active_cursors_only),
	    cmocka_unit_test(test_stream_with_no_cursor_never_fills),
	    cmocka_unit_test(test_fail_delivers_pending_items_then_failed_with_error),
	    cmocka_unit_test(test_fail_with_code_zero_and_null_message_uses_defaults),
	    cmocka_unit_test(test_first_end_wins_between_close_and_fail),
	    cmocka_unit_test(test_closed_is_not_drained_until_end_is_returned),
	    cmocka_unit_test(test_end_is_sticky_for_every_read_form),
	    cmocka_unit_test(test_cursor_opened_on_closed_stream_reads_end),
	    cmocka_unit_test(test_bug7_cursor_opened_on_failed_stream_reads_failed_with_error),
	    cmocka_unit_test(test_blocking_next_wakes_on_push_and_on_close),
	    cmocka_unit_test(test_destroy_first_then_last_cursor_close_frees_every_item),
	    cmocka_unit_test(test_close_cursors_first_then_destroy_frees_every_item),
	    cmocka_unit_test(test_destructor_runs_once_per_item_with_every_cursor_kind),
	    cmocka_unit_test(test_try_next_and_timed_next_on_empty_stream),
	    cmocka_unit_test(test_timeout_affects_neither_stream_nor_other_cursors),
	    cmocka_unit_test(test_next_many_returns_partial_batches_then_empty),
	    cmocka_unit_test(test_available_and_at_least_count_ready_items),
	    cmocka_unit_test(test_fork_of_lagging_cursor_sees_its_backlog),
	    cmocka_unit_test(test_fork_keeps_items_alive_after_parent_closes),
	    cmocka_unit_test(test_fork_of_drained_cursor_is_drained_at_once),
	    cmocka_unit_test(test_active_fork_counts_for_capacity_at_once),
	    cmocka_unit_test(test_bad_flags_are_rejected),
	    cmocka_unit_test(test_lagged_is_zero_for_active_and_shared_cursors),
	    cmocka_unit_test(test_passive_cursor_within_window_sees_every_item),
	    cmocka_unit_test(test_lapped_passive_cursor_reports_lagged_then_continues_in_order),
	    cmocka_unit_test(test_stalled_passive_cursor_keeps_memory_bounded),
	    cmocka_unit_test(test_shared_members_get_disjoint_items_whose_union_is_everything),
	    cmocka_unit_test(test_shared_group_counts_as_one_consumer_for_capacity),
	    cmocka_unit_test(test_closing_a_shared_member_loses_no_items),
	    cmocka_unit_test(test_timed_out_shared_member_loses_no_item),
	    cmocka_unit_test(test_non_shared_fork_of_member_starts_at_next_unclaimed_item),
	    cmocka_unit_test(test_shared_fork_of_plain_cursor_splits_from_fork_point),
	    cmocka_unit_test(test_shared_members_on_two_threads_split_everything),
	    cmocka_unit_test(test_stats_count_pushed_cursors_and_retained_items),
	    cmocka_unit_test(test_single_producer_stream_delivers_and_frees_everything),
	    cmocka_unit_test(test_wait_room_reports_room_without_pushing),
	};
	return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}

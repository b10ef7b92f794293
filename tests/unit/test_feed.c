/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_feed.c - fanout/feed.h: BACKGROUND read-ahead depth, ON_DEMAND single-flight pulls,
 * passive cursors never pulling, errors reaching every cursor after the items before them,
 * the work-sharing recipe, every return code; SEMANTICS.md §8 rows for fork, passive fork,
 * single-flight pull, preload, active drain and sharable, named after their edge cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ft_flow.h"

static ft_counter cnt;

static fo_feed_opts opts(fo_feed_mode m, size_t ahead)
{
	fo_feed_opts o;
	fo_feed_opts_init(&o);
	o.mode = m;
	o.ahead = ahead;
	return o;
}

static size_t read_seq(fo_cursor *c)
{
	void *x;
	assert_int_equal(fo_cursor_next(c, &x), FO_OK);
	return (size_t)((ft_item *)x)->seq;
}

static void test_feed_background_reads_exactly_ahead(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 1000, 0);
	ft_valve_open(&v, SIZE_MAX);
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_BACKGROUND, 4);
	fo_feeder *f;
	fo_cursor *c;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	FT_WAIT_UNTIL(ft_valve_pulls(&v) >= 4, 2000);
	ft_sleep_ms(20);
	assert_int_equal(ft_valve_pulls(&v),
	                 4); /* all 4 in the stream, none in the thread's hand */
	assert_int_equal(fo_feed_pulled(f), 4);
	assert_int_equal(atomic_load(&v.calls), 4); /* not even a pull started */
	for (size_t k = 0; k < 3; k++)
		assert_int_equal(read_seq(c), k);
	FT_WAIT_UNTIL(ft_valve_pulls(&v) >= 7, 2000);
	ft_sleep_ms(20);
	assert_int_equal(ft_valve_pulls(&v), 7); /* 3 read + exactly 4 ahead */
	/* A passive fork never holds the thread back, an active one does. */
	fo_cursor *p, *a;
	assert_int_equal(fo_cursor_fork(c, &p, FO_PASSIVE), FO_OK);
	assert_int_equal(fo_cursor_fork(c, &a, FO_ACTIVE), FO_OK);
	for (size_t k = 3; k < 7; k++)
		assert_int_equal(read_seq(c), k);
	ft_sleep_ms(30);
	assert_int_equal(ft_valve_pulls(&v), 7); /* a (at 3) has 4 unread: full */
	fo_cursor_close(a);                      /* now c (at 7) is the slowest active one */
	FT_WAIT_UNTIL(ft_valve_pulls(&v) >= 11, 2000);
	ft_sleep_ms(20);
	assert_int_equal(ft_valve_pulls(&v), 11);
	fo_cursor_close(p);
	fo_feed_destroy(f); /* the source had not ended: FO_ECANCELED after the items */
	size_t n = 0;
	void *x;
	int rc;
	while ((rc = fo_cursor_next(c, &x)) == FO_OK)
		n++;
	assert_int_equal(rc, FO_FAILED);
	assert_int_equal(fo_cursor_error(c)->code, FO_ECANCELED);
	assert_int_equal(n, 4); /* exactly the 4 ahead */
	fo_cursor_close(c);
	assert_int_equal(atomic_load(&v.closes), 1);
	assert_int_equal(ft_freed(&cnt), ft_valve_pulls(&v)); /* every pulled item freed once */
	ft_valve_fini(&v);
}

static void test_feed_active_drain_pulls_everything_eagerly(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 300, 0);
	ft_valve_open(&v, SIZE_MAX);
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_BACKGROUND, 0);
	fo_feeder *f;
	fo_cursor *c;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	FT_WAIT_UNTIL(ft_valve_pulls(&v) == 300, 2000);
	assert_int_equal(ft_valve_pulls(&v), 300); /* nobody read: still drained */
	for (size_t k = 0; k < 300; k++)
		assert_int_equal(read_seq(c), k);
	void *x;
	assert_int_equal(fo_cursor_next(c, &x), FO_END);
	fo_feed_destroy(f);
	fo_cursor_close(c);
	assert_int_equal(ft_freed(&cnt), 300);
	ft_valve_fini(&v);
}

static void test_feed_source_error_after_k_items_then_error_for_every_cursor(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		ft_valve v;
		ft_valve_init(&v, 100, 0);
		ft_valve_open(&v, SIZE_MAX);
		v.fail_at = 3;
		v.fail_code = 1234;
		ft_counter_init(&cnt, 0);
		fo_feed_opts o = opts((fo_feed_mode)mode, 8);
		fo_feeder *f;
		fo_cursor *c, *d, *p;
		assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
		assert_int_equal(fo_cursor_fork(c, &d, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_cursor_fork(c, &p, FO_PASSIVE), FO_OK);
		fo_cursor *cs[2] = {c, d};
		for (int k = 0; k < 2; k++) {
			void *x;
			for (size_t i = 0; i < 3; i++) {
				assert_int_equal(fo_feed_next(f, cs[k], &x), FO_OK);
				assert_int_equal(((ft_item *)x)->seq, i);
			}
			assert_int_equal(fo_feed_next(f, cs[k], &x), FO_FAILED);
			assert_int_equal(fo_cursor_error(cs[k])->code, 1234);
			assert_int_equal(fo_feed_next(f, cs[k], &x), FO_FAILED); /* sticky */
		}
		void *x;
		for (size_t i = 0; i < 3; i++)
			assert_int_equal(fo_cursor_next(p, &x), FO_OK);
		assert_int_equal(fo_cursor_next(p, &x), FO_FAILED);
		/* fork after ERROR sees ERROR at once */
		fo_cursor *late;
		assert_int_equal(fo_cursor_fork(c, &late, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_cursor_try_next(late, &x), FO_FAILED);
		fo_cursor_close(late);
		fo_feed_destroy(f);
		fo_cursor_close(c);
		fo_cursor_close(d);
		fo_cursor_close(p);
		assert_int_equal(ft_freed(&cnt), 3);
		ft_valve_fini(&v);
	}
}

static void test_feed_on_demand_never_prefetches(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 10, 0);
	ft_valve_open(&v, SIZE_MAX);
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_ON_DEMAND, 99 /* ignored */);
	fo_feeder *f;
	fo_cursor *c, *d;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	ft_sleep_ms(5);
	assert_int_equal(ft_valve_pulls(&v), 0);
	void *x;
	assert_int_equal(fo_feed_next(f, c, &x), FO_OK);
	assert_int_equal(ft_valve_pulls(&v), 1);
	assert_int_equal(fo_cursor_fork(c, &d, FO_ACTIVE), FO_OK); /* at c's position */
	assert_int_equal(fo_feed_next(f, c, &x), FO_OK);           /* c pulls item 1 */
	assert_int_equal(fo_feed_next(f, d, &x), FO_OK);           /* d reads it: no pull */
	assert_int_equal(((ft_item *)x)->seq, 1);
	assert_int_equal(ft_valve_pulls(&v), 2);
	/* A lagging fork's fork sees the laggard's backlog. */
	fo_cursor *dd;
	assert_int_equal(fo_feed_next(f, c, &x), FO_OK); /* c: item 2 */
	assert_int_equal(fo_cursor_fork(d, &dd, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_cursor_try_next(dd, &x), FO_OK);
	assert_int_equal(((ft_item *)x)->seq, 2);
	fo_cursor_close(dd);
	fo_feed_destroy(f);
	fo_cursor_close(c);
	fo_cursor_close(d);
	ft_valve_fini(&v);
}

static void test_feed_only_passive_readers_block_and_never_call_the_source(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 10, 0);
	ft_valve_open(&v, SIZE_MAX);
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_ON_DEMAND, 0);
	fo_feeder *f;
	fo_cursor *c, *p;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	assert_int_equal(fo_cursor_fork(c, &p, FO_PASSIVE), FO_OK);
	fo_cursor_close(c); /* only a passive reader is left */
	void *x;
	assert_int_equal(fo_cursor_timed_next(p, &x, FT_MS(20)), FO_TIMEDOUT);
	assert_int_equal(fo_cursor_try_next(p, &x), FO_EMPTY);
	assert_int_equal(atomic_load(&v.calls), 0);
	fo_feed_destroy(f);
	assert_int_equal(fo_cursor_next(p, &x), FO_FAILED);
	fo_cursor_close(p);
	ft_valve_fini(&v);
}

/* ---- threads: single-flight pulls ------------------------------------------------------------ */

typedef struct reader {
	fo_feeder *f;
	fo_cursor *c;
	int rc;
	size_t got;
	int64_t timeout;
	size_t first;
} reader;

static void *reader_main(void *arg)
{
	reader *r = arg;
	void *x;
	r->rc = r->timeout ? fo_feed_timed_next(r->f, r->c, &x, r->timeout)
	                   : fo_feed_next(r->f, r->c, &x);
	if (r->rc == FO_OK) {
		r->first = (size_t)((ft_item *)x)->seq;
		r->got++;
	}
	return NULL;
}

static void test_feed_two_active_readers_released_by_one_pull(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 10, 0); /* closed: the puller waits inside the source */
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_ON_DEMAND, 0);
	fo_feeder *f;
	fo_cursor *c, *d;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	assert_int_equal(fo_cursor_fork(c, &d, FO_ACTIVE), FO_OK);
	reader r1 = {f, c, 0, 0, 0, 0}, r2 = {f, d, 0, 0, 0, 0};
	pthread_t t1, t2;
	pthread_create(&t1, NULL, reader_main, &r1);
	pthread_create(&t2, NULL, reader_main, &r2);
	ft_sleep_ms(20);
	assert_int_equal(atomic_load(&v.calls), 1); /* one puller */
	ft_valve_open(&v, 1);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(r1.rc, FO_OK);
	assert_int_equal(r2.rc, FO_OK);
	assert_int_equal(r1.first, 0);
	assert_int_equal(r2.first, 0);
	assert_int_equal(ft_valve_pulls(&v), 1);
	fo_feed_destroy(f);
	fo_cursor_close(c);
	fo_cursor_close(d);
	ft_valve_fini(&v);
}

static void test_feed_puller_erroring_other_readers_do_not_hang(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 10, 0);
	v.fail_at = 0;
	v.fail_code = 66;
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_ON_DEMAND, 0);
	fo_feeder *f;
	fo_cursor *c[4];
	assert_int_equal(fo_feed_create(&f, &c[0], ft_valve_iter(&v, &cnt), &o), FO_OK);
	for (int i = 1; i < 4; i++)
		assert_int_equal(fo_cursor_fork(c[0], &c[i], FO_ACTIVE), FO_OK);
	reader r[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (reader){f, c[i], 0, 0, 0, 0};
		pthread_create(&t[i], NULL, reader_main, &r[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].rc, FO_FAILED);
		assert_int_equal(fo_cursor_error(c[i])->code, 66);
	}
	assert_int_equal(atomic_load(&v.calls), 1);
	fo_feed_destroy(f);
	for (int i = 0; i < 4; i++)
		fo_cursor_close(c[i]);
	ft_valve_fini(&v);
}

static void test_feed_puller_timeout_hands_the_role_on(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 10, 0);
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_ON_DEMAND, 0);
	fo_feeder *f;
	fo_cursor *c, *d;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	assert_int_equal(fo_cursor_fork(c, &d, FO_ACTIVE), FO_OK);
	reader quick = {f, c, 0, 0, FT_MS(30), 0}, patient = {f, d, 0, 0, 0, 0};
	pthread_t t1, t2;
	pthread_create(&t1, NULL, reader_main, &quick); /* becomes the puller, times out */
	ft_sleep_ms(5);
	pthread_create(&t2, NULL, reader_main, &patient); /* waits, then takes the role */
	pthread_join(t1, NULL);
	assert_int_equal(quick.rc, FO_TIMEDOUT);
	ft_sleep_ms(10);
	ft_valve_open(&v, 1);
	pthread_join(t2, NULL);
	assert_int_equal(patient.rc, FO_OK);
	assert_int_equal(patient.first, 0);
	void *x; /* the timed-out reader lost nothing */
	assert_int_equal(fo_feed_try_next(f, c, &x), FO_OK);
	assert_int_equal(((ft_item *)x)->seq, 0);
	assert_int_equal(fo_feed_try_next(f, c, &x), FO_EMPTY); /* try: one non-waiting pull */
	assert_int_equal(fo_feed_timed_next(f, c, &x, 0), FO_TIMEDOUT);
	fo_feed_destroy(f);
	fo_cursor_close(c);
	fo_cursor_close(d);
	ft_valve_fini(&v);
}

/* ---- work sharing --------------------------------------------------------------------------- */

typedef struct worker {
	fo_feeder *f;
	fo_cursor *c;
	size_t got;
	unsigned char *seen;
	int rc;
} worker;

static void *worker_main(void *arg)
{
	worker *w = arg;
	void *x;
	while ((w->rc = fo_feed_next(w->f, w->c, &x)) == FO_OK) {
		w->seen[((ft_item *)x)->seq]++;
		w->got++;
	}
	return NULL;
}

static void test_feed_work_sharing_recipe_each_item_to_exactly_one_worker(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		size_t n = ft_scale(20000);
		ft_valve v;
		ft_valve_init(&v, n, 0);
		ft_valve_open(&v, SIZE_MAX);
		ft_counter_init(&cnt, 0);
		fo_feed_opts o = opts((fo_feed_mode)mode, 64);
		fo_feeder *f;
		fo_cursor *c[3];
		assert_int_equal(fo_feed_create(&f, &c[0], ft_valve_iter(&v, &cnt), &o), FO_OK);
		assert_int_equal(fo_cursor_fork(c[0], &c[1], FO_SHARED), FO_OK);
		assert_int_equal(fo_cursor_fork(c[0], &c[2], FO_SHARED), FO_OK);
		unsigned char *seen = calloc(n, 1);
		worker w[3];
		pthread_t t[3];
		for (int i = 0; i < 3; i++) {
			w[i] = (worker){f, c[i], 0, seen, 0};
			pthread_create(&t[i], NULL, worker_main, &w[i]);
		}
		size_t total = 0;
		for (int i = 0; i < 3; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(w[i].rc, FO_END);
			total += w[i].got;
		}
		assert_int_equal(total, n);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(seen[i], 1);
		free(seen);
		fo_feed_destroy(f);
		for (int i = 0; i < 3; i++)
			fo_cursor_close(c[i]);
		assert_int_equal(ft_freed(&cnt), n);
		ft_valve_fini(&v);
	}
}

static void test_feed_sharable_two_readers_blocked_when_the_source_ends_both_get_end(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 0, 0);
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_ON_DEMAND, 0);
	fo_feeder *f;
	fo_cursor *c, *d;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	assert_int_equal(fo_cursor_fork(c, &d, FO_SHARED), FO_OK);
	reader r1 = {f, c, 0, 0, 0, 0}, r2 = {f, d, 0, 0, 0, 0};
	pthread_t t1, t2;
	pthread_create(&t1, NULL, reader_main, &r1);
	pthread_create(&t2, NULL, reader_main, &r2);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(r1.rc, FO_END);
	assert_int_equal(r2.rc, FO_END);
	fo_feed_destroy(f);
	fo_cursor_close(c);
	fo_cursor_close(d);
	ft_valve_fini(&v);
}

/* ---- passive cursors never pull --------------------------------------------------------- */

static void test_feed_next_refuses_a_passive_cursor(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		ft_valve v;
		ft_valve_init(&v, 10, 0);
		ft_valve_open(&v, SIZE_MAX);
		ft_counter_init(&cnt, 0);
		fo_feed_opts o = opts(mode ? FO_FEED_ON_DEMAND : FO_FEED_BACKGROUND, 2);
		fo_feeder *f;
		fo_cursor *c, *p, *m;
		assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
		assert_int_equal(fo_cursor_fork(c, &p, FO_PASSIVE), FO_OK);
		assert_int_equal(fo_cursor_kind(p), FO_PASSIVE);
		size_t calls = atomic_load(&v.calls);
		void *x;
		fo_iter *it = NULL;
		assert_int_equal(fo_feed_next(f, p, &x), FO_EINVAL);
		assert_int_equal(fo_feed_try_next(f, p, &x), FO_EINVAL);
		assert_int_equal(fo_feed_timed_next(f, p, &x, FT_MS(1)), FO_EINVAL);
		assert_int_equal(fo_feed_iter(&it, f, p, NULL, NULL, NULL), FO_EINVAL);
		assert_null(it);
		if (mode) /* ON_DEMAND: none of that pulled */
			assert_int_equal(atomic_load(&v.calls), calls);
		/* Active cursors and share-group members are fine. */
		assert_int_equal(fo_cursor_fork(c, &m, FO_SHARED), FO_OK);
		assert_int_equal(fo_cursor_kind(m), FO_SHARED);
		assert_int_equal(fo_feed_next(f, m, &x), FO_OK);
		assert_int_equal(fo_feed_next(f, c, &x), FO_OK);
		/* The passive cursor reads with fo_cursor_*(): the items others pulled. */
		assert_int_equal(fo_cursor_next(p, &x), FO_OK);
		assert_int_equal(((ft_item *)x)->seq, 0);
		fo_feed_destroy(f);
		fo_cursor_close(c);
		fo_cursor_close(m);
		fo_cursor_close(p);
		assert_int_equal(ft_freed(&cnt), ft_valve_pulls(&v));
		ft_valve_fini(&v);
	}
}

/* ---- misc ----------------------------------------------------------------------------------- */

static void test_feed_detached_form_and_feed_iter(void **state)
{
	(void)state;
	ft_valve v;
	ft_valve_init(&v, 50, 0);
	ft_valve_open(&v, SIZE_MAX);
	ft_counter_init(&cnt, 0);
	fo_feed_opts o = opts(FO_FEED_ON_DEMAND, 0);
	fo_cursor *c;
	fo_iter *keep = ft_valve_iter(&v, &cnt);
	assert_int_equal(fo_feed(&c, keep, &o), FO_EINVAL); /* needs a handle; caller keeps src */
	fo_iter_close(keep);
	atomic_store(&v.closes, 0);
	o = opts(FO_FEED_BACKGROUND, 8);
	assert_int_equal(fo_feed(&c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	for (size_t i = 0; i < 50; i++)
		assert_int_equal(read_seq(c), i);
	void *x;
	assert_int_equal(fo_cursor_next(c, &x), FO_END);
	fo_cursor_close(c);
	FT_WAIT_UNTIL(atomic_load(&v.closes) == 1, 2000); /* the thread cleaned up */
	assert_int_equal(atomic_load(&v.closes), 1);
	assert_int_equal(ft_freed(&cnt), 50);
	ft_valve_fini(&v);

	/* A detached feed waiting for room stops once its last cursor closes. */
	ft_valve_init(&v, 1000, 0);
	ft_valve_open(&v, SIZE_MAX);
	ft_counter_init(&cnt, 0);
	o = opts(FO_FEED_BACKGROUND, 3);
	assert_int_equal(fo_feed(&c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	FT_WAIT_UNTIL(ft_valve_pulls(&v) >= 3, 2000);
	ft_sleep_ms(10);
	assert_int_equal(ft_valve_pulls(&v), 3); /* exactly ahead, waiting for room */
	fo_cursor_close(c);
	FT_WAIT_UNTIL(atomic_load(&v.closes) == 1, 2000);
	assert_int_equal(atomic_load(&v.closes), 1);
	assert_true(ft_valve_pulls(&v) <= 4); /* at most one more, pulled as the last cursor went */
	FT_WAIT_UNTIL(ft_freed(&cnt) == ft_valve_pulls(&v), 2000);
	assert_int_equal(ft_freed(&cnt), ft_valve_pulls(&v));
	ft_valve_fini(&v);

	/* fo_feed_iter: an iterator that pulls on demand */
	ft_valve_init(&v, 5, 0);
	ft_valve_open(&v, SIZE_MAX);
	o = opts(FO_FEED_ON_DEMAND, 0);
	fo_feeder *f;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	fo_iter *it;
	assert_int_equal(fo_feed_iter(&it, f, c, NULL, ft_item_free, NULL), FO_EINVAL);
	assert_int_equal(fo_feed_iter(&it, f, c, NULL, NULL, NULL), FO_OK);
	assert_true(fo_iter_borrows(it));
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(fo_iter_next(it, &x), FO_OK);
		assert_int_equal(((ft_item *)x)->seq, i);
	}
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	fo_iter_close(it);
	fo_feed_destroy(f);
	ft_valve_fini(&v);
}

static void test_feed_invalid_arguments(void **state)
{
	(void)state;
	fo_iter *src;
	fo_feeder *f = NULL;
	fo_cursor *c = NULL;
	void *x;
	assert_int_equal(fo_iter_from_array(&src, NULL, 0), FO_OK);
	fo_feed_opts o = opts((fo_feed_mode)5, 0);
	assert_int_equal(fo_feed_create(&f, &c, src, &o), FO_EINVAL);
	assert_int_equal(fo_feed_create(NULL, &c, src, NULL), FO_EINVAL);
	assert_int_equal(fo_feed_create(&f, NULL, src, NULL), FO_EINVAL);
	assert_int_equal(fo_feed_create(&f, &c, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_feed(NULL, src, NULL), FO_EINVAL);
	fo_stream *s;
	fo_cursor *sc;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &sc, FO_ACTIVE), FO_OK);
	fo_iter *borrow;
	assert_int_equal(fo_iter_from_cursor(&borrow, sc, NULL, NULL, NULL), FO_OK);
	assert_int_equal(fo_feed_create(&f, &c, borrow, NULL), FO_EINVAL);
	fo_iter_close(borrow);
	fo_stream_destroy(s);
	assert_null(f);
	assert_null(c);
	assert_int_equal(fo_feed_create(&f, &c, src, NULL), FO_OK); /* empty: END */
	assert_int_equal(fo_feed_next(NULL, c, &x), FO_EINVAL);
	assert_int_equal(fo_feed_next(f, NULL, &x), FO_EINVAL);
	assert_int_equal(fo_feed_next(f, c, NULL), FO_EINVAL);
	assert_int_equal(fo_feed_try_next(NULL, c, &x), FO_EINVAL);
	assert_int_equal(fo_feed_timed_next(f, c, &x, -1), FO_END); /* negative: no limit */
	assert_int_equal(fo_feed_iter(NULL, f, c, NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_feed_next(f, c, &x), FO_END);
	assert_int_equal(fo_feed_pulled(NULL), 0);
	fo_feed_destroy(f);
	fo_feed_destroy(NULL);
	fo_cursor_close(c);
	fo_feed_opts_init(NULL);
}

/* Issue 12 bug 4: a source's FO_ESYS + errno (and fo_fail() message) reaches every cursor with its
 * sys_errno. */
static void test_feed_callback_errno_dropped(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		ft_valve v;
		ft_valve_init(&v, 10, 0);
		ft_valve_open(&v, SIZE_MAX);
		v.fail_at = 2;
		v.fail_code = FO_ESYS;
		v.fail_errno = EIO;
		v.fail_msg = mode ? "on demand: EIO" : NULL;
		ft_counter_init(&cnt, 0);
		fo_feed_opts o = opts((fo_feed_mode)mode, 4);
		fo_feeder *f;
		fo_cursor *c;
		assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
		void *x;
		for (size_t i = 0; i < 2; i++) {
			assert_int_equal(fo_feed_next(f, c, &x), FO_OK);
			assert_int_equal(((ft_item *)x)->seq, i);
		}
		assert_int_equal(fo_feed_next(f, c, &x), FO_FAILED);
		const fo_error *e = fo_cursor_error(c);
		assert_int_equal(e->code, FO_ESYS);
		assert_int_equal(e->sys_errno, EIO);
		assert_string_equal(e->message, mode ? "on demand: EIO" : fo_strerror(FO_ESYS));
		fo_feed_destroy(f);
		fo_cursor_close(c);
		assert_int_equal(ft_freed(&cnt), 2);
		ft_valve_fini(&v);
	}
}

/*
 * Found by fuzz_flow (tests/fuzz/corpus/fuzz_flow/regress-feed-use-after-free): an
 * fo_feed_iter() iterator read after its feed was destroyed read the freed feeder (ASan
 * heap-use-after-free in feed_read).  There the iterator was the source of a pipeline stage that
 * was itself another feed's source, so it was still open, and read on the stage's thread, when
 * the inner feed was destroyed first.  The iterator now keeps the feed's memory: it reads what
 * was pushed, then FO_FAILED {FO_ECANCELED}; the source is closed by destroy, never pulled after.
 */
static ft_counter copies;

static void *copy_item(const void *p, void *ctx)
{
	(void)ctx;
	return ft_item_new(((const ft_item *)p)->seq);
}

static void test_feed_use_after_free(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		/* Read on the destroying thread, after destroy. */
		ft_valve v;
		ft_valve_init(&v, 1000, 0);
		ft_valve_open(&v, SIZE_MAX);
		ft_counter_init(&cnt, 0);
		fo_feed_opts o = opts((fo_feed_mode)mode, 3);
		fo_feeder *f;
		fo_cursor *c;
		fo_iter *it;
		void *x;
		assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
		assert_int_equal(fo_feed_iter(&it, f, c, NULL, NULL, NULL), FO_OK);
		for (size_t i = 0; i < 2; i++) {
			assert_int_equal(fo_iter_next(it, &x), FO_OK);
			assert_int_equal(((ft_item *)x)->seq, i);
		}
		fo_feed_destroy(f);
		assert_int_equal(atomic_load(&v.closes), 1); /* destroy closed the source */
		size_t pulled = ft_valve_pulls(&v), calls = atomic_load(&v.calls);
		assert_true(pulled >= 2 && pulled <= 6); /* ahead 3 past the cursor (BACKGROUND) */
		int rc;
		size_t n = 2;
		while ((rc = fo_iter_next(it, &x)) == FO_OK)
			assert_int_equal(((ft_item *)x)->seq, n++);
		assert_int_equal(rc, FO_FAILED);
		assert_int_equal(fo_iter_error(it)->code, FO_ECANCELED);
		assert_int_equal(n, pulled); /* every item pushed, nothing pulled after destroy */
		assert_int_equal(atomic_load(&v.calls), calls);
		fo_iter_close(it);
		assert_int_equal(ft_freed(&cnt), pulled);
		ft_valve_fini(&v);

		/* The fuzzer's shape: a pipeline stage's thread reads the iterator while (and
		 * after) its feed is destroyed; the stage cannot end before that thread read the
		 * feed's end, so it reads the feeder after destroy. */
		ft_valve_init(&v, 1000, 0);
		ft_valve_open(&v, SIZE_MAX);
		ft_counter_init(&cnt, 0);
		ft_counter_init(&copies, 0);
		assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
		/* a stage refuses a borrowing source: read copies */
		assert_int_equal(fo_feed_iter(&it, f, c, copy_item, ft_item_free, &copies), FO_OK);
		fo_pipeline *p;
		fo_iter *stage;
		assert_int_equal(fo_pipeline_create(&p, NULL), FO_OK);
		assert_int_equal(fo_pipeline_buffer(p, &stage, it, 2), FO_OK);
		fo_pipeline_destroy(p);
		for (size_t i = 0; i < 3; i++) {
			assert_int_equal(fo_iter_next(stage, &x), FO_OK);
			assert_int_equal(((ft_item *)x)->seq, i);
			fo_iter_release(stage, x);
		}
		fo_feed_destroy(f);
		pulled = ft_valve_pulls(&v);
		n = 3;
		while ((rc = fo_iter_next(stage, &x)) == FO_OK) {
			assert_int_equal(((ft_item *)x)->seq, n++);
			fo_iter_release(stage, x);
		}
		assert_int_equal(rc, FO_FAILED);
		assert_int_equal(fo_iter_error(stage)->code, FO_ECANCELED);
		assert_int_equal(n, pulled);
		fo_iter_close(stage);
		assert_int_equal(ft_freed(&cnt), pulled);
		assert_int_equal(ft_freed(&copies), pulled);
		ft_valve_fini(&v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_feed_background_reads_exactly_ahead),
	    cmocka_unit_test(test_feed_active_drain_pulls_everything_eagerly),
	    cmocka_unit_test(test_feed_source_error_after_k_items_then_error_for_every_cursor),
	    cmocka_unit_test(test_feed_on_demand_never_prefetches),
	    cmocka_unit_test(test_feed_only_passive_readers_block_and_never_call_the_source),
	    cmocka_unit_test(test_feed_two_active_readers_released_by_one_pull),
	    cmocka_unit_test(test_feed_puller_erroring_other_readers_do_not_hang),
	    cmocka_unit_test(test_feed_puller_timeout_hands_the_role_on),
	    cmocka_unit_test(test_feed_work_sharing_recipe_each_item_to_exactly_one_worker),
	    cmocka_unit_test(
	        test_feed_sharable_two_readers_blocked_when_the_source_ends_both_get_end),
	    cmocka_unit_test(test_feed_next_refuses_a_passive_cursor),
	    cmocka_unit_test(test_feed_detached_form_and_feed_iter),
	    cmocka_unit_test(test_feed_invalid_arguments),
	    cmocka_unit_test(test_feed_callback_errno_dropped),
	    cmocka_unit_test(test_feed_use_after_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

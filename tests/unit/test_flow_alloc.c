/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_flow_alloc.c - fault injection (TESTING.md §5) for every constructor of iter, adapt,
 * gate, feed and join: for n = 1, 2, 3, ... a scenario runs with the n-th allocation failing,
 * until a run completes with no failure injected.  Every call returns FO_ENOMEM or succeeds
 * (a read may end with FO_FAILED / FO_ENOMEM after the items before it), nothing leaks (the
 * allocator's live count returns to 0, allowing 2 s for RCU-deferred frees), every item pulled
 * from a source is freed exactly once, and each source's items arrive in order.
 *
 * The failing allocator is installed only while no fanout object exists and is removed by the
 * teardown, also when an assertion fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ft_flow.h"

#define NMARKS 1024

static ft_failalloc fa;
static ft_counter cnt;
static atomic_size_t copies; /* items made by copy functions (also freed on cnt) */

/* A failure the scenario must accept: FO_ENOMEM, here or surfaced as a failure. */
#define TRY(call, cleanup)                    \
	do {                                  \
		int rc_ = (call);             \
		if (rc_ == FO_ENOMEM) {       \
			cleanup;              \
			return;               \
		}                             \
		assert_int_equal(rc_, FO_OK); \
	} while (0)

/* ---- sources -------------------------------------------------------------------------------- */

#define NV 4
static ft_valve valves[NV];

static void valves_init(size_t n)
{
	for (int i = 0; i < NV; i++) {
		ft_valve_init(&valves[i], n, (uint64_t)i);
		ft_valve_open(&valves[i], SIZE_MAX);
	}
}

static size_t valves_pulls(void)
{
	size_t p = 0;
	for (int i = 0; i < NV; i++)
		p += ft_valve_pulls(&valves[i]);
	return p;
}

static void valves_fini(void)
{
	for (int i = 0; i < NV; i++)
		ft_valve_fini(&valves[i]);
}

/* Items of valve i have seq i*100 + k so that the marks tell them apart. */
static fo_iter *valve(int i)
{
	fo_iter *it = NULL;
	int rc = fo_iter_from_fn(&it, ft_valve_next, ft_valve_close, &valves[i], ft_valve_item_free,
	                         &cnt);
	return rc == FO_OK ? it : NULL;
}

static void *copy_item(const void *item, void *ctx)
{
	(void)ctx;
	ft_item *x = malloc(sizeof(*x));
	if (!x)
		return NULL;
	*x = *(const ft_item *)item;
	atomic_fetch_add(&copies, 1);
	return x;
}

/* ---- the reader ----------------------------------------------------------------------------- */

/* Read @it to its end; every item is released.  Per source (item->producer) the sequence
 * numbers must increase.  Returns the final code (asserted END or FAILED/ENOMEM). */
static int drain(fo_iter *it, size_t *got)
{
	int64_t last[16];
	for (int i = 0; i < 16; i++)
		last[i] = -1;
	void *x;
	int rc;
	while ((rc = fo_iter_next(it, &x)) == FO_OK) {
		if (fo_iter_is_error(it)) { /* EMIT / continue modes */
			fo_error_item_free(x);
			continue;
		}
		ft_item *fi = x;
		assert_true(ft_item_ok(fi));
		assert_true(fi->producer < 16);
		assert_true((int64_t)fi->seq >= last[fi->producer]); /* map_filter emits twice */
		last[fi->producer] = (int64_t)fi->seq;
		if (got)
			(*got)++;
		fo_iter_release(it, x);
	}
	if (rc == FO_FAILED)
		assert_int_equal(fo_iter_error(it)->code, FO_ENOMEM);
	else
		assert_int_equal(rc, FO_END);
	return rc;
}

/* Every item pulled (or copied) was freed exactly once. */
static void check_items(void)
{
	assert_int_equal(ft_freed(&cnt), valves_pulls() + atomic_load(&copies));
	assert_int_equal(atomic_load(&cnt.out_of_range), 0);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void run_until_clean(const char *name, void (*scenario)(void), size_t nitems)
{
	ft_failalloc_init(&fa);
	ft_failalloc_install(&fa);
	long n;
	for (n = 1; n < 100000; n++) {
		valves_init(nitems);
		ft_counter_init(&cnt, 0);
		atomic_store(&copies, 0);
		ft_failalloc_arm(&fa, n);
		scenario();
		long live = ft_failalloc_settle(&fa, 2000);
		assert_int_equal(live, 0);
		assert_int_equal(atomic_load(&fa.bad_free), 0);
		check_items();
		valves_fini();
		ft_counter_fini(&cnt);
		if (atomic_load(&fa.failures) == 0)
			break;
	}
	ft_failalloc_arm(&fa, 0);
	fo_set_allocator(NULL);
	print_message("%s: clean run after %ld injected failures\n", name, n - 1);
}

static int teardown(void **state)
{
	(void)state;
	fo_set_allocator(NULL); /* also after a failed assertion */
	return 0;
}

/* ---- iter.h ------------------------------------------------------------------------------- */

static void sc_iter_sources(void)
{
	/* array */
	void *items[2] = {ft_tok(0), ft_tok(1)};
	fo_iter *it;
	TRY(fo_iter_from_array(&it, items, 2), (void)0);
	void *x;
	assert_int_equal(fo_iter_next(&*it, &x), FO_OK);
	fo_iter_close(it);
	/* fn */
	it = NULL;
	int rc = fo_iter_from_fn(&it, ft_valve_next, ft_valve_close, &valves[0], ft_valve_item_free,
	                         &cnt);
	if (rc == FO_ENOMEM) {
		assert_int_equal(atomic_load(&valves[0].closes), 0); /* close not called */
		return;
	}
	assert_int_equal(rc, FO_OK);
	drain(it, NULL);
	fo_iter_close(it);
	assert_int_equal(atomic_load(&valves[0].closes), 1);
	/* cursor, copying */
	fo_stream *s;
	fo_cursor *c;
	TRY(fo_stream_create(&s, NULL), (void)0);
	TRY(fo_stream_cursor(s, &c, FO_ACTIVE), fo_stream_destroy(s));
	TRY(fo_iter_from_cursor(&it, c, copy_item, ft_valve_item_free, &cnt),
	    (fo_cursor_close(c), fo_stream_destroy(s)));
	ft_item src[3];
	for (int i = 0; i < 3; i++) {
		src[i] = (ft_item){FT_ITEM_MAGIC, (uint64_t)i, 5};
		if (fo_stream_push(s, &src[i]) != FO_OK)
			break; /* ENOMEM: a segment */
	}
	fo_stream_close(s);
	drain(it, NULL);
	fo_iter_close(it);
	fo_stream_destroy(s);
}

static void test_iter_constructors(void **state)
{
	(void)state;
	run_until_clean("iter", sc_iter_sources, 5);
}

/* ---- adapt.h ------------------------------------------------------------------------------ */

static int ident(void *ctx, void *in, void **out)
{
	(void)ctx;
	*out = in;
	return FO_OK;
}

static int even(void *ctx, const void *in)
{
	(void)ctx;
	return ((const ft_item *)in)->seq % 2 == 0;
}

static int fail_odd(void *ctx, void *in, void **out)
{
	(void)ctx;
	if (((ft_item *)in)->seq % 2)
		return 99; /* EMIT: an error item (allocated) owns the input */
	*out = in;
	return FO_OK;
}

static int twice_or_fail(void *ctx, void *in, fo_emit_fn emit, void *ectx)
{
	(void)ctx;
	/* Emit the input itself once it is sure to be taken; a copy first. */
	ft_item *dup = copy_item(in, NULL);
	if (!dup)
		return FO_ENOMEM;
	int rc = emit(ectx, dup);
	if (rc != FO_OK) {
		ft_item_free(dup, &cnt);
		return rc; /* @in not consumed: the policy (STOP) releases it */
	}
	rc = emit(ectx, in);
	return rc; /* on error @in is still ours to give back: the policy releases it */
}

static void sc_adapters(void)
{
	fo_adapt_opts o;
	fo_adapt_opts_init(&o);
	o.item_free = ft_valve_item_free;
	o.item_free_ctx = &cnt;
	fo_iter *src, *a;

	/* map, filter, map_filter (its buffer grows on the first emit) */
	for (int k = 0; k < 3; k++) {
		src = valve(k);
		if (!src)
			return;
		int rc = k == 0   ? fo_map(&a, src, ident, NULL, &o)
		         : k == 1 ? fo_filter(&a, src, even, NULL, &o)
		                  : fo_map_filter(&a, src, twice_or_fail, NULL, &o);
		if (rc == FO_ENOMEM) {
			fo_iter_close(src);
			return;
		}
		assert_int_equal(rc, FO_OK);
		drain(a, NULL);
		fo_iter_close(a);
	}

	/* EMIT: error items are allocated per failure */
	o.on_error = FO_ERR_EMIT;
	src = valve(3);
	if (!src)
		return;
	TRY(fo_map(&a, src, fail_odd, NULL, &o), fo_iter_close(src));
	drain(a, NULL);
	fo_iter_close(a);
	o.on_error = FO_ERR_STOP;
}

static void sc_flatten_zip(void)
{
	fo_adapt_opts o;
	fo_adapt_opts_init(&o);
	o.item_free = ft_valve_item_free;
	o.item_free_ctx = &cnt;
	fo_iter *in[2] = {valve(0), valve(1)};
	if (!in[0] || !in[1]) {
		fo_iter_close(in[0]);
		fo_iter_close(in[1]);
		return;
	}
	/* flatten over an array of iterators (the caller keeps and closes them) */
	fo_iter *outer, *fl;
	TRY(fo_iter_from_array(&outer, (void *const *)in, 2),
	    (fo_iter_close(in[0]), fo_iter_close(in[1])));
	TRY(fo_flatten(&fl, outer, &o),
	    (fo_iter_close(outer), fo_iter_close(in[0]), fo_iter_close(in[1])));
	drain(fl, NULL);
	fo_iter_close(fl);
	fo_iter_close(in[0]);
	fo_iter_close(in[1]);

	/* zip: tuples are allocated per read */
	fo_iter *zs[2] = {valve(2), valve(3)};
	if (!zs[0] || !zs[1]) {
		fo_iter_close(zs[0]);
		fo_iter_close(zs[1]);
		return;
	}
	fo_iter *z;
	TRY(fo_zip(&z, zs, 2), (fo_iter_close(zs[0]), fo_iter_close(zs[1])));
	void *x;
	int rc;
	while ((rc = fo_iter_next(z, &x)) == FO_OK) {
		fo_zip_tuple *t = x;
		assert_int_equal(t->n, 2);
		assert_int_equal(((ft_item *)t->items[0])->seq, ((ft_item *)t->items[1])->seq);
		fo_iter_release(z, x);
	}
	if (rc == FO_FAILED)
		assert_int_equal(fo_iter_error(z)->code, FO_ENOMEM);
	else
		assert_int_equal(rc, FO_END);
	fo_iter_close(z);
}

static void test_adapt_constructors(void **state)
{
	(void)state;
	run_until_clean("map/filter/map_filter", sc_adapters, 6);
	run_until_clean("flatten/zip", sc_flatten_zip, 4);
}

/* ---- gate.h ------------------------------------------------------------------------------- */

static void sc_gate(void)
{
	fo_iter *src = valve(0);
	if (!src)
		return;
	fo_gate *g;
	TRY(fo_gate_create(&g, src), fo_iter_close(src));
	fo_iter *it = fo_gate_iter(g);
	assert_non_null(it);
	assert_int_equal(fo_gate_release(g, 3), FO_OK);
	assert_int_equal(fo_gate_close(g), FO_OK);
	size_t got = 0;
	assert_int_equal(drain(it, &got), FO_END);
	assert_int_equal(got, 3);
	fo_iter_close(it);
	fo_gate_destroy(g);
}

static void test_gate_constructor(void **state)
{
	(void)state;
	run_until_clean("gate", sc_gate, 5);
}

/* ---- feed.h ------------------------------------------------------------------------------- */

/* One read of a feed cursor (the stream owns the items); true once it ended. */
static bool step(fo_feeder *f, fo_cursor *c, int64_t *last)
{
	void *x;
	int rc = f ? fo_feed_next(f, c, &x) : fo_cursor_next(c, &x);
	if (rc == FO_OK) {
		assert_true((int64_t)((ft_item *)x)->seq > *last);
		*last = (int64_t)((ft_item *)x)->seq;
		return false;
	}
	if (rc == FO_FAILED)
		assert_int_equal(fo_cursor_error(c)->code, FO_ENOMEM);
	else
		assert_int_equal(rc, FO_END);
	return true;
}

/* Read two active cursors in lockstep (a bounded feed waits for the slower one). */
static void drain_pair(fo_feeder *f, fo_cursor *c, fo_cursor *d)
{
	bool cd = false, dd = d == NULL;
	int64_t lc = -1, ld = -1;
	while (!cd || !dd) {
		if (!cd)
			cd = step(f, c, &lc);
		if (!dd)
			dd = step(f, d, &ld);
	}
}

static void sc_feed(void)
{
	for (int mode = 0; mode < 2; mode++) {
		fo_feed_opts o;
		fo_feed_opts_init(&o);
		o.mode = mode ? FO_FEED_ON_DEMAND : FO_FEED_BACKGROUND;
		o.ahead = 2;
		fo_iter *src = valve(mode);
		if (!src)
			return;
		fo_feeder *f;
		fo_cursor *c, *d;
		TRY(fo_feed_create(&f, &c, src, &o), fo_iter_close(src));
		int rc = fo_cursor_fork(c, &d, FO_ACTIVE);
		if (rc == FO_ENOMEM) {
			d = NULL;
		} else {
			assert_int_equal(rc, FO_OK);
		}
		drain_pair(mode ? f : NULL, c, d);
		fo_cursor_close(d);
		/* fo_feed_iter over a fresh fork (at the end: FO_END or the failure) */
		fo_cursor *e;
		rc = fo_cursor_fork(c, &e, FO_ACTIVE);
		if (rc == FO_OK) {
			fo_iter *it;
			rc = fo_feed_iter(&it, f, e, copy_item, ft_valve_item_free, &cnt);
			if (rc == FO_OK) {
				drain(it, NULL);
				fo_iter_close(it);
			} else {
				assert_int_equal(rc, FO_ENOMEM);
				fo_cursor_close(e);
			}
		} else {
			assert_int_equal(rc, FO_ENOMEM);
		}
		fo_feed_destroy(f);
		fo_cursor_close(c);
	}
	/* fo_feed: the detached thread frees the feed */
	fo_iter *src = valve(2);
	if (!src)
		return;
	fo_cursor *c;
	int rc = fo_feed(&c, src, NULL);
	if (rc == FO_ENOMEM) {
		fo_iter_close(src);
		return;
	}
	assert_int_equal(rc, FO_OK);
	drain_pair(NULL, c, NULL);
	fo_cursor_close(c);
	FT_WAIT_UNTIL(atomic_load(&valves[2].closes) == 1, 2000);
	assert_int_equal(atomic_load(&valves[2].closes), 1);
}

static void test_feed_constructors(void **state)
{
	(void)state;
	run_until_clean("feed", sc_feed, 5);
}

/* ---- join.h ------------------------------------------------------------------------------- */

static void sc_join(void)
{
	for (int policy = 0; policy < 2; policy++) {
		fo_join_opts o;
		fo_join_opts_init(&o);
		o.on_error = policy ? FO_JOIN_CONTINUE : FO_JOIN_FAIL_FAST;
		o.item_free = ft_valve_item_free;
		o.item_free_ctx = &cnt;
		o.buffer = 2;
		fo_join *j;
		TRY(fo_join_create(&j, &o), (void)0);
		fo_iter *out = fo_join_iter(j);
		/* a helper-thread source */
		fo_iter *src = valve(2 * policy);
		if (!src) {
			fo_join_destroy(j);
			fo_iter_close(out);
			return;
		}
		int rc = fo_join_add(j, src);
		if (rc != FO_OK) {
			assert_int_equal(rc, FO_ENOMEM);
			fo_iter_close(src);
		}
		/* a cursor source (copying), read by the reader */
		fo_stream *s = NULL;
		fo_cursor *c = NULL;
		fo_iter *ci = NULL;
		ft_item items[3];
		if (fo_stream_create(&s, NULL) == FO_OK &&
		    fo_stream_cursor(s, &c, FO_ACTIVE) == FO_OK &&
		    fo_iter_from_cursor(&ci, c, copy_item, ft_valve_item_free, &cnt) == FO_OK) {
			c = NULL; /* the iterator owns it */
			rc = fo_join_add(j, ci);
			if (rc != FO_OK) {
				assert_int_equal(rc, FO_ENOMEM);
				fo_iter_close(ci);
			}
			for (int i = 0; i < 3; i++) {
				items[i] = (ft_item){FT_ITEM_MAGIC, (uint64_t)i, 9};
				if (fo_stream_push(s, &items[i]) != FO_OK)
					break;
			}
		}
		fo_cursor_close(c);
		if (s)
			fo_stream_close(s);
		assert_int_equal(fo_join_seal(j), FO_OK);
		drain(out, NULL);
		fo_iter_close(out);
		fo_join_destroy(j);
		fo_stream_destroy(s);
	}
}

static void sc_join_iters(void)
{
	fo_iter *in[2] = {valve(0), valve(1)};
	if (!in[0] || !in[1]) {
		fo_iter_close(in[0]);
		fo_iter_close(in[1]);
		return;
	}
	fo_iter *outer, *out;
	TRY(fo_iter_from_array(&outer, (void *const *)in, 2),
	    (fo_iter_close(in[0]), fo_iter_close(in[1])));
	fo_join_opts o;
	fo_join_opts_init(&o);
	o.item_free = ft_valve_item_free;
	o.item_free_ctx = &cnt;
	TRY(fo_join_iters(&out, outer, &o),
	    (fo_iter_close(outer), fo_iter_close(in[0]), fo_iter_close(in[1])));
	drain(out, NULL);
	fo_iter_close(out);
	/* The array's destructor is NULL: the elements are ours to close, after the output. */
	fo_iter_close(in[0]);
	fo_iter_close(in[1]);
}

static void test_join_constructors(void **state)
{
	(void)state;
	run_until_clean("join", sc_join, 5);
	run_until_clean("join_iters", sc_join_iters, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_iter_constructors, teardown),
	    cmocka_unit_test_teardown(test_adapt_constructors, teardown),
	    cmocka_unit_test_teardown(test_gate_constructor, teardown),
	    cmocka_unit_test_teardown(test_feed_constructors, teardown),
	    cmocka_unit_test_teardown(test_join_constructors, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

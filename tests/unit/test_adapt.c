/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_adapt.c - fanout/adapt.h: map, filter, map_filter, flatten, zip; every error policy;
 * destructors exactly once (heap items + counters, so ASan sees double frees and leaks); the
 * SEMANTICS.md §8 rows for map/map_filter/flatten and zip, named after the edge case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

/* ---- sources ------------------------------------------------------------------------------- */

/* A callback source of heap items 0..n-1 (freed with ft_item_free on a counter). */
typedef struct gen {
	size_t n, i;
	int fail_at, fail_code;
	int closes;
	ft_counter cnt;
} gen;

static int gen_next(void *ctx, void **item, uint64_t deadline)
{
	gen *g = ctx;
	(void)deadline;
	if (g->fail_at >= 0 && g->i == (size_t)g->fail_at)
		return g->fail_code;
	if (g->i == g->n)
		return FO_END;
	*item = ft_item_new(g->i++);
	return FO_OK;
}

static void gen_close(void *ctx)
{
	((gen *)ctx)->closes++;
}

static void gen_free(void *item, void *ctx)
{
	ft_item_free(item, &((gen *)ctx)->cnt);
}

static fo_iter *gen_iter(gen *g, size_t n)
{
	memset(g, 0, sizeof(*g));
	g->n = n;
	g->fail_at = -1;
	ft_counter_init(&g->cnt, 0);
	fo_iter *it;
	assert_int_equal(fo_iter_from_fn(&it, gen_next, gen_close, g, gen_free, g), FO_OK);
	return it;
}

static size_t seq_of(void *x)
{
	return (size_t)((ft_item *)x)->seq;
}

/* ---- map ----------------------------------------------------------------------------------- */

/* Map: item seq -> new item seq*10; fails (code 9) on seq == fail.  Consumes @in on success. */
typedef struct mapctx {
	gen *g;
	size_t fail;
} mapctx;

static int times10(void *ctx, void *in, void **out)
{
	mapctx *m = ctx;
	size_t s = seq_of(in);
	if (s == m->fail)
		return 9;
	gen_free(in, m->g);
	*out = ft_item_new(s * 10);
	return FO_OK;
}

static ft_counter outcnt;

static fo_adapt_opts out_opts(fo_error_policy p)
{
	fo_adapt_opts o;
	fo_adapt_opts_init(&o);
	o.on_error = p;
	o.item_free = ft_item_free;
	o.item_free_ctx = &outcnt;
	return o;
}

static void test_map_maps_every_item_in_order(void **state)
{
	(void)state;
	gen g;
	ft_counter_init(&outcnt, 0);
	fo_iter *src = gen_iter(&g, 5);
	mapctx mc = {&g, SIZE_MAX};
	fo_adapt_opts o = out_opts(FO_ERR_STOP);
	fo_iter *m;
	assert_int_equal(fo_map(&m, src, times10, &mc, &o), FO_OK);
	assert_false(fo_iter_emits_errors(m));
	void *x;
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(fo_iter_next(m, &x), FO_OK);
		assert_int_equal(seq_of(x), i * 10);
		assert_false(fo_iter_is_error(m));
		fo_iter_release(m, x);
	}
	assert_int_equal(fo_iter_next(m, &x), FO_END);
	fo_iter_close(m);
	assert_int_equal(g.closes, 1);
	assert_int_equal(ft_freed(&g.cnt), 5);
	assert_int_equal(ft_freed(&outcnt), 5);
}

static void test_map_callback_error_stop_mode(void **state)
{
	(void)state;
	gen g;
	ft_counter_init(&outcnt, 0);
	fo_iter *src = gen_iter(&g, 5);
	mapctx mc = {&g, 2};
	fo_iter *m;
	assert_int_equal(fo_map(&m, src, times10, &mc, NULL), FO_OK); /* default: STOP */
	void *x;
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	ft_item_free(x, &outcnt);
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	ft_item_free(x, &outcnt);
	assert_int_equal(fo_iter_next(m, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(m)->code, 9);
	assert_int_equal(fo_iter_next(m, &x), FO_FAILED); /* sticky */
	assert_int_equal(ft_freed(&g.cnt), 3);            /* the failed input was released */
	fo_iter_close(m);
	assert_int_equal(ft_freed(&g.cnt), 3);
}

static void test_map_callback_error_drop_mode(void **state)
{
	(void)state;
	gen g;
	ft_counter_init(&outcnt, 0);
	fo_iter *src = gen_iter(&g, 3);
	mapctx mc = {&g, 1};
	fo_adapt_opts o = out_opts(FO_ERR_DROP);
	fo_iter *m;
	assert_int_equal(fo_map(&m, src, times10, &mc, &o), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	assert_int_equal(seq_of(x), 0);
	fo_iter_release(m, x);
	assert_int_equal(fo_iter_next(m, &x), FO_OK); /* 1 dropped: aiter gives 10,30 too */
	assert_int_equal(seq_of(x), 20);
	fo_iter_release(m, x);
	assert_int_equal(fo_iter_next(m, &x), FO_END);
	fo_iter_close(m);
	assert_int_equal(ft_freed(&g.cnt), 3);
	assert_int_equal(ft_freed(&outcnt), 2);
}

static void test_map_callback_error_emit_mode(void **state)
{
	(void)state;
	gen g;
	ft_counter_init(&outcnt, 0);
	fo_iter *src = gen_iter(&g, 3);
	mapctx mc = {&g, 1};
	fo_adapt_opts o = out_opts(FO_ERR_EMIT);
	fo_iter *m;
	assert_int_equal(fo_map(&m, src, times10, &mc, &o), FO_OK);
	assert_true(fo_iter_emits_errors(m));
	void *x;
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	assert_false(fo_iter_is_error(m));
	fo_iter_release(m, x);
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	assert_true(fo_iter_is_error(m));
	fo_error_item *e = x;
	assert_int_equal(e->err.code, 9);
	assert_non_null(e->err.message);
	assert_int_equal(seq_of(e->input), 1); /* the input travels with the error */
	fo_error_item_free(e);                 /* frees the input with the source's destructor */
	assert_int_equal(ft_freed(&g.cnt), 2);
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	assert_false(fo_iter_is_error(m));
	assert_int_equal(seq_of(x), 20);
	fo_iter_release(m, x);
	assert_int_equal(fo_iter_next(m, &x), FO_END);
	fo_iter_close(m);
	assert_int_equal(ft_freed(&g.cnt), 3);
}

static void test_map_error_item_input_can_be_kept(void **state)
{
	(void)state;
	gen g;
	fo_iter *src = gen_iter(&g, 1);
	mapctx mc = {&g, 0};
	fo_adapt_opts o = out_opts(FO_ERR_EMIT);
	fo_iter *m;
	assert_int_equal(fo_map(&m, src, times10, &mc, &o), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	fo_error_item *e = x;
	void *in = e->input;
	fo_item_free_fn f = e->input_free;
	void *fctx = e->input_ctx;
	e->input = NULL; /* take it */
	fo_error_item_free(e);
	assert_int_equal(ft_freed(&g.cnt), 0);
	f(in, fctx);
	assert_int_equal(ft_freed(&g.cnt), 1);
	fo_iter_close(m);
}

static int null_map(void *ctx, void *in, void **out)
{
	(void)ctx;
	(void)in;
	*out = NULL;
	return FO_OK;
}

static void test_map_invalid_arguments_and_null_output(void **state)
{
	(void)state;
	fo_iter *src, *m = NULL;
	void *items[1] = {ft_tok(0)};
	assert_int_equal(fo_iter_from_array(&src, items, 1), FO_OK);
	fo_adapt_opts bad;
	fo_adapt_opts_init(&bad);
	bad.on_error = (fo_error_policy)7;
	assert_int_equal(fo_map(NULL, src, null_map, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_map(&m, NULL, null_map, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_map(&m, src, NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_map(&m, src, null_map, NULL, &bad), FO_EINVAL);
	assert_int_equal(fo_filter(&m, src, NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_map_filter(&m, src, NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_flatten(&m, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_flatten(&m, src, &bad), FO_EINVAL);
	assert_null(m);
	assert_int_equal(fo_map(&m, src, null_map, NULL, NULL), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(m, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(m)->code, FO_EINVAL);
	fo_iter_close(m);
	fo_adapt_opts_init(NULL);
}

static void test_emit_over_borrowing_source_is_refused(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_iter *src, *m;
	assert_int_equal(fo_iter_from_cursor(&src, c, NULL, NULL, NULL), FO_OK);
	fo_adapt_opts o;
	fo_adapt_opts_init(&o);
	o.on_error = FO_ERR_EMIT;
	assert_int_equal(fo_map(&m, src, null_map, NULL, &o), FO_EINVAL);
	assert_int_equal(fo_flatten(&m, src, &o), FO_EINVAL);
	o.on_error = FO_ERR_STOP; /* a map that hands items on before reading again: fine */
	assert_int_equal(fo_map(&m, src, null_map, NULL, &o), FO_OK);
	assert_true(fo_iter_borrows(m));
	fo_iter_close(m);
	fo_stream_destroy(s);
}

/* ---- filter -------------------------------------------------------------------------------- */

static int keep_even(void *ctx, const void *in)
{
	(void)ctx;
	size_t s = seq_of((void *)in);
	if (s == 5)
		return -33;
	return s % 2 == 0;
}

static void test_filter_keeps_matching_and_releases_the_rest(void **state)
{
	(void)state;
	gen g;
	fo_iter *src = gen_iter(&g, 5), *f;
	assert_int_equal(fo_filter(&f, src, keep_even, NULL, NULL), FO_OK);
	void *ctx;
	assert_ptr_equal(fo_iter_item_free(f, &ctx), gen_free); /* the source's destructor */
	void *x;
	for (size_t want = 0; want < 5; want += 2) {
		assert_int_equal(fo_iter_next(f, &x), FO_OK);
		assert_int_equal(seq_of(x), want);
		fo_iter_release(f, x);
	}
	assert_int_equal(fo_iter_next(f, &x), FO_END);
	fo_iter_close(f);
	assert_int_equal(ft_freed(&g.cnt), 5);
}

static void test_filter_error_policies(void **state)
{
	(void)state;
	for (int p = FO_ERR_STOP; p <= FO_ERR_EMIT; p++) {
		gen g;
		fo_iter *src = gen_iter(&g, 7), *f;
		fo_adapt_opts o;
		fo_adapt_opts_init(&o);
		o.on_error = (fo_error_policy)p;
		assert_int_equal(fo_filter(&f, src, keep_even, NULL, &o), FO_OK);
		void *x;
		int rc;
		size_t outs = 0, errs = 0;
		while ((rc = fo_iter_next(f, &x)) == FO_OK) {
			if (fo_iter_is_error(f)) {
				assert_int_equal(((fo_error_item *)x)->err.code, -33);
				fo_error_item_free(x);
				errs++;
			} else {
				fo_iter_release(f, x);
				outs++;
			}
		}
		if (p == FO_ERR_STOP) {
			assert_int_equal(rc, FO_FAILED);
			assert_int_equal(fo_iter_error(f)->code, -33);
			assert_int_equal(outs, 3); /* 0 2 4, then the error at 5 */
		} else {
			assert_int_equal(rc, FO_END);
			assert_int_equal(errs, p == FO_ERR_EMIT ? 1 : 0);
			assert_int_equal(outs, 4); /* 0 2 4 6 */
		}
		fo_iter_close(f);
		assert_int_equal(ft_freed(&g.cnt), p == FO_ERR_STOP ? 6 : 7);
	}
}

/* ---- map_filter ---------------------------------------------------------------------------- */

/* seq k -> k copies of (k*100 + j); seq 3 emits one output and then fails (code 12). */
static int explode(void *ctx, void *in, fo_emit_fn emit, void *ectx)
{
	gen *g = ctx;
	size_t k = seq_of(in);
	if (emit(ectx, NULL) != FO_EINVAL)
		return 99;
	if (k == 3) {
		assert_int_equal(emit(ectx, ft_item_new(300)), FO_OK);
		return 12;
	}
	for (size_t j = 0; j < k; j++)
		if (emit(ectx, ft_item_new(k * 100 + j)) != FO_OK)
			return FO_ENOMEM;
	gen_free(in, g);
	return FO_OK;
}

static void test_map_filter_zero_to_n_outputs_per_input(void **state)
{
	(void)state;
	gen g;
	ft_counter_init(&outcnt, 0);
	fo_iter *src = gen_iter(&g, 3), *m; /* 0 -> none, 1 -> 100, 2 -> 200 201 */
	fo_adapt_opts o = out_opts(FO_ERR_STOP);
	assert_int_equal(fo_map_filter(&m, src, explode, &g, &o), FO_OK);
	size_t want[] = {100, 200, 201};
	void *x;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(fo_iter_next(m, &x), FO_OK);
		assert_int_equal(seq_of(x), want[i]);
		fo_iter_release(m, x);
	}
	assert_int_equal(fo_iter_next(m, &x), FO_END);
	fo_iter_close(m);
	assert_int_equal(ft_freed(&g.cnt), 3);
	assert_int_equal(ft_freed(&outcnt), 3);
}

static void test_map_filter_error_midway_delivers_emitted_outputs_first(void **state)
{
	(void)state;
	for (int p = FO_ERR_STOP; p <= FO_ERR_EMIT; p++) {
		gen g;
		ft_counter_init(&outcnt, 0);
		fo_iter *src = gen_iter(&g, 5), *m;
		fo_adapt_opts o = out_opts((fo_error_policy)p);
		assert_int_equal(fo_map_filter(&m, src, explode, &g, &o), FO_OK);
		void *x;
		int rc;
		size_t seen[16], n = 0;
		while ((rc = fo_iter_next(m, &x)) == FO_OK) {
			if (fo_iter_is_error(m)) {
				fo_error_item *e = x;
				assert_int_equal(e->err.code, 12);
				assert_int_equal(seq_of(e->input), 3);
				seen[n++] = 9999;
				fo_error_item_free(e);
			} else {
				seen[n++] = seq_of(x);
				fo_iter_release(m, x);
			}
		}
		/* 100 200 201 then 300 (emitted before the error), then the policy */
		assert_true(n >= 4);
		assert_int_equal(seen[3], 300);
		if (p == FO_ERR_STOP) {
			assert_int_equal(rc, FO_FAILED);
			assert_int_equal(n, 4);
		} else if (p == FO_ERR_DROP) {
			assert_int_equal(rc, FO_END);
			assert_int_equal(n, 8); /* + 400..403 */
		} else {
			assert_int_equal(rc, FO_END);
			assert_int_equal(seen[4], 9999);
			assert_int_equal(n, 9);
		}
		fo_iter_close(m);
		assert_int_equal(ft_freed(&g.cnt), p == FO_ERR_STOP ? 4 : 5);
	}
}

static void test_map_filter_close_with_pending_outputs_frees_them(void **state)
{
	(void)state;
	gen g;
	ft_counter_init(&outcnt, 0);
	fo_iter *src = gen_iter(&g, 5), *m;
	fo_adapt_opts o = out_opts(FO_ERR_STOP);
	assert_int_equal(fo_map_filter(&m, src, explode, &g, &o), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(m, &x), FO_OK); /* 100 */
	fo_iter_release(m, x);
	assert_int_equal(fo_iter_next(m, &x), FO_OK); /* 200; 201 pending */
	fo_iter_release(m, x);
	fo_iter_close(m);
	assert_int_equal(ft_freed(&outcnt), 3);
	assert_int_equal(ft_freed(&g.cnt), 3);
}

/* ---- flatten ------------------------------------------------------------------------------- */

static void test_flatten_concatenates_and_closes_elements(void **state)
{
	(void)state;
	gen g[3];
	fo_iter *inner[3];
	for (int i = 0; i < 3; i++)
		inner[i] = gen_iter(&g[i], (size_t)i + 1);
	/* Outer: a callback source of iterators, destructor fo_iter_close_item. */
	fo_iter *outer, *f;
	assert_int_equal(fo_iter_from_array(&outer, (void **)inner, 3), FO_OK);
	fo_adapt_opts o;
	fo_adapt_opts_init(&o);
	o.item_free = gen_free; /* inners differ in ctx: invalid, except with ctx matching */
	o.item_free_ctx = &g[0];
	assert_int_equal(fo_flatten(&f, outer, &o), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(f, &x), FO_OK); /* g[0]'s only item */
	assert_int_equal(seq_of(x), 0);
	fo_iter_release(f, x);
	/* g[1] has another destructor context: an invalid element -> STOP with FO_EINVAL */
	assert_int_equal(fo_iter_next(f, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(f)->code, FO_EINVAL);
	fo_iter_close(f);
	/* The array outer has no destructor: the caller closes the elements. */
	for (int i = 0; i < 3; i++)
		fo_iter_close(inner[i]);
	assert_int_equal(g[0].closes, 1);
}

/* Shared-destructor inner sources: all gen items freed through one counter. */
static ft_counter flatcnt;
static void flat_free(void *item, void *ctx)
{
	(void)ctx;
	ft_item_free(item, &flatcnt);
}

typedef struct iseq {
	size_t n, i, base;
	int fail_at;
} iseq;

static int iseq_next(void *ctx, void **item, uint64_t deadline)
{
	iseq *s = ctx;
	(void)deadline;
	if (s->fail_at >= 0 && s->i == (size_t)s->fail_at)
		return 55;
	if (s->i == s->n)
		return FO_END;
	*item = ft_item_new(s->base + s->i++);
	return FO_OK;
}

static fo_iter *iseq_iter(iseq *s, size_t base, size_t n, int fail_at)
{
	s->n = n;
	s->i = 0;
	s->base = base;
	s->fail_at = fail_at;
	fo_iter *it;
	assert_int_equal(fo_iter_from_fn(&it, iseq_next, NULL, s, flat_free, NULL), FO_OK);
	return it;
}

static void test_flatten_of_an_invalid_element_policies(void **state)
{
	(void)state;
	for (int p = FO_ERR_STOP; p <= FO_ERR_EMIT; p++) {
		ft_counter_init(&flatcnt, 0);
		iseq s[3];
		void *elems[3];
		elems[0] = iseq_iter(&s[0], 0, 2, -1);
		fo_iter *bad; /* a borrowing element: aiter's "non-iterable" (it skips those) */
		fo_stream *st;
		fo_cursor *c;
		assert_int_equal(fo_stream_create(&st, NULL), FO_OK);
		assert_int_equal(fo_stream_cursor(st, &c, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_iter_from_cursor(&bad, c, NULL, NULL, NULL), FO_OK);
		elems[1] = bad;
		elems[2] = iseq_iter(&s[2], 20, 2, -1);
		fo_iter *outer, *f;
		assert_int_equal(fo_iter_from_array(&outer, elems, 3), FO_OK);
		fo_adapt_opts o;
		fo_adapt_opts_init(&o);
		o.on_error = (fo_error_policy)p;
		o.item_free = flat_free;
		assert_int_equal(fo_flatten(&f, outer, &o), FO_OK);
		size_t got[8], n = 0, errs = 0;
		void *x;
		int rc;
		while ((rc = fo_iter_next(f, &x)) == FO_OK) {
			if (fo_iter_is_error(f)) {
				fo_error_item *e = x;
				assert_int_equal(e->err.code, FO_EINVAL);
				assert_ptr_equal(e->input, bad);
				assert_null(e->input_free); /* array outer: the caller closes it */
				fo_error_item_free(e);
				errs++;
			} else {
				got[n++] = seq_of(x);
				fo_iter_release(f, x);
			}
		}
		assert_int_equal(got[0], 0);
		assert_int_equal(got[1], 1);
		if (p == FO_ERR_STOP) {
			assert_int_equal(rc, FO_FAILED);
			assert_int_equal(fo_iter_error(f)->code, FO_EINVAL);
			assert_int_equal(n, 2);
		} else {
			assert_int_equal(rc, FO_END);
			assert_int_equal(n, 4);
			assert_int_equal(got[2], 20);
			assert_int_equal(errs, p == FO_ERR_EMIT ? 1 : 0);
		}
		fo_iter_close(f);
		for (int i = 0; i < 3; i++)
			fo_iter_close(elems[i]);
		fo_stream_destroy(st);
		assert_int_equal(ft_freed(&flatcnt), n);
	}
}

static void test_flatten_inner_failure_policies(void **state)
{
	(void)state;
	for (int p = FO_ERR_STOP; p <= FO_ERR_EMIT; p++) {
		ft_counter_init(&flatcnt, 0);
		iseq s[2];
		void *elems[2] = {iseq_iter(&s[0], 0, 3, 1), iseq_iter(&s[1], 10, 2, -1)};
		fo_iter *outer, *f;
		assert_int_equal(fo_iter_from_array(&outer, elems, 2), FO_OK);
		fo_adapt_opts o;
		fo_adapt_opts_init(&o);
		o.on_error = (fo_error_policy)p;
		o.item_free = flat_free;
		assert_int_equal(fo_flatten(&f, outer, &o), FO_OK);
		void *x;
		assert_int_equal(fo_iter_next(f, &x), FO_OK);
		assert_int_equal(seq_of(x), 0);
		fo_iter_release(f, x);
		int rc = fo_iter_next(f, &x);
		if (p == FO_ERR_STOP) {
			assert_int_equal(rc, FO_FAILED);
			assert_int_equal(fo_iter_error(f)->code, 55);
		} else {
			if (p == FO_ERR_EMIT) {
				assert_int_equal(rc, FO_OK);
				assert_true(fo_iter_is_error(f));
				assert_int_equal(((fo_error_item *)x)->err.code, 55);
				assert_null(((fo_error_item *)x)->input);
				fo_error_item_free(x);
				rc = fo_iter_next(f, &x);
			}
			assert_int_equal(rc, FO_OK);
			assert_int_equal(seq_of(x), 10);
			fo_iter_release(f, x);
		}
		fo_iter_close(f);
		for (int i = 0; i < 2; i++)
			fo_iter_close(elems[i]);
	}
}

/* ---- zip ----------------------------------------------------------------------------------- */

static void test_zip_unequal_lengths_releases_the_partial_tuple(void **state)
{
	(void)state;
	gen a, b;
	fo_iter *srcs[2] = {gen_iter(&a, 3), gen_iter(&b, 1)};
	fo_iter *z;
	assert_int_equal(fo_zip(&z, srcs, 2), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(z, &x), FO_OK);
	fo_zip_tuple *t = x;
	assert_int_equal(t->n, 2);
	assert_int_equal(seq_of(t->items[0]), 0);
	assert_int_equal(seq_of(t->items[1]), 0);
	fo_iter_release(z, t); /* frees both components with their own destructors */
	assert_int_equal(ft_freed(&a.cnt), 1);
	assert_int_equal(ft_freed(&b.cnt), 1);
	/* Round 2 pulls a's item 1, then b ends: item 1 is released, not leaked (aiter drops it).
	 */
	assert_int_equal(fo_iter_next(z, &x), FO_END);
	assert_int_equal(ft_freed(&a.cnt), 2);
	assert_int_equal(fo_iter_next(z, &x), FO_END);
	fo_iter_close(z);
	assert_int_equal(a.closes, 1);
	assert_int_equal(b.closes, 1);
	assert_int_equal(a.i, 2); /* a's item 2 was never pulled */
}

static void test_zip_zero_inputs_end_at_once(void **state)
{
	(void)state;
	fo_iter *z;
	assert_int_equal(fo_zip(&z, NULL, 0), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(z, &x), FO_END); /* aiter yields () forever */
	fo_iter_close(z);
}

static void test_zip_source_failure_releases_partial_and_fails(void **state)
{
	(void)state;
	gen a, b;
	fo_iter *srcs[2] = {gen_iter(&a, 3), gen_iter(&b, 3)};
	b.fail_at = 1;
	b.fail_code = 31;
	fo_iter *z;
	assert_int_equal(fo_zip(&z, srcs, 2), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(z, &x), FO_OK);
	fo_zip_tuple *t = x;
	void *keep = t->items[1];
	t->items[1] = NULL; /* take one component */
	fo_zip_tuple_free(t, NULL);
	gen_free(keep, &b);
	assert_int_equal(fo_iter_next(z, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(z)->code, 31);
	assert_int_equal(ft_freed(&a.cnt), 2);
	fo_iter_close(z);
	fo_zip_tuple_free(NULL, NULL);
}

static void test_zip_refuses_borrowing_or_null_sources(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_iter *b, *z = NULL;
	assert_int_equal(fo_iter_from_cursor(&b, c, NULL, NULL, NULL), FO_OK);
	fo_iter *srcs[2] = {b, NULL};
	assert_int_equal(fo_zip(&z, srcs, 1), FO_EINVAL);
	srcs[0] = NULL;
	assert_int_equal(fo_zip(&z, srcs, 1), FO_EINVAL);
	assert_int_equal(fo_zip(&z, NULL, 1), FO_EINVAL);
	assert_int_equal(fo_zip(NULL, NULL, 0), FO_EINVAL);
	assert_null(z);
	fo_iter_close(b);
	fo_stream_destroy(s);
}

/* A source that says FO_EMPTY every other call: a try read must keep the partial tuple. */
typedef struct flaky {
	size_t i;
	bool tick;
} flaky;

static int flaky_next(void *ctx, void **item, uint64_t deadline)
{
	flaky *f = ctx;
	if (deadline == 0 && (f->tick = !f->tick))
		return FO_EMPTY;
	if (f->i == 4)
		return FO_END;
	*item = ft_tok(f->i++);
	return FO_OK;
}

static void test_zip_timeout_keeps_the_partial_tuple(void **state)
{
	(void)state;
	flaky fa = {0, false}, fb = {0, true};
	fo_iter *srcs[2];
	assert_int_equal(fo_iter_from_fn(&srcs[0], flaky_next, NULL, &fa, NULL, NULL), FO_OK);
	assert_int_equal(fo_iter_from_fn(&srcs[1], flaky_next, NULL, &fb, NULL, NULL), FO_OK);
	fo_iter *z;
	assert_int_equal(fo_zip(&z, srcs, 2), FO_OK);
	size_t got = 0;
	void *x;
	int rc;
	while ((rc = fo_iter_try_next(z, &x)) != FO_END) {
		if (rc == FO_EMPTY)
			continue;
		assert_int_equal(rc, FO_OK);
		fo_zip_tuple *t = x;
		assert_int_equal(ft_seq(t->items[0]), got);
		assert_int_equal(ft_seq(t->items[1]), got);
		fo_zip_tuple_free(t, NULL);
		got++;
	}
	assert_int_equal(got, 4);
	fo_iter_close(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_map_maps_every_item_in_order),
	    cmocka_unit_test(test_map_callback_error_stop_mode),
	    cmocka_unit_test(test_map_callback_error_drop_mode),
	    cmocka_unit_test(test_map_callback_error_emit_mode),
	    cmocka_unit_test(test_map_error_item_input_can_be_kept),
	    cmocka_unit_test(test_map_invalid_arguments_and_null_output),
	    cmocka_unit_test(test_emit_over_borrowing_source_is_refused),
	    cmocka_unit_test(test_filter_keeps_matching_and_releases_the_rest),
	    cmocka_unit_test(test_filter_error_policies),
	    cmocka_unit_test(test_map_filter_zero_to_n_outputs_per_input),
	    cmocka_unit_test(test_map_filter_error_midway_delivers_emitted_outputs_first),
	    cmocka_unit_test(test_map_filter_close_with_pending_outputs_frees_them),
	    cmocka_unit_test(test_flatten_concatenates_and_closes_elements),
	    cmocka_unit_test(test_flatten_of_an_invalid_element_policies),
	    cmocka_unit_test(test_flatten_inner_failure_policies),
	    cmocka_unit_test(test_zip_unequal_lengths_releases_the_partial_tuple),
	    cmocka_unit_test(test_zip_zero_inputs_end_at_once),
	    cmocka_unit_test(test_zip_source_failure_releases_partial_and_fails),
	    cmocka_unit_test(test_zip_refuses_borrowing_or_null_sources),
	    cmocka_unit_test(test_zip_timeout_keeps_the_partial_tuple),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

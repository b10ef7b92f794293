/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_pmap.c - fanout/pmap.h fo_pmap(): every return code, ordering, policies, retries,
 * timeouts, per-worker init/fini, paired results, bounds, progress; and the SEMANTICS.md §8
 * rows of iterlib (parallel map ordered) and vimap (thread-applicable rows), named after
 * their edge cases; pools (several rounds on the same workers), chunks and event-loop readiness.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ft_flow.h"

#define MAXN 4096

typedef struct mctx {
	ft_counter out_cnt; /* outputs freed */
	ft_counter *in_cnt; /* inputs freed (the valve's counter) */
	long fail_at[4];    /* items that fail (-1: none) */
	int fail_code;
	unsigned fail_first; /* every item fails its first fail_first attempts */
	atomic_uint attempts[MAXN];
	long block_at; /* this item blocks until `release` */
	atomic_bool release;
	atomic_bool blocked; /* the blocking item has started */
	bool paired;         /* keep the input (paired mode) */
	bool null_out;       /* return FO_OK with a NULL output */
	atomic_int inits, finis, init_fail_idx;
	atomic_uintptr_t init_seen[8];
	int init_code;
} mctx;

static void mctx_init(mctx *m, ft_counter *in_cnt)
{
	memset(m, 0, sizeof(*m));
	ft_counter_init(&m->out_cnt, 0);
	m->in_cnt = in_cnt;
	for (int i = 0; i < 4; i++)
		m->fail_at[i] = -1;
	m->fail_code = FO_ESYS;
	m->block_at = -1;
	atomic_init(&m->init_fail_idx, -1);
}

static bool is_fail(mctx *m, uint64_t seq)
{
	for (int i = 0; i < 4; i++)
		if (m->fail_at[i] == (long)seq)
			return true;
	return false;
}

static int map_fn(void *ctx, void *wstate, void *in, void **out)
{
	mctx *m = ctx;
	(void)wstate;
	ft_item *x = in;
	if (!ft_item_ok(x))
		abort();
	unsigned a = x->seq < MAXN ? atomic_fetch_add(&m->attempts[x->seq], 1) : 0;
	if ((long)x->seq == m->block_at) {
		atomic_store(&m->blocked, true);
		while (!atomic_load(&m->release))
			ft_sleep_ms(1);
	}
	if (is_fail(m, x->seq) || a < m->fail_first)
		return m->fail_code;
	if (m->null_out)
		return FO_OK;
	ft_item *o = ft_item_new(x->seq);
	o->producer = 7;
	if (!m->paired)
		ft_item_free(x, m->in_cnt);
	*out = o;
	return FO_OK;
}

static int init_fn(void *ctx, void *arg, void **wstate)
{
	mctx *m = ctx;
	int idx = (int)(uintptr_t)arg;
	atomic_fetch_add(&m->inits, 1);
	if (idx >= 0 && idx < 8)
		atomic_store(&m->init_seen[idx], 1);
	if (idx == atomic_load(&m->init_fail_idx))
		return m->init_code;
	*wstate = m;
	return FO_OK;
}

static void fini_fn(void *ctx, void *wstate)
{
	mctx *m = ctx;
	if (wstate == m)
		atomic_fetch_add(&m->finis, 1);
}

typedef struct rig {
	ft_valve v;
	ft_counter in_cnt;
	mctx m;
	fo_pmap_opts o;
	fo_iter *out;
} rig;

static void rig_up(rig *r, size_t n)
{
	ft_valve_init(&r->v, n, 0);
	ft_valve_open(&r->v, SIZE_MAX);
	ft_counter_init(&r->in_cnt, 0);
	mctx_init(&r->m, &r->in_cnt);
	fo_pmap_opts_init(&r->o);
	r->o.ctx = &r->m;
	r->o.item_free = ft_item_free;
	r->o.item_free_ctx = &r->m.out_cnt;
	r->out = NULL;
}

/* @n workers with init_fn / fini_fn, worker i's init getting args[i]. */
static void rig_inits(rig *r, void **args, size_t n)
{
	r->o.workers = n;
	r->o.init = init_fn;
	r->o.fini = fini_fn;
	r->o.init_args = args;
}

static void rig_start(rig *r)
{
	assert_int_equal(fo_pmap(&r->out, ft_valve_iter(&r->v, &r->in_cnt), map_fn, &r->o), FO_OK);
}

/* Close, then every pulled input and every output made was freed exactly once. */
static void rig_down(rig *r)
{
	fo_iter_close(r->out);
	assert_int_equal(atomic_load(&r->v.closes), 1);
	size_t pulls = ft_valve_pulls(&r->v);
	size_t outs = ft_freed(&r->m.out_cnt);
	size_t ins = ft_freed(&r->in_cnt);
	if (r->m.null_out)
		assert_int_equal(ins, pulls);
	else if (!r->m.paired)
		assert_true(ins == pulls); /* consumed by fn or released by the pool */
	else
		assert_int_equal(ins, pulls);
	(void)outs;
	ft_valve_fini(&r->v);
}

static int ident_fail3(void *ctx, void *in, void **out)
{
	(void)ctx;
	if (((ft_item *)in)->seq == 3)
		return FO_ESYS;
	*out = in;
	return FO_OK;
}

static fo_iter *emitting_source(rig *r)
{
	fo_adapt_opts ao;
	fo_adapt_opts_init(&ao);
	ao.on_error = FO_ERR_EMIT;
	ao.item_free = ft_item_free;
	ao.item_free_ctx = &r->in_cnt;
	fo_iter *src;
	assert_int_equal(fo_map(&src, ft_valve_iter(&r->v, &r->in_cnt), ident_fail3, NULL, &ao),
	                 FO_OK);
	return src;
}

/* ---- return codes ----------------------------------------------------------------------- */

static void test_pmap_einval(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 3);
	fo_iter *src = ft_valve_iter(&r.v, &r.in_cnt), *out = NULL;
	assert_int_equal(fo_pmap(NULL, src, map_fn, &r.o), FO_EINVAL);
	assert_int_equal(fo_pmap(&out, NULL, map_fn, &r.o), FO_EINVAL);
	assert_int_equal(fo_pmap(&out, src, NULL, &r.o), FO_EINVAL);
	r.o.workers = 0;
	assert_int_equal(fo_pmap(&out, src, map_fn, &r.o), FO_EINVAL);
	r.o.workers = 2;
	r.o.backend = FO_PROCESSES; /* the seam: reserved */
	assert_int_equal(fo_pmap(&out, src, map_fn, &r.o), FO_EINVAL);
	r.o.backend = FO_THREADS;
	r.o.on_error = (fo_error_policy)9;
	assert_int_equal(fo_pmap(&out, src, map_fn, &r.o), FO_EINVAL);
	r.o.on_error = FO_ERR_STOP;
	r.o.timeout_ns = -1;
	assert_int_equal(fo_pmap(&out, src, map_fn, &r.o), FO_EINVAL);
	r.o.timeout_ns = 0;
	assert_null(out);
	fo_iter_close(src); /* refused calls left it with us */

	/* A borrowing source is refused: inputs outlive its next read. */
	fo_stream *s;
	fo_cursor *c;
	fo_iter *bor;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_iter_from_cursor(&bor, c, NULL, NULL, NULL), FO_OK);
	assert_int_equal(fo_pmap(&out, bor, map_fn, &r.o), FO_EINVAL);
	fo_iter_close(bor);
	fo_stream_destroy(s);

	/* Paired mode over a source that emits error items is refused. */
	fo_iter *em = emitting_source(&r);
	r.o.paired = true;
	assert_int_equal(fo_pmap(&out, em, map_fn, &r.o), FO_EINVAL);
	fo_iter_close(em);
	assert_int_equal(fo_pmap_progress_get(NULL, NULL), FO_EINVAL);
	fo_iter *arr;
	fo_progress p;
	assert_int_equal(fo_iter_from_array(&arr, NULL, 0), FO_OK);
	assert_int_equal(fo_pmap_progress_get(arr, &p), FO_EINVAL);
	fo_iter_close(arr);
	ft_valve_fini(&r.v);
	ft_counter_fini(&r.in_cnt);
}

static void test_pmap_opts_init_defaults(void **state)
{
	(void)state;
	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	assert_int_equal(o.workers, 2);
	assert_int_equal(o.per_worker_buffer, FO_PMAP_BUFFER_AUTO); /* 16 with threads */
	assert_true(o.ordered);
	assert_int_equal(o.on_error, FO_ERR_STOP);
	assert_int_equal(o.backend, FO_THREADS);
	assert_int_equal(o.chunk_size, 1);
	fo_pmap_opts_init(NULL);
	fo_result_free(NULL, NULL);
}

/* ---- ordering and ends ------------------------------------------------------------------ */

static void drain_in_order(rig *r, size_t n)
{
	void *x;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(fo_iter_next(r->out, &x), FO_OK);
		assert_false(fo_iter_is_error(r->out));
		assert_int_equal(((ft_item *)x)->seq, i);
		assert_int_equal(((ft_item *)x)->producer, 7);
		fo_iter_release(r->out, x);
	}
}

/* Read items 0..n-1 in order where item k is an error item with @code (its input
 * NULL when @no_input: a timed-out call still uses it), then FO_END. */
static void read_with_error_at(rig *r, size_t n, size_t k, int code, bool no_input)
{
	void *x;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(fo_iter_next(r->out, &x), FO_OK);
		if (i == k) {
			assert_true(fo_iter_is_error(r->out));
			fo_error_item *e = x;
			assert_int_equal(e->err.code, code);
			if (no_input)
				assert_null(e->input);
			fo_error_item_free(e);
		} else {
			assert_false(fo_iter_is_error(r->out));
			assert_int_equal(((ft_item *)x)->seq, i);
			fo_iter_release(r->out, x);
		}
	}
	assert_int_equal(fo_iter_next(r->out, &x), FO_END);
}

static void test_pmap_ordered_output_in_input_order(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 500);
	r.o.workers = 4;
	rig_start(&r);
	drain_in_order(&r, 500);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	assert_int_equal(fo_iter_next(r.out, &x), FO_END); /* sticky */
	assert_int_equal(ft_freed(&r.m.out_cnt), 500);
	rig_down(&r);
}

static void test_pmap_unordered_delivers_every_item_once(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 500);
	r.o.workers = 3;
	r.o.ordered = false;
	rig_start(&r);
	static unsigned seen[500];
	memset(seen, 0, sizeof(seen));
	void *x;
	int rc;
	size_t n = 0;
	while ((rc = fo_iter_next(r.out, &x)) == FO_OK) {
		seen[((ft_item *)x)->seq]++;
		fo_iter_release(r.out, x);
		n++;
	}
	assert_int_equal(rc, FO_END);
	assert_int_equal(n, 500);
	for (size_t i = 0; i < 500; i++)
		assert_int_equal(seen[i], 1);
	rig_down(&r);
}

static void test_pmap_empty_source_ends(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 0);
	rig_start(&r);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
}

static void test_pmap_try_and_timed_reads(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 3);
	ft_valve_init(&r.v, 3, 0); /* closed valve: nothing comes */
	rig_start(&r);
	void *x;
	assert_int_equal(fo_iter_try_next(r.out, &x), FO_EMPTY);
	assert_int_equal(fo_iter_timed_next(r.out, &x, FT_MS(20)), FO_TIMEDOUT);
	ft_valve_open(&r.v, SIZE_MAX);
	drain_in_order(&r, 3);
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
}

/* ---- SEMANTICS.md §8, iterlib: parallel map ordered --------------------------------------- */

static void test_iterlib_ordered_error_at_index_k_after_outputs_0_to_k_minus_1(void **state)
{
	(void)state;
	for (size_t workers = 1; workers <= 4; workers *= 2) {
		rig r;
		rig_up(&r, 200);
		r.o.workers = workers;
		r.m.fail_at[0] = 50;
		r.m.fail_code = FO_ESYS;
		rig_start(&r);
		drain_in_order(&r, 50); /* iterlib delivered only 0..45 with 4 workers */
		void *x;
		assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
		assert_int_equal(fo_iter_error(r.out)->code, FO_ESYS);
		assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED); /* sticky */
		rig_down(&r);
	}
}

static void test_iterlib_source_error_after_k_items(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	r.v.fail_at = 30;
	r.v.fail_code = FO_ENOMEM;
	r.o.workers = 4;
	rig_start(&r);
	drain_in_order(&r, 30); /* iterlib surfaced it after only [0..3] */
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(r.out)->code, FO_ENOMEM);
	rig_down(&r);
}

/* ---- SEMANTICS.md §8, aiter/vimap: parallel map unordered ---------------------------------- */

static void test_vimap_unordered_one_slow_item_does_not_stall_the_others(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 60);
	r.o.workers = 2;
	r.o.per_worker_buffer = 1;
	r.o.ordered = false;
	r.m.block_at = 0; /* item 0 blocks until every other item was read */
	rig_start(&r);
	void *x;
	for (size_t i = 1; i < 60; i++) {
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		assert_int_not_equal(((ft_item *)x)->seq, 0);
		fo_iter_release(r.out, x);
	}
	atomic_store(&r.m.release, true);
	assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
	assert_int_equal(((ft_item *)x)->seq, 0);
	fo_iter_release(r.out, x);
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
}

/* ---- policies, retries ------------------------------------------------------------------- */

static void test_pmap_policy_drop_skips_failed_items(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 20);
	r.o.on_error = FO_ERR_DROP;
	r.m.fail_at[0] = 3;
	r.m.fail_at[1] = 11;
	rig_start(&r);
	void *x;
	for (size_t i = 0; i < 20; i++) {
		if (i == 3 || i == 11)
			continue;
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		assert_int_equal(((ft_item *)x)->seq, i);
		fo_iter_release(r.out, x);
	}
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	fo_progress p;
	assert_int_equal(fo_pmap_progress_get(r.out, &p), FO_OK);
	assert_int_equal(p.failed, 2);
	assert_int_equal(p.out, 18);
	assert_int_equal(p.in, 20);
	assert_int_equal(p.in_flight, 0);
	rig_down(&r);
}

static void test_pmap_policy_emit_error_item_owns_input(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	r.o.on_error = FO_ERR_EMIT;
	r.m.fail_at[0] = 4;
	r.m.fail_code = FO_ENOMEM;
	rig_start(&r);
	assert_true(fo_iter_emits_errors(r.out));
	void *x;
	for (size_t i = 0; i < 10; i++) {
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		if (i == 4) {
			assert_true(fo_iter_is_error(r.out));
			fo_error_item *e = x;
			assert_int_equal(e->err.code, FO_ENOMEM);
			assert_int_equal(((ft_item *)e->input)->seq, 4);
			fo_error_item_free(e);
		} else {
			assert_false(fo_iter_is_error(r.out));
			assert_int_equal(((ft_item *)x)->seq, i);
			fo_iter_release(r.out, x);
		}
	}
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
}

static void test_pmap_retries_recover_transient_failures(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 30);
	r.m.fail_first = 2;
	r.o.retries = 2;
	rig_start(&r);
	drain_in_order(&r, 30);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	for (size_t i = 0; i < 30; i++)
		assert_int_equal(atomic_load(&r.m.attempts[i]), 3);
	rig_down(&r);

	rig_up(&r, 30);
	r.m.fail_first = 2;
	r.o.retries = 1; /* not enough */
	rig_start(&r);
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(r.out)->code, FO_ESYS);
	rig_down(&r);
}

/* ---- SEMANTICS.md §8, vimap: 1 output per input ------------------------------------------- */

static void test_vimap_worker_emits_no_output_is_an_error_not_a_hang(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 5);
	r.m.null_out = true; /* FO_OK without an output breaks the 1:1 contract */
	r.o.on_error = FO_ERR_EMIT;
	rig_start(&r);
	void *x;
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		assert_true(fo_iter_is_error(r.out));
		assert_int_equal(((fo_error_item *)x)->err.code, FO_EINVAL);
		fo_error_item_free(x);
	}
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
}

/* ---- timeouts ----------------------------------------------------------------------------- */

static void test_pmap_timeout_item_ends_timedout_at_its_place_pool_keeps_workers(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 40);
	r.o.workers = 2;
	r.o.timeout_ns = FT_MS(30);
	r.o.on_error = FO_ERR_EMIT;
	r.o.init = init_fn;
	r.o.fini = fini_fn;
	r.m.block_at = 5;
	rig_start(&r);
	read_with_error_at(&r, 40, 5, FO_TIMEDOUT, true); /* input still in the abandoned call */
	/* A replacement was started: 2 + 1 inits (its init runs on its own thread,
	 * which the remaining worker may not have needed yet). */
	FT_WAIT_UNTIL(atomic_load(&r.m.inits) == 3, 2000);
	assert_int_equal(atomic_load(&r.m.inits), 3);
	atomic_store(&r.m.release, true); /* the late result comes and is released */
	fo_iter_close(r.out);
	r.out = NULL;
	assert_int_equal(atomic_load(&r.m.finis), 3);
	assert_int_equal(ft_freed(&r.in_cnt), 40);
	assert_int_equal(ft_freed(&r.m.out_cnt), 40); /* 39 read + the late one */
	ft_valve_fini(&r.v);
}

static void test_pmap_timeout_stop_policy_fails_with_timedout(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	r.o.timeout_ns = FT_MS(20);
	r.m.block_at = 2;
	rig_start(&r);
	drain_in_order(&r, 2);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(r.out)->code, FO_TIMEDOUT);
	atomic_store(&r.m.release, true);
	rig_down(&r);
}

/* ---- per-worker init / fini (vimap init_args) ---------------------------------------------- */

static void test_vimap_per_worker_init_args_init_once_fini_at_stop(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	void *args[3] = {(void *)0, (void *)1, (void *)2};
	rig_inits(&r, args, 3);
	rig_start(&r);
	assert_int_equal(atomic_load(&r.m.inits), 0); /* nothing before the first read */
	drain_in_order(&r, 100);
	assert_int_equal(atomic_load(&r.m.inits), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(atomic_load(&r.m.init_seen[i]), 1);
	rig_down(&r);
	assert_int_equal(atomic_load(&r.m.finis), 3);
}

static void test_vimap_init_callback_fails_no_input_pool_ends_cleanly(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	void *args[3] = {(void *)0, (void *)1, (void *)2};
	rig_inits(&r, args, 3);
	r.o.on_error = FO_ERR_EMIT;
	atomic_store(&r.m.init_fail_idx, 1);
	r.m.init_code = FO_ESYS;
	rig_start(&r);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED); /* not a spin, not a hang */
	assert_int_equal(fo_iter_error(r.out)->code, FO_ESYS);
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	assert_int_equal(ft_valve_pulls(&r.v), 0); /* no input was taken */
	rig_down(&r);
	assert_int_equal(atomic_load(&r.m.finis), 2); /* the two that succeeded */
}

/* ---- paired results (vimap zip_in_out / zip_in_out_typ) ------------------------------------ */

static void test_vimap_zip_in_out_results_paired_with_their_input(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 50);
	r.o.paired = true;
	r.o.on_error = FO_ERR_EMIT; /* zip_in_out_typ: errors in the stream */
	r.o.workers = 3;
	r.m.paired = true;
	r.m.fail_at[0] = 7;
	rig_start(&r);
	assert_false(fo_iter_emits_errors(r.out));
	void *x;
	for (size_t i = 0; i < 50; i++) {
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		fo_result *res = x;
		assert_int_equal(((ft_item *)res->input)->seq, i);
		if (i == 7) {
			assert_int_equal(res->status, FO_ESYS);
			assert_non_null(res->error);
			assert_int_equal(res->error->code, FO_ESYS);
			assert_null(res->output);
		} else {
			assert_int_equal(res->status, FO_OK);
			assert_null(res->error);
			assert_int_equal(((ft_item *)res->output)->seq, i);
		}
		fo_iter_release(r.out, x); /* frees input and output */
	}
	assert_int_equal(fo_iter_next(r.out, &x), FO_END);
	rig_down(&r);
	assert_int_equal(ft_freed(&r.m.out_cnt), 49);
}

static void test_vimap_zip_in_out_stop_raises_at_the_failed_input(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 20);
	r.o.paired = true;
	r.m.paired = true;
	r.m.fail_at[0] = 9;
	rig_start(&r);
	void *x;
	for (size_t i = 0; i < 9; i++) {
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		assert_int_equal(((fo_result *)x)->status, FO_OK);
		fo_result_free(x, NULL);
	}
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	rig_down(&r);
}

/* ---- SEMANTICS.md §8, vimap: streaming bounds, stop/finish ---------------------------------- */

static void test_vimap_infinite_input_read_ahead_within_bound(void **state)
{
	(void)state;
	for (int ordered = 0; ordered <= 1; ordered++) {
		rig r;
		rig_up(&r, SIZE_MAX); /* endless */
		r.o.workers = 2;
		r.o.per_worker_buffer = 1;
		r.o.ordered = ordered;
		r.o.reorder_window = 3;
		rig_start(&r);
		void *x;
		assert_int_equal(ft_valve_pulls(&r.v), 0); /* lazy */
		for (int i = 0; i < 5; i++) {
			assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
			fo_iter_release(r.out, x);
		}
		size_t bound = 2 * (1 + 1) + (ordered ? 3 : 0);
		FT_WAIT_UNTIL(ft_valve_pulls(&r.v) >= 5 + bound, 500);
		ft_sleep_ms(30);
		assert_int_equal(ft_valve_pulls(&r.v), 5 + bound); /* reaches the bound, not more */
		fo_progress p;
		assert_int_equal(fo_pmap_progress_get(r.out, &p), FO_OK);
		assert_int_equal(p.in_flight, bound);
		rig_down(&r);
	}
}

static void test_vimap_close_with_full_output_at_shutdown_joins_and_frees(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, SIZE_MAX);
	r.o.workers = 2;
	r.o.init = init_fn;
	r.o.fini = fini_fn;
	rig_start(&r);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
	fo_iter_release(r.out, x);
	/* Every buffer is full: the default bound with threads (FO_PMAP_BUFFER_AUTO:
	 * 16 per worker), ordered: 2 * 2 * (16 + 1), and not more. */
	FT_WAIT_UNTIL(ft_valve_pulls(&r.v) >= 1 + 68, 500);
	ft_sleep_ms(30);
	assert_int_equal(ft_valve_pulls(&r.v), 1 + 68);
	rig_down(&r); /* returns: every thread joined, every item freed */
	assert_int_equal(atomic_load(&r.m.finis), 2);
}

static void test_pmap_upstream_error_items_pass_through_at_their_place(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	r.o.workers = 3;
	assert_int_equal(fo_pmap(&r.out, emitting_source(&r), map_fn, &r.o), FO_OK);
	assert_true(fo_iter_emits_errors(r.out));
	read_with_error_at(&r, 10, 3, FO_ESYS, false);
	rig_down(&r);
}

static size_t progress_calls;
static fo_progress last_progress;
static void on_progress(void *ctx, const fo_progress *p)
{
	(void)ctx;
	progress_calls++;
	last_progress = *p;
}

static void test_pmap_progress_hook_sees_in_out_failed(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 25);
	r.o.on_error = FO_ERR_DROP;
	r.m.fail_at[0] = 10;
	r.o.progress = on_progress;
	progress_calls = 0;
	rig_start(&r);
	void *x;
	while (fo_iter_next(r.out, &x) == FO_OK)
		fo_iter_release(r.out, x);
	assert_true(progress_calls >= 24);
	assert_int_equal(last_progress.in, 25);
	assert_int_equal(last_progress.out, 24);
	assert_int_equal(last_progress.failed, 1);
	assert_int_equal(last_progress.in_flight, 0);
	rig_down(&r);
}

/* ---- pools: several rounds on one set of workers (vimap pool reuse) ---------------------- */

/* Read @n results of a round in order (seq 0..n-1), then FO_END. */
static void read_round(fo_iter *out, size_t n)
{
	void *x;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(fo_iter_next(out, &x), FO_OK);
		assert_int_equal(((ft_item *)x)->seq, i);
		assert_int_equal(((ft_item *)x)->producer, 7);
		fo_iter_release(out, x);
	}
	assert_int_equal(fo_iter_next(out, &x), FO_END);
}

static void test_pool_einval_and_ebusy(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	fo_pool *pool;
	assert_int_equal(fo_pool_create(NULL, map_fn, &r.o), FO_EINVAL);
	assert_int_equal(fo_pool_create(&pool, NULL, &r.o), FO_EINVAL);
	r.o.chunk_size = 0;
	assert_int_equal(fo_pool_create(&pool, map_fn, &r.o), FO_EINVAL);
	r.o.chunk_size = SIZE_MAX;
	assert_int_equal(fo_pool_create(&pool, map_fn, &r.o), FO_EINVAL);
	r.o.chunk_size = 1;
	assert_int_equal(fo_pool_create(&pool, map_fn, &r.o), FO_OK);
	fo_iter *src = ft_valve_iter(&r.v, &r.in_cnt);
	assert_int_equal(fo_pool_map(NULL, &r.out, src), FO_EINVAL);
	assert_int_equal(fo_pool_map(pool, NULL, src), FO_EINVAL);
	assert_int_equal(fo_pool_map(pool, &r.out, NULL), FO_EINVAL);
	assert_int_equal(fo_pool_map(pool, &r.out, src), FO_OK);
	/* One round at a time: the second source stays with the caller. */
	ft_valve v2;
	ft_valve_init(&v2, 5, 0);
	fo_iter *src2 = ft_valve_iter(&v2, &r.in_cnt), *out2 = NULL;
	assert_int_equal(fo_pool_map(pool, &out2, src2), FO_EBUSY);
	assert_null(out2);
	assert_int_equal(atomic_load(&v2.closes), 0);
	fo_iter_close(src2);
	ft_valve_fini(&v2);
	assert_string_equal(fo_status_name(FO_EBUSY), "FO_EBUSY");
	fo_pool_destroy(pool); /* the open round keeps the workers */
	read_round(r.out, 10);
	rig_down(&r);
	fo_pool_destroy(NULL);
}

static void test_vimap_pool_reuse_round_2_after_round_1(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	void *args[3] = {(void *)0, (void *)1, (void *)2};
	rig_inits(&r, args, 3);
	fo_pool *pool;
	assert_int_equal(fo_pool_create(&pool, map_fn, &r.o), FO_OK);
	assert_int_equal(fo_pool_map(pool, &r.out, ft_valve_iter(&r.v, &r.in_cnt)), FO_OK);
	assert_int_equal(atomic_load(&r.m.inits), 0); /* nothing before the first read */
	read_round(r.out, 100);
	fo_iter_close(r.out);
	assert_int_equal(atomic_load(&r.v.closes), 1);
	assert_int_equal(atomic_load(&r.m.inits), 3);
	assert_int_equal(atomic_load(&r.m.finis), 0); /* the workers stay for round 2 */

	/* Round 2, closed early; round 3 runs to its end on the same workers. */
	size_t sizes[2] = {SIZE_MAX, 40}, pulled = ft_valve_pulls(&r.v);
	for (int round = 0; round < 2; round++) {
		ft_valve v;
		ft_valve_init(&v, sizes[round], 0);
		ft_valve_open(&v, SIZE_MAX);
		fo_iter *out;
		assert_int_equal(fo_pool_map(pool, &out, ft_valve_iter(&v, &r.in_cnt)), FO_OK);
		if (round == 0) {
			void *x;
			for (size_t i = 0; i < 7; i++) {
				assert_int_equal(fo_iter_next(out, &x), FO_OK);
				assert_int_equal(((ft_item *)x)->seq, i);
				fo_iter_release(out, x);
			}
		} else {
			read_round(out, 40);
		}
		fo_iter_close(out);
		assert_int_equal(atomic_load(&v.closes), 1);
		pulled += ft_valve_pulls(&v);
		ft_valve_fini(&v);
	}
	assert_int_equal(atomic_load(&r.m.inits), 3); /* init once per worker, not per round */
	assert_int_equal(atomic_load(&r.m.finis), 0);
	fo_pool_destroy(pool);
	assert_int_equal(atomic_load(&r.m.finis), 3); /* fini when the pool goes */
	/* Every input pulled in any round was consumed or released exactly once. */
	assert_int_equal(ft_freed(&r.in_cnt), pulled);
	ft_valve_fini(&r.v);
}

static void test_pool_destroyed_with_a_round_open_stops_at_its_close(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 30);
	r.o.init = init_fn;
	r.o.fini = fini_fn;
	fo_pool *pool;
	assert_int_equal(fo_pool_create(&pool, map_fn, &r.o), FO_OK);
	assert_int_equal(fo_pool_map(pool, &r.out, ft_valve_iter(&r.v, &r.in_cnt)), FO_OK);
	fo_pool_destroy(pool);
	read_round(r.out, 30);
	assert_int_equal(atomic_load(&r.m.finis), 0);
	rig_down(&r); /* closes the round: the workers stop and are joined */
	assert_int_equal(atomic_load(&r.m.finis), 2);
}

static void test_pool_init_failure_fails_every_round(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	void *args[2] = {(void *)0, (void *)1};
	rig_inits(&r, args, 2);
	atomic_store(&r.m.init_fail_idx, 1);
	r.m.init_code = FO_ESYS;
	fo_pool *pool;
	assert_int_equal(fo_pool_create(&pool, map_fn, &r.o), FO_OK);
	for (int round = 0; round < 2; round++) {
		ft_valve v;
		ft_valve_init(&v, 10, 0);
		ft_valve_open(&v, SIZE_MAX);
		fo_iter *out;
		void *x;
		assert_int_equal(fo_pool_map(pool, &out, ft_valve_iter(&v, &r.in_cnt)), FO_OK);
		assert_int_equal(fo_iter_next(out, &x), FO_FAILED);
		assert_int_equal(fo_iter_error(out)->code, FO_ESYS);
		fo_iter_close(out);
		assert_int_equal(ft_valve_pulls(&v), 0); /* no input read */
		ft_valve_fini(&v);
	}
	fo_pool_destroy(pool);
	assert_int_equal(atomic_load(&r.m.finis), 1); /* only the worker whose init succeeded */
	ft_valve_fini(&r.v);
}

/* ---- chunks (vimap chunking) --------------------------------------------------------------- */

static void test_vimap_chunking_error_attributed_to_its_own_input(void **state)
{
	(void)state;
	for (int ordered = 0; ordered <= 1; ordered++) {
		rig r;
		rig_up(&r, 64);
		r.o.workers = 2;
		r.o.chunk_size = 4;
		r.o.ordered = ordered;
		r.o.on_error = FO_ERR_EMIT;
		r.m.fail_at[0] = 5; /* in the second chunk, not its first input */
		r.m.fail_at[1] = 8; /* the first input of the third chunk */
		rig_start(&r);
		bool seen[64] = {false};
		void *x;
		for (size_t i = 0; i < 64; i++) {
			assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
			size_t seq;
			if (fo_iter_is_error(r.out)) {
				fo_error_item *e = x;
				seq = ((ft_item *)e->input)->seq; /* the failing input itself */
				assert_true(seq == 5 || seq == 8);
				assert_int_equal(e->err.code, FO_ESYS);
				fo_error_item_free(e);
			} else {
				seq = ((ft_item *)x)->seq;
				assert_true(seq != 5 &&
				            seq != 8); /* the chunk's other inputs succeed */
				fo_iter_release(r.out, x);
			}
			if (ordered)
				assert_int_equal(seq, i);
			assert_false(seen[seq]);
			seen[seq] = true;
		}
		assert_int_equal(fo_iter_next(r.out, &x), FO_END);
		for (size_t i = 0; i < 64; i++)
			assert_int_equal(atomic_load(&r.m.attempts[i]), 1);
		rig_down(&r);
	}
}

static void test_pmap_chunks_stop_policy_error_at_its_index(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 100);
	r.o.workers = 3;
	r.o.chunk_size = 8;
	r.m.fail_at[0] = 21;
	rig_start(&r);
	drain_in_order(&r, 21);
	void *x;
	assert_int_equal(fo_iter_next(r.out, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(r.out)->code, FO_ESYS);
	rig_down(&r); /* inputs pulled past the error are released */
}

static void test_pmap_chunks_infinite_input_within_bound(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, SIZE_MAX);
	r.o.workers = 2;
	r.o.per_worker_buffer = 1;
	r.o.chunk_size = 3;
	r.o.ordered = false;
	rig_start(&r);
	void *x;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		fo_iter_release(r.out, x);
	}
	size_t bound = 2 * (1 + 3);
	FT_WAIT_UNTIL(ft_valve_pulls(&r.v) >= 5 + bound, 500);
	ft_sleep_ms(30);
	assert_int_equal(ft_valve_pulls(&r.v), 5 + bound);
	rig_down(&r);
}

static void test_pmap_chunk_timeout_rest_of_chunk_goes_to_another_worker(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 24);
	r.o.workers = 2;
	r.o.chunk_size = 4;
	r.o.timeout_ns = FT_MS(30);
	r.o.on_error = FO_ERR_EMIT;
	r.m.block_at = 1; /* items 2 and 3 sit behind it in the same chunk */
	rig_start(&r);
	read_with_error_at(&r, 24, 1, FO_TIMEDOUT, true);
	assert_false(atomic_load(&r.m.release)); /* all of it while the call still hangs */
	atomic_store(&r.m.release, true);
	rig_down(&r);
	assert_int_equal(ft_freed(&r.in_cnt), 24);
}

/* The watchdog times items out and replaces workers while nobody reads. */
static void test_pmap_timeout_fires_while_the_reader_is_away(void **state)
{
	(void)state;
	rig r;
	rig_up(&r, 10);
	r.o.timeout_ns = FT_MS(20);
	r.o.on_error = FO_ERR_EMIT;
	r.o.init = init_fn;
	r.m.block_at = 0;
	rig_start(&r);
	void *x;
	assert_int_equal(fo_iter_try_next(r.out, &x), FO_EMPTY); /* starts the workers */
	fo_progress p = {0};
	FT_WAIT_UNTIL((fo_pmap_progress_get(r.out, &p), p.failed == 1), 2000);
	assert_int_equal(p.failed, 1);
	FT_WAIT_UNTIL(atomic_load(&r.m.inits) == 3, 2000);
	assert_int_equal(atomic_load(&r.m.inits), 3); /* the replacement started on time */
	assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
	assert_true(fo_iter_is_error(r.out));
	fo_error_item_free(x);
	for (size_t i = 1; i < 10; i++) {
		assert_int_equal(fo_iter_next(r.out, &x), FO_OK);
		fo_iter_release(r.out, x);
	}
	atomic_store(&r.m.release, true);
	rig_down(&r);
}

/* ---- event loops ----------------------------------------------------------------------------- */

static void test_pmap_fd_and_arm_signal_results_and_the_end(void **state)
{
	(void)state;
	for (int ordered = 0; ordered <= 1; ordered++) {
		rig r;
		ft_valve_init(&r.v, 50, 0);
		ft_counter_init(&r.in_cnt, 0);
		mctx_init(&r.m, &r.in_cnt);
		fo_pmap_opts_init(&r.o);
		r.o.ctx = &r.m;
		r.o.item_free = ft_item_free;
		r.o.item_free_ctx = &r.m.out_cnt;
		r.o.ordered = ordered;
		rig_start(&r);
		assert_int_equal(fo_iter_arm(r.out), FO_EINVAL); /* no fd yet */
		int fd = fo_iter_fd(r.out);
		assert_true(fd >= 0);
		assert_int_equal(fo_iter_arm(r.out), 0); /* starts the workers; nothing yet */
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		assert_int_equal(poll(&pf, 1, 20), 0);
		ft_valve_open(&r.v, SIZE_MAX);
		size_t got = 0;
		void *x;
		for (;;) {
			int a = fo_iter_arm(r.out);
			assert_true(a == 0 || a == 1);
			if (a == 0)
				assert_int_equal(poll(&pf, 1, 5000), 1);
			int rc;
			while ((rc = fo_iter_try_next(r.out, &x)) == FO_OK) {
				if (ordered)
					assert_int_equal(((ft_item *)x)->seq, got);
				got++;
				fo_iter_release(r.out, x);
			}
			if (rc == FO_END)
				break;
			assert_int_equal(rc, FO_EMPTY);
		}
		assert_int_equal(got, 50);
		assert_int_equal(fo_iter_arm(r.out), 1); /* ended: always ready */
		rig_down(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pmap_einval),
	    cmocka_unit_test(test_pmap_opts_init_defaults),
	    cmocka_unit_test(test_pmap_ordered_output_in_input_order),
	    cmocka_unit_test(test_pmap_unordered_delivers_every_item_once),
	    cmocka_unit_test(test_pmap_empty_source_ends),
	    cmocka_unit_test(test_pmap_try_and_timed_reads),
	    cmocka_unit_test(test_iterlib_ordered_error_at_index_k_after_outputs_0_to_k_minus_1),
	    cmocka_unit_test(test_iterlib_source_error_after_k_items),
	    cmocka_unit_test(test_vimap_unordered_one_slow_item_does_not_stall_the_others),
	    cmocka_unit_test(test_pmap_policy_drop_skips_failed_items),
	    cmocka_unit_test(test_pmap_policy_emit_error_item_owns_input),
	    cmocka_unit_test(test_pmap_retries_recover_transient_failures),
	    cmocka_unit_test(test_vimap_worker_emits_no_output_is_an_error_not_a_hang),
	    cmocka_unit_test(test_pmap_timeout_item_ends_timedout_at_its_place_pool_keeps_workers),
	    cmocka_unit_test(test_pmap_timeout_stop_policy_fails_with_timedout),
	    cmocka_unit_test(test_vimap_per_worker_init_args_init_once_fini_at_stop),
	    cmocka_unit_test(test_vimap_init_callback_fails_no_input_pool_ends_cleanly),
	    cmocka_unit_test(test_vimap_zip_in_out_results_paired_with_their_input),
	    cmocka_unit_test(test_vimap_zip_in_out_stop_raises_at_the_failed_input),
	    cmocka_unit_test(test_vimap_infinite_input_read_ahead_within_bound),
	    cmocka_unit_test(test_vimap_close_with_full_output_at_shutdown_joins_and_frees),
	    cmocka_unit_test(test_pmap_upstream_error_items_pass_through_at_their_place),
	    cmocka_unit_test(test_pmap_progress_hook_sees_in_out_failed),
	    cmocka_unit_test(test_pool_einval_and_ebusy),
	    cmocka_unit_test(test_vimap_pool_reuse_round_2_after_round_1),
	    cmocka_unit_test(test_pool_destroyed_with_a_round_open_stops_at_its_close),
	    cmocka_unit_test(test_pool_init_failure_fails_every_round),
	    cmocka_unit_test(test_vimap_chunking_error_attributed_to_its_own_input),
	    cmocka_unit_test(test_pmap_chunks_stop_policy_error_at_its_index),
	    cmocka_unit_test(test_pmap_chunks_infinite_input_within_bound),
	    cmocka_unit_test(test_pmap_chunk_timeout_rest_of_chunk_goes_to_another_worker),
	    cmocka_unit_test(test_pmap_timeout_fires_while_the_reader_is_away),
	    cmocka_unit_test(test_pmap_fd_and_arm_signal_results_and_the_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

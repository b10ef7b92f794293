/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_pmap_proc.c - fo_pmap / fo_pool_* with backend FO_PROCESSES: codecs required, order
 * and chunks, per-worker init_args inherited through fork, fo_fail messages and errno across
 * the process boundary, workers dying mid-item (signal, _exit) retried or reported at their
 * place, timeouts killing the worker (FO_TIMEDOUT with the input), init failing or dying
 * (the round fails with the cause), pools with several rounds, paired results, progress,
 * fd/arm, and after every test: no zombie, no fd leaked.
 */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fo_test.h"

/* Shared with the children (MAP_SHARED): what happened in them. */
typedef struct shared {
	atomic_int inits, finis;
	atomic_int attempts[4096];
	atomic_int init_calls_by_idx[8];
	atomic_int hangs_done; /* hang_at items that finished sleeping */
} shared;

typedef struct pctx {
	shared *sh;
	long crash_at;        /* this input kills its worker (SIGKILL) */
	long exit_at;         /* this input _exit(3)s its worker */
	unsigned crash_first; /* ... only on its first crash_first attempts */
	long fail_at;         /* this input fails with fo_fail(FO_USER(3)) */
	long esys_at;         /* this input fails with FO_ESYS, errno ENOENT */
	long hang_at;         /* this input sleeps for hang_ms (0: 60 s) */
	int hang_ms;
	bool init_fails, init_crashes;
	long add; /* what init adds (from its init arg) */
} pctx;

static shared *sh_new(void)
{
	shared *s =
	    mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(s != MAP_FAILED);
	memset(s, 0, sizeof(*s));
	return s;
}

static void pctx_init(pctx *c)
{
	memset(c, 0, sizeof(*c));
	c->sh = sh_new();
	c->crash_at = c->exit_at = c->fail_at = c->esys_at = c->hang_at = -1;
	c->crash_first = UINT32_MAX;
}

/* ---- inputs: heap longs 0 .. n-1 ---------------------------------------------------------------
 */

typedef struct src {
	long next, n;
	atomic_long freed;
} src;

static void long_free(void *item, void *ctx)
{
	src *s = ctx;
	atomic_fetch_add(&s->freed, 1);
	free(item);
}

static int src_next(void *ctx, void **item, uint64_t deadline)
{
	(void)deadline;
	src *s = ctx;
	if (s->next >= s->n)
		return FO_END;
	long *v = malloc(sizeof(*v));
	*v = s->next++;
	*item = v;
	return FO_OK;
}

static fo_iter *longs(src *s, long n)
{
	s->next = 0;
	s->n = n;
	atomic_init(&s->freed, 0);
	fo_iter *it;
	assert_int_equal(fo_iter_from_fn(&it, src_next, NULL, s, long_free, s), FO_OK);
	return it;
}

/* ---- callbacks (run in the children) -----------------------------------------------------------
 */

static int p_init(void *ctx, void *arg, void **wstate)
{
	pctx *c = ctx;
	atomic_fetch_add(&c->sh->inits, 1);
	if (c->init_crashes)
		raise(SIGKILL);
	if (c->init_fails)
		return fo_fail(FO_USER(1), "no database at %s", "db:5432");
	*wstate = arg; /* a pointer into the parent's memory, inherited */
	return FO_OK;
}

static void p_fini(void *ctx, void *wstate)
{
	pctx *c = ctx;
	(void)wstate;
	atomic_fetch_add(&c->sh->finis, 1);
}

static int p_fn(void *ctx, void *wstate, void *in, void **out)
{
	pctx *c = ctx;
	long *v = in;
	int a = *v >= 0 && *v < 4096 ? atomic_fetch_add(&c->sh->attempts[*v], 1) : 0;
	if (*v == c->crash_at && (unsigned)a < c->crash_first)
		raise(SIGKILL);
	if (*v == c->exit_at)
		_exit(3);
	if (*v == c->fail_at)
		return fo_fail(FO_USER(3), "bad input %ld", *v);
	if (*v == c->esys_at) {
		errno = ENOENT;
		return FO_ESYS;
	}
	if (*v == c->hang_at) {
		ft_sleep_ms(c->hang_ms ? c->hang_ms : 60000);
		atomic_fetch_add(&c->sh->hangs_done, 1);
	}
	long add = wstate ? *(const long *)wstate : 0;
	*v = *v * 2 + add; /* the decoded copy becomes the output */
	*out = v;
	return FO_OK;
}

static void opts_proc(fo_pmap_opts *o, pctx *c)
{
	fo_pmap_opts_init(o);
	o->backend = FO_PROCESSES;
	o->in_codec = fo_codec_pod(sizeof(long));
	o->out_codec = fo_codec_pod(sizeof(long));
	o->item_free = o->out_codec.item_free; /* fn's outputs, in the child */
	o->item_free_ctx = o->out_codec.ctx;
	o->ctx = c;
}

/* ---- leak checks -------------------------------------------------------------------------------
 */

static int fds_before;

static int setup(void **state)
{
	(void)state;
	fds_before = ft_count_fds();
	return 0;
}

/* No zombie (every child reaped), no fd left open. */
static int teardown(void **state)
{
	(void)state;
	errno = 0;
	pid_t z = waitpid(-1, NULL, WNOHANG);
	assert_int_equal(z, -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(ft_count_fds(), fds_before);
	return 0;
}

/* Read everything: values[i] / codes[i] by input (ordered: in order). */
static size_t drain(fo_iter *out, long *vals, int *codes, char msgs[][160], size_t max)
{
	size_t n = 0;
	void *item;
	int rc;
	while ((rc = fo_iter_next(out, &item)) == FO_OK) {
		assert_true(n < max);
		if (fo_iter_is_error(out)) {
			fo_error_item *e = item;
			codes[n] = e->err.code;
			vals[n] = e->input ? *(long *)e->input : -1;
			snprintf(msgs[n], 160, "%s", e->err.message);
			fo_error_item_free(e);
		} else {
			codes[n] = FO_OK;
			vals[n] = *(long *)item;
			fo_iter_release(out, item);
		}
		n++;
	}
	assert_int_equal(rc, FO_END);
	return n;
}

static long vals[4096];
static int codes[4096];
static char msgs[4096][160];

/* ---- tests --------------------------------------------------------------------------------------
 */

static void test_pmap_proc_einval_without_codecs(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.in_codec.decode = NULL;
	src s;
	fo_iter *in = longs(&s, 3), *out;
	assert_int_equal(fo_pmap(&out, in, p_fn, &o), FO_EINVAL);
	opts_proc(&o, &c);
	o.out_codec = (fo_codec){0};
	fo_pool *pool;
	assert_int_equal(fo_pool_create(&pool, p_fn, &o), FO_EINVAL);
	fo_iter_close(in);
}

static void run_map(bool ordered, size_t chunk, size_t n)
{
	pctx c;
	pctx_init(&c);
	long add = 1000;
	void *args[2] = {&add, &add};
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.ordered = ordered;
	o.chunk_size = chunk;
	o.init = p_init;
	o.fini = p_fini;
	o.init_args = args;
	src s;
	fo_iter *out;
	assert_int_equal(fo_pmap(&out, longs(&s, (long)n), p_fn, &o), FO_OK);
	size_t got = drain(out, vals, codes, msgs, 4096);
	fo_iter_close(out);
	assert_int_equal(got, n);
	bool seen[4096] = {0};
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(codes[i], FO_OK);
		long x = (vals[i] - 1000) / 2;
		if (ordered)
			assert_int_equal(x, (long)i);
		assert_false(seen[x]);
		seen[x] = true;
	}
	assert_int_equal(atomic_load(&s.freed), (long)n); /* every parent input released */
	assert_int_equal(atomic_load(&c.sh->inits), 2);
	assert_int_equal(atomic_load(&c.sh->finis), 2); /* fini ran in each child at close */
}

static void test_pmap_proc_ordered_init_args_inherited_fini_at_close(void **state)
{
	(void)state;
	run_map(true, 1, 500);
}

static void test_pmap_proc_unordered_every_item_once(void **state)
{
	(void)state;
	run_map(false, 1, 500);
}

static void test_pmap_proc_chunks_ordered_and_unordered(void **state)
{
	(void)state;
	run_map(true, 16, 1000);
	run_map(false, 7, 1000);
}

static void emit_run(pctx *c, fo_pmap_opts *o, size_t n, size_t *got)
{
	src s;
	fo_iter *out;
	assert_int_equal(fo_pmap(&out, longs(&s, (long)n), p_fn, o), FO_OK);
	*got = drain(out, vals, codes, msgs, 4096);
	fo_iter_close(out);
	(void)c;
	assert_int_equal(atomic_load(&s.freed), (long)n);
}

static void test_pmap_proc_fo_fail_message_and_errno_cross_the_boundary(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	c.fail_at = 4;
	c.esys_at = 6;
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.on_error = FO_ERR_EMIT;
	size_t got;
	emit_run(&c, &o, 10, &got);
	assert_int_equal(got, 10);
	assert_int_equal(codes[4], FO_USER(3));
	assert_string_equal(msgs[4], "bad input 4");
	assert_int_equal(vals[4], 4); /* the error item owns its (parent's) input */
	assert_int_equal(codes[6], FO_ESYS);
	for (size_t i = 0; i < 10; i++)
		if (i != 4 && i != 6)
			assert_int_equal(vals[i], 2 * (long)i);
	/* sys_errno: through paired results */
	pctx_init(&c);
	c.esys_at = 2;
	opts_proc(&o, &c);
	o.paired = true;
	o.on_error = FO_ERR_EMIT;
	src s;
	fo_iter *out;
	assert_int_equal(fo_pmap(&out, longs(&s, 4), p_fn, &o), FO_OK);
	void *item;
	for (long i = 0; i < 4; i++) {
		assert_int_equal(fo_iter_next(out, &item), FO_OK);
		fo_result *r = item;
		assert_int_equal(*(long *)r->input, i);
		if (i == 2) {
			assert_int_equal(r->status, FO_ESYS);
			assert_int_equal(r->error->sys_errno, ENOENT);
			assert_null(r->output);
		} else {
			assert_int_equal(r->status, FO_OK);
			assert_int_equal(*(long *)r->output, 2 * i);
		}
		fo_iter_release(out, item);
	}
	assert_int_equal(fo_iter_next(out, &item), FO_END);
	fo_iter_close(out);
	assert_int_equal(atomic_load(&s.freed), 4);
}

static void test_vimap_sigkill_one_worker_mid_item_error_item_for_that_input(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	c.crash_at = 5;
	c.exit_at = 9;
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.on_error = FO_ERR_EMIT;
	o.init = p_init;
	o.workers = 1; /* so that the respawns are certain: items follow each death */
	size_t got;
	emit_run(&c, &o, 20, &got);
	assert_int_equal(got, 20);
	assert_int_equal(codes[5], FO_FAILED);
	assert_non_null(strstr(msgs[5], "killed by signal 9 (SIGKILL)"));
	assert_int_equal(vals[5], 5);
	assert_int_equal(codes[9], FO_FAILED);
	assert_non_null(strstr(msgs[9], "exited with status 3"));
	for (size_t i = 0; i < 20; i++)
		if (i != 5 && i != 9)
			assert_int_equal(codes[i], FO_OK);
	/* respawned: init ran again after each death */
	assert_int_equal(atomic_load(&c.sh->inits), 3);
}

static void test_pmap_proc_crash_retried_on_a_fresh_worker(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	c.crash_at = 3;
	c.crash_first = 2; /* dies twice, then computes */
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.retries = 2;
	size_t got;
	emit_run(&c, &o, 8, &got);
	assert_int_equal(got, 8);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(vals[i], 2 * (long)i);
	assert_int_equal(atomic_load(&c.sh->attempts[3]), 3);
	/* STOP policy, no retries: fails at its place after the earlier results */
	pctx_init(&c);
	c.crash_at = 3;
	opts_proc(&o, &c);
	src s;
	fo_iter *out;
	assert_int_equal(fo_pmap(&out, longs(&s, 8), p_fn, &o), FO_OK);
	void *item;
	for (long i = 0; i < 3; i++) {
		assert_int_equal(fo_iter_next(out, &item), FO_OK);
		assert_int_equal(*(long *)item, 2 * i);
		fo_iter_release(out, item);
	}
	assert_int_equal(fo_iter_next(out, &item), FO_FAILED);
	assert_int_equal(fo_iter_error(out)->code, FO_FAILED);
	assert_non_null(strstr(fo_iter_error(out)->message, "SIGKILL"));
	fo_iter_close(out);
}

/* One worker keeps many items in flight (its window): when it dies on one, only that one
 * fails; the items it finished unseen and the ones queued behind it run again on the
 * replacement without using a retry (retries 0 here). */
static void test_pmap_proc_window_only_the_item_it_died_on_fails(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	c.crash_at = 7;
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.workers = 1;
	o.per_worker_buffer = 16;
	o.on_error = FO_ERR_EMIT;
	size_t got;
	emit_run(&c, &o, 40, &got);
	assert_int_equal(got, 40);
	assert_int_equal(codes[7], FO_FAILED);
	assert_non_null(strstr(msgs[7], "SIGKILL"));
	for (size_t i = 0; i < 40; i++)
		if (i != 7)
			assert_int_equal(vals[i], 2 * (long)i);
	assert_int_equal(atomic_load(&c.sh->attempts[7]), 1);
	/* a timeout: only the item that overran times out */
	pctx_init(&c);
	c.hang_at = 3;
	opts_proc(&o, &c);
	o.workers = 1;
	o.per_worker_buffer = 16;
	o.on_error = FO_ERR_EMIT;
	o.timeout_ns = FT_MS(300);
	emit_run(&c, &o, 30, &got);
	assert_int_equal(got, 30);
	assert_int_equal(codes[3], FO_TIMEDOUT);
	for (size_t i = 0; i < 30; i++)
		if (i != 3)
			assert_int_equal(vals[i], 2 * (long)i);
}

/* An item that runs for a long time does not hold back the outputs its
 * child finished before it: with a window of items in flight per child, items 0-4 used to
 * wait in the child behind item 5 (B15c hung that way). */
static void test_pmap_proc_slow_item_does_not_hold_back_finished_ones(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	c.hang_at = 5; /* sleeps 60 s */
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.workers = 1;
	o.per_worker_buffer = 16;
	o.timeout_ns = FT_MS(15000); /* ends item 5 (and the test) after 15 s, not 60 */
	src s;
	fo_iter *out;
	int64_t t0 = ft_now_ns();
	assert_int_equal(fo_pmap(&out, longs(&s, 10), p_fn, &o), FO_OK);
	for (long i = 0; i < 5; i++) {
		void *item;
		assert_int_equal(fo_iter_timed_next(out, &item, FT_MS(12000)), FO_OK);
		assert_false(fo_iter_is_error(out));
		assert_int_equal(*(long *)item, 2 * i);
		fo_iter_release(out, item);
	}
	assert_true(ft_now_ns() - t0 < FT_MS(30000)); /* not after the 60 s item */
	fo_iter_close(out);                           /* early close: kills the sleeping child */
}

/* Map 0..14 on one worker in chunks of 5 while item @hang_at sleeps 5 s (no
 * timeout: close waits for it), with @o's other options: items 0-4 must
 * come before the slow item ends (item @enc_fail: the encode error). */
static void first_chunk_before_slow_item(pctx *c, fo_pmap_opts *o, long hang_at, long enc_fail)
{
	c->hang_at = hang_at;
	c->hang_ms = 5000;
	o->workers = 1;
	o->chunk_size = 5;
	o->per_worker_buffer = 16;
	src s;
	fo_iter *out;
	assert_int_equal(fo_pmap(&out, longs(&s, 15), p_fn, o), FO_OK);
	for (long i = 0; i < 5; i++) {
		void *item;
		assert_int_equal(fo_iter_timed_next(out, &item, FT_MS(20000)), FO_OK);
		assert_int_equal(fo_iter_is_error(out), i == enc_fail);
		if (i == enc_fail) {
			fo_error_item *e = item;
			assert_int_equal(e->err.code, FO_USER(4));
			assert_string_equal(e->err.message, "cannot encode 4");
			fo_error_item_free(e);
			continue;
		}
		assert_int_equal(*(long *)item, 2 * i);
		fo_iter_release(out, item);
	}
	assert_int_equal(atomic_load(&c->sh->hangs_done), 0); /* before the slow item's end */
	fo_iter_close(out);                                   /* waits for the slow item */
}

/* A chunk is one unit of work: its outputs come back together (as the thread
 * backend publishes a chunk at once), but a chunk that runs long does not
 * hold back the chunk finished before it (item 7 is in the second chunk). */
static void test_pmap_proc_slow_chunk_does_not_hold_back_the_chunk_before(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	fo_pmap_opts o;
	opts_proc(&o, &c);
	first_chunk_before_slow_item(&c, &o, 7, -1);
}

/* The pod codec for longs, except that 4 fails to encode (in the parent). */
static fo_codec pod_long;

static int enc_but_4(void *ctx, const void *item, fo_buf *out)
{
	if (*(const long *)item == 4)
		return fo_fail(FO_USER(4), "cannot encode 4");
	return pod_long.encode(ctx, item, out);
}

/* When the last item of a chunk fails to encode, the chunk still ends with
 * the item before it: items 0-3 are not held back behind the next chunk
 * (item 5, first of the next chunk, is the slow one). */
static void test_pmap_proc_chunk_whose_last_item_fails_to_encode_still_ends(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	fo_pmap_opts o;
	opts_proc(&o, &c);
	pod_long = o.in_codec;
	o.in_codec.encode = enc_but_4;
	o.on_error = FO_ERR_EMIT;
	first_chunk_before_slow_item(&c, &o, 5, 4);
}

/* fn for byte strings: reverses them in place (the decoded copy is the output). */
static int rev_fn(void *ctx, void *wstate, void *in, void **out)
{
	(void)ctx;
	(void)wstate;
	fo_bytes *b = in;
	for (size_t i = 0, j = b->len; i + 1 < j; i++, j--) {
		unsigned char t = b->data[i];
		b->data[i] = b->data[j - 1];
		b->data[j - 1] = t;
	}
	*out = b;
	return FO_OK;
}

/* Items larger than the shared rings (64 KiB each way) cross in pieces, in
 * both directions at once (several in flight per child), byte for byte. */
static void test_pmap_proc_items_larger_than_the_rings_cross_intact(void **state)
{
	(void)state;
	enum { N = 12 };
	size_t sizes[N];
	fo_bytes *in[N];
	for (size_t i = 0; i < N; i++) {
		sizes[i] = (i % 3 == 0) ? 1 + i : (size_t)(150000 + 7919 * i); /* small and large */
		unsigned char *d = malloc(sizes[i]);
		assert_non_null(d);
		for (size_t k = 0; k < sizes[i]; k++)
			d[k] = (unsigned char)(k * 31 + i);
		assert_int_equal(fo_bytes_new(&in[i], d, sizes[i]), FO_OK);
		free(d);
	}
	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	o.backend = FO_PROCESSES;
	o.workers = 2;
	o.chunk_size = 2;
	o.in_codec = fo_codec_bytes();
	o.out_codec = fo_codec_bytes();
	o.item_free = o.out_codec.item_free;
	o.item_free_ctx = o.out_codec.ctx;
	fo_iter *src, *out;
	assert_int_equal(fo_iter_from_array(&src, (void *const *)in, N), FO_OK);
	assert_int_equal(fo_pmap(&out, src, rev_fn, &o), FO_OK);
	void *item;
	size_t n = 0;
	int rc;
	while ((rc = fo_iter_next(out, &item)) == FO_OK) {
		assert_true(n < N);
		assert_false(fo_iter_is_error(out));
		fo_bytes *b = item;
		assert_int_equal(b->len, sizes[n]);
		for (size_t k = 0; k < b->len; k++)
			assert_int_equal(b->data[b->len - 1 - k], (unsigned char)(k * 31 + n));
		fo_iter_release(out, item);
		n++;
	}
	assert_int_equal(rc, FO_END);
	assert_int_equal(n, N);
	fo_iter_close(out);
	for (size_t i = 0; i < N; i++)
		fo_bytes_free(in[i]);
}

static void test_pmap_proc_timeout_kills_the_worker_item_timedout_with_input(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	c.hang_at = 2;
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.on_error = FO_ERR_EMIT;
	o.timeout_ns = FT_MS(500);
	o.init = p_init;
	int64_t t0 = ft_now_ns();
	size_t got;
	emit_run(&c, &o, 6, &got);
	assert_true(ft_now_ns() - t0 < FT_MS(20000));
	assert_int_equal(got, 6);
	assert_int_equal(codes[2], FO_TIMEDOUT);
	assert_int_equal(vals[2], 2); /* with its input, unlike threads */
	assert_non_null(strstr(msgs[2], "timeout"));
	for (size_t i = 0; i < 6; i++)
		if (i != 2)
			assert_int_equal(vals[i], 2 * (long)i);
	/* the replacement starts (init again) when that worker takes its next item; under
	 * load a kill may also land just after an item finished in time (a replacement,
	 * no error) */
	assert_true(atomic_load(&c.sh->inits) >= 2);
}

static void test_vimap_init_callback_fails_round_fails_with_the_cause(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	c.init_fails = true;
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.init = p_init;
	src s;
	fo_iter *out;
	assert_int_equal(fo_pmap(&out, longs(&s, 5), p_fn, &o), FO_OK);
	void *item;
	assert_int_equal(fo_iter_next(out, &item), FO_FAILED);
	assert_int_equal(fo_iter_error(out)->code, FO_USER(1));
	assert_string_equal(fo_iter_error(out)->message, "no database at db:5432");
	fo_iter_close(out);
	/* dying in init: the round fails naming the signal, no hang, no spin */
	pctx_init(&c);
	c.init_crashes = true;
	opts_proc(&o, &c);
	o.init = p_init;
	assert_int_equal(fo_pmap(&out, longs(&s, 5), p_fn, &o), FO_OK);
	assert_int_equal(fo_iter_next(out, &item), FO_FAILED);
	assert_int_equal(fo_iter_error(out)->code, FO_FAILED);
	assert_non_null(strstr(fo_iter_error(out)->message, "during init"));
	assert_non_null(strstr(fo_iter_error(out)->message, "SIGKILL"));
	fo_iter_close(out);
}

static void test_vimap_pool_reuse_round_2_on_the_same_children(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.init = p_init;
	o.fini = p_fini;
	fo_pool *pool;
	assert_int_equal(fo_pool_create(&pool, p_fn, &o), FO_OK);
	for (int round = 0; round < 3; round++) {
		src s;
		fo_iter *out;
		assert_int_equal(fo_pool_map(pool, &out, longs(&s, 50)), FO_OK);
		size_t got = drain(out, vals, codes, msgs, 4096);
		assert_int_equal(got, 50);
		for (size_t i = 0; i < 50; i++)
			assert_int_equal(vals[i], 2 * (long)i);
		fo_iter_close(out);
	}
	assert_int_equal(atomic_load(&c.sh->inits), 2);
	assert_int_equal(atomic_load(&c.sh->finis), 0);
	fo_pool_destroy(pool);
	assert_int_equal(atomic_load(&c.sh->finis), 2);
}

static void test_pmap_proc_early_close_and_destroy_reap_every_child(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.workers = 3;
	src s;
	fo_iter *out;
	assert_int_equal(fo_pmap(&out, longs(&s, 1000000), p_fn, &o), FO_OK);
	void *item;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(fo_iter_next(out, &item), FO_OK);
		fo_iter_release(out, item);
	}
	fo_iter_close(out); /* teardown checks: no zombie, no fd */
	assert_int_equal(atomic_load(&s.freed), (long)s.next);
}

static size_t nprogress;
static fo_progress lastp;
static void on_progress(void *ctx, const fo_progress *p)
{
	(void)ctx;
	nprogress++;
	lastp = *p;
}

/* The default bound of a process pool is larger than a thread pool's (pmap.h,
 * FO_PMAP_BUFFER_AUTO: 32 results per worker) and is still a bound: the
 * pool pulls up to it and stops. */
static void test_pmap_proc_default_bound_is_32_per_worker(void **state)
{
	(void)state;
	for (int ordered = 0; ordered <= 1; ordered++) {
		pctx c;
		pctx_init(&c);
		fo_pmap_opts o;
		opts_proc(&o, &c);
		assert_int_equal(o.per_worker_buffer, FO_PMAP_BUFFER_AUTO);
		o.ordered = ordered;
		src s;
		fo_iter *out;
		assert_int_equal(fo_pmap(&out, longs(&s, 100000), p_fn, &o), FO_OK);
		void *x;
		assert_int_equal(fo_iter_next(out, &x), FO_OK);
		fo_iter_release(out, x);
		uint64_t bound = 2 * (32 + 1) * (ordered ? 2 : 1);
		fo_progress p = {0};
		for (int i = 0; i < 1000 && p.in < 1 + bound; i++) {
			assert_int_equal(fo_pmap_progress_get(out, &p), FO_OK);
			ft_sleep_ms(5);
		}
		ft_sleep_ms(30);
		assert_int_equal(fo_pmap_progress_get(out, &p), FO_OK);
		assert_int_equal(p.in, 1 + bound); /* reaches the bound, not more */
		assert_int_equal(p.in_flight, bound);
		fo_iter_close(out);
	}
}

static void test_pmap_proc_progress_and_fd_arm(void **state)
{
	(void)state;
	pctx c;
	pctx_init(&c);
	c.fail_at = 3;
	fo_pmap_opts o;
	opts_proc(&o, &c);
	o.on_error = FO_ERR_DROP;
	o.progress = on_progress;
	nprogress = 0;
	src s;
	fo_iter *out;
	assert_int_equal(fo_pmap(&out, longs(&s, 40), p_fn, &o), FO_OK);
	int fd = fo_iter_fd(out);
	assert_true(fd >= 0);
	size_t got = 0;
	for (;;) {
		void *item;
		int rc = fo_iter_try_next(out, &item);
		if (rc == FO_OK) {
			got++;
			fo_iter_release(out, item);
			continue;
		}
		if (rc == FO_END)
			break;
		assert_int_equal(rc, FO_EMPTY);
		if (fo_iter_arm(out) == 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			assert_int_equal(poll(&p, 1, 10000), 1);
		}
	}
	fo_iter_close(out);
	assert_int_equal(got, 39);
	assert_true(nprogress >= 39);
	assert_int_equal(lastp.in, 40);
	assert_int_equal(lastp.failed, 1);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_pmap_proc_einval_without_codecs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pmap_proc_default_bound_is_32_per_worker, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pmap_proc_ordered_init_args_inherited_fini_at_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pmap_proc_unordered_every_item_once, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_pmap_proc_chunks_ordered_and_unordered, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pmap_proc_fo_fail_message_and_errno_cross_the_boundary, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_vimap_sigkill_one_worker_mid_item_error_item_for_that_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pmap_proc_crash_retried_on_a_fresh_worker, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pmap_proc_timeout_kills_the_worker_item_timedout_with_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pmap_proc_window_only_the_item_it_died_on_fails,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pmap_proc_slow_item_does_not_hold_back_finished_ones, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pmap_proc_slow_chunk_does_not_hold_back_the_chunk_before, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pmap_proc_chunk_whose_last_item_fails_to_encode_still_ends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pmap_proc_items_larger_than_the_rings_cross_intact,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_vimap_init_callback_fails_round_fails_with_the_cause, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vimap_pool_reuse_round_2_on_the_same_children,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pmap_proc_early_close_and_destroy_reap_every_child,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pmap_proc_progress_and_fd_arm, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stress_pmap.c - parallel map, pipelines and waitfor under load (sizes / 10 under
 * sanitizers, FO_SANITIZE):
 *   1. ordered fo_pmap over 1 M token items, random per-item busy delays (~1% of items, a
 *      few µs) and random failures (~0.5%, FO_ERR_EMIT): each input yields exactly one result
 *      or error item, in input order; then the same unordered (each exactly once) and paired;
 *      then chunks of 1..16, and 6 rounds on one pool (chunked, ordered and not, with a
 *      per-item timeout that a few items overrun: FO_TIMEDOUT exactly at their places; the
 *      middle round of each pool is read through fo_iter_fd/arm and poll).
 *   2. 4-stage pipelines failing at each stage (the source, or a map after stage k) at a
 *      random index: the reader gets exactly the items before it, in order, then FO_FAILED
 *      with that stage's code; plus early closes at random points.
 *   3. fo_waitfor with 10 000 tasks and limits 1, 2, 16: every value exactly once, never more
 *      than the limit in flight.
 * Exits non-zero on the first violation.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "fo_test.h"

#define CHECK(c)                                                                              \
	do {                                                                                  \
		if (!(c)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			exit(1);                                                              \
		}                                                                             \
	} while (0)

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* ---- a token source of n items ------------------------------------------------------------ */

typedef struct tsrc {
	size_t i, n;
	long fail_at;
	int code;
} tsrc;

static int tsrc_next(void *ctx, void **item, uint64_t deadline)
{
	tsrc *s = ctx;
	(void)deadline;
	if ((long)s->i == s->fail_at)
		return s->code;
	if (s->i == s->n)
		return FO_END;
	*item = ft_tok(s->i++);
	return FO_OK;
}

static fo_iter *tokens(tsrc *s)
{
	fo_iter *it;
	CHECK(fo_iter_from_fn(&it, tsrc_next, NULL, s, NULL, NULL) == FO_OK);
	return it;
}

/* ---- 1. pmap ------------------------------------------------------------------------------ */

static bool fails(size_t i)
{
	return mix(i * 2 + 1) % 200 == 0; /* ~0.5% */
}

/* Items that overrun the timeout of the timed rounds (~0.1%). */
static bool slow(size_t i)
{
	return mix(i * 3 + 7) % 1000 == 0;
}

#define SLOW_MS    30
#define TIMEOUT_MS 10

static int work(void *ctx, void *wstate, void *in, void **out)
{
	const bool *timed = ctx;
	(void)wstate;
	size_t i = ft_seq(in);
	if (timed && *timed && slow(i))
		ft_sleep_ms(SLOW_MS);
	uint64_t h = mix(i);
	if (h % 100 == 0) { /* ~1%: a few µs of busy work */
		int64_t until = ft_now_ns() + 1000 + (int64_t)(h >> 40) % 4000;
		while (ft_now_ns() < until)
			;
	}
	if (fails(i))
		return FO_ESYS;
	*out = in; /* tokens: the output is the input */
	return FO_OK;
}

static void opts_for(fo_pmap_opts *o, bool ordered, bool paired, size_t chunk)
{
	fo_pmap_opts_init(o);
	o->workers = 3;
	o->per_worker_buffer = 4;
	o->chunk_size = chunk;
	o->ordered = ordered;
	o->on_error = FO_ERR_EMIT;
	o->paired = paired;
}

/* Event-loop reads (fo_iter_fd / fo_iter_arm / poll) instead of blocking ones: a lost
 * wake-up shows as a 5 s poll timeout. */
static bool evloop_reads;

static int read_one(fo_iter *out, void **x)
{
	if (!evloop_reads)
		return fo_iter_next(out, x);
	int fd = fo_iter_fd(out);
	CHECK(fd >= 0);
	for (;;) {
		int rc = fo_iter_try_next(out, x);
		if (rc != FO_EMPTY)
			return rc;
		int a = fo_iter_arm(out);
		CHECK(a == 0 || a == 1);
		if (a == 0) {
			struct pollfd pf = {.fd = fd, .events = POLLIN};
			CHECK(poll(&pf, 1, 5000) == 1); /* else: a lost wake-up */
		}
	}
}

/* One map over n tokens: on @pool (a round, with the pool's options @o) or a fresh fo_pmap. */
static void pmap_run(fo_pool *pool, const fo_pmap_opts *o, size_t n)
{
	tsrc s = {.n = n, .fail_at = -1};
	bool ordered = o->ordered, paired = o->paired, timed = o->timeout_ns > 0;
	fo_iter *out;
	if (pool)
		CHECK(fo_pool_map(pool, &out, tokens(&s)) == FO_OK);
	else
		CHECK(fo_pmap(&out, tokens(&s), work, o) == FO_OK);
	uint8_t *seen = calloc(n ? n : 1, 1);
	CHECK(seen);
	size_t got = 0, errs = 0, timeouts = 0;
	void *x;
	int rc;
	while ((rc = read_one(out, &x)) == FO_OK) {
		size_t i;
		bool err;
		/* Timed runs are ordered: an item's place is its identity.  A slow
		 * item always times out; a fast one may too when the machine is
		 * loaded enough to keep its worker off a CPU past the deadline. */
		bool late =
		    timed && fo_iter_is_error(out) && ((fo_error_item *)x)->err.code == FO_TIMEDOUT;
		if (timed && (slow(got) || late)) {
			if (!fo_iter_is_error(out))
				fprintf(stderr,
				        "item %zu overran the timeout but came out as a result\n",
				        got);
			CHECK(ordered && fo_iter_is_error(out));
			fo_error_item *e = x;
			CHECK(e->err.code == FO_TIMEDOUT && e->input == NULL);
			fo_error_item_free(e);
			CHECK(!seen[got]);
			seen[got++] = 1;
			timeouts++;
			continue;
		}
		if (paired) {
			fo_result *r = x;
			i = ft_seq(r->input);
			err = r->status != FO_OK;
			CHECK(!err || (r->error && r->error->code == FO_ESYS && !r->output));
			CHECK(err || ft_seq(r->output) == i);
			fo_result_free(r, NULL);
		} else if (fo_iter_is_error(out)) {
			fo_error_item *e = x;
			CHECK(e->err.code == FO_ESYS);
			i = ft_seq(e->input);
			err = true;
			fo_error_item_free(e);
		} else {
			i = ft_seq(x);
			err = false;
		}
		CHECK(i < n);
		CHECK(err == fails(i));
		CHECK(!seen[i]);
		seen[i] = 1;
		if (ordered)
			CHECK(i == got); /* in input order */
		got++;
		errs += err;
	}
	CHECK(rc == FO_END);
	CHECK(got == n); /* exactly one result or error per input */
	fo_iter_close(out);
	free(seen);
	printf("pmap%s %s%s chunk %zu%s: %zu items, %zu errors and %zu timeouts in place\n",
	       pool ? " pool round" : "", ordered ? "ordered" : "unordered",
	       paired ? " paired" : "", o->chunk_size, evloop_reads ? " (poll/arm)" : "", got, errs,
	       timeouts);
}

/* ---- 2. pipelines failing at each stage ---------------------------------------------------- */

typedef struct failer {
	long at;
	int code;
} failer;

static int fail_map(void *ctx, void *in, void **out)
{
	failer *f = ctx;
	if ((long)ft_seq(in) == f->at)
		return f->code;
	*out = in;
	return FO_OK;
}

static void pipeline_run(size_t n, int fail_stage, long at, long close_at, size_t bufsz)
{
	tsrc s = {.n = n, .fail_at = fail_stage == 0 ? at : -1, .code = -100};
	failer f[4];
	fo_pipeline *p;
	CHECK(fo_pipeline_create(&p, NULL) == FO_OK);
	fo_iter *it = tokens(&s);
	for (int k = 0; k < 4; k++) {
		fo_iter *nx;
		CHECK(fo_pipeline_buffer(p, &nx, it, bufsz) == FO_OK);
		it = nx;
		if (fail_stage == k + 1) { /* a failing map after stage k */
			f[k] = (failer){.at = at, .code = -100 - (k + 1)};
			CHECK(fo_map(&nx, it, fail_map, &f[k], NULL) == FO_OK);
			it = nx;
		}
	}
	fo_pipeline_destroy(p);
	long expect_end = fail_stage >= 0 && at < (long)n ? at : (long)n;
	void *x;
	int rc = FO_OK;
	long i = 0;
	for (; close_at < 0 || i < close_at; i++) {
		rc = fo_iter_next(it, &x);
		if (rc != FO_OK)
			break;
		CHECK(ft_seq(x) == (size_t)i);
	}
	if (close_at < 0 || close_at > expect_end) {
		CHECK(i == expect_end);
		if (expect_end == (long)n && fail_stage < 0) {
			CHECK(rc == FO_END);
		} else {
			CHECK(rc == FO_FAILED);
			CHECK(fo_iter_error(it)->code == -100 - fail_stage); /* the root cause */
		}
	}
	fo_iter_close(it); /* early or not: joins every thread */
}

/* ---- 3. waitfor ---------------------------------------------------------------------------- */

static atomic_size_t running, max_running;

static int task(void *arg, void **value)
{
	size_t r = atomic_fetch_add(&running, 1) + 1, m = atomic_load(&max_running);
	while (r > m && !atomic_compare_exchange_weak(&max_running, &m, r))
		;
	*value = arg;
	atomic_fetch_sub(&running, 1);
	return FO_OK;
}

static void waitfor_run(size_t n, size_t limit)
{
	fo_waitfor *w;
	CHECK(fo_waitfor_create(&w, limit) == FO_OK);
	uint8_t *seen = calloc(n, 1);
	CHECK(seen);
	size_t added = 0, done = 0, max_inflight = 0;
	atomic_store(&max_running, 0);
	fo_future *f;
	int rc;
	while ((rc = fo_waitfor_next(w, &f)) != FO_END) {
		if (rc == FO_NEED_WORK) {
			if (added == n)
				continue; /* decline: next waits or ends */
			fo_future *nf;
			CHECK(fo_task_spawn(&nf, task, ft_tok(added), NULL) == FO_OK);
			CHECK(fo_waitfor_add(w, nf) == FO_OK);
			added++;
			size_t inflight = fo_waitfor_in_flight(w);
			if (inflight > max_inflight)
				max_inflight = inflight;
			continue;
		}
		CHECK(rc == FO_OK);
		void *v;
		CHECK(fo_future_result(f, &v, NULL) == FO_OK);
		size_t i = ft_seq(v);
		CHECK(i < n && !seen[i]);
		seen[i] = 1;
		done++;
		fo_future_destroy(f);
	}
	CHECK(added == n && done == n);
	CHECK(max_inflight <= limit);
	CHECK(atomic_load(&max_running) <= limit);
	fo_waitfor_destroy(w);
	free(seen);
	printf("waitfor limit %zu: %zu tasks, max in flight %zu\n", limit, n, max_inflight);
}

int main(void)
{
	int64_t t0 = ft_now_ns();
	size_t n = ft_scale(1000000);
	fo_pmap_opts o;
	opts_for(&o, true, false, 1);
	pmap_run(NULL, &o, n);
	opts_for(&o, false, false, 1);
	pmap_run(NULL, &o, n / 4);
	opts_for(&o, true, true, 1);
	pmap_run(NULL, &o, n / 10);
	for (size_t chunk = 2; chunk <= 16; chunk *= 2) {
		opts_for(&o, chunk % 4 == 0, false, chunk);
		pmap_run(NULL, &o, n / 8);
	}
	/* Pool reuse: rounds on the same workers, timed (ordered) and not (unordered). */
	bool timed = true;
	for (int ordered = 1; ordered >= 0; ordered--) {
		fo_pool *pool;
		opts_for(&o, ordered, false, 4);
		o.ctx = &timed;
		o.timeout_ns = ordered ? FT_MS(TIMEOUT_MS) : 0;
		CHECK(fo_pool_create(&pool, work, &o) == FO_OK);
		for (int round = 0; round < 3; round++) {
			evloop_reads = round == 1;
			pmap_run(pool, &o, n / 20 + (size_t)round);
		}
		evloop_reads = false;
		fo_pool_destroy(pool);
	}
	uint64_t rng = 12345;
	size_t runs = ft_scale(200);
	for (size_t r = 0; r < runs; r++) {
		rng = mix(rng + r);
		int stage =
		    (int)(r % 6) - 1; /* -1: no failure; 0: the source; 1..4: after stage k */
		if (stage > 4)
			stage = 4;
		size_t items = 200 + rng % 800;
		long at = (long)((rng >> 20) % items);
		long close_at = r % 3 == 0 ? (long)((rng >> 40) % items) : -1;
		pipeline_run(items, stage, stage < 0 ? -1 : at, close_at, 1 + (rng >> 50) % 4);
	}
	printf("pipelines: %zu runs failing at every stage, early closes\n", runs);
	size_t nt = ft_scale(10000);
	waitfor_run(nt, 1);
	waitfor_run(nt, 2);
	waitfor_run(nt, 16);
	printf("stress_pmap OK in %.1f s\n", (double)(ft_now_ns() - t0) / 1e9);
	return 0;
}

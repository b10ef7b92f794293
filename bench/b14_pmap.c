/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b14_pmap.c - B14: parallel map and buffered pipelines on a small CPU-bound function.
 *
 * The work per item is ~200 ns of integer hashing (ROUNDS rounds of a 64-bit mixer), on
 * token items 0..N-1 (no allocation is measured).  Each call writes its hash to res[i]; the
 * run then checks every res[i] against the expected hash, and the order where order is
 * promised.  Implementations, interleaved within each run:
 *
 *   pmap_ordered     fo_pmap, 2 workers, per_worker_buffer 16 (the thread default), ordered
 *   pmap_unordered   the same, unordered
 *   pmap_*_chunk16   the same with chunk_size 16 (a worker takes 16 inputs per turn)
 *   pool             a plain pthread pool: 2 workers, one mutex, a bounded job ring and a
 *                    result ring (condvars not_empty / not_full / done), the main thread
 *                    submitting while at most the same number of items are in flight
 *   pipeline         3 stages: source -> buffer(64) -> map h1 -> buffer(64) -> map h2 ->
 *                    buffer(64) -> map h3 -> reader (fo_pipeline, a thread per stage)
 *   sequential       the same three maps back to back in one thread
 *   pipeline_spin    the same 3 stages and threads over raw 64-slot rings (spsc_c11's) whose
 *                    sides spin, yielding every 64 pauses, and never sleep: what the machine
 *                    allows a hand-off that costs nothing but cache-line transfers and
 *                    yields (a ceiling for B14's pipeline row, not a peer to beat: it burns
 *                    CPU while it waits, which a library may not)
 *
 * The pipeline pair runs at two amounts of work per map (the "rounds" column): ROUNDS
 * (~0.3 us) and STAGE_1US_ROUNDS (~1 us, the size issue 10's target is stated for), each
 * compared with the sequential run at the same size; 2 cores bound the ratio by 2.
 *
 *   spsc_c11         the raw stage hand-off: one thread passes N tokens to another through
 *                    a 64-slot ring with the pipeline's layout (C11 release/acquire counters
 *                    on their own lines, each side caching the other's counter and reading
 *                    it only when the cache says full / empty); both sides spin
 *   spsc_ck          the same through ck_ring_enqueue_spsc / ck_ring_dequeue_spsc (64
 *                    slots, 63 usable)
 * (the ratio row compares spsc_c11 with spsc_ck: ns per item of the hand-off alone).
 *
 * Measured: wall time from the first read to the last (items/s) and the process's CPU time
 * per item; each pipeline run also prints a RUSAGE line (user and system ns per item,
 * voluntary and involuntary context switches per item, load average), where its extra CPU
 * over the sequential run goes.  Exit status 1 if any result is missing, wrong or out of
 * order.
 *
 *   b14_pmap [--items N] [--runs R] [--quick] [--impl a,b] [--rounds 144|450]
 *   (default: all; --rounds runs the pipeline pair at that work per map only)
 */
#include "common.h"

#include <fanout/fanout.h>

#include <ck_ring.h>
#include <pthread.h>
#include <stdatomic.h>

#define ROUNDS           144
#define STAGE_1US_ROUNDS 450
#define WORKERS          2
#define PWB              16
#define INFLIGHT         (WORKERS * (PWB + 1))

static uint64_t *res;
static const char *opt_impl;
static uint64_t opt_rounds; /* --rounds: run the pipeline pair at this size only */

static bool want(const char *impl)
{
	return !opt_impl || bench_in_list(opt_impl, impl);
}
static int failures;

static inline uint64_t hash_n(uint64_t x, uint64_t salt, int rounds)
{
	for (int r = 0; r < rounds; r++) {
		x ^= x >> 31;
		x *= 0x9e3779b97f4a7c15ull + salt;
		x ^= x >> 29;
	}
	return x;
}

static inline uint64_t hash(uint64_t x, uint64_t salt)
{
	return hash_n(x, salt, ROUNDS);
}

static int stage_rounds = ROUNDS; /* the pipeline pair's work per map */

static inline void *tok(uint64_t i)
{
	return (void *)(uintptr_t)(i + 1);
}

static inline uint64_t seq(const void *p)
{
	return (uint64_t)(uintptr_t)p - 1;
}

/* ---- the token source ----------------------------------------------------------------------- */

typedef struct src {
	uint64_t i, n;
} src;

static int src_next(void *ctx, void **item, uint64_t deadline)
{
	src *s = ctx;
	(void)deadline;
	if (s->i == s->n)
		return FO_END;
	*item = tok(s->i++);
	return FO_OK;
}

static void check(const char *impl, uint64_t n, uint64_t got, uint64_t salt)
{
	if (got != n) {
		fprintf(stderr, "%s: %" PRIu64 " results, expected %" PRIu64 "\n", impl, got, n);
		failures++;
	}
	for (uint64_t i = 0; i < n; i++) {
		int sr = stage_rounds;
		uint64_t h =
		    salt == 3 ? hash_n(hash_n(hash_n(i, 1, sr), 2, sr), 3, sr) : hash(i, 0);
		if (res[i] != h) {
			fprintf(stderr, "%s: wrong result at %" PRIu64 "\n", impl, i);
			failures++;
			return;
		}
	}
}

/* ---- fanout pmap ------------------------------------------------------------------------------
 */

static int pm_fn(void *ctx, void *wstate, void *in, void **out)
{
	(void)ctx;
	(void)wstate;
	uint64_t i = seq(in);
	res[i] = hash(i, 0);
	*out = in;
	return FO_OK;
}

static void run_pmap(bench_results *r, bool ordered, size_t chunk, uint64_t n, int run)
{
	const char *impl = chunk > 1 ? (ordered ? "pmap_ordered_chunk16" : "pmap_unordered_chunk16")
	                             : (ordered ? "pmap_ordered" : "pmap_unordered");
	src s = {0, n};
	fo_iter *it, *out;
	fo_iter_from_fn(&it, src_next, NULL, &s, NULL, NULL);
	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	o.workers = WORKERS;
	o.per_worker_buffer = PWB;
	o.ordered = ordered;
	o.chunk_size = chunk;
	if (fo_pmap(&out, it, pm_fn, &o) != FO_OK) {
		failures++;
		return;
	}
	memset(res, 0, n * sizeof(*res));
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns(), got = 0;
	void *x;
	while (fo_iter_next(out, &x) == FO_OK) {
		if (ordered && seq(x) != got) {
			fprintf(stderr, "%s: %" PRIu64 " at %" PRIu64 "\n", impl, seq(x), got);
			failures++;
		}
		got++;
	}
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	fo_iter_close(out);
	bench_record(r, impl, WORKERS, WORKERS + 1, run, n, w1 - w0, c1 - c0);
	check(impl, n, got, 0);
}

/* ---- a plain mutex + condvar pool --------------------------------------------------------------
 */

typedef struct pool {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, done;
	uint64_t jobs[INFLIGHT], results[INFLIGHT];
	size_t jh, jn, rh, rn;
	bool stop;
} pool;

static void *pool_worker(void *arg)
{
	pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->jn && !p->stop)
			pthread_cond_wait(&p->not_empty, &p->mu);
		if (!p->jn)
			break;
		uint64_t i = p->jobs[p->jh];
		p->jh = (p->jh + 1) % INFLIGHT;
		p->jn--;
		pthread_mutex_unlock(&p->mu);
		res[i] = hash(i, 0);
		pthread_mutex_lock(&p->mu);
		p->results[(p->rh + p->rn) % INFLIGHT] = i;
		p->rn++;
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void run_pool(bench_results *r, uint64_t n, int run)
{
	pool p = {0};
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.not_empty, NULL);
	pthread_cond_init(&p.done, NULL);
	pthread_t th[WORKERS];
	memset(res, 0, n * sizeof(*res));
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns(), got = 0, next = 0, inflight = 0;
	for (int k = 0; k < WORKERS; k++)
		pthread_create(&th[k], NULL, pool_worker, &p);
	pthread_mutex_lock(&p.mu);
	while (got < n) {
		while (next < n && inflight < INFLIGHT) { /* submit while the bound allows */
			p.jobs[(p.jh + p.jn) % INFLIGHT] = next++;
			p.jn++;
			inflight++;
			pthread_cond_signal(&p.not_empty);
		}
		while (!p.rn)
			pthread_cond_wait(&p.done, &p.mu);
		while (p.rn) {
			p.rh = (p.rh + 1) % INFLIGHT;
			p.rn--;
			inflight--;
			got++;
		}
	}
	p.stop = true;
	pthread_cond_broadcast(&p.not_empty);
	pthread_mutex_unlock(&p.mu);
	for (int k = 0; k < WORKERS; k++)
		pthread_join(th[k], NULL);
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	bench_record(r, "pool", WORKERS, WORKERS + 1, run, n, w1 - w0, c1 - c0);
	check("pool", n, got, 0);
	pthread_cond_destroy(&p.done);
	pthread_cond_destroy(&p.not_empty);
	pthread_mutex_destroy(&p.mu);
}

/* ---- pipeline vs sequential ---------------------------------------------------------------------
 */

/* Items carry their value through the stages: a token holds i; stage k replaces nothing but
 * writes the running hash into res[i] (stage 1 from i, stages 2 and 3 from res[i]). */
static int stage_fn(void *ctx, void *in, void **out)
{
	uint64_t k = (uint64_t)(uintptr_t)ctx, i = seq(in);
	res[i] = hash_n(k == 1 ? i : res[i], k, stage_rounds);
	*out = in;
	return FO_OK;
}

static uint64_t tv_ns(const struct timeval *b, const struct timeval *a)
{
	return (uint64_t)(b->tv_sec - a->tv_sec) * 1000000000u +
	       (uint64_t)((int64_t)b->tv_usec - a->tv_usec) * 1000u;
}

static void run_pipeline(bench_results *r, uint64_t n, int run)
{
	src s = {0, n};
	fo_pipeline *p;
	fo_iter *it;
	fo_pipeline_create(&p, NULL);
	fo_iter_from_fn(&it, src_next, NULL, &s, NULL, NULL);
	for (uint64_t k = 1; k <= 3; k++) {
		fo_iter *b, *m;
		fo_pipeline_buffer(p, &b, it, 64);
		fo_map(&m, b, stage_fn, (void *)(uintptr_t)k, NULL);
		it = m;
	}
	fo_pipeline_destroy(p);
	memset(res, 0, n * sizeof(*res));
	struct rusage u0, u1;
	getrusage(RUSAGE_SELF, &u0);
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns(), got = 0;
	void *x;
	while (fo_iter_next(it, &x) == FO_OK) {
		if (seq(x) != got) {
			fprintf(stderr, "pipeline: %" PRIu64 " at %" PRIu64 "\n", seq(x), got);
			failures++;
		}
		got++;
	}
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	getrusage(RUSAGE_SELF, &u1);
	fo_iter_close(it);
	bench_record(r, "pipeline", stage_rounds, 4, run, n, w1 - w0, c1 - c0);
	/* Where the pipeline's CPU goes: user / system time and switches per item (the
	 * kernel splits user from system by tick samples: approximate; the sum is exact). */
	printf("RUSAGE scenario=B14 impl=pipeline rounds=%d user_ns_per_item=%.1f "
	       "sys_ns_per_item=%.1f vcsw_per_item=%.4f ivcsw_per_item=%.4f load1=%.2f\n",
	       stage_rounds, (double)tv_ns(&u1.ru_utime, &u0.ru_utime) / (double)n,
	       (double)tv_ns(&u1.ru_stime, &u0.ru_stime) / (double)n,
	       (double)(u1.ru_nvcsw - u0.ru_nvcsw) / (double)n,
	       (double)(u1.ru_nivcsw - u0.ru_nivcsw) / (double)n, bench_load1());
	check("pipeline", n, got, 3);
}

static void run_sequential(bench_results *r, uint64_t n, int run)
{
	memset(res, 0, n * sizeof(*res));
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns();
	for (uint64_t i = 0; i < n; i++) {
		void *x = tok(i), *o;
		for (uint64_t k = 1; k <= 3; k++, x = o)
			stage_fn((void *)(uintptr_t)k, x, &o);
	}
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	bench_record(r, "sequential", stage_rounds, 1, run, n, w1 - w0, c1 - c0);
	check("sequential", n, n, 3);
}

/* ---- the raw SPSC hand-off: C11 ring (pipeline.c's layout) vs ck_ring ------------------------ */

#define RING 64

typedef struct c11_ring {
	_Atomic uint64_t tail __attribute__((aligned(64))); /* producer */
	uint64_t head_seen;
	_Atomic uint64_t head __attribute__((aligned(64))); /* consumer */
	uint64_t tail_seen;
	void *slot[RING] __attribute__((aligned(64)));
} c11_ring;

typedef struct spsc_run {
	bool ck;
	uint64_t n;
	c11_ring *c;
	ck_ring_t *k;
	ck_ring_buffer_t *kb;
} spsc_run;

/* Spin, yielding now and then: the machine may have fewer free CPUs than threads. */
static inline void spsc_relax(unsigned *spins)
{
	if (++*spins % 64 == 0)
		sched_yield();
	else
		__builtin_ia32_pause();
}

/* Queue item number @i (the producer's count): wait for room, then publish. */
static inline void ring_put(c11_ring *c, uint64_t i, void *x, unsigned *spins)
{
	while (i - c->head_seen >= RING) {
		/* acquire: the consumer is done with the slots below head */
		c->head_seen = atomic_load_explicit(&c->head, memory_order_acquire);
		if (i - c->head_seen >= RING)
			spsc_relax(spins);
	}
	c->slot[i % RING] = x;
	/* release: the slot before the tail that shows it */
	atomic_store_explicit(&c->tail, i + 1, memory_order_release);
}

/* Take item number @i (the consumer's count): wait for it, then free its slot. */
static inline void *ring_get(c11_ring *c, uint64_t i, unsigned *spins)
{
	while (i == c->tail_seen) {
		/* acquire: the slots below tail are written */
		c->tail_seen = atomic_load_explicit(&c->tail, memory_order_acquire);
		if (i == c->tail_seen)
			spsc_relax(spins);
	}
	void *x = c->slot[i % RING];
	/* release: done with the slot before the producer may refill it */
	atomic_store_explicit(&c->head, i + 1, memory_order_release);
	return x;
}

static void *spsc_producer(void *arg)
{
	unsigned spins = 0;
	spsc_run *r = arg;
	for (uint64_t i = 0; i < r->n; i++) {
		if (r->ck) {
			while (!ck_ring_enqueue_spsc(r->k, r->kb, tok(i)))
				spsc_relax(&spins);
			continue;
		}
		ring_put(r->c, i, tok(i), &spins);
	}
	return NULL;
}

static void run_spsc(bench_results *r, bool ck, uint64_t n, int run)
{
	spsc_run sr = {.ck = ck, .n = n};
	c11_ring *c = aligned_alloc(64, sizeof(*c));
	ck_ring_t k;
	ck_ring_buffer_t *kb = aligned_alloc(64, RING * sizeof(*kb));
	memset(c, 0, sizeof(*c));
	ck_ring_init(&k, RING);
	sr.c = c;
	sr.k = &k;
	sr.kb = kb;
	pthread_t th;
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns(), bad = 0;
	unsigned spins = 0;
	pthread_create(&th, NULL, spsc_producer, &sr);
	for (uint64_t i = 0; i < n; i++) {
		void *x;
		if (ck) {
			while (!ck_ring_dequeue_spsc(&k, kb, &x))
				spsc_relax(&spins);
		} else {
			x = ring_get(c, i, &spins);
		}
		bad += seq(x) != i;
	}
	pthread_join(th, NULL);
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	bench_record(r, ck ? "spsc_ck" : "spsc_c11", RING, 2, run, n, w1 - w0, c1 - c0);
	if (bad) {
		fprintf(stderr, "spsc: %" PRIu64 " items out of order\n", bad);
		failures++;
	}
	free(kb);
	free(c);
}

/* ---- the same 3-stage pipeline over raw rings that spin: the machine's ceiling ------------ */

/* Thread k of pipeline_spin: k = 0 queues the tokens (the source stage); k = 1, 2 take
 * from in, run map k and queue to out.  The reader (main) runs map 3. */
typedef struct spin_stage {
	c11_ring *in, *out;
	uint64_t k, n;
	pthread_t th;
} spin_stage;

static void *spin_stage_main(void *arg)
{
	spin_stage *t = arg;
	unsigned spins = 0;
	for (uint64_t i = 0; i < t->n; i++) {
		void *x = t->k ? ring_get(t->in, i, &spins) : tok(i), *o = x;
		if (t->k)
			stage_fn((void *)(uintptr_t)t->k, x, &o);
		ring_put(t->out, i, o, &spins);
	}
	return NULL;
}

static void run_pipeline_spin(bench_results *r, uint64_t n, int run)
{
	c11_ring *q[3];
	spin_stage t[3];
	for (int k = 0; k < 3; k++) {
		q[k] = aligned_alloc(64, sizeof(*q[k]));
		memset(q[k], 0, sizeof(*q[k]));
	}
	memset(res, 0, n * sizeof(*res));
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns(), got = 0;
	for (int k = 0; k < 3; k++) {
		t[k] =
		    (spin_stage){.in = k ? q[k - 1] : NULL, .out = q[k], .k = (uint64_t)k, .n = n};
		pthread_create(&t[k].th, NULL, spin_stage_main, &t[k]);
	}
	unsigned spins = 0;
	for (uint64_t i = 0; i < n; i++) {
		void *x = ring_get(q[2], i, &spins), *o;
		stage_fn((void *)(uintptr_t)3, x, &o);
		if (seq(o) != got) {
			fprintf(stderr, "pipeline_spin: %" PRIu64 " at %" PRIu64 "\n", seq(o), got);
			failures++;
		}
		got++;
	}
	for (int k = 0; k < 3; k++)
		pthread_join(t[k].th, NULL);
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	bench_record(r, "pipeline_spin", stage_rounds, 4, run, n, w1 - w0, c1 - c0);
	check("pipeline_spin", n, got, 3);
	for (int k = 0; k < 3; k++)
		free(q[k]);
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 1000000, .runs = 5};
	const bench_flag flags[] = {
	    {"impl", BENCH_FLAG_STR, &opt_impl, "comma-separated implementations"},
	    {"rounds", BENCH_FLAG_U64, &opt_rounds,
	     "the pipeline pair at this work per map only (144 or 450)"},
	};
	bench_parse_args(argc, argv, &o, flags, 2);
	res = calloc(o.items, sizeof(*res));
	if (!res)
		return 2;
	bench_results pm, pl, rg;
	bench_results_init(&pm, "B14", "workers", o.cpus);
	bench_results_init(&pl, "B14", "rounds", o.cpus); /* 3 stages */
	bench_results_init(&rg, "B14", "slots", o.cpus);
	for (int run = 1; run <= o.runs; run++) {
		if (want("pmap_ordered"))
			run_pmap(&pm, true, 1, o.items, run);
		if (want("pmap_unordered"))
			run_pmap(&pm, false, 1, o.items, run);
		if (want("pmap_ordered_chunk16"))
			run_pmap(&pm, true, 16, o.items, run);
		if (want("pmap_unordered_chunk16"))
			run_pmap(&pm, false, 16, o.items, run);
		if (want("pool"))
			run_pool(&pm, o.items, run);
		for (int w = 0; w < 2; w++) {
			stage_rounds = w ? STAGE_1US_ROUNDS : ROUNDS;
			if (opt_rounds && opt_rounds != (uint64_t)stage_rounds)
				continue;
			uint64_t n = w ? o.items / 8 : o.items / 2;
			if (want("pipeline"))
				run_pipeline(&pl, n, run);
			if (want("sequential"))
				run_sequential(&pl, n, run);
			if (want("pipeline_spin"))
				run_pipeline_spin(&pl, n, run);
		}
		if (want("spsc_c11"))
			run_spsc(&rg, false, o.items * 4, run);
		if (want("spsc_ck"))
			run_spsc(&rg, true, o.items * 4, run);
	}
	bench_summary(&pm, "pmap_ordered");
	bench_summary(&pl, "pipeline");
	bench_summary(&rg, "spsc_c11");
	bench_results_fini(&pm);
	bench_results_fini(&pl);
	bench_results_fini(&rg);
	free(res);
	if (failures) {
		fprintf(stderr, "B14: %d check(s) failed\n", failures);
		return 1;
	}
	return 0;
}

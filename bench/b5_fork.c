/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b5_fork.c - B5: the cost of fo_cursor_fork.
 *
 *   idle       nothing else runs; the parent cursor is at the tail
 *   backlog    idle, but the parent cursor is --backlog items (default 1 M)
 *              behind the tail (unbounded stream): forking must stay O(1)
 *   loaded     a producer thread pushes flat out (single_producer, capacity
 *              65536) while this thread reads the parent cursor and forks
 *
 * Each sample times a batch of 64 forks (active, from the same parent) with
 * one pair of clock reads, then closes them untimed; ns per fork is the batch
 * time / 64.  Per run: the median over the batches.  The loaded case checks
 * that the reader saw every item in order; every fork is checked to start at
 * the parent's position (its first item equals the parent's next one).
 * Peers have no fork (a new ck_ring/queue consumer cannot start mid-stream),
 * so B5 has targets only: idle < 50 ns, loaded < 200 ns, backlog/idle <= 1.2.
 *
 *   b5_fork [--items N] [--runs R] [--quick] [--backlog N]
 */
#include "common.h"

#include <fanout/fanout.h>

#include <pthread.h>
#include <stdatomic.h>

#define BATCH 64

static uint64_t opt_backlog = 1000000;

/* Median ns per fork over @batches batches of BATCH forks of @parent. */
static double fork_batches(fo_cursor *parent, int batches, bool *ok)
{
	fo_cursor *f[BATCH];
	double *v = malloc((size_t)batches * sizeof(double));
	for (int b = 0; b < batches; b++) {
		uint64_t t0 = bench_now_ns();
		for (int i = 0; i < BATCH; i++)
			if (fo_cursor_fork(parent, &f[i], FO_ACTIVE) != FO_OK)
				*ok = false, f[i] = NULL;
		uint64_t t1 = bench_now_ns();
		v[b] = (double)(t1 - t0) / BATCH;
		for (int i = 0; i < BATCH; i++)
			fo_cursor_close(f[i]);
	}
	double m = bench_median(v, (size_t)batches);
	free(v);
	return m;
}

/* idle (backlog 0) or with a backlog */
static double idle_case(const bench_item *items, uint64_t backlog, int batches, bool *ok)
{
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.single_producer = true;
	fo_stream *s;
	fo_cursor *c;
	if (fo_stream_create(&s, &o) || fo_stream_cursor(s, &c, FO_ACTIVE)) {
		*ok = false;
		return 0;
	}
	for (uint64_t i = 0; i < backlog; i++)
		fo_stream_push(s, (void *)&items[i]);
	double m = fork_batches(c, batches, ok);
	/* a fork starts where its parent is */
	fo_cursor *f;
	void *a, *b;
	if (fo_cursor_fork(c, &f, FO_ACTIVE) == FO_OK) {
		fo_stream_push(s, (void *)&items[0]);
		*ok &= fo_cursor_next(c, &a) == FO_OK && fo_cursor_next(f, &b) == FO_OK && a == b &&
		       a == (void *)&items[0];
		fo_cursor_close(f);
	} else {
		*ok = false;
	}
	fo_cursor_close(c);
	fo_stream_destroy(s);
	return m;
}

struct loaded {
	fo_stream *s;
	const bench_item *items;
	uint64_t n;
	atomic_int go;
};

static void *producer_main(void *arg)
{
	struct loaded *l = arg;
	while (!atomic_load(&l->go))
		bench_cpu_relax();
	for (uint64_t i = 0; i < l->n; i++)
		if (fo_stream_push(l->s, (void *)&l->items[i]) != FO_OK)
			break;
	fo_stream_close(l->s);
	return NULL;
}

static double loaded_case(const bench_item *items, uint64_t n, bool *ok, int *nbatches)
{
	struct loaded l = {.items = items, .n = n};
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.single_producer = true;
	o.capacity = 65536;
	fo_cursor *c;
	atomic_init(&l.go, 0);
	if (fo_stream_create(&l.s, &o) || fo_stream_cursor(l.s, &c, FO_ACTIVE)) {
		*ok = false;
		return 0;
	}
	pthread_t t;
	pthread_create(&t, NULL, producer_main, &l);
	atomic_store(&l.go, 1);
	size_t cap = 4096, nb = 0;
	double *v = malloc(cap * sizeof(double));
	uint64_t seen = 0, errors = 0;
	void *b[256];
	size_t k;
	int rc;
	fo_cursor *f[BATCH];
	for (;;) {
		/* read what is there (untimed), then one timed batch of forks */
		rc = fo_cursor_next_many(c, b, 256, &k);
		if (rc == FO_EMPTY)
			rc = fo_cursor_next(c, &b[0]), k = 1;
		if (rc != FO_OK)
			break;
		for (size_t i = 0; i < k; i++)
			errors += ((const bench_item *)b[i])->seq != seen++;
		if (nb < cap && (seen & 1023) < k) { /* about every 1024 items */
			uint64_t t0 = bench_now_ns();
			for (int i = 0; i < BATCH; i++)
				if (fo_cursor_fork(c, &f[i], FO_ACTIVE) != FO_OK)
					*ok = false, f[i] = NULL;
			v[nb++] = (double)(bench_now_ns() - t0) / BATCH;
			for (int i = 0; i < BATCH; i++)
				fo_cursor_close(f[i]);
		}
	}
	pthread_join(t, NULL);
	*ok &= rc == FO_END && seen == n && !errors;
	if (!*ok)
		fprintf(stderr,
		        "FAIL loaded: saw %" PRIu64 "/%" PRIu64 ", %" PRIu64 " errors, %s\n", seen,
		        n, errors, fo_status_name(rc));
	fo_cursor_close(c);
	fo_stream_destroy(l.s);
	double m = bench_median(v, nb);
	free(v);
	*nbatches = (int)nb;
	return m;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 4000000, .runs = 5};
	const bench_flag flags[] = {
	    {"backlog", BENCH_FLAG_U64, &opt_backlog, "items behind the tail (default 1000000)"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	uint64_t nit = o.items > opt_backlog ? o.items : opt_backlog;
	bench_item *items = bench_items_create(nit);
	int nr = o.runs < 64 ? o.runs : 64, batches = o.quick ? 200 : 2000;
	double idle[64], back[64], load[64];
	bool ok = true;
	printf("B5: fork cost, batches of %d forks, backlog %" PRIu64 ", loaded with %" PRIu64
	       " items, %d runs, %d cpus\n",
	       BATCH, opt_backlog, o.items, nr, o.cpus);
	for (int run = 1; run <= nr; run++) {
		for (int j = 0; j < 3; j++) {
			int w = (j + run) % 3, nb = batches;
			double m;
			const char *name;
			uint64_t bl = 0;
			int threads = 1;
			if (w == 0)
				m = idle[run - 1] = idle_case(items, 0, batches, &ok),
				name = "idle";
			else if (w == 1)
				m = back[run - 1] = idle_case(items, opt_backlog, batches, &ok),
				name = "backlog", bl = opt_backlog;
			else
				m = load[run - 1] = loaded_case(items, o.items, &ok, &nb),
				name = "loaded", threads = 2;
			printf("RESULT scenario=B5 impl=fanout cursors=1 threads=%d cpus=%d "
			       "items_per_s=NA cpu_ns_per_item=NA case=%s backlog=%" PRIu64
			       " ns_per_fork=%.1f batches=%d run=%d\n",
			       threads, o.cpus, name, bl, m, nb, run);
			fflush(stdout);
		}
	}
	double mi = bench_median(idle, (size_t)nr), mb = bench_median(back, (size_t)nr),
	       ml = bench_median(load, (size_t)nr);
	printf("\nB5 summary: median ns per fork: idle %.1f, backlog %.1f (ratio %.2f), loaded "
	       "%.1f\n",
	       mi, mb, mb / mi, ml);
	free(items);
	if (!ok)
		fprintf(stderr, "B5: FAILED (see above)\n");
	return ok ? 0 : 1;
}

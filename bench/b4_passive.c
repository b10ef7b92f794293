/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b4_passive.c - B4a (wall), B4b, B4c: what passive cursors cost the producer.
 *
 * The base is B1's set-up: 1 producer (single_producer) -> 1 active cursor
 * read by its own thread, stream capacity --capacity.  Each variant adds one
 * passive cursor (forked from the active one before the run):
 *
 *   base   no passive cursor
 *   B4a    a tap thread that wakes every 1 ms (nanosleep) and reads only
 *          counters: fo_stream_get_stats and fo_cursor_lagged
 *   B4b    a thread reading every item of the passive cursor (3 threads on
 *          2 cpus: the tap competes for a core)
 *   B4c    the passive cursor is never read during the run; afterwards a
 *          read must return FO_LAGGED (it was lapped) and the stream's live
 *          segments, sampled every 1 ms by the main thread, must stay below
 *          the bound (capacity + passive window) / 256 + 4 segments
 *
 * Printed: items/s of the producer (wall from start until the active cursor
 * saw the last item), ratio to the base of the same run ("drop" = 1 - ratio),
 * and for B4c max_live_segments.  The active cursor checks seq 0..N-1 in
 * order; a B4b tap checks its items increase; exit 1 on any failure.
 *
 *   b4_passive [--items N] [--runs R] [--quick] [--capacity N]
 */
#include "common.h"

#include <fanout/fanout.h>

#include <pthread.h>
#include <stdatomic.h>

enum { V_BASE, V_B4A, V_B4B, V_B4C, NV };
static const char *vname[NV] = {"base", "B4a", "B4b", "B4c"};
static uint64_t opt_capacity = 65536;

struct run {
	int v;
	fo_stream *s;
	fo_cursor *act, *pas;
	const bench_item *items;
	uint64_t n;
	pthread_barrier_t start;
	atomic_int done;
	uint64_t seen, errors, end_ns, tap_reads, tap_errors, max_segs;
	int tap_rc;
};

static void *active_main(void *arg)
{
	struct run *r = arg;
	void *b[64];
	size_t k;
	uint64_t seen = 0, errors = 0;
	int rc;
	pthread_barrier_wait(&r->start);
	for (;;) {
		rc = fo_cursor_next_many(r->act, b, 64, &k);
		if (rc == FO_EMPTY)
			rc = fo_cursor_next(r->act, &b[0]), k = 1;
		if (rc != FO_OK)
			break;
		for (size_t i = 0; i < k; i++)
			errors += ((const bench_item *)b[i])->seq != seen++;
		if (seen == r->n)
			r->end_ns = bench_now_ns();
	}
	r->seen = seen, r->errors = errors + (rc != FO_END);
	atomic_store(&r->done, 1);
	return NULL;
}

static void *tap_main(void *arg)
{
	struct run *r = arg;
	pthread_barrier_wait(&r->start);
	if (r->v == V_B4A) {
		uint64_t x = 0;
		while (!atomic_load(&r->done)) {
			fo_stream_stats st;
			fo_stream_get_stats(r->s, &st);
			x += st.pushed + fo_cursor_lagged(r->pas);
			r->tap_reads++;
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
		}
		r->tap_errors = x == 0 && r->n > 0 && r->tap_reads > 3; /* it must see progress */
	} else { /* B4b: read everything it can */
		void *b[64];
		size_t k;
		uint64_t last = 0, reads = 0, errors = 0;
		bool first = true;
		int rc;
		for (;;) {
			rc = fo_cursor_next_many(r->pas, b, 64, &k);
			if (rc == FO_EMPTY)
				rc = fo_cursor_next(r->pas, &b[0]), k = 1;
			if (rc == FO_LAGGED)
				continue;
			if (rc != FO_OK)
				break;
			for (size_t i = 0; i < k; i++) {
				uint64_t q = ((const bench_item *)b[i])->seq;
				errors += !first && q <= last;
				last = q, first = false;
			}
			reads += k;
		}
		r->tap_reads = reads, r->tap_errors = errors + (rc != FO_END);
	}
	return NULL;
}

static bool measure(int v, const bench_item *items, uint64_t n, int run, int cpus, double *rate)
{
	struct run r = {.v = v, .items = items, .n = n};
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = (size_t)opt_capacity;
	o.single_producer = true;
	atomic_init(&r.done, 0);
	if (fo_stream_create(&r.s, &o) || fo_stream_cursor(r.s, &r.act, FO_ACTIVE) ||
	    (v != V_BASE && fo_cursor_fork(r.act, &r.pas, FO_PASSIVE)))
		return false;
	int nthreads = 2 + (v == V_B4A || v == V_B4B);
	pthread_t ta, tt;
	pthread_barrier_init(&r.start, NULL, (unsigned)nthreads);
	pthread_create(&ta, NULL, active_main, &r);
	if (nthreads == 3)
		pthread_create(&tt, NULL, tap_main, &r);
	pthread_barrier_wait(&r.start);
	uint64_t cpu0 = bench_cpu_ns(), t0 = bench_now_ns(), next_sample = t0;
	int rc = FO_OK;
	for (uint64_t i = 0; i < n && rc == FO_OK; i++) {
		rc = fo_stream_push(r.s, (void *)&items[i]);
		/* B4c: the producer samples the live segments ~every 1 ms (cheap:
		 * a clock read every 4096 items) */
		if (v == V_B4C && (i & 4095) == 0 && bench_now_ns() >= next_sample) {
			fo_stream_stats st;
			fo_stream_get_stats(r.s, &st);
			if (st.live_segments > r.max_segs)
				r.max_segs = st.live_segments;
			next_sample += 1000000;
		}
	}
	fo_stream_close(r.s);
	pthread_join(ta, NULL);
	if (nthreads == 3)
		pthread_join(tt, NULL);
	uint64_t cpu1 = bench_cpu_ns();
	bool ok = rc == FO_OK && r.seen == n && !r.errors && !r.tap_errors;
	uint64_t bound = (opt_capacity + FO_DEFAULT_PASSIVE_WINDOW) / 256 + 4;
	int lag_rc = FO_OK;
	if (v == V_B4C) {
		void *it;
		lag_rc = fo_cursor_next(r.pas, &it);
		ok &= lag_rc == FO_LAGGED && fo_cursor_lagged(r.pas) > 0 && r.max_segs <= bound;
	}
	if (!ok)
		fprintf(stderr,
		        "FAIL %s: push %s, active saw %" PRIu64 "/%" PRIu64 " (%" PRIu64
		        " errors), tap errors %" PRIu64 ", stalled read %s, max segments %" PRIu64
		        " (bound %" PRIu64 ")\n",
		        vname[v], fo_status_name(rc), r.seen, n, r.errors, r.tap_errors,
		        fo_status_name(lag_rc), r.max_segs, bound);
	*rate = (double)n * 1e9 / (double)(r.end_ns - t0);
	printf("RESULT scenario=%s impl=fanout cursors=%d threads=%d cpus=%d items_per_s=%.0f "
	       "cpu_ns_per_item=%.1f passive=%d tap_reads=%" PRIu64 " max_live_segments=%" PRIu64
	       " run=%d items=%" PRIu64 "\n",
	       v == V_BASE ? "B4" : vname[v], 1 + (v != V_BASE), nthreads, cpus, *rate,
	       (double)(cpu1 - cpu0) / (double)n, v != V_BASE, r.tap_reads, r.max_segs, run, n);
	fflush(stdout);
	fo_cursor_close(r.pas);
	fo_cursor_close(r.act);
	fo_stream_destroy(r.s);
	pthread_barrier_destroy(&r.start);
	return ok;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 4000000, .runs = 5};
	const bench_flag flags[] = {
	    {"capacity", BENCH_FLAG_U64, &opt_capacity, "stream capacity (default 65536)"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	if (o.quick && o.items == 200000)
		o.items = 1000000; /* B4c needs the tap lapped many times over */
	bench_item *items = bench_items_create(o.items);
	double rate[NV][64];
	int nr = o.runs < 64 ? o.runs : 64;
	bool ok = true;
	printf("B4: passive cursors, 1 producer -> 1 active cursor (+1 passive), %" PRIu64
	       " items x %d runs, capacity %" PRIu64 ", %d cpus\n",
	       o.items, nr, opt_capacity, o.cpus);
	for (int run = 1; run <= nr; run++)
		for (int j = 0; j < NV; j++) {
			int v = (j + run) % NV;
			ok &= measure(v, items, o.items, run, o.cpus, &rate[v][run - 1]);
		}
	printf("\nB4 summary: medians, items/s of the producer\n");
	double base = bench_median(rate[V_BASE], (size_t)nr);
	for (int v = 0; v < NV; v++) {
		double m = v == V_BASE ? base : bench_median(rate[v], (size_t)nr);
		printf("%-5s %14.0f  ratio to base %.3f (drop %.1f%%)\n", vname[v], m, m / base,
		       100 * (1 - m / base));
	}
	free(items);
	if (!ok)
		fprintf(stderr, "B4: FAILED (see above)\n");
	return ok ? 0 : 1;
}

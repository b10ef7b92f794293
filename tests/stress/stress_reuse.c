/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * stress_reuse.c - segments recycled without a grace period while passive
 * cursors walk (docs/design.md §6, "Reusing a segment without a grace
 * period" and "With passive cursors: the walker count").
 *
 * A single producer pushes seqs 0..N-1 (single pushes and push_many batches)
 * into a single_producer stream with a small passive window, so the
 * passives are lapped all the time and every reclamation pass recycles what
 * it releases at once (no passive open) or when no passive is walking.
 * NPAS passive threads read batches of 1-64, call fo_cursor_available, stand
 * still for a while (lapped), and sometimes close their cursor and open a
 * new one (the stream goes between "no passive" and "passives").  In half
 * the rounds an active cursor reads every item (the frontier follows it;
 * capacity bounds the producer), in the others nothing holds the producer
 * back.  Checks:
 *   passive   every item intact (magic + checksum: not destroyed, not read
 *             from a recycled segment); seqs strictly increase, with a gap
 *             only after FO_LAGGED or a reopen; the batch it returned last
 *             is still intact at its next call;
 *   active    every item, in order, then FO_END;
 *   items     every destructor runs exactly once, all by the stream's
 *             destruction.
 *
 * Usage: stress_reuse [--seed N] [--items N] [--quick]
 */
#include "../common/stress_common.h"

#define NPAS      3
#define MAX_BATCH 64u
#define WINDOW    512u
#define CAPACITY  4096u

static struct {
	fo_stream *s;
	uint64_t n, seed;
	int round;
} g;

static void dump(void)
{
	fprintf(stderr, "stress_reuse: round %d, %" PRIu64 " items, seed %" PRIu64 "\n", g.round,
	        g.n, g.seed);
}

static void *producer_main(void *arg)
{
	st_rng rng;
	st_rng_init(&rng, g.seed, 1000 + (uint64_t)g.round);
	void *b[MAX_BATCH];
	(void)arg;
	for (uint64_t seq = 0; seq < g.n;) {
		size_t k = st_below(&rng, 4) ? 1 : 1 + (size_t)st_below(&rng, MAX_BATCH);
		if (k > g.n - seq)
			k = (size_t)(g.n - seq);
		for (size_t i = 0; i < k; i++)
			b[i] = st_item_new(0, seq + i, seq, (uint16_t)i, (uint16_t)k);
		int rc = k == 1 ? fo_stream_push(g.s, b[0]) : fo_stream_push_many(g.s, b, k);
		if (rc != FO_OK) {
			st_fail("push of %zu at %" PRIu64 ": %s", k, seq, st_rc(rc));
			for (size_t i = 0; i < k; i++)
				free(b[i]);
			break;
		}
		seq += k;
		st_tick();
	}
	fo_stream_close(g.s);
	return NULL;
}

static void *active_main(void *arg)
{
	fo_cursor *c = arg;
	void *b[MAX_BATCH];
	size_t k;
	uint64_t next = 0;
	int rc;
	for (;;) {
		rc = fo_cursor_next_many(c, b, MAX_BATCH, &k);
		if (rc == FO_EMPTY) {
			rc = fo_cursor_next(c, &b[0]);
			k = 1;
		}
		if (rc != FO_OK)
			break;
		for (size_t i = 0; i < k; i++) {
			if (!st_item_check(b[i], 1, "active"))
				continue;
			const st_item *it = b[i];
			if (it->seq != next)
				st_fail("active: seq %" PRIu64 ", expected %" PRIu64, it->seq,
				        next);
			next = it->seq + 1;
		}
		st_tick();
	}
	if (rc != FO_END || next != g.n)
		st_fail("active: %s after %" PRIu64 " of %" PRIu64, st_rc(rc), next, g.n);
	fo_cursor_close(c);
	return NULL;
}

static void *passive_main(void *arg)
{
	st_rng rng;
	st_rng_init(&rng, g.seed, 2000 + 16 * (uint64_t)g.round + (uintptr_t)arg);
	fo_cursor *p = NULL;
	void *b[MAX_BATCH];
	size_t k = 0;
	uint64_t last = 0;
	bool any = false, gap_ok = true;
	for (;;) {
		if (!p) {
			int rc = fo_stream_cursor(g.s, &p, FO_PASSIVE);
			if (rc != FO_OK) {
				st_fail("passive: open: %s", st_rc(rc));
				return NULL;
			}
			k = 0;
			gap_ok = true;
		}
		/* The batch returned last must still be intact (design.md §6: a trim
		 * keeps it until our next call). */
		for (size_t i = 0; i < k; i++)
			st_item_check(b[i], 1, "passive (last batch)");
		unsigned what = (unsigned)st_below(&rng, 64);
		if (what == 0) { /* reopen: the stream may go without passives */
			fo_cursor_close(p);
			p = NULL;
			if (st_below(&rng, 2))
				st_sleep_ns((int64_t)st_below(&rng, 200000));
			continue;
		}
		if (what < 4) /* stand still: lapped */
			st_sleep_ns((int64_t)st_below(&rng, 300000));
		else if (what < 12)
			(void)fo_cursor_available(p);
		size_t max = 1 + (size_t)st_below(&rng, MAX_BATCH);
		int rc = fo_cursor_next_many(p, b, max, &k);
		if (rc == FO_LAGGED) {
			gap_ok = true;
			k = 0;
			continue;
		}
		if (rc == FO_END)
			break;
		if (rc == FO_EMPTY) {
			k = 0;
			rc = fo_cursor_timed_next(p, &b[0], 2000000); /* 2 ms */
			if (rc == FO_END)
				break;
			if (rc == FO_LAGGED) {
				gap_ok = true;
				continue;
			}
			if (rc != FO_OK)
				continue; /* FO_TIMEDOUT */
			k = 1;
		} else if (rc != FO_OK) {
			st_fail("passive: %s", st_rc(rc));
			break;
		}
		for (size_t i = 0; i < k; i++) {
			if (!st_item_check(b[i], 1, "passive"))
				continue;
			uint64_t seq = ((const st_item *)b[i])->seq;
			if (any && seq <= last)
				st_fail("passive: seq %" PRIu64 " after %" PRIu64, seq, last);
			else if (any && seq != last + 1 && !gap_ok)
				st_fail("passive: gap %" PRIu64 " -> %" PRIu64 " without FO_LAGGED",
				        last, seq);
			last = seq;
			any = true;
			gap_ok = false;
		}
		st_tick();
	}
	fo_cursor_close(p);
	return NULL;
}

static void run_round(int r, uint64_t n, st_freectx *fc)
{
	bool active = r % 2 == 0;
	g.round = r;
	g.n = n;
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.single_producer = true;
	o.passive_window = WINDOW;
	o.capacity = active ? CAPACITY : 0;
	o.item_free = st_item_free_cb;
	o.item_free_ctx = fc;
	int rc = fo_stream_create(&g.s, &o);
	if (rc != FO_OK)
		st_die("create: %s", st_rc(rc));
	fo_cursor *c = NULL;
	if (active && (rc = fo_stream_cursor(g.s, &c, FO_ACTIVE)) != FO_OK)
		st_die("active cursor: %s", st_rc(rc));
	pthread_t tp, ta, tq[NPAS];
	for (uintptr_t i = 0; i < NPAS; i++)
		st_thread_start(&tq[i], passive_main, (void *)i);
	if (active)
		st_thread_start(&ta, active_main, c);
	st_thread_start(&tp, producer_main, NULL);
	st_thread_join(tp);
	if (active)
		st_thread_join(ta);
	for (int i = 0; i < NPAS; i++)
		st_thread_join(tq[i]);
	fo_stream_destroy(g.s);
	g.s = NULL;
}

int main(int argc, char **argv)
{
	st_args args;
	st_parse_args(argc, argv, &args, NULL);
	int rounds = args.quick ? 2 : 6;
	uint64_t n = args.have_items ? args.items : args.quick ? 20000 : st_scale(2000000, 100000);
	g.seed = args.seed;
	printf("stress_reuse: seed=%" PRIu64 " build=%s (replay: --seed %" PRIu64
	       "), %d rounds x %" PRIu64 " items, %d passives, window %u\n",
	       args.seed, st_build_name(st_build_kind()), args.seed, rounds, n, NPAS, WINDOW);
	fflush(stdout);
	st_watchdog_start(60 * ST_NS_PER_S * st_time_factor(), dump);
	int64_t t0 = st_now_ns();
	for (int r = 0; r < rounds && !st_failure_count(); r++) {
		st_freectx fc;
		st_freectx_init(&fc, 1, n);
		run_round(r, n, &fc);
		if (st_freed_total(&fc) != n)
			st_fail("round %d: %" PRIu64 " destructors for %" PRIu64 " items", r,
			        st_freed_total(&fc), n);
		st_freectx_fini(&fc);
	}
	st_watchdog_end();
	unsigned long f = st_failure_count();
	printf("stress_reuse: %s in %.1f s (%lu failures)\n", f ? "FAILED" : "passed",
	       (double)(st_now_ns() - t0) / 1e9, f);
	return f ? 1 : 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * stress_reuse.c - segments recycled without a grace period while passive
 * cursors walk (docs/design.md §6, "Reusing a segment without a grace
 * period", "With passive cursors: the walker count" and "A default stream
 * still biased to its first producer").
 *
 * A single producer pushes seqs 0..N-1 (single pushes and push_many batches)
 * into a single_producer stream with a small passive window, so the
 * passives are lapped all the time and every reclamation pass recycles what
 * it releases at once (no passive open) or when no passive is walking.
 * In every other pair of rounds the stream has default options instead:
 * biased to the first producer, it recycles the same way until a second
 * producer, started once the first has pushed a random part of its items,
 * revokes the bias while passes recycle; from then on passes retire through
 * grace periods and both push by CAS (N/2 items each, per-producer seqs).
 * Those rounds check the switch only in the release and ASan builds: TSan
 * builds never bias a stream (design.md §4: TSan cannot see the membarrier
 * the bias relies on), so there they are plain two-producer rounds.
 * NPAS passive threads read batches of 1-64, call fo_cursor_available, stand
 * still for a while (lapped), and sometimes close their cursor and open a
 * new one (the stream goes between "no passive" and "passives").  In half
 * the rounds an active cursor reads every item (the frontier follows it;
 * capacity bounds the producer), in the others nothing holds the producer
 * back.  Checks:
 *   passive   every item intact (magic + checksum: not destroyed, not read
 *             from a recycled segment); each producer's seqs strictly
 *             increase, with a gap only after FO_LAGGED or a reopen; the
 *             batch it returned last is still intact at its next call;
 *   active    every item of each producer, in its order, then FO_END;
 *   items     every destructor runs exactly once, all by the stream's
 *             destruction.
 *
 * Usage: stress_reuse [--seed N] [--items N] [--quick]
 */
#include "../common/stress_common.h"

#define NPAS      3
#define NPROD     2 /* producers of a default-options round; 1 otherwise */
#define MAX_BATCH 64u
#define WINDOW    512u
#define CAPACITY  4096u

static struct {
	fo_stream *s;
	uint64_t n[NPROD], seed;
	uint32_t nprod;
	uint64_t late_at;               /* default rounds: the second producer starts here */
	_Atomic uint64_t pushed[NPROD]; /* items accepted so far, per producer */
	int round;
} g;

static void dump(void)
{
	fprintf(stderr,
	        "stress_reuse: round %d, %u producer(s), pushed %" PRIu64 "/%" PRIu64
	        " and %" PRIu64 "/%" PRIu64 ", seed %" PRIu64 "\n",
	        g.round, g.nprod, atomic_load(&g.pushed[0]), g.n[0], atomic_load(&g.pushed[1]),
	        g.n[1], g.seed);
}

/* Producer @arg pushes its seqs 0..n-1.  Producer 1 (default rounds) starts
 * once producer 0 has pushed late_at items: the first push of a second
 * thread revokes the bias mid-run, while passes recycle. */
static void *producer_main(void *arg)
{
	uint32_t id = (uint32_t)(uintptr_t)arg;
	st_rng rng;
	st_rng_init(&rng, g.seed, 1000 + 16 * (uint64_t)g.round + id);
	void *b[MAX_BATCH];
	if (id == 1)
		while (atomic_load(&g.pushed[0]) < g.late_at)
			st_sleep_ns(20000);
	for (uint64_t seq = 0; seq < g.n[id];) {
		size_t k = st_below(&rng, 4) ? 1 : 1 + (size_t)st_below(&rng, MAX_BATCH);
		if (k > g.n[id] - seq)
			k = (size_t)(g.n[id] - seq);
		for (size_t i = 0; i < k; i++)
			b[i] = st_item_new(id, seq + i, seq, (uint16_t)i, (uint16_t)k);
		int rc = k == 1 ? fo_stream_push(g.s, b[0]) : fo_stream_push_many(g.s, b, k);
		if (rc != FO_OK) {
			st_fail("producer %u: push of %zu at %" PRIu64 ": %s", id, k, seq,
			        st_rc(rc));
			for (size_t i = 0; i < k; i++)
				free(b[i]);
			break;
		}
		seq += k;
		atomic_store(&g.pushed[id], seq);
		st_tick();
	}
	return NULL;
}

static void *active_main(void *arg)
{
	fo_cursor *c = arg;
	void *b[MAX_BATCH];
	size_t k;
	uint64_t next[NPROD] = {0};
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
			if (!st_item_check(b[i], g.nprod, "active"))
				continue;
			const st_item *it = b[i];
			if (it->seq != next[it->producer])
				st_fail("active: producer %u seq %" PRIu64 ", expected %" PRIu64,
				        it->producer, it->seq, next[it->producer]);
			next[it->producer] = it->seq + 1;
		}
		st_tick();
	}
	for (uint32_t p = 0; p < g.nprod; p++)
		if (rc != FO_END || next[p] != g.n[p])
			st_fail("active: %s after %" PRIu64 " of %" PRIu64 " of producer %u",
			        st_rc(rc), next[p], g.n[p], p);
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
	uint64_t last[NPROD] = {0};
	bool any[NPROD] = {false}, gap_ok[NPROD] = {true, true};
	for (;;) {
		if (!p) {
			int rc = fo_stream_cursor(g.s, &p, FO_PASSIVE);
			if (rc != FO_OK) {
				st_fail("passive: open: %s", st_rc(rc));
				return NULL;
			}
			k = 0;
			gap_ok[0] = gap_ok[1] = true;
		}
		/* The batch returned last must still be intact (design.md §6: a trim
		 * keeps it until our next call). */
		for (size_t i = 0; i < k; i++)
			st_item_check(b[i], g.nprod, "passive (last batch)");
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
			gap_ok[0] = gap_ok[1] = true;
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
				gap_ok[0] = gap_ok[1] = true;
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
			if (!st_item_check(b[i], g.nprod, "passive"))
				continue;
			const st_item *it = b[i];
			uint32_t q = it->producer;
			if (any[q] && it->seq <= last[q])
				st_fail("passive: producer %u seq %" PRIu64 " after %" PRIu64, q,
				        it->seq, last[q]);
			else if (any[q] && it->seq != last[q] + 1 && !gap_ok[q])
				st_fail("passive: producer %u gap %" PRIu64 " -> %" PRIu64
				        " without FO_LAGGED",
				        q, last[q], it->seq);
			last[q] = it->seq;
			any[q] = true;
			gap_ok[q] = false;
		}
		st_tick();
	}
	fo_cursor_close(p);
	return NULL;
}

static void run_round(int r, uint64_t n, st_freectx *fc)
{
	bool active = r % 2 == 0, biased = r % 4 >= 2;
	st_rng rng;
	st_rng_init(&rng, g.seed, 3000 + (uint64_t)r);
	g.round = r;
	g.nprod = biased ? 2 : 1;
	g.n[0] = biased ? n / 2 : n;
	g.n[1] = biased ? n - n / 2 : 0;
	g.late_at = g.n[0] / 8 + st_below(&rng, g.n[0] / 2 + 1); /* mid-run */
	atomic_store(&g.pushed[0], 0);
	atomic_store(&g.pushed[1], 0);
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.single_producer = !biased; /* else default options: biased, then revoked */
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
	pthread_t tp[NPROD], ta, tq[NPAS];
	for (uintptr_t i = 0; i < NPAS; i++)
		st_thread_start(&tq[i], passive_main, (void *)i);
	if (active)
		st_thread_start(&ta, active_main, c);
	for (uintptr_t i = 0; i < g.nprod; i++)
		st_thread_start(&tp[i], producer_main, (void *)i);
	for (uint32_t i = 0; i < g.nprod; i++)
		st_thread_join(tp[i]);
	fo_stream_close(g.s);
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
	int rounds = args.quick ? 4 : 8;
	uint64_t n = args.have_items ? args.items : args.quick ? 20000 : st_scale(2000000, 100000);
	g.seed = args.seed;
	printf("stress_reuse: seed=%" PRIu64 " build=%s (replay: --seed %" PRIu64
	       "), %d rounds x %" PRIu64 " items (half of them from a biased default stream"
	       " revoked mid-run), %d passives, window %u\n",
	       args.seed, st_build_name(st_build_kind()), args.seed, rounds, n, NPAS, WINDOW);
	fflush(stdout);
	st_watchdog_start(60 * ST_NS_PER_S * st_time_factor(), dump);
	int64_t t0 = st_now_ns();
	for (int r = 0; r < rounds && !st_failure_count(); r++) {
		st_freectx fc;
		st_freectx_init(&fc, NPROD, n);
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

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * stress_churn.c - cursor churn under load (TESTING.md sections 2 and 4).
 *
 * Producers push seqs 0..N-1 (single pushes and push_many batches) into a
 * stream with a counting item_free while churn threads keep opening cursors
 * (active, passive, a share group of two members read alternately, forks of
 * their own cursors), read a few items, and close them in random order.  In
 * some rounds a long-lived "anchor" active cursor reads everything; in others
 * no cursor may exist for a while (pushes then free their items at once).  A
 * stats thread samples fo_stream_get_stats() throughout.  Checks:
 *   every item        magic + checksum (not freed while a cursor may return it);
 *   active cursor     per producer contiguous from its first item;
 *   passive cursor    seqs increase, gaps only after FO_LAGGED;
 *   group (2 members  per producer the members' items, in the order the one
 *   in one thread)    thread got them, are contiguous (nothing lost or twice);
 *   anchor            every item, then FO_END;
 *   stats             pushed never decreases, cursors never exceeds what
 *                     exists, and once everything has caught up (producers done, churn
 *                     cursors closed, anchor drained) live_segments drops to a
 *                     small number (<= 4) and cached_segments to <= 4096 + 15
 *                     (the pool keeps what producers lacked while grace periods ran)
 *                     within a few seconds, and
 *                     item_free runs + retained_items == pushed;
 *   destructors       once per pushed item, all of them when the last handle
 *                     is dropped.
 *
 * Usage: stress_churn [--seed N] [--items N] [--quick]
 */
#include "../common/stress_common.h"

#define NPROD               2
#define NCHURN              4
#define MAX_BATCH           64u
#define LIVE_SEGMENTS_BOUND 4u
/* stream.h: the pool (32, plus, with segments returning from grace periods, as many as the
 * producers had to allocate while others waited, at most 4096 in all: design.md §6, "Supply
 * through a grace period") + an unfilled retire batch 15, once settled. */
#define CACHED_SEGMENTS_BOUND (4096u + 15u)
#define MAX_CURSORS_PER_CHURN 3u

static struct {
	uint64_t n;
	size_t capacity;
	bool anchor;
	fo_stream *s;
	st_freectx fc;
	_Atomic bool go, producers_done, closed, stop_stats;
	int64_t long_wait_ns;
	_Atomic uint64_t pushed_diag[NPROD];
	_Atomic uint64_t cursors_opened, churn_items, stats_samples;
	_Atomic uint64_t kinds[4];
	uint64_t anchor_got;
	size_t max_cached, max_live; /* peaks seen by the stats thread */
	bool anchor_ended;
	uint64_t seed;
} g;

static void dump_churn(void)
{
	fprintf(stderr, "  churn round: n=%" PRIu64 " cap=%zu anchor=%d done=%d closed=%d\n", g.n,
	        g.capacity, (int)g.anchor, (int)atomic_load(&g.producers_done),
	        (int)atomic_load(&g.closed));
	for (int p = 0; p < NPROD; p++)
		fprintf(stderr, "  producer %d pushed %" PRIu64 "\n", p,
		        atomic_load(&g.pushed_diag[p]));
	fprintf(stderr, "  cursors opened %" PRIu64 ", churn items %" PRIu64 "\n",
	        atomic_load(&g.cursors_opened), atomic_load(&g.churn_items));
}

/* ------------------------------------------------------------ per cursor */

enum { K_ACTIVE, K_PASSIVE, K_GROUP, K_FORKS };
static const char *const kname[] = {"active", "passive", "group", "active+fork"};

typedef struct view {
	const char *name;
	int kind; /* 0 active, 1 passive, 2 group (shared state across 2 cursors) */
	int64_t last[NPROD];
	uint64_t epoch_at[NPROD], lag_epoch;
	bool ended;
} view;

static void view_init(view *v, const char *name, int kind)
{
	memset(v, 0, sizeof *v);
	v->name = name;
	v->kind = kind;
	for (int p = 0; p < NPROD; p++) {
		v->last[p] = -1;
		v->epoch_at[p] = UINT64_MAX; /* the first item of each producer may be anything */
	}
}

static void view_item(view *v, const void *x)
{
	if (!st_item_check(x, NPROD, v->name))
		return;
	const st_item *it = x;
	uint32_t p = it->producer;
	int64_t seq = (int64_t)it->seq;
	bool first = v->epoch_at[p] == UINT64_MAX;
	if (it->seq >= g.n) {
		st_fail("%s: seq %" PRId64 " out of range", v->name, seq);
		return;
	}
	if (!first && seq <= v->last[p])
		st_fail("%s: producer %u: seq %" PRId64 " after %" PRId64
		        " (duplicate or reordered)",
		        v->name, p, seq, v->last[p]);
	else if (!first && seq != v->last[p] + 1) {
		if (v->kind != 1)
			st_fail("%s: producer %u: expected seq %" PRId64 ", got %" PRId64
			        " (items lost)",
			        v->name, p, v->last[p] + 1, seq);
		else if (v->epoch_at[p] == v->lag_epoch)
			st_fail("%s: producer %u: skipped %" PRId64 " -> %" PRId64
			        " without FO_LAGGED",
			        v->name, p, v->last[p], seq);
	}
	v->last[p] = seq;
	v->epoch_at[p] = v->lag_epoch;
}

/* One read on @c for @v.  Returns false when @c is done (FO_END or a failure).
 * !@may_block: the thread holds two cursors; waiting on one while the other is
 * a full capacity behind would deadlock a bounded stream, so only try_next,
 * next_many and timed_next with a short timeout. */
static bool view_read(view *v, fo_cursor *c, st_rng *rng, bool *must_block, uint64_t *got,
                      bool may_block)
{
	void *items[MAX_BATCH];
	size_t n = 0;
	bool lw = false;
	int rc;
	if (may_block) {
		rc = st_read_some(c, rng, items, MAX_BATCH, &n, must_block, atomic_load(&g.closed),
		                  g.long_wait_ns, &lw);
	} else {
		uint64_t m = st_below(rng, 3);
		if (m == 0) {
			rc = fo_cursor_next_many(c, items, 1 + st_below(rng, MAX_BATCH), &n);
		} else {
			rc = m == 1 ? fo_cursor_try_next(c, &items[0])
			            : fo_cursor_timed_next(c, &items[0],
			                                   (int64_t)st_below(rng, 1000000));
			n = rc == FO_OK;
		}
	}
	switch (rc) {
	case FO_OK:
		for (size_t i = 0; i < n; i++)
			view_item(v, items[i]);
		*got += n;
		st_tick();
		return true;
	case FO_END:
		if (!atomic_load(&g.closed))
			st_fail("%s: FO_END before close", v->name);
		v->ended = true;
		return false;
	case FO_LAGGED:
		if (v->kind != 1)
			st_fail("%s: FO_LAGGED on a non-passive cursor", v->name);
		v->lag_epoch++;
		return true;
	case FO_EMPTY:
	case FO_TIMEDOUT:
		if (lw) {
			st_fail("%s: nothing for %.0f s (closed=%d)", v->name,
			        (double)g.long_wait_ns / 1e9, (int)atomic_load(&g.closed));
			return false;
		}
		return true;
	default:
		st_fail("%s: unexpected %s", v->name, st_rc(rc));
		return false;
	}
}

/* -------------------------------------------------------------- threads */

typedef struct churn {
	int id;
	st_rng rng;
	uint64_t iterations;
	pthread_t th;
} churn;

static void open_cursor(fo_cursor **c, unsigned flags, const char *who)
{
	int rc = fo_stream_cursor(g.s, c, flags);
	if (rc != FO_OK || !*c)
		st_die("%s: fo_stream_cursor(%u): %s", who, flags, st_rc(rc));
	atomic_fetch_add(&g.cursors_opened, 1);
}

static void *churn_main(void *arg)
{
	churn *ch = arg;
	char name[2][64];
	while (!atomic_load_explicit(&g.go, memory_order_acquire))
		sched_yield();
	/* keep churning until the producers are done (and at least a few times) */
	while (!atomic_load(&g.producers_done) || ch->iterations < 20) {
		ch->iterations++;
		int kind = (int)st_below(&ch->rng, 4);
		fo_cursor *c[2] = {NULL, NULL};
		view v[2];
		uint64_t quota = 1 + st_below(&ch->rng, 300), got = 0;
		bool mb[2] = {false, false};
		atomic_fetch_add(&g.kinds[kind], 1);
		snprintf(name[0], sizeof name[0], "churn%d.%" PRIu64 " %s", ch->id, ch->iterations,
		         kname[kind]);
		snprintf(name[1], sizeof name[1], "churn%d.%" PRIu64 " %s(fork)", ch->id,
		         ch->iterations, kname[kind]);
		switch (kind) {
		case K_ACTIVE:
			open_cursor(&c[0], FO_ACTIVE, name[0]);
			view_init(&v[0], name[0], 0);
			break;
		case K_PASSIVE:
			open_cursor(&c[0], FO_PASSIVE, name[0]);
			view_init(&v[0], name[0], 1);
			break;
		case K_GROUP:
			open_cursor(&c[0], FO_SHARED, name[0]);
			if (fo_cursor_fork(c[0], &c[1], FO_SHARED) != FO_OK)
				st_die("fork SHARED failed");
			view_init(&v[0], name[0], 2); /* both members feed one view */
			break;
		default:
			open_cursor(&c[0], FO_ACTIVE, name[0]);
			view_init(&v[0], name[0], 0);
			break;
		}
		bool live[2] = {c[0] != NULL, c[1] != NULL};
		bool forked = false;
		while ((live[0] || live[1]) && got < quota) {
			int which = live[0] && live[1] ? (int)st_below(&ch->rng, 2)
			            : live[0]          ? 0
			                               : 1;
			view *vv = kind == K_GROUP ? &v[0] : &v[which];
			live[which] =
			    view_read(vv, c[which], &ch->rng, &mb[which], &got, c[1] == NULL);
			if (kind == K_FORKS && !forked && got >= quota / 2) {
				/* fork our own cursor (active or passive) half way */
				unsigned fl = st_below(&ch->rng, 2) ? FO_ACTIVE : FO_PASSIVE;
				if (fo_cursor_fork(c[0], &c[1], fl) != FO_OK)
					st_die("fork failed");
				view_init(&v[1], name[1], fl == FO_PASSIVE ? 1 : 0);
				/* the fork starts right after what c[0] returned */
				for (int p = 0; p < NPROD; p++) {
					v[1].last[p] = v[0].last[p];
					v[1].epoch_at[p] = v[0].last[p] < 0 ? UINT64_MAX : 0;
				}
				live[1] = true;
				forked = true;
			}
			if (atomic_load(&g.closed) && !live[0] && !live[1])
				break;
		}
		atomic_fetch_add(&g.churn_items, got);
		/* close in random order */
		int first = (int)st_below(&ch->rng, 2);
		fo_cursor_close(c[first]);
		fo_cursor_close(c[1 - first]);
		if (st_below(&ch->rng, 8) == 0)
			st_sleep_ns((int64_t)st_below(&ch->rng, 200000));
	}
	return NULL;
}

typedef struct prod {
	uint32_t id;
	st_rng rng;
	uint64_t pushed;
	pthread_t th;
} prod;

static void *prod_main(void *arg)
{
	prod *pr = arg;
	st_item *b[MAX_BATCH];
	while (!atomic_load_explicit(&g.go, memory_order_acquire))
		sched_yield();
	uint64_t seq = 0, bid = 0;
	while (seq < g.n) {
		uint64_t k = st_below(&pr->rng, 3) == 0 ? 1 + st_below(&pr->rng, MAX_BATCH) : 1;
		if (k > g.n - seq)
			k = g.n - seq;
		for (uint64_t i = 0; i < k; i++)
			b[i] = st_item_new(pr->id, seq + i, bid, (uint16_t)i, (uint16_t)k);
		int rc = k > 1 ? fo_stream_push_many(g.s, (void *const *)b, k)
		               : fo_stream_push(g.s, b[0]);
		if (rc != FO_OK) {
			st_fail("producer %u: push at %" PRIu64 ": %s", pr->id, seq, st_rc(rc));
			for (uint64_t i = 0; i < k; i++)
				free(b[i]);
			break;
		}
		seq += k;
		bid++;
		pr->pushed = seq;
		atomic_store_explicit(&g.pushed_diag[pr->id], seq, memory_order_relaxed);
		st_tick();
		/* pauses, so that at times no churn cursor exists */
		if (st_below(&pr->rng, 256) == 0)
			st_sleep_ns((int64_t)st_below(&pr->rng, 200000));
	}
	return NULL;
}

static void *anchor_main(void *arg)
{
	fo_cursor *c = arg;
	view v;
	st_rng rng;
	bool mb = false;
	st_rng_init(&rng, g.seed, 0xa4c);
	view_init(&v, "anchor", 0);
	for (int p = 0; p < NPROD; p++)
		v.epoch_at[p] = 0; /* opened before any push: starts at seq 0 */
	while (!atomic_load_explicit(&g.go, memory_order_acquire))
		sched_yield();
	while (view_read(&v, c, &rng, &mb, &g.anchor_got, true)) {
	}
	g.anchor_ended = v.ended;
	for (int p = 0; p < NPROD; p++)
		if (v.last[p] != (int64_t)g.n - 1)
			st_fail("anchor: producer %d: last seq %" PRId64
			        " at the end, expected %" PRIu64,
			        p, v.last[p], g.n - 1);
	return NULL; /* main closes it after the stats check */
}

static void *stats_main(void *arg)
{
	(void)arg;
	uint64_t last_pushed = 0;
	size_t max_cached = 0, max_live = 0;
	size_t max_cursors = (g.anchor ? 1 : 0) + NCHURN * MAX_CURSORS_PER_CHURN;
	while (!atomic_load(&g.stop_stats)) {
		fo_stream_stats st;
		int rc = fo_stream_get_stats(g.s, &st);
		if (rc != FO_OK) {
			st_fail("fo_stream_get_stats: %s", st_rc(rc));
			break;
		}
		if (st.pushed < last_pushed)
			st_fail("stats: pushed went back from %" PRIu64 " to %" PRIu64, last_pushed,
			        st.pushed);
		if (st.pushed > (uint64_t)NPROD * g.n)
			st_fail("stats: pushed %" PRIu64 " > %" PRIu64, st.pushed,
			        (uint64_t)NPROD * g.n);
		if (st.cursors > max_cursors)
			st_fail("stats: %zu cursors, at most %zu can be open", st.cursors,
			        max_cursors);
		if (st.cached_segments > max_cached)
			max_cached = st.cached_segments;
		if (st.live_segments > max_live)
			max_live = st.live_segments;
		last_pushed = st.pushed;
		atomic_fetch_add(&g.stats_samples, 1);
		st_sleep_ns(200000);
	}
	g.max_cached = max_cached;
	g.max_live = max_live;
	/* During the run, segments waiting for a grace period are not bounded
	 * by a constant (stream.h): only the settled value below is checked. */
	return NULL;
}

static void churn_round(int round, uint64_t n, size_t capacity, bool anchor, size_t pwin)
{
	uint64_t seed = g.seed;
	memset(&g, 0, sizeof g);
	g.seed = seed;
	g.n = n;
	g.capacity = capacity;
	g.anchor = anchor;
	g.long_wait_ns = 30 * ST_NS_PER_S * st_time_factor();
	st_set_context("churn round %d: n=%" PRIu64 " cap=%zu %s pwin=%zu", round, n, capacity,
	               anchor ? "anchor" : "no-anchor", pwin);
	st_freectx_init(&g.fc, NPROD, n);
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = capacity;
	o.passive_window = pwin;
	o.item_free = st_item_free_cb;
	o.item_free_ctx = &g.fc;
	if (fo_stream_create(&g.s, &o) != FO_OK)
		st_die("fo_stream_create failed");
	fo_cursor *ac = NULL;
	pthread_t at, stt;
	if (anchor) {
		open_cursor(&ac, FO_ACTIVE, "anchor");
		st_thread_start(&at, anchor_main, ac);
	}
	st_thread_start(&stt, stats_main, NULL);
	churn ch[NCHURN];
	prod pr[NPROD];
	memset(ch, 0, sizeof ch);
	memset(pr, 0, sizeof pr);
	for (int i = 0; i < NCHURN; i++) {
		ch[i].id = i;
		st_rng_init(&ch[i].rng, seed, 0xc0000 + (uint64_t)round * 64 + (uint64_t)i);
		st_thread_start(&ch[i].th, churn_main, &ch[i]);
	}
	for (int p = 0; p < NPROD; p++) {
		pr[p].id = (uint32_t)p;
		st_rng_init(&pr[p].rng, seed, 0xd0000 + (uint64_t)round * 64 + (uint64_t)p);
		st_thread_start(&pr[p].th, prod_main, &pr[p]);
	}
	int64_t t0 = st_now_ns();
	atomic_store_explicit(&g.go, true, memory_order_release);
	for (int p = 0; p < NPROD; p++)
		st_thread_join(pr[p].th);
	uint64_t total = pr[0].pushed + pr[1].pushed;
	atomic_store(&g.producers_done, true);
	atomic_store_explicit(&g.closed, true, memory_order_release);
	fo_stream_close(g.s);
	for (int i = 0; i < NCHURN; i++)
		st_thread_join(ch[i].th);
	if (anchor) {
		st_thread_join(at);
		if (!g.anchor_ended)
			st_fail("anchor never got FO_END");
	}
	atomic_store(&g.stop_stats, true);
	st_thread_join(stt);

	/* everything caught up: live segments must drop to a small number
	 * (deferred reclamation may take a moment) */
	fo_stream_stats st;
	memset(&st, 0, sizeof st);
	int64_t deadline = st_now_ns() + 5 * ST_NS_PER_S * st_time_factor();
	for (;;) {
		if (fo_stream_get_stats(g.s, &st) != FO_OK) {
			st_fail("fo_stream_get_stats failed");
			break;
		}
		if ((st.live_segments <= LIVE_SEGMENTS_BOUND &&
		     st.cached_segments <= CACHED_SEGMENTS_BOUND) ||
		    st_now_ns() > deadline)
			break;
		st_sleep_ns(10 * ST_NS_PER_MS);
		st_tick();
	}
	if (st.live_segments > LIVE_SEGMENTS_BOUND)
		st_fail(
		    "after everything caught up: live_segments=%zu (bound %u), retained_items=%zu",
		    st.live_segments, LIVE_SEGMENTS_BOUND, st.retained_items);
	if (st.cached_segments > CACHED_SEGMENTS_BOUND)
		st_fail("after everything caught up: cached_segments=%zu (bound %u)",
		        st.cached_segments, CACHED_SEGMENTS_BOUND);
	if (st.cursors != (anchor ? 1u : 0u))
		st_fail("after every churn cursor closed: stats.cursors=%zu, expected %d",
		        st.cursors, anchor ? 1 : 0);
	if (st.pushed != total)
		st_fail("stats.pushed=%" PRIu64 ", producers pushed %" PRIu64, st.pushed, total);
	if (st_freed_total(&g.fc) + st.retained_items != total)
		st_fail("item_free ran %" PRIu64 " times + retained_items %zu != %" PRIu64
		        " pushed",
		        st_freed_total(&g.fc), st.retained_items, total);

	/* drop the last handles in random order; all destructors run by the last */
	if (anchor && (round & 2)) {
		fo_cursor_close(ac);
		fo_stream_destroy(g.s);
	} else {
		fo_stream_destroy(g.s);
		if (anchor)
			fo_cursor_close(ac);
	}
	g.s = NULL;
	if (st_freed_total(&g.fc) != total)
		st_fail("after the last handle: item_free ran %" PRIu64 " times, %" PRIu64
		        " pushed",
		        st_freed_total(&g.fc), total);
	for (int p = 0; p < NPROD; p++) {
		uint64_t miss = st_bitmap_first_clear(&g.fc.bits[p], 0, pr[p].pushed);
		if (miss != pr[p].pushed)
			st_fail("producer %d seq %" PRIu64 " never freed", p, miss);
	}
	uint64_t iters = 0;
	for (int i = 0; i < NCHURN; i++)
		iters += ch[i].iterations;
	st_log("  %-52s %6.2f s  cursor sets=%" PRIu64 " (a/p/g/f %" PRIu64 "/%" PRIu64 "/%" PRIu64
	       "/%" PRIu64 ") churn items=%" PRIu64 " stats samples=%" PRIu64
	       " peak live/cached segments=%zu/%zu final=%zu/%zu retained=%zu\n",
	       st_context, (double)(st_now_ns() - t0) / 1e9, iters, atomic_load(&g.kinds[0]),
	       atomic_load(&g.kinds[1]), atomic_load(&g.kinds[2]), atomic_load(&g.kinds[3]),
	       atomic_load(&g.churn_items), atomic_load(&g.stats_samples), g.max_live, g.max_cached,
	       st.live_segments, st.cached_segments, st.retained_items);
	st_freectx_fini(&g.fc);
}

int main(int argc, char **argv)
{
	st_args args;
	st_parse_args(argc, argv, &args, NULL);
	uint64_t n = st_scale(1000000, 3000);
	int rounds = 8;
	if (args.quick) {
		n = 5000;
		rounds = 4;
	}
	if (args.have_items)
		n = args.items;
	g.seed = args.seed;
	printf("stress_churn: seed=%" PRIu64 " build=%s (replay: --seed %" PRIu64 ")\n", args.seed,
	       st_build_name(st_build_kind()), args.seed);
	printf("%d rounds x %d producers x %" PRIu64 " items, %d churn threads, "
	       "anchor cursor in half the rounds, capacity {0,1024}\n",
	       rounds, NPROD, n, NCHURN);
	fflush(stdout);
	st_watchdog_start(60 * ST_NS_PER_S * st_time_factor(), dump_churn);
	int64_t t0 = st_now_ns();
	static const size_t caps[] = {0, 1024};
	static const size_t pwins[] = {0, 256, 64, 0};
	for (int r = 0; r < rounds; r++) {
		churn_round(r, n, caps[r & 1], (r >> 1) & 1, pwins[(r >> 2) & 3]);
		if (st_failure_count()) {
			fprintf(stderr, "stress_churn: FAILED in %s (seed %" PRIu64 ")\n",
			        st_context, args.seed);
			return 1;
		}
	}
	st_watchdog_end();
	printf("stress_churn: OK: %d rounds, %.1f s, seed %" PRIu64 "\n", rounds,
	       (double)(st_now_ns() - t0) / 1e9, args.seed);
	return 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * stress_fenced.c - the two races of a single producer's claim without a
 * locked instruction (docs/design.md §4, "the fenced claim"; spin model
 * docs/models/fenced.pml).  A `single_producer` stream claims with a plain
 * store when membarrier is available (release and ASan builds); TSan builds
 * run the CAS claim, and these checks hold for both.
 *
 * close part: one producer pushes single items and push_many batches (some
 *   crossing segments) as fast as it can until FO_ECLOSED, while a closer
 *   thread closes the stream after a random delay and 2 active cursors read
 *   from position 0.  Checks: every cursor reads exactly the accepted items,
 *   seq 0, 1, ... P-1, then FO_END (nothing lost before the end, nothing
 *   after it); every push after the first FO_ECLOSED fails too; after close
 *   returns fo_stream_is_closed() is true at once; stats count P pushed; every
 *   accepted item's destructor runs once (at the end), no rejected one runs.
 *
 * first-cursor part: the producer pushes N items into a stream with no
 * cursor (they are destroyed at once) while another thread repeatedly
 * creates the stream's first cursor (the 0 -> 1 transition), reads a few
 * items with fo_cursor_next and closes it (back to 0).  Checks: the
 * cursor's first item is alive (magic and checksum, never a destroyed one)
 * and is the item of a push that had not returned before the creation
 * began and had started by the time it returned (before <= seq <= started);
 * from there the cursor reads seq + 1, seq + 2, ... without a gap; every
 * destructor runs exactly once.
 *
 * Usage: stress_fenced [--seed N] [--items N] [--quick] [--only close|first]
 */
#include "../common/stress_common.h"

#define NREADERS   2
#define MAX_BATCH  300u /* more than a segment: batches cross */
#define MAX_CYCLES 64   /* first cursors per round */

static struct {
	uint64_t seed;
	int round;
	const char *part;
	_Atomic uint64_t started, done; /* the producer's pushes: begun, returned */
} g;

static void dump(void)
{
	fprintf(stderr, "  part %s round %d started=%" PRIu64 " done=%" PRIu64 "\n",
	        g.part ? g.part : "-", g.round, atomic_load(&g.started), atomic_load(&g.done));
}

static fo_stream *new_stream(st_freectx *fc, size_t capacity)
{
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.single_producer = true;
	o.capacity = capacity;
	o.item_free = st_item_free_cb;
	o.item_free_ctx = fc;
	fo_stream *s = NULL;
	int rc = fo_stream_create(&s, &o);
	if (rc != FO_OK)
		st_die("fo_stream_create: %s", fo_status_name(rc));
	return s;
}

/* ------------------------------------------------------------ close part */

struct close_round {
	fo_stream *s;
	uint64_t seed;
	uint64_t delay;    /* closer: spins before closing */
	uint64_t space;    /* seq space of the destructor bitmap */
	uint64_t accepted; /* producer: items accepted before FO_ECLOSED */
	uint64_t rejected; /* producer: items it got back */
	uint64_t got[NREADERS];
	fo_cursor *c[NREADERS];
	_Atomic bool go;
};

static void *close_producer(void *arg)
{
	struct close_round *r = arg;
	st_rng rng;
	st_rng_init(&rng, r->seed, 1);
	void *batch[MAX_BATCH];
	uint64_t seq = 0;
	while (!atomic_load_explicit(&r->go, memory_order_acquire))
		;
	for (;;) {
		if (seq + MAX_BATCH >= r->space) /* the closer is descheduled: wait for it */
			while (!fo_stream_is_closed(r->s))
				sched_yield();
		size_t n = st_below(&rng, 4) ? 1 : 1 + (size_t)st_below(&rng, MAX_BATCH);
		for (size_t i = 0; i < n; i++)
			batch[i] = st_item_new(0, seq + i, seq, (uint16_t)i, (uint16_t)n);
		bool was_closed = fo_stream_is_closed(r->s);
		int rc =
		    n == 1 ? fo_stream_push(r->s, batch[0]) : fo_stream_push_many(r->s, batch, n);
		st_tick();
		if (rc == FO_OK && was_closed) {
			st_fail("a push begun after fo_stream_is_closed() returned FO_OK");
			r->accepted = seq += n;
			return NULL;
		}
		if (rc == FO_OK) {
			seq += n;
			continue;
		}
		if (rc != FO_ECLOSED)
			st_fail("push: %s", fo_status_name(rc));
		for (size_t i = 0; i < n; i++)
			free(batch[i]); /* still ours: FO_ECLOSED takes nothing */
		r->rejected += n;
		break;
	}
	r->accepted = seq;
	st_expect_closed_push(r->s, 0, seq);
	return NULL;
}

static void *close_closer(void *arg)
{
	struct close_round *r = arg;
	st_close_after(r->s, &r->go, r->delay);
	return NULL;
}

struct reader_arg {
	struct close_round *r;
	int id;
};

static void *close_reader(void *arg)
{
	struct reader_arg *a = arg;
	struct close_round *r = a->r;
	fo_cursor *c = r->c[a->id];
	uint64_t want = 0;
	for (;;) {
		void *it;
		int rc = fo_cursor_next(c, &it);
		st_tick();
		if (rc == FO_END)
			break;
		if (rc != FO_OK) {
			st_fail("reader %d: next: %s", a->id, fo_status_name(rc));
			break;
		}
		if (!st_item_check(it, 1, "close reader"))
			break;
		const st_item *x = it;
		if (x->seq != want) {
			st_fail("reader %d: seq %" PRIu64 ", want %" PRIu64, a->id, x->seq, want);
			break;
		}
		want++;
	}
	r->got[a->id] = want;
	return NULL;
}

static void close_round(int round, uint64_t max_delay)
{
	st_freectx fc;
	/* the producer pushes at most ~30 M items/s: enough seq space for the delay */
	uint64_t space = 4 * max_delay + 4 * MAX_BATCH + 1024;
	st_freectx_init(&fc, 1, space);
	struct close_round r = {0};
	st_rng rng;
	st_rng_init(&rng, g.seed, 1000 + (uint64_t)round);
	r.seed = st_rand(&rng);
	r.space = space;
	r.delay = st_below(&rng, max_delay + 1);
	r.s = new_stream(&fc, round % 3 == 2 ? 4096 : 0);
	atomic_init(&r.go, false);
	g.round = round;
	for (int i = 0; i < NREADERS; i++) {
		int rc = fo_stream_cursor(r.s, &r.c[i], 0);
		if (rc != FO_OK)
			st_die("fo_stream_cursor: %s", fo_status_name(rc));
	}
	pthread_t tp, tc, tr[NREADERS];
	struct reader_arg ra[NREADERS];
	st_thread_start(&tp, close_producer, &r);
	st_thread_start(&tc, close_closer, &r);
	for (int i = 0; i < NREADERS; i++) {
		ra[i] = (struct reader_arg){&r, i};
		st_thread_start(&tr[i], close_reader, &ra[i]);
	}
	atomic_store_explicit(&r.go, true, memory_order_release);
	st_thread_join(tp);
	st_thread_join(tc);
	for (int i = 0; i < NREADERS; i++)
		st_thread_join(tr[i]);
	for (int i = 0; i < NREADERS; i++)
		if (r.got[i] != r.accepted)
			st_fail("close round %d: reader %d read %" PRIu64 " items, %" PRIu64
			        " were accepted",
			        round, i, r.got[i], r.accepted);
	fo_stream_stats st;
	if (fo_stream_get_stats(r.s, &st) != FO_OK || st.pushed != r.accepted)
		st_fail("close round %d: stats pushed %" PRIu64 ", accepted %" PRIu64, round,
		        st.pushed, r.accepted);
	for (int i = 0; i < NREADERS; i++)
		fo_cursor_close(r.c[i]);
	fo_stream_destroy(r.s);
	if (st_freed_total(&fc) != r.accepted)
		st_fail("close round %d: %" PRIu64 " destructors, %" PRIu64 " accepted", round,
		        st_freed_total(&fc), r.accepted);
	st_freectx_fini(&fc);
}

/* ----------------------------------------------------- first-cursor part */

struct first_round {
	fo_stream *s;
	uint64_t n, seed;
	int cycles;
	_Atomic bool go;
};

static void *first_producer(void *arg)
{
	struct first_round *r = arg;
	st_rng rng;
	st_rng_init(&rng, r->seed, 2);
	void *batch[MAX_BATCH];
	while (!atomic_load_explicit(&r->go, memory_order_acquire))
		;
	for (uint64_t seq = 0; seq < r->n;) {
		size_t n = st_below(&rng, 8) ? 1 : 1 + (size_t)st_below(&rng, MAX_BATCH);
		if (n > r->n - seq)
			n = (size_t)(r->n - seq);
		for (size_t i = 0; i < n; i++)
			batch[i] = st_item_new(0, seq + i, seq, (uint16_t)i, (uint16_t)n);
		/* seq_cst: stored before the claim; the creator reads it after
		 * its creation returned. */
		atomic_store_explicit(&g.started, seq + n, memory_order_seq_cst);
		int rc =
		    n == 1 ? fo_stream_push(r->s, batch[0]) : fo_stream_push_many(r->s, batch, n);
		if (rc != FO_OK)
			st_fail("first: push: %s", fo_status_name(rc));
		seq += n;
		/* seq_cst: read by the creator before its creation begins. */
		atomic_store_explicit(&g.done, seq, memory_order_seq_cst);
		st_tick();
	}
	fo_stream_close(r->s);
	return NULL;
}

static void *first_creator(void *arg)
{
	struct first_round *r = arg;
	st_rng rng;
	st_rng_init(&rng, r->seed, 3);
	while (!atomic_load_explicit(&r->go, memory_order_acquire))
		;
	for (int cyc = 0; cyc < r->cycles; cyc++) {
		for (volatile uint64_t i = st_below(&rng, 20000); i; i--)
			;
		uint64_t before = atomic_load_explicit(&g.done, memory_order_seq_cst);
		fo_cursor *c;
		int rc = fo_stream_cursor(r->s, &c, 0);
		if (rc != FO_OK)
			st_die("first: fo_stream_cursor: %s", fo_status_name(rc));
		uint64_t started = atomic_load_explicit(&g.started, memory_order_seq_cst);
		uint64_t m = 1 + st_below(&rng, 400), want = 0;
		for (uint64_t k = 0; k < m; k++) {
			void *it;
			rc = fo_cursor_next(c, &it);
			st_tick();
			if (rc == FO_END)
				break;
			if (rc != FO_OK) {
				st_fail("first: next: %s", fo_status_name(rc));
				break;
			}
			if (!st_item_check(it, 1, "first cursor")) /* a destroyed item */
				break;
			const st_item *x = it;
			if (k == 0) {
				if (x->seq < before || x->seq > started)
					st_fail("first cursor: first seq %" PRIu64
					        ", pushes returned before creation %" PRIu64
					        ", begun after it %" PRIu64,
					        x->seq, before, started);
			} else if (x->seq != want) {
				st_fail("first cursor: seq %" PRIu64 " after %" PRIu64, x->seq,
				        want - 1);
				break;
			}
			want = x->seq + 1;
		}
		fo_cursor_close(c);
		if (rc == FO_END)
			break;
	}
	return NULL;
}

static void first_round(int round, uint64_t n)
{
	st_freectx fc;
	st_freectx_init(&fc, 1, n);
	struct first_round r = {.n = n, .cycles = MAX_CYCLES};
	st_rng rng;
	st_rng_init(&rng, g.seed, 5000 + (uint64_t)round);
	r.seed = st_rand(&rng);
	r.s = new_stream(&fc, 0);
	atomic_init(&r.go, false);
	atomic_store(&g.started, 0);
	atomic_store(&g.done, 0);
	g.round = round;
	pthread_t tp, tc;
	st_thread_start(&tp, first_producer, &r);
	st_thread_start(&tc, first_creator, &r);
	atomic_store_explicit(&r.go, true, memory_order_release);
	st_thread_join(tp);
	st_thread_join(tc);
	fo_stream_destroy(r.s);
	if (st_freed_total(&fc) != n)
		st_fail("first round %d: %" PRIu64 " destructors for %" PRIu64 " items", round,
		        st_freed_total(&fc), n);
	st_freectx_fini(&fc);
}

int main(int argc, char **argv)
{
	st_args args;
	st_parse_args(argc, argv, &args, " [--only close|first]");
	int close_rounds = (int)st_scale(600, 60), first_rounds = (int)st_scale(120, 12);
	uint64_t max_delay = 200000, first_items = st_scale(60000, 6000);
	if (args.quick) {
		close_rounds = 30;
		first_rounds = 6;
		first_items = 5000;
	}
	if (args.have_items)
		first_items = args.items;
	bool do_close = !args.only || strcmp(args.only, "close") == 0;
	bool do_first = !args.only || strcmp(args.only, "first") == 0;
	if (!do_close && !do_first) {
		fprintf(stderr, "--only wants close or first\n");
		return 2;
	}
	g.seed = args.seed;
	printf("stress_fenced: seed=%" PRIu64 " build=%s (replay: --seed %" PRIu64 ")\n", args.seed,
	       st_build_name(st_build_kind()), args.seed);
	printf("close part: %d rounds, 1 producer, 2 readers, close after 0-%" PRIu64
	       " spins; first-cursor part: %d rounds x %" PRIu64 " items, up to %d first cursors\n",
	       do_close ? close_rounds : 0, max_delay, do_first ? first_rounds : 0, first_items,
	       MAX_CYCLES);
	fflush(stdout);
	st_watchdog_start(60 * ST_NS_PER_S * st_time_factor(), dump);
	int64_t t0 = st_now_ns();
	g.part = "close";
	for (int r = 0; do_close && r < close_rounds && !st_failure_count(); r++)
		close_round(r, max_delay);
	g.part = "first";
	for (int r = 0; do_first && r < first_rounds && !st_failure_count(); r++)
		first_round(r, first_items);
	st_watchdog_end();
	unsigned long f = st_failure_count();
	printf("stress_fenced: %s in %.1f s (%lu failures)\n", f ? "FAILED" : "passed",
	       (double)(st_now_ns() - t0) / 1e9, f);
	return f ? 1 : 0;
}

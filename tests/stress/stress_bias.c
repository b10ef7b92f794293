/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * stress_bias.c - the biased claim of a default-options stream
 * (docs/design.md §4, "the biased claim"; spin model docs/models/bias.pml).
 * With membarrier (release and ASan builds) a default stream claims with a
 * plain store for the first thread that pushes, until a second thread's
 * first push revokes the bias for good; TSan builds run the CAS claim from
 * the start, and these checks hold for both.
 *
 * Each round: a default-options stream (unbounded, or capacity 4096 or 64),
 * NREADERS active cursors from position 0.  The owner (producer 0) pushes
 * single items and push_many batches (some crossing segments) flat out;
 * after a random delay, NPROD - 1 more producers start pushing at once
 * (in some rounds all start together, so the first push itself races), each
 * a random number of items.  In some rounds a closer closes the stream after
 * a random delay, racing the revocation; producers stop at FO_ECLOSED.
 * Checks: every reader reads, per producer, seq 0, 1, ... accepted - 1 in
 * order (nothing lost, nothing twice, each producer's order kept, batches
 * contiguous), then FO_END; every item is intact when read (never a
 * destroyed one); a push after FO_ECLOSED fails too; stats count every
 * accepted item; every accepted item's destructor runs once, no rejected
 * one runs.
 *
 * Usage: stress_bias [--seed N] [--items N] [--quick]
 */
#include "../common/stress_common.h"

#define NREADERS  2
#define NPROD     4
#define MAX_BATCH 300u /* more than a segment: batches cross */

static struct {
	uint64_t seed;
	int round;
	_Atomic uint64_t pushed[NPROD];
} g;

static void dump(void)
{
	fprintf(stderr, "  round %d pushed", g.round);
	for (int p = 0; p < NPROD; p++)
		fprintf(stderr, " %" PRIu64, atomic_load(&g.pushed[p]));
	fprintf(stderr, "\n");
}

struct round {
	fo_stream *s;
	uint64_t seed;
	uint64_t late_delay;  /* spins before the late producers start */
	uint64_t close_delay; /* spins before closing; 0: the main thread closes at the end */
	size_t cap;           /* the stream's capacity (0: unbounded) */
	uint64_t n[NPROD];    /* items each producer tries to push */
	uint64_t accepted[NPROD];
	uint64_t got[NREADERS][NPROD];
	fo_cursor *c[NREADERS];
	_Atomic bool go, late_go;
};

struct parg {
	struct round *r;
	int id;
};

static void *producer(void *arg)
{
	struct parg *a = arg;
	struct round *r = a->r;
	uint32_t id = (uint32_t)a->id;
	st_rng rng;
	st_rng_init(&rng, r->seed, 10 + id);
	void *batch[MAX_BATCH];
	_Atomic bool *go = id == 0 ? &r->go : &r->late_go;
	while (!atomic_load_explicit(go, memory_order_acquire))
		;
	uint64_t seq = 0;
	size_t cap = r->cap && r->cap < MAX_BATCH ? r->cap : MAX_BATCH; /* push_many's limit */
	while (seq < r->n[id]) {
		size_t n = st_below(&rng, 4) ? 1 : 1 + (size_t)st_below(&rng, cap);
		if (n > r->n[id] - seq)
			n = (size_t)(r->n[id] - seq);
		for (size_t i = 0; i < n; i++)
			batch[i] = st_item_new(id, seq + i, seq, (uint16_t)i, (uint16_t)n);
		int rc =
		    n == 1 ? fo_stream_push(r->s, batch[0]) : fo_stream_push_many(r->s, batch, n);
		st_tick();
		if (rc == FO_OK) {
			seq += n;
			atomic_store_explicit(&g.pushed[id], seq, memory_order_relaxed);
			continue;
		}
		if (rc != FO_ECLOSED)
			st_fail("producer %u: push: %s", id, fo_status_name(rc));
		for (size_t i = 0; i < n; i++)
			free(batch[i]); /* still ours: a failed push takes nothing */
		st_item *late = st_item_new(id, seq, seq, 0, 1);
		if ((rc = fo_stream_push(r->s, late)) != FO_ECLOSED)
			st_fail("producer %u: push after FO_ECLOSED: %s", id, fo_status_name(rc));
		free(late);
		break;
	}
	r->accepted[id] = seq;
	return NULL;
}

static void *closer(void *arg)
{
	struct round *r = arg;
	while (!atomic_load_explicit(&r->go, memory_order_acquire))
		;
	for (volatile uint64_t i = 0; i < r->close_delay; i++)
		;
	int rc = fo_stream_close(r->s);
	if (rc != FO_OK)
		st_fail("close: %s", fo_status_name(rc));
	return NULL;
}

struct rarg {
	struct round *r;
	int id;
};

static void *reader(void *arg)
{
	struct rarg *a = arg;
	struct round *r = a->r;
	uint64_t *want = r->got[a->id];
	for (;;) {
		void *it;
		int rc = fo_cursor_next(r->c[a->id], &it);
		st_tick();
		if (rc == FO_END)
			break;
		if (rc != FO_OK) {
			st_fail("reader %d: next: %s", a->id, fo_status_name(rc));
			break;
		}
		if (!st_item_check(it, NPROD, "reader"))
			break;
		const st_item *x = it;
		if (x->seq != want[x->producer]) {
			st_fail("reader %d: producer %u seq %" PRIu64 ", want %" PRIu64, a->id,
			        x->producer, x->seq, want[x->producer]);
			break;
		}
		want[x->producer]++;
	}
	return NULL;
}

static void one_round(int round, uint64_t items)
{
	static const size_t caps[3] = {0, 4096, 64};
	st_rng rng;
	st_rng_init(&rng, g.seed, 1000 + (uint64_t)round);
	struct round r = {0};
	r.seed = st_rand(&rng);
	r.late_delay = st_below(&rng, 4) ? st_below(&rng, 200000) : 0;
	r.close_delay = round % 3 == 1 ? 1 + st_below(&rng, 400000) : 0;
	uint64_t space = 0;
	for (int p = 0; p < NPROD; p++) {
		r.n[p] = p == 0 ? items : 1 + st_below(&rng, items / 4 + 1);
		if (r.n[p] > space)
			space = r.n[p];
	}
	st_freectx fc;
	st_freectx_init(&fc, NPROD, space + MAX_BATCH);
	fo_stream_opts o;
	fo_stream_opts_init(&o); /* default options: several producers allowed */
	o.capacity = r.cap = caps[round % 3 == 1 ? 0 : (size_t)st_below(&rng, 3)];
	o.item_free = st_item_free_cb;
	o.item_free_ctx = &fc;
	int rc = fo_stream_create(&r.s, &o);
	if (rc != FO_OK)
		st_die("fo_stream_create: %s", fo_status_name(rc));
	for (int i = 0; i < NREADERS; i++)
		if ((rc = fo_stream_cursor(r.s, &r.c[i], 0)) != FO_OK)
			st_die("fo_stream_cursor: %s", fo_status_name(rc));
	atomic_init(&r.go, false);
	atomic_init(&r.late_go, false);
	for (int p = 0; p < NPROD; p++)
		atomic_store(&g.pushed[p], 0);
	g.round = round;
	st_set_context("round %d cap %zu late %" PRIu64 " close %" PRIu64, round, o.capacity,
	               r.late_delay, r.close_delay);
	pthread_t tp[NPROD], tr[NREADERS], tc;
	struct parg pa[NPROD];
	struct rarg ra[NREADERS];
	for (int p = 0; p < NPROD; p++) {
		pa[p] = (struct parg){&r, p};
		st_thread_start(&tp[p], producer, &pa[p]);
	}
	for (int i = 0; i < NREADERS; i++) {
		ra[i] = (struct rarg){&r, i};
		st_thread_start(&tr[i], reader, &ra[i]);
	}
	if (r.close_delay)
		st_thread_start(&tc, closer, &r);
	atomic_store_explicit(&r.go, true, memory_order_release);
	for (volatile uint64_t i = 0; i < r.late_delay; i++)
		;
	atomic_store_explicit(&r.late_go, true, memory_order_release);
	for (int p = 0; p < NPROD; p++)
		st_thread_join(tp[p]);
	if (r.close_delay)
		st_thread_join(tc);
	else if ((rc = fo_stream_close(r.s)) != FO_OK)
		st_fail("close: %s", fo_status_name(rc));
	for (int i = 0; i < NREADERS; i++)
		st_thread_join(tr[i]);
	uint64_t total = 0;
	for (int p = 0; p < NPROD; p++) {
		total += r.accepted[p];
		if (!r.close_delay && r.accepted[p] != r.n[p])
			st_fail("producer %d: %" PRIu64 " of %" PRIu64 " accepted without a close",
			        p, r.accepted[p], r.n[p]);
		for (int i = 0; i < NREADERS; i++)
			if (r.got[i][p] != r.accepted[p])
				st_fail("reader %d: read %" PRIu64 " items of producer %d, %" PRIu64
				        " accepted",
				        i, r.got[i][p], p, r.accepted[p]);
	}
	fo_stream_stats st;
	if (fo_stream_get_stats(r.s, &st) != FO_OK || st.pushed != total)
		st_fail("stats pushed %" PRIu64 ", accepted %" PRIu64, st.pushed, total);
	for (int i = 0; i < NREADERS; i++)
		fo_cursor_close(r.c[i]);
	fo_stream_destroy(r.s);
	if (st_freed_total(&fc) != total)
		st_fail("%" PRIu64 " destructors, %" PRIu64 " accepted", st_freed_total(&fc),
		        total);
	st_freectx_fini(&fc);
}

int main(int argc, char **argv)
{
	st_args args;
	st_parse_args(argc, argv, &args, "");
	int rounds = (int)st_scale(300, 30);
	uint64_t items = st_scale(40000, 4000);
	if (args.quick) {
		rounds = 24;
		items = 4000;
	}
	if (args.have_items)
		items = args.items;
	g.seed = args.seed;
	printf("stress_bias: seed=%" PRIu64 " build=%s (replay: --seed %" PRIu64 ")\n", args.seed,
	       st_build_name(st_build_kind()), args.seed);
	printf("%d rounds: 1 owner pushing %" PRIu64 " items, %d late producers, %d readers, "
	       "a racing close every third round\n",
	       rounds, items, NPROD - 1, NREADERS);
	fflush(stdout);
	st_watchdog_start(60 * ST_NS_PER_S * st_time_factor(), dump);
	int64_t t0 = st_now_ns();
	for (int r = 0; r < rounds && !st_failure_count(); r++)
		one_round(r, items);
	st_watchdog_end();
	unsigned long f = st_failure_count();
	printf("stress_bias: %s in %.1f s (%lu failures)\n", f ? "FAILED" : "passed",
	       (double)(st_now_ns() - t0) / 1e9, f);
	return f ? 1 : 0;
}

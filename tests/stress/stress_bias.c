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
 * one runs.  Then, with the same checks: rounds where the owner exits
 * (joined) and a new thread, most often on its thread descriptor and so
 * with its identity, pushes as the owner while two more revoke; and rounds
 * of NSTREAMS streams at once (each its owner, revokers, readers, every
 * third a close; half with capacity 64), many more threads than cores;
 * and rounds where the readers open their cursors (the first one pays the
 * membarrier) while the owner pushes and the others revoke.
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
	uint64_t start_delay[NPROD];     /* spins after its start signal, per producer */
	uintptr_t self[NPROD];           /* pthread_self() of each producer (identity reuse) */
	uint64_t cursor_delay[NREADERS]; /* late cursors: spins after late_go */
	bool late_cursors;               /* the readers open their cursors after late_go */
	bool seen[NREADERS][NPROD];      /* late cursors: read an item of the producer */
	_Atomic int cursors_open;
	st_freectx fc;
	pthread_t tp[NPROD], tr[NREADERS], tc;
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
	r->self[id] = (uintptr_t)pthread_self();
	for (volatile uint64_t i = 0; i < r->start_delay[id]; i++)
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
		st_expect_closed_push(r->s, id, seq);
		break;
	}
	r->accepted[id] = seq;
	return NULL;
}

static void *closer(void *arg)
{
	struct round *r = arg;
	st_close_after(r->s, &r->go, r->close_delay);
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
	if (r->late_cursors) {
		/* The first cursor's creation races the owner's claims and the
		 * revocation: it sees, per producer, a suffix of its items. */
		while (!atomic_load_explicit(&r->late_go, memory_order_acquire))
			;
		for (volatile uint64_t i = 0; i < r->cursor_delay[a->id]; i++)
			;
		int rc = fo_stream_cursor(r->s, &r->c[a->id], FO_ACTIVE);
		if (rc != FO_OK)
			st_die("fo_stream_cursor: %s", fo_status_name(rc));
		atomic_fetch_add_explicit(&r->cursors_open, 1, memory_order_release);
	}
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
		if (r->late_cursors && !r->seen[a->id][x->producer]) {
			r->seen[a->id][x->producer] = true;
			want[x->producer] = x->seq;
		}
		if (x->seq != want[x->producer]) {
			st_fail("reader %d: producer %u seq %" PRIu64 ", want %" PRIu64, a->id,
			        x->producer, x->seq, want[x->producer]);
			break;
		}
		want[x->producer]++;
	}
	return NULL;
}

/* Create round @round's stream (capacity @cap, or drawn if SIZE_MAX) and
 * its cursors; draw its delays and item counts. */
static void round_setup(struct round *r, int round, uint64_t items, size_t cap, bool cursors)
{
	static const size_t caps[3] = {0, 4096, 64};
	st_rng rng;
	st_rng_init(&rng, g.seed, 1000 + (uint64_t)round);
	*r = (struct round){0};
	r->seed = st_rand(&rng);
	r->late_delay = st_below(&rng, 4) ? st_below(&rng, 200000) : 0;
	r->close_delay = round % 3 == 1 ? 1 + st_below(&rng, 400000) : 0;
	uint64_t space = 0;
	for (int p = 0; p < NPROD; p++) {
		r->n[p] = p == 0 ? items : 1 + st_below(&rng, items / 4 + 1);
		if (r->n[p] > space)
			space = r->n[p];
	}
	st_freectx_init(&r->fc, NPROD, space + MAX_BATCH);
	fo_stream_opts o;
	fo_stream_opts_init(&o); /* default options: several producers allowed */
	o.capacity = r->cap =
	    cap != SIZE_MAX ? cap : caps[round % 3 == 1 ? 0 : (size_t)st_below(&rng, 3)];
	o.item_free = st_item_free_cb;
	o.item_free_ctx = &r->fc;
	int rc = fo_stream_create(&r->s, &o);
	if (rc != FO_OK)
		st_die("fo_stream_create: %s", fo_status_name(rc));
	r->late_cursors = !cursors;
	for (int i = 0; i < NREADERS && cursors; i++)
		if ((rc = fo_stream_cursor(r->s, &r->c[i], 0)) != FO_OK)
			st_die("fo_stream_cursor: %s", fo_status_name(rc));
	atomic_init(&r->go, false);
	atomic_init(&r->late_go, false);
}

static void start_producer(struct round *r, struct parg *pa, int p)
{
	pa[p] = (struct parg){r, p};
	st_thread_start(&r->tp[p], producer, &pa[p]);
}

/* Start the readers and the closer (if the round has one). */
static void start_readers(struct round *r, struct rarg *ra)
{
	for (int i = 0; i < NREADERS; i++) {
		ra[i] = (struct rarg){r, i};
		st_thread_start(&r->tr[i], reader, &ra[i]);
	}
	if (r->close_delay)
		st_thread_start(&r->tc, closer, r);
}

/* Join the round's producers @from.. and the rest, close, check, free. */
static void round_finish(struct round *r, int from)
{
	int rc;
	for (int p = from; p < NPROD; p++)
		st_thread_join(r->tp[p]);
	while (atomic_load_explicit(&r->cursors_open, memory_order_acquire) <
	       (r->late_cursors ? NREADERS : 0))
		st_sleep_ns(1000000);
	if (r->close_delay)
		st_thread_join(r->tc);
	else if ((rc = fo_stream_close(r->s)) != FO_OK)
		st_fail("close: %s", fo_status_name(rc));
	for (int i = 0; i < NREADERS; i++)
		st_thread_join(r->tr[i]);
	uint64_t total = 0;
	for (int p = 0; p < NPROD; p++) {
		total += r->accepted[p];
		if (!r->close_delay && r->accepted[p] != r->n[p])
			st_fail("producer %d: %" PRIu64 " of %" PRIu64 " accepted without a close",
			        p, r->accepted[p], r->n[p]);
		for (int i = 0; i < NREADERS; i++)
			if (r->got[i][p] != r->accepted[p] && !(r->late_cursors && !r->seen[i][p]))
				st_fail("reader %d: read %" PRIu64 " items of producer %d, %" PRIu64
				        " accepted",
				        i, r->got[i][p], p, r->accepted[p]);
	}
	fo_stream_stats st;
	if (fo_stream_get_stats(r->s, &st) != FO_OK || st.pushed != total)
		st_fail("stats pushed %" PRIu64 ", accepted %" PRIu64, st.pushed, total);
	for (int i = 0; i < NREADERS; i++)
		fo_cursor_close(r->c[i]);
	fo_stream_destroy(r->s);
	if (st_freed_total(&r->fc) != total)
		st_fail("%" PRIu64 " destructors, %" PRIu64 " accepted", st_freed_total(&r->fc),
		        total);
	st_freectx_fini(&r->fc);
}

static void reset_pushed(int round)
{
	for (int p = 0; p < NPROD; p++)
		atomic_store(&g.pushed[p], 0);
	g.round = round;
}

/* Start everything, the owner first, the late producers after the delay;
 * then round_finish(). */
static void run_round(struct round *r)
{
	struct parg pa[NPROD];
	struct rarg ra[NREADERS];
	for (int p = 0; p < NPROD; p++)
		start_producer(r, pa, p);
	start_readers(r, ra);
	atomic_store_explicit(&r->go, true, memory_order_release);
	for (volatile uint64_t i = 0; i < r->late_delay; i++)
		;
	atomic_store_explicit(&r->late_go, true, memory_order_release);
	round_finish(r, 0);
}

static void one_round(int round, uint64_t items)
{
	struct round r;
	round_setup(&r, round, items, SIZE_MAX, true);
	reset_pushed(round);
	st_set_context("round %d cap %zu late %" PRIu64 " close %" PRIu64, round, r.cap,
	               r.late_delay, r.close_delay);
	run_round(&r);
}

/*
 * The owner's identity passed on: the owner (producer 0) pushes its items
 * and exits, joined; then producer 1 starts (most often on the exited
 * owner's thread descriptor, so with the owner's identity: it pushes by the
 * plain-store claim), producers 2 and 3 start with it or a little later and
 * revoke.  Returns 1 if producer 1 had the owner's pthread_self().
 */
static int reuse_round(int round, uint64_t items)
{
	struct round r;
	round_setup(&r, round, items, SIZE_MAX, true);
	reset_pushed(round);
	r.n[1] = items; /* the heir pushes as much as the owner */
	r.start_delay[2] = r.late_delay;
	r.start_delay[3] = r.late_delay / 2;
	st_set_context("reuse round %d cap %zu late %" PRIu64 " close %" PRIu64, round, r.cap,
	               r.late_delay, r.close_delay);
	struct parg pa[NPROD];
	struct rarg ra[NREADERS];
	start_readers(&r, ra);
	start_producer(&r, pa, 0);
	atomic_store_explicit(&r.go, true, memory_order_release);
	st_thread_join(r.tp[0]);
	for (int p = 1; p < NPROD; p++)
		start_producer(&r, pa, p);
	atomic_store_explicit(&r.late_go, true, memory_order_release);
	round_finish(&r, 1);
	return r.self[1] == r.self[0];
}

/*
 * The first cursor opened while the owner pushes and the late producers
 * revoke (its creation pays the membarrier against plain-store claims
 * while the bias lasts): each reader reads, per producer, an unbroken run
 * up to its last accepted item; items pushed before any cursor are
 * destroyed once.
 */
static void late_cursor_round(int round, uint64_t items)
{
	struct round r;
	round_setup(&r, round, items, SIZE_MAX, false);
	reset_pushed(round);
	r.close_delay = 0;
	st_rng rng;
	st_rng_init(&rng, r.seed, 99);
	for (int i = 0; i < NREADERS; i++)
		r.cursor_delay[i] = st_below(&rng, 4) ? st_below(&rng, 100000) : 0;
	st_set_context("late-cursor round %d cap %zu late %" PRIu64, round, r.cap, r.late_delay);
	run_round(&r);
}

/*
 * NSTREAMS streams at once, each with its owner, its late producers (the
 * revokers), its readers and (every third) its racing close: many more
 * threads than cores, so owners are descheduled inside their claims while
 * revokers wait for them.  Capacity 64 or 4096 (batches wait for room when
 * the revocation comes) or unbounded.
 */
#define NSTREAMS 6
static void many_round(int round, uint64_t items)
{
	static struct round r[NSTREAMS];
	struct parg pa[NSTREAMS][NPROD];
	struct rarg ra[NSTREAMS][NREADERS];
	reset_pushed(round);
	st_set_context("many-streams round %d", round);
	for (int k = 0; k < NSTREAMS; k++) {
		round_setup(&r[k], round * NSTREAMS + k, items, k % 2 ? 64 : SIZE_MAX, true);
		for (int p = 0; p < NPROD; p++)
			start_producer(&r[k], pa[k], p);
		start_readers(&r[k], ra[k]);
	}
	for (int k = 0; k < NSTREAMS; k++)
		atomic_store_explicit(&r[k].go, true, memory_order_release);
	for (int k = 0; k < NSTREAMS; k++) {
		for (volatile uint64_t i = 0; i < r[k].late_delay / NSTREAMS; i++)
			;
		atomic_store_explicit(&r[k].late_go, true, memory_order_release);
	}
	for (int k = 0; k < NSTREAMS; k++)
		round_finish(&r[k], 0);
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
	int64_t t1 = st_now_ns();
	int reused = 0, reuse_rounds = rounds / 3, many_rounds = rounds / 20 + 1;
	int late_rounds = rounds / 6 + 1;
	for (int r = 0; r < reuse_rounds && !st_failure_count(); r++)
		reused += reuse_round(rounds + r, items / 4);
	for (int r = 0; r < many_rounds && !st_failure_count(); r++)
		many_round(2 * rounds + r, items / 8);
	for (int r = 0; r < late_rounds && !st_failure_count(); r++)
		late_cursor_round(3 * rounds + r, items / 4);
	printf("%.1f s, then %d identity-reuse rounds (%d on the owner's own thread descriptor) "
	       "and %d rounds of %d streams at once, %d rounds with late cursors: %.1f s\n",
	       (double)(t1 - t0) / 1e9, reuse_rounds, reused, many_rounds, NSTREAMS, late_rounds,
	       (double)(st_now_ns() - t1) / 1e9);
	st_watchdog_end();
	unsigned long f = st_failure_count();
	printf("stress_bias: %s in %.1f s (%lu failures)\n", f ? "FAILED" : "passed",
	       (double)(st_now_ns() - t0) / 1e9, f);
	return f ? 1 : 0;
}

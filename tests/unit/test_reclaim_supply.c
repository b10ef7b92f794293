/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_reclaim_supply.c - segment supply of streams whose segments come back through RCU
 * grace periods (docs/design.md §6, "Supply through a grace period"): several producers,
 * default options.
 *
 *   steady   two producers push rounds into one bounded stream, the main thread reads every
 *            item; after a few rounds no push allocates a segment (fo_set_allocator counts)
 *            and the total stays below two rounds' worth plus the pool's old cap,
 *            although each round spans twice the pool's old cap (32 segments: POOL_MAX, above
 *            capacity / 256 + 2 = 18).
 *   switch   fo_set_allocator() right after destroying such a stream, its segments still
 *            waiting for a grace period: it waits for them, so every block the counting hooks
 *            handed out came back to them before they are replaced; also when they wait on a
 *            call_rcu worker other than the calling thread's (several workers).
 *   burst    a cursor 5 000 segments behind closes while no producer waits for segments:
 *            the burst is freed beyond the pool's old cap (the pool keeps only what producers
 *            lacked during waits), so closing a slow cursor gives its memory back.
 *   decay    600 segments pass while a thread holds an RCU read section (every one is
 *            allocated: nstarved grows by as many and the pool keeps them); then batches that
 *            return before the next one: the pool gives the burst's supply back (by halves,
 *            every 16 waits that end) without a single allocation.
 *
 * The grace-period return is asynchronous: each round ends with the library's own
 * fo__rcu_barrier() (src/rcu.c: liburcu's rcu_barrier(), or under TSan, which cannot see that
 * one's hand-offs, a count of the deferred calls still to run), so the counts are exact and
 * nothing waits on a clock.
 */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <urcu-bp.h> /* an extra call_rcu worker (the library uses the default one) */
#include <urcu/call-rcu.h>

#include "../../src/internal.h" /* fo__rcu_barrier() */
#include "fo_test.h"

#define SEG         256u  /* items per segment (stream_impl.h SEG_SLOTS) */
#define POOL_GP_MAX 4096u /* src/segment.c: the pool's hard cap */
#define RETIRE_MAX  15u   /* retired segments that never filled a batch */

static atomic_long seg_allocs;
static atomic_long live_blocks; /* every block fanout allocated and has not freed */

static void *count_alloc(size_t size, void *ctx)
{
	void *p = NULL;
	(void)ctx;
	if (size > SEG * sizeof(void *)) /* a segment (cursors and streams are smaller) */
		atomic_fetch_add(&seg_allocs, 1);
	if (posix_memalign(&p, 64, size ? size : 1))
		return NULL;
	atomic_fetch_add(&live_blocks, 1);
	return p;
}

static void count_free(void *p, void *ctx)
{
	(void)ctx;
	atomic_fetch_sub(&live_blocks, 1);
	free(p);
}

struct producer {
	fo_stream *s;
	size_t id, first, n; /* pushes items first .. first + n - 1 */
	int rc;              /* first failure, read by the main thread after the join */
};

/* Producer @id's items: id in the top bits, its sequence below. */
#define ID_SHIFT 40

static void *produce(void *arg)
{
	struct producer *p = arg;
	for (size_t i = 0; i < p->n && p->rc == FO_OK; i++)
		p->rc = fo_stream_push(p->s, ft_tok((p->id << ID_SHIFT) | (p->first + i)));
	return NULL;
}

/* A default-options stream whose bias a second pushing thread revoked (so every pass retires
 * through a grace period), @behind at its start and items 0 .. @n - 1 pushed. */
static fo_stream *revoked_stream(const fo_stream_opts *o, fo_cursor **behind, size_t n)
{
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, behind, FO_ACTIVE), FO_OK);
	struct producer p = {.s = s, .id = 1, .n = 1, .rc = FO_OK};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, produce, &p), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(p.rc, FO_OK);
	for (size_t i = 1; i < n; i++)
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
	return s;
}

static void test_two_producers_steady_state_allocates_nothing(void **state)
{
	(void)state;
	/* Each round: 2 x 32 segments through a stream of 16, i.e. 64 segments against the old
	 * cap of 32.  How many rounds warm the pool depends on how many segments each round
	 * finds in flight at once (grace periods that end during a round return some early), so
	 * the test runs until QUIET rounds in a row allocate nothing, at most MAX_ROUNDS (the code
	 * before allocated ~32 segments in every round), and bounds the total: once every
	 * segment the rounds need exists, nothing more is allocated. */
	enum { CAP = 16 * SEG, PER = 32 * SEG, QUIET = 8, MAX_ROUNDS = 64 };
	const long max_total = 2 * (2 * PER / SEG) + 32; /* twice a round, plus POOL_MAX */
	fo_allocator a = {count_alloc, count_free, NULL};
	fo_set_allocator(&a);
	fo_stream_opts o;
	fo_stream_opts_init(&o); /* default options: several producers may push */
	o.capacity = CAP;
	fo_stream *s = NULL;
	fo_cursor *c = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	size_t next[2] = {0, 0};
	long max_cached = 0, last = 0;
	int r, quiet = 0, warm = 0;
	for (r = 0; r < MAX_ROUNDS && quiet < QUIET; r++) {
		struct producer p[2];
		pthread_t th[2];
		for (size_t k = 0; k < 2; k++) {
			p[k] =
			    (struct producer){.s = s, .id = k, .first = (size_t)r * PER, .n = PER};
			assert_int_equal(pthread_create(&th[k], NULL, produce, &p[k]), 0);
		}
		for (size_t j = 0; j < 2 * PER; j++) {
			void *it;
			assert_int_equal(fo_cursor_next(c, &it), FO_OK);
			size_t seq = ft_seq(it), id = seq >> ID_SHIFT;
			assert_true(id < 2);
			assert_int_equal(seq & (((size_t)1 << ID_SHIFT) - 1), next[id]++);
		}
		for (size_t k = 0; k < 2; k++) {
			assert_int_equal(pthread_join(th[k], NULL), 0);
			assert_int_equal(p[k].rc, FO_OK);
		}
		fo__rcu_barrier();
		long now = atomic_load(&seg_allocs);
		if (now == last) {
			quiet++;
		} else {
			quiet = 0;
			warm = r + 1;
		}
		last = now;
		/* Nothing in flight now: the pool (at most 4096) and a partial batch ... */
		fo_stream_stats st = ft_stats(s);
		if ((long)st.cached_segments > max_cached)
			max_cached = (long)st.cached_segments;
		assert_true(st.cached_segments <= POOL_GP_MAX + RETIRE_MAX);
		/* ... never more than every segment ever allocated. */
		assert_true(st.cached_segments + st.live_segments <= (size_t)now);
	}
	fo_cursor_close(c);
	fo_stream_destroy(s);
	fo__rcu_barrier(); /* the last batch's callback drops the stream's memory */
	fo_set_allocator(NULL);
	print_message("%d rounds of %u segments: %ld segment allocations, none after round %d; "
	              "at most %ld cached between rounds\n",
	              r, 2 * PER / SEG, last, warm, max_cached);
	assert_int_equal(quiet, QUIET);
	assert_true(last <= max_total);
}

static void test_closing_far_behind_keeps_no_burst(void **state)
{
	(void)state;
	enum { FAR = 5000 * SEG };
	fo_allocator a = {count_alloc, count_free, NULL};
	fo_set_allocator(&a);
	fo_cursor *behind = NULL, *c = NULL;
	void *it;
	fo_stream *s = revoked_stream(NULL, &behind, FAR); /* unbounded, default options */
	/* A reader that keeps the stream alive at its tail, then the far one closes: its pass
	 * unlinks ~5000 segments and hands them to call_rcu. */
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_cursor_close(behind);
	assert_int_equal(fo_stream_push(s, ft_tok(FAR)), FO_OK);
	assert_int_equal(fo_cursor_next(c, &it), FO_OK);
	fo__rcu_barrier();
	fo_stream_stats st = ft_stats(s);
	print_message("after closing %u segments behind: %zu cached, %zu live\n", FAR / SEG,
	              st.cached_segments, st.live_segments);
	/* POOL_MAX (an unbounded stream), a partial batch, and what producers lacked while
	 * segments waited: at most the one segment the last push may have wanted. */
	assert_true(st.cached_segments <= 32 + RETIRE_MAX + 1);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	fo__rcu_barrier();
	fo_set_allocator(NULL);
}

/* Holds an RCU read section from `in` to `out`: no grace period ends meanwhile, so every
 * retired segment stays in flight and the producer that wants one allocates. */
struct rcu_holder {
	pthread_t th;
	sem_t in, out;
};

static void *hold_rcu(void *arg)
{
	struct rcu_holder *h = arg;
	fo__rcu_lock();
	sem_post(&h->in);
	while (sem_wait(&h->out) != 0)
		;
	fo__rcu_unlock();
	return NULL;
}

/* Push @n items from *@next on, then read them back in order from @c. */
static void push_read(fo_stream *s, fo_cursor *c, size_t *next, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(fo_stream_push(s, ft_tok(*next + i)), FO_OK);
	for (size_t i = 0; i < n; i++) {
		void *it;
		assert_int_equal(fo_cursor_next(c, &it), FO_OK);
		assert_int_equal(ft_seq(it), *next + i);
	}
	*next += n;
}

static void test_burst_supply_decays_when_waits_end(void **state)
{
	(void)state;
	/* BURST segments pass while a read section holds every grace period: the producer
	 * allocates them all, so the pool's keep grows by as many (nstarved).  Then QUIET
	 * batches, each returned before the next (no wait starves): the supply must decay back
	 * towards POOL_MAX without a single allocation. */
	enum { BURST = 600, QUIET = 128, AGAIN = 32 };
	fo_allocator a = {count_alloc, count_free, NULL};
	fo__rcu_barrier();
	fo_set_allocator(&a);
	atomic_store(&seg_allocs, 0);
	fo_cursor *c = NULL;
	fo_stream *s = revoked_stream(NULL, &c, 1); /* unbounded: POOL_MAX = 32 */
	void *it;
	assert_int_equal(fo_cursor_next(c, &it), FO_OK); /* the revoking thread's item */
	size_t next = 1;
	struct rcu_holder h;
	assert_int_equal(sem_init(&h.in, 0, 0), 0);
	assert_int_equal(sem_init(&h.out, 0, 0), 0);
	assert_int_equal(pthread_create(&h.th, NULL, hold_rcu, &h), 0);
	while (sem_wait(&h.in) != 0)
		;
	for (int i = 0; i < BURST; i++)
		push_read(s, c, &next, SEG);
	sem_post(&h.out);
	assert_int_equal(pthread_join(h.th, NULL), 0);
	fo__rcu_barrier();
	long burst_allocs = atomic_load(&seg_allocs);
	size_t kept = ft_stats(s).cached_segments;
	for (int i = 0; i < QUIET; i++) {
		push_read(s, c, &next, (RETIRE_MAX + 1) * SEG); /* one batch's worth */
		fo__rcu_barrier();
	}
	/* The quiet phase again, now that the supply has decayed: still no allocation. */
	for (int i = 0; i < AGAIN; i++) {
		push_read(s, c, &next, (RETIRE_MAX + 1) * SEG);
		fo__rcu_barrier();
	}
	long quiet_allocs = atomic_load(&seg_allocs) - burst_allocs;
	size_t left = ft_stats(s).cached_segments;
	print_message("burst of %d segments: %ld allocated, %zu cached after it; after %d + %d "
	              "quiet batches: %zu cached, %ld allocated\n",
	              BURST, burst_allocs, kept, QUIET, AGAIN, left, quiet_allocs);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	fo__rcu_barrier();
	fo_set_allocator(NULL);
	sem_destroy(&h.in);
	sem_destroy(&h.out);
	assert_true(burst_allocs >= BURST);
	assert_true(kept >= BURST / 2); /* the burst's supply was kept ... */
	/* ... and given back: POOL_MAX, the decay's margin and what a quiet batch takes, plus
	 * a partial batch. */
	assert_true(left <= 32 + 2 * (RETIRE_MAX + 1) + RETIRE_MAX);
	assert_int_equal(quiet_allocs, 0);
}

/* Destroy a stream whose ~600 segments still wait for a grace period, then fo_set_allocator():
 * every block the counting hooks handed out must be back.  @own_worker: the segments are queued
 * on a call_rcu worker of their own (as an application's per-thread or per-CPU workers would
 * do), not on the default one that fo_set_allocator()'s thread uses. */
static void set_allocator_waits(bool own_worker)
{
	enum { FAR = 600 * SEG };
	fo_allocator a = {count_alloc, count_free, NULL};
	fo__rcu_barrier(); /* nothing of an earlier test still pending */
	fo_set_allocator(&a);
	atomic_store(&live_blocks, 0);
	if (own_worker) {
		struct call_rcu_data *own = create_call_rcu_data(0, -1);
		assert_non_null(own);
		set_thread_call_rcu_data(own);
	}
	fo_cursor *c = NULL;
	fo_stream *s = revoked_stream(NULL, &c, FAR);
	fo_cursor_close(c); /* retires ~600 segments at once: call_rcu's */
	fo_stream_destroy(s);
	if (own_worker)
		set_thread_call_rcu_data(NULL); /* this thread's calls go to the default worker */
	fo_set_allocator(NULL);                 /* waits for them */
	long live = atomic_load(&live_blocks);
	print_message("blocks still out after fo_set_allocator(NULL)%s: %ld\n",
	              own_worker ? " (another call_rcu worker)" : "", live);
	/* The worker stays to the end of the process, as liburcu's default one does:
	 * call_rcu_data_free() stops its thread without joining it (a thread leak to TSan). */
	assert_int_equal(live, 0);
}

static void test_set_allocator_waits_for_deferred_frees(void **state)
{
	(void)state;
	set_allocator_waits(false);
}

static void test_set_allocator_waits_for_every_call_rcu_worker(void **state)
{
	(void)state;
	set_allocator_waits(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_producers_steady_state_allocates_nothing),
	    cmocka_unit_test(test_closing_far_behind_keeps_no_burst),
	    cmocka_unit_test(test_burst_supply_decays_when_waits_end),
	    cmocka_unit_test(test_set_allocator_waits_for_deferred_frees),
	    cmocka_unit_test(test_set_allocator_waits_for_every_call_rcu_worker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

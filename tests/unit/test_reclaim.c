/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_reclaim.c - memory bounds of the stream core (docs/design.md §6), one regression test
 * per bug of issue 12 that concerned reclamation:
 *
 *   bug 1  push_many with no active reader (taps only, share group only, no cursor): live
 *          segments grew without bound (the producer-side trigger looked only at the segment
 *          the hint moved to; share-group reads never reclaimed).
 *   bug 5  one producer stalled between its claim and its store kept every later segment.
 *   bug 6  a share-group-only stream kept its segments after the producer stopped.
 *   bug 7  a cursor created on a failed stream reads FO_FAILED (the header said FO_END).
 *   miss   a reclamation pass reset the producers' miss count after reading its frontier
 *          (erasing misses whose claims lay above it) or at its start (while it still had
 *          their segments to destroy): bug 1's bound failed intermittently under load;
 *          both forced here with the library's reclamation hooks.
 *
 * Memory is measured with fo_stream_get_stats() (live segments).  Worker threads record the
 * maximum they saw; the main thread asserts.
 */
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

#define SEG            256u  /* items per segment (stream_impl.h SEG_SLOTS) */
#define MAX_BATCH      1024u /* push_many sizes 1..MAX_BATCH */
#define WINDOW         4096u /* the taps' passive window */
#define CAPACITY       4096u /* group mode: the group is lossless, so bound its backlog */
#define NTAPS          2
#define NMEMBERS       2
#define BATCH_SEGS     (MAX_BATCH / SEG + 1) /* segments one batch can touch */
#define RECLAIM_GAP    4u                    /* producers reclaim every 4 segments */
#define RECLAIM_MISSES 8u          /* deferred requests before a producer waits (src/segment.c) */
#define SINGLE_ITEMS   (96u * SEG) /* per producer, single pushes */

enum mode { M_NONE, M_TAPS, M_GROUP };
static const char *const mode_name[] = {"no cursor", "taps only", "share group only"};

/*
 * The documented bound (design.md §6, "Memory bound") in segments: what the readers may keep
 * (the window rounded up, the segment of slack of the strict comparison and the taps' pins;
 * the group's backlog up to the capacity and the members' pins), plus the reclamation gap, the
 * hint segment and a batch in flight; with producer threads, what they push while a reclaimer
 * holding the registry lock is descheduled or slow (RECLAIM_MISSES deferred requests not yet
 * covered by a finished pass, then each producer's next request waits: one more gap and batch
 * each; design.md §6 counts (9 + 2n) x 4 segments, within this).
 */
static size_t seg_bound(enum mode m, unsigned nprod)
{
	size_t b = RECLAIM_GAP + 1 + BATCH_SEGS;
	if (nprod) /* a reclaimer descheduled while others push (design.md §6) */
		b += RECLAIM_MISSES * RECLAIM_GAP + nprod * (BATCH_SEGS + RECLAIM_GAP);
	if (m == M_TAPS)
		b += WINDOW / SEG + 1 + NTAPS;
	if (m == M_GROUP)
		b += CAPACITY / SEG + NMEMBERS;
	return b;
}

/* Producer threads per configuration: 0 (the test thread pushes) to 3.  (Before bug 5's fix,
 * a producer preempted between claim and store stopped reclamation: thousands of segments
 * with 2-3 producers and no consumer.) */
static unsigned max_producers(enum mode m)
{
	(void)m;
	return 3;
}

static size_t live_segments(fo_stream *s)
{
	return ft_stats(s).live_segments;
}

/* Batches of @size pushed per size: enough to cross 24 segments, at least 8. */
static size_t batches_for(size_t size)
{
	size_t b = 24 * SEG / size;
	return b < 8 ? 8 : b;
}

/* Sizes stride: every size in a normal build, a sample under sanitizers (plus the sizes that
 * step whole segments, which the old trigger missed most often). */
static bool size_wanted(size_t size)
{
	return !ft_sanitized() || size % 13 == 1 || size % SEG == 0 || size == 2 * SEG - 1;
}

typedef struct producer {
	pthread_t th;
	fo_stream *s;
	unsigned id, nprod;
	bool single; /* fo_stream_push instead of push_many */
	size_t pushed;
	size_t max_live;
	int err; /* first push error */
} producer;

/* The batch every push_many pushes: filled by main() before any test runs, read-only after. */
static void *token_items[MAX_BATCH];

static void *tokens(void)
{
	return token_items;
}

/* Push this producer's share; sample live segments after each batch. */
static void produce(producer *p)
{
	void *const *items = tokens();
	if (p->single) {
		for (size_t i = 0; i < SINGLE_ITEMS; i++) {
			int rc = fo_stream_push(p->s, ft_tok(i));
			if (rc != FO_OK && !p->err)
				p->err = rc;
			p->pushed += rc == FO_OK;
			if (i % 64 == 0) {
				size_t l = live_segments(p->s);
				if (l > p->max_live)
					p->max_live = l;
			}
		}
		return;
	}
	unsigned stride = p->nprod ? p->nprod : 1;
	for (size_t size = 1 + p->id; size <= MAX_BATCH; size += stride) {
		if (!size_wanted(size))
			continue;
		for (size_t b = batches_for(size); b; b--) {
			int rc = fo_stream_push_many(p->s, items, size);
			if (rc != FO_OK && !p->err)
				p->err = rc;
			p->pushed += rc == FO_OK ? size : 0;
			size_t l = live_segments(p->s);
			if (l > p->max_live)
				p->max_live = l;
		}
	}
}

static atomic_uint producers_done;

static void *producer_main(void *arg)
{
	produce(arg);
	atomic_fetch_add(&producers_done, 1);
	return NULL;
}

/* Take everything ready through the members, alternating; returns items taken. */
static size_t drain_group(fo_cursor **m)
{
	void *buf[64];
	size_t total = 0, n;
	for (unsigned i = 0;; i++) {
		int rc = fo_cursor_next_many(m[i % NMEMBERS], buf, 64, &n);
		if (rc != FO_OK)
			return total;
		total += n;
	}
}

/*
 * One configuration: a stream with the readers of @m, @nprod producer threads (0: the test
 * thread pushes, and drains the group between batches), single pushes or push_many of every
 * size.  Asserts the live-segment bound throughout, that the group drained everything, and
 * that every destructor ran once.
 */
static void run_bounded(enum mode m, unsigned nprod, bool single)
{
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream_opts o = ft_opts(&cnt);
	o.passive_window = WINDOW;
	if (m == M_GROUP && nprod)
		o.capacity = CAPACITY;
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	fo_cursor *r[NMEMBERS + NTAPS] = {0};
	if (m == M_TAPS)
		for (int i = 0; i < NTAPS; i++)
			assert_int_equal(fo_stream_cursor(s, &r[i], FO_PASSIVE), FO_OK);
	if (m == M_GROUP) {
		assert_int_equal(fo_stream_cursor(s, &r[0], FO_SHARED), FO_OK);
		for (int i = 1; i < NMEMBERS; i++)
			assert_int_equal(fo_cursor_fork(r[0], &r[i], FO_SHARED), FO_OK);
	}

	producer p[3] = {0};
	atomic_store(&producers_done, 0);
	size_t pushed = 0, taken = 0, max_live = 0, bound = seg_bound(m, nprod);
	if (nprod == 0) {
		/* The test thread: push one size's batches, drain the group between them. */
		void *const *items = tokens();
		for (size_t size = 1; size <= MAX_BATCH; size++) {
			if (single && size > 1)
				break;
			if (!single && !size_wanted(size))
				continue;
			size_t nb = single ? SINGLE_ITEMS : batches_for(size);
			for (size_t b = 0; b < nb; b++) {
				if (single)
					assert_int_equal(fo_stream_push(s, ft_tok(b)), FO_OK);
				else
					assert_int_equal(fo_stream_push_many(s, items, size),
					                 FO_OK);
				pushed += single ? 1 : size;
				if (m == M_GROUP)
					taken += drain_group(r);
				size_t l = live_segments(s);
				if (l > max_live)
					max_live = l;
				if (l > bound)
					print_message(
					    "%s, size %zu: %zu live segments (bound %zu)\n",
					    mode_name[m], single ? 1 : size, l, bound);
				assert_true(l <= bound);
			}
		}
	} else {
		for (unsigned i = 0; i < nprod; i++) {
			p[i] = (producer){.s = s, .id = i, .nprod = nprod, .single = single};
			assert_int_equal(pthread_create(&p[i].th, NULL, producer_main, &p[i]), 0);
		}
		if (m == M_GROUP) {
			/* The work queue's consumer: drain until every producer is done. */
			for (;;) {
				bool finished = atomic_load(&producers_done) == nprod;
				taken += drain_group(r);
				size_t l = live_segments(s);
				if (l > max_live)
					max_live = l;
				if (finished)
					break;
				void *it;
				taken += fo_cursor_timed_next(r[0], &it, FT_MS(1)) == FO_OK;
			}
		}
		for (unsigned i = 0; i < nprod; i++) {
			assert_int_equal(pthread_join(p[i].th, NULL), 0);
			assert_int_equal(p[i].err, FO_OK);
			pushed += p[i].pushed;
			if (p[i].max_live > max_live)
				max_live = p[i].max_live;
		}
		if (m == M_GROUP)
			taken += drain_group(r);
		if (max_live > bound)
			print_message("%s, %u producers, %s: %zu live segments (bound %zu)\n",
			              mode_name[m], nprod, single ? "push" : "push_many", max_live,
			              bound);
		assert_true(max_live <= bound);
	}
	print_message("%-16s %u producers %-9s: %zu items, max %zu live segments (bound %zu)\n",
	              mode_name[m], nprod, single ? "push" : "push_many", pushed, max_live, bound);
	if (m == M_GROUP) {
		assert_int_equal(taken, pushed);
		/* Bug 6: the readers reclaim by themselves once everything is read. */
		assert_true(live_segments(s) <= 3);
	}
	for (int i = 0; i < NMEMBERS + NTAPS; i++)
		fo_cursor_close(r[i]);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), pushed);
	ft_counter_fini(&cnt);
}

/* ======================================================================================== */
/* Bug 1: push_many with no active reader                                                    */
/* ======================================================================================== */

static void test_bug1_push_many_no_cursor_bounded(void **state)
{
	(void)state;
	for (unsigned k = 0; k <= max_producers(M_NONE); k++)
		run_bounded(M_NONE, k, false);
}

static void test_bug1_push_many_taps_bounded(void **state)
{
	(void)state;
	for (unsigned k = 0; k <= max_producers(M_TAPS); k++)
		run_bounded(M_TAPS, k, false);
}

static void test_bug1_push_many_share_group_bounded(void **state)
{
	(void)state;
	for (unsigned k = 0; k <= max_producers(M_GROUP); k++)
		run_bounded(M_GROUP, k, false);
}

static void test_bug1_single_pushes_bounded(void **state)
{
	(void)state;
	for (enum mode m = M_NONE; m <= M_GROUP; m++)
		for (unsigned k = 0; k <= max_producers(m); k++)
			run_bounded(m, k, true);
}

/* ======================================================================================== */
/* Bug 6: share-group-only streams reclaim on reads                                          */
/* ======================================================================================== */

static void test_bug6_share_group_reads_reclaim_after_producer_stops(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream_opts o = ft_opts(&cnt);
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	fo_cursor *m[NMEMBERS];
	assert_int_equal(fo_stream_cursor(s, &m[0], FO_SHARED), FO_OK);
	assert_int_equal(fo_cursor_fork(m[0], &m[1], FO_SHARED), FO_OK);
	const size_t n = 70 * SEG;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
	assert_true(live_segments(s) >= 70); /* the group holds them all: lossless */
	/* The producer has stopped: the members' reads alone must give the memory back. */
	assert_int_equal(drain_group(m), n);
	size_t live = live_segments(s);
	print_message("after draining %zu items: %zu live segments\n", n, live);
	assert_true(live <= 3);
	assert_true(ft_stats(s).retained_items <= live * SEG);
	fo_cursor_close(m[0]);
	fo_cursor_close(m[1]);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), n);
	ft_counter_fini(&cnt);
}

/* ======================================================================================== */
/* Bug 5: a stalled push                                                                     */
/* ======================================================================================== */

/* The library's test hook (src/stream_impl.h): called between a general push's claim and its
 * stores.  Only the library built with FO_TEST_HOOKS has it: the build links this test to that
 * one because of the #ifndef below (tests/CMakeLists.txt). */
#ifndef FO_TEST_HOOKS
#error "test_reclaim.c needs the library's test hooks (fanout_add_test TEST_HOOKS)"
#endif
extern void (*fo__claim_hook)(fo_stream *s, uint64_t first, size_t n);

/* sem_wait() until it succeeds (EINTR). */
static void sem_take(sem_t *sem)
{
	while (sem_wait(sem) != 0)
		;
}

/* A stream of token items destroyed by @item_free (which counts them in @cnt, initialised here)
 * with the taps' window. */
static fo_stream *window_stream(ft_counter *cnt, void (*item_free)(void *, void *))
{
	ft_counter_init(cnt, 0);
	fo_stream_opts o = ft_opts(cnt);
	o.item_free = item_free;
	o.passive_window = WINDOW;
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	return s;
}

static _Thread_local bool stall_here; /* set on the thread to stall */
static sem_t stalled, resume;
static atomic_uint_least64_t stalled_at;

static void stall_hook(fo_stream *s, uint64_t first, size_t n)
{
	(void)s;
	(void)n;
	if (!stall_here)
		return;
	stall_here = false;
	atomic_store(&stalled_at, first);
	sem_post(&stalled);
	sem_take(&resume);
}

typedef struct staller {
	pthread_t th;
	fo_stream *s;
	void *items[3];
	int rc;
} staller;

static void *staller_main(void *arg)
{
	staller *st = arg;
	stall_here = true;
	st->rc = fo_stream_push_many(st->s, st->items, 3);
	return NULL;
}

enum stall_reader { SR_NONE, SR_TAPS, SR_ACTIVE_AFTER, SR_ACTIVE_BEFORE };
static const char *const sr_name[] = {"no cursor", "taps only", "active cursor after the stall",
                                      "active cursor before the stall"};

/* Read the heap items of @c until @want arrived; check they come in @seq order from @from. */
static size_t read_seq(fo_cursor *c, uint64_t from, size_t want)
{
	size_t got = 0;
	void *it;
	while (got < want) {
		int rc = fo_cursor_timed_next(c, &it, FT_MS(2000));
		if (rc != FO_OK)
			break;
		assert_true(ft_item_ok(it));
		assert_int_equal(((ft_item *)it)->seq, from + got);
		got++;
	}
	return got;
}

/*
 * One producer claims 3 slots (position 10 on) and stops before storing them; meanwhile the
 * test thread pushes @segs segments.  Live segments must stay within the bound plus the one
 * segment the stalled claim lies in.  Then the producer stores; every item is destroyed once
 * (heap items: ASan sees a double free or a leak), and an active cursor from before the stall
 * reads the stalled items in their place.
 */
static void run_stalled(enum stall_reader r)
{
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream_opts o = ft_heap_opts(&cnt);
	o.passive_window = WINDOW;
	fo_stream *s = NULL;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	fo_cursor *c[NTAPS] = {0};
	if (r == SR_TAPS)
		for (int i = 0; i < NTAPS; i++)
			assert_int_equal(fo_stream_cursor(s, &c[i], FO_PASSIVE), FO_OK);
	if (r == SR_ACTIVE_BEFORE)
		assert_int_equal(fo_stream_cursor(s, &c[0], FO_ACTIVE), FO_OK);
	uint64_t seq = 0;
	for (; seq < 10; seq++)
		assert_int_equal(fo_stream_push(s, ft_item_new(seq)), FO_OK);

	assert_int_equal(sem_init(&stalled, 0, 0), 0);
	assert_int_equal(sem_init(&resume, 0, 0), 0);
	fo__claim_hook = stall_hook;
	staller st = {.s = s};
	for (int i = 0; i < 3; i++)
		st.items[i] = ft_item_new(seq + i);
	assert_int_equal(pthread_create(&st.th, NULL, staller_main, &st), 0);
	sem_take(&stalled);
	assert_int_equal(atomic_load(&stalled_at), seq);
	seq += 3;
	if (r == SR_ACTIVE_AFTER)
		assert_int_equal(fo_stream_cursor(s, &c[0], FO_ACTIVE), FO_OK);

	/* An active cursor from before the stall keeps everything after it (by contract): push
	 * a little.  Otherwise push 400 segments and watch the bound. */
	const size_t segs = r == SR_ACTIVE_BEFORE ? 8 : 400;
	const size_t bound = seg_bound(r == SR_TAPS ? M_TAPS : M_NONE, 1) + 1;
	size_t max_live = 0;
	void *batch[SEG];
	for (size_t k = 0; k < segs; k++) {
		for (size_t i = 0; i < SEG; i++)
			batch[i] = ft_item_new(seq + i);
		assert_int_equal(fo_stream_push_many(s, batch, SEG), FO_OK);
		if (r == SR_ACTIVE_AFTER)
			assert_int_equal(read_seq(c[0], seq, SEG), SEG);
		seq += SEG;
		size_t l = live_segments(s);
		if (l > max_live)
			max_live = l;
		if (r != SR_ACTIVE_BEFORE && l > bound) {
			print_message("%s: %zu live segments after %zu (bound %zu)\n", sr_name[r],
			              l, k + 1, bound);
			assert_true(l <= bound);
		}
	}
	fo_stream_stats during = ft_stats(s);
	void *it;
	if (r == SR_TAPS) /* the taps stood in the unlinked segment: lapped */
		for (int i = 0; i < NTAPS; i++) {
			assert_int_equal(fo_cursor_try_next(c[i], &it), FO_LAGGED);
			assert_true(fo_cursor_lagged(c[i]) > 0);
		}
	if (r == SR_ACTIVE_BEFORE) { /* it waits at the stalled slot, loses nothing */
		assert_int_equal(read_seq(c[0], 0, 10), 10);
		assert_int_equal(fo_cursor_try_next(c[0], &it), FO_EMPTY);
	}

	/* The producer stores; its segment goes at the next reclamation. */
	assert_int_equal(sem_post(&resume), 0);
	assert_int_equal(pthread_join(st.th, NULL), 0);
	fo__claim_hook = NULL;
	assert_int_equal(st.rc, FO_OK);
	if (r == SR_ACTIVE_BEFORE)
		assert_int_equal(read_seq(c[0], 10, seq - 10), seq - 10);
	for (size_t k = 0; k < 8; k++) {
		for (size_t i = 0; i < SEG; i++)
			batch[i] = ft_item_new(seq + i);
		assert_int_equal(fo_stream_push_many(s, batch, SEG), FO_OK);
		if (r == SR_ACTIVE_AFTER || r == SR_ACTIVE_BEFORE)
			assert_int_equal(read_seq(c[0], seq, SEG), SEG);
		seq += SEG;
	}
	size_t after = live_segments(s);
	print_message("%-31s: max %zu live segments while stalled (bound %zu; cached %zu), %zu "
	              "after\n",
	              sr_name[r], max_live, bound, during.cached_segments, after);
	assert_true(after <= seg_bound(r == SR_TAPS ? M_TAPS : M_NONE, 1));
	for (int i = 0; i < NTAPS; i++)
		fo_cursor_close(c[i]);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), seq);
	sem_destroy(&stalled);
	sem_destroy(&resume);
	ft_counter_fini(&cnt);
}

static void test_bug5_stalled_producer_no_cursor_bounded(void **state)
{
	(void)state;
	run_stalled(SR_NONE);
}

static void test_bug5_stalled_producer_taps_bounded(void **state)
{
	(void)state;
	run_stalled(SR_TAPS);
}

static void test_bug5_stalled_producer_active_after_bounded(void **state)
{
	(void)state;
	run_stalled(SR_ACTIVE_AFTER);
}

static void test_bug5_stalled_producer_loses_nothing_for_active_before(void **state)
{
	(void)state;
	run_stalled(SR_ACTIVE_BEFORE);
}

/* The reproduction: a destructor that blocks inside a push on a cursor-less stream
 * (it used to run between the claim and the store), a tap created meanwhile, 10 M pushes. */
static atomic_int block_next_free;
static sem_t in_free, free_go;
static ft_counter blocking_cnt;

static void blocking_free(void *item, void *ctx)
{
	int one = 1;
	if (atomic_compare_exchange_strong(&block_next_free, &one, 0)) {
		sem_post(&in_free);
		sem_take(&free_go);
	}
	ft_count_free(item, ctx);
}

static void *blocked_pusher(void *arg)
{
	fo_stream *s = arg;
	return (void *)(intptr_t)fo_stream_push(s, ft_tok(0));
}

static void test_bug5_blocking_destructor_in_push_holds_no_memory(void **state)
{
	(void)state;
	fo_stream *s = window_stream(&blocking_cnt, blocking_free);
	assert_int_equal(sem_init(&in_free, 0, 0), 0);
	assert_int_equal(sem_init(&free_go, 0, 0), 0);
	atomic_store(&block_next_free, 1);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, blocked_pusher, s), 0);
	sem_take(&in_free);
	fo_cursor *tap;
	assert_int_equal(fo_stream_cursor(s, &tap, FO_PASSIVE), FO_OK);
	const size_t n = ft_scale(10000000) / SEG * SEG, bound = seg_bound(M_TAPS, 1);
	void *const *items = tokens();
	size_t max_live = 0, max_cached = 0;
	for (size_t done = 0; done < n; done += SEG) {
		assert_int_equal(fo_stream_push_many(s, items, SEG), FO_OK);
		fo_stream_stats st = ft_stats(s);
		if (st.live_segments > max_live)
			max_live = st.live_segments;
		if (st.cached_segments > max_cached)
			max_cached = st.cached_segments;
		if (st.live_segments > bound)
			print_message("%zu live segments after %zu items (bound %zu)\n",
			              st.live_segments, done + SEG, bound);
		assert_true(st.live_segments <= bound);
	}
	print_message("blocked destructor: %zu items, max %zu live segments (bound %zu), max %zu "
	              "cached\n",
	              n, max_live, bound, max_cached);
	assert_int_equal(sem_post(&free_go), 0);
	void *rc;
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((int)(intptr_t)rc, FO_OK);
	fo_cursor_close(tap);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&blocking_cnt), n + 1);
	sem_destroy(&in_free);
	sem_destroy(&free_go);
	ft_counter_fini(&blocking_cnt);
}

/* ======================================================================================== */
/* The reclaim miss: a pass forgot misses counted after it read its frontier                */
/* ======================================================================================== */

/* The library's reclamation hooks (src/stream_impl.h, FO_TEST_HOOKS as above). */
extern void (*fo__frontier_hook)(fo_stream *s);
extern void (*fo__reclaim_wait_hook)(fo_stream *s);

static unsigned free_stop_pass; /* the reclaimer's pass that stops at its first destructor */
static _Thread_local bool hook_passes, park_free; /* set on the reclaimer thread */
static _Thread_local unsigned pass_no;            /* its passes so far */
static _Thread_local bool watch_wait;             /* set on the producing (test) thread */
static sem_t at_frontier, frontier_go, at_free, free_resume;
static ft_counter miss_cnt;
static size_t phase_b_groups; /* groups the test thread pushed in phase B so far */
static size_t groups_at_wait; /* phase_b_groups when its request was about to wait */
static size_t live_at_wait;   /* live segments then */
static bool waited;           /* the wait hook ran (on the test thread) */
static bool in_phase_a;       /* the pass is stopped at its frontier */

/* The reclaimer's first pass stops past its frontier (where the first broken version reset the
 * count); pass free_stop_pass will stop again at its first destructor. */
static void frontier_park(fo_stream *s)
{
	(void)s;
	if (!hook_passes)
		return;
	if (++pass_no == free_stop_pass) {
		park_free = true;
		hook_passes = false;
	}
	if (pass_no == 1) {
		sem_post(&at_frontier);
		sem_take(&frontier_go);
	}
}

static void free_park(void *item, void *ctx)
{
	if (park_free) {
		park_free = false;
		sem_post(&at_free);
		sem_take(&free_resume);
	}
	ft_count_free(item, ctx);
}

/* The test thread's request is about to wait for the lock the stopped pass holds: note how far
 * it got, then let the pass finish (else this thread would wait for it forever). */
static void wait_seen(fo_stream *s)
{
	if (!watch_wait)
		return;
	watch_wait = false;
	groups_at_wait = phase_b_groups;
	live_at_wait = live_segments(s);
	waited = true;
	if (in_phase_a) /* too early (a failure): past both stops */
		sem_post(&frontier_go);
	sem_post(&free_resume);
}

static void *miss_reclaimer(void *arg)
{
	fo_stream *s = arg;
	pass_no = 0;
	hook_passes = true;
	/* One segment from a group start: its request runs the pass the hook stops (and, once it
	 * unlocks, another one: the test thread's misses asked for it). */
	return (void *)(intptr_t)fo_stream_push_many(s, tokens(), SEG);
}

/* Push @groups reclamation groups (RECLAIM_GAP segments from a group start, so one request
 * each), counting them in *@done as they complete. */
static void push_groups(fo_stream *s, size_t groups, size_t *done)
{
	for (size_t g = 0; g < groups && !waited; g++) {
		for (unsigned k = 0; k < RECLAIM_GAP; k++)
			assert_int_equal(fo_stream_push_many(s, tokens(), SEG), FO_OK);
		if (done)
			++*done;
	}
}

/*
 * The interleavings behind the intermittent bug-1 failures (fixed in src/segment.c: a pass
 * takes off only the misses it read before its frontier, at its end; design.md §6), forced:
 *
 *   1. a reclaimer's pass reads its frontier and stops (fo__frontier_hook), holding the lock;
 *   2. phase A: the test thread pushes RECLAIM_MISSES groups; each request finds the lock
 *      taken: RECLAIM_MISSES misses, whose claims lie above the stopped pass's frontier;
 *   3. the reclaimer goes on and stops at the first destructor of pass @free_pass: 1, the
 *      same pass (past where the first broken version reset the count to 0); 2, the pass it
 *      runs next for those misses, which covers them but has not destroyed them yet (the
 *      second broken version reset the count at a pass's start);
 *   4. phase B: the test thread pushes on.  Its next request must wait for the lock: no
 *      finished pass covers the misses of phase A.  Either broken version had erased them,
 *      so RECLAIM_MISSES more groups went by before a request waited: 2 x RECLAIM_MISSES
 *      groups not destroyed while a pass still ran (e.g. 90 live segments, bound 70).
 *
 * fo__reclaim_wait_hook tells the test where the request waited and lets the pass finish.
 */
static void run_miss(unsigned free_pass)
{
	phase_b_groups = groups_at_wait = live_at_wait = 0;
	waited = false;
	free_stop_pass = free_pass;
	fo_stream *s = window_stream(&miss_cnt, free_park);
	fo_cursor *tap; /* items live (destroyed by passes) and the window's frontier moves */
	assert_int_equal(fo_stream_cursor(s, &tap, FO_PASSIVE), FO_OK);
	/* Past the window plus two groups, ending on a group start: the reclaimer's pass has
	 * segments to destroy. */
	push_groups(s, WINDOW / SEG / RECLAIM_GAP + 2, NULL);
	size_t pushed = (WINDOW / SEG + 2 * RECLAIM_GAP) * SEG;

	assert_int_equal(sem_init(&at_frontier, 0, 0), 0);
	assert_int_equal(sem_init(&frontier_go, 0, 0), 0);
	assert_int_equal(sem_init(&at_free, 0, 0), 0);
	assert_int_equal(sem_init(&free_resume, 0, 0), 0);
	fo__frontier_hook = frontier_park;
	fo__reclaim_wait_hook = wait_seen;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, miss_reclaimer, s), 0);
	sem_take(&at_frontier);
	pushed += SEG;

	watch_wait = true;
	in_phase_a = true;
	push_groups(s, RECLAIM_MISSES, NULL); /* phase A: misses, none waits */
	in_phase_a = false;
	pushed += RECLAIM_MISSES * RECLAIM_GAP * SEG;
	const bool waited_in_a = waited;
	if (!waited_in_a)
		sem_post(&frontier_go);
	sem_take(&at_free);

	/* Phase B: a request waits at the latest after RECLAIM_MISSES more (the old code). */
	push_groups(s, RECLAIM_MISSES + 1, &phase_b_groups);
	pushed += phase_b_groups * RECLAIM_GAP * SEG;
	if (!waited) /* no request waited: the pass is still stopped */
		sem_post(&free_resume);
	void *rc;
	assert_int_equal(pthread_join(th, &rc), 0);
	fo__frontier_hook = NULL;
	fo__reclaim_wait_hook = NULL;
	watch_wait = false;
	assert_int_equal((int)(intptr_t)rc, FO_OK);

	const size_t bound = seg_bound(M_TAPS, 1);
	print_message("reclaim miss, stop in pass %u: phase B pushed %zu groups before a request "
	              "waited (0 expected), %zu live segments then (bound %zu)\n",
	              free_pass, groups_at_wait, live_at_wait, bound);
	assert_false(waited_in_a);
	assert_true(waited);
	assert_int_equal(groups_at_wait, 0);
	assert_true(live_at_wait <= bound);

	fo_cursor_close(tap);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&miss_cnt), pushed);
	sem_destroy(&at_frontier);
	sem_destroy(&frontier_go);
	sem_destroy(&at_free);
	sem_destroy(&free_resume);
	ft_counter_fini(&miss_cnt);
}

static void test_miss_after_frontier_holds_until_pass_ends(void **state)
{
	(void)state;
	run_miss(1);
}

static void test_misses_a_pass_covers_hold_until_it_ends(void **state)
{
	(void)state;
	run_miss(2);
}

/* Closing a cursor far behind destroys everything below the next consumer before
 * fo_cursor_close returns (B6b's path: one reclamation pass over thousands of segments,
 * retired to call_rcu once at its end), each item exactly once; with @keep, a second cursor
 * at the tail stays open, so the pass (not the last-cursor sweep) does the work. */
static void close_far_behind(bool keep)
{
	enum { N = 64 * SEG + 17 };
	ft_counter cnt;
	ft_counter_init(&cnt, N);
	fo_stream_opts o = ft_heap_opts(&cnt);
	o.single_producer = true;
	fo_stream *s = NULL;
	fo_cursor *slow = NULL, *fast = NULL;
	void *it;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &slow, FO_ACTIVE), FO_OK);
	if (keep)
		assert_int_equal(fo_stream_cursor(s, &fast, FO_ACTIVE), FO_OK);
	for (uint64_t i = 0; i < N; i++) {
		assert_int_equal(fo_stream_push(s, ft_item_new(i)), FO_OK);
		if (keep) {
			assert_int_equal(fo_cursor_try_next(fast, &it), FO_OK);
			assert_true(ft_item_ok(it) && ((ft_item *)it)->seq == i);
		}
	}
	fo_stream_stats st;
	fo_stream_get_stats(s, &st);
	assert_int_equal(st.retained_items, N);
	fo_cursor_close(slow);
	fo_stream_get_stats(s, &st);
	/* keep: the tail segment (the fast cursor's hold) and, by the frontier's strict
	 * comparison, the one before it stay (design.md §6). */
	size_t left = keep ? SEG + N % SEG : 0;
	assert_int_equal(st.retained_items, left);
	assert_int_equal(ft_freed(&cnt), N - left);
	assert_true(st.live_segments <= 3);
	for (size_t i = 0; i < N - left; i++)
		assert_int_equal(ft_mark(&cnt, i), 1);
	fo_cursor_close(fast);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), N);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(ft_mark(&cnt, i), 1);
	assert_int_equal(atomic_load(&cnt.out_of_range), 0);
	ft_counter_fini(&cnt);
}

static void test_close_far_behind_last_cursor_frees_all(void **state)
{
	(void)state;
	close_far_behind(false);
}

static void test_close_far_behind_frees_below_the_next(void **state)
{
	(void)state;
	close_far_behind(true);
}

/* A passive cursor that read one batch and then stands still while the producer laps it many
 * times: its segment's other items are destroyed when the segment is unlinked (it pins the
 * segment's memory and its last batch only), the batch stays valid until its next read, which
 * returns FO_LAGGED with the exact count skipped, then it reads on in order (design.md §6, "A
 * stalled passive cursor"; @active: with an active cursor reading along, else taps only). */
static void stalled_passive(bool active)
{
	enum { B = 5, START = 3, N = 80 * SEG };
	ft_counter cnt;
	ft_counter_init(&cnt, N);
	fo_stream_opts o = ft_heap_opts(&cnt);
	o.single_producer = true;
	o.passive_window = WINDOW;
	fo_stream *s = NULL;
	fo_cursor *tap = NULL, *act = NULL;
	void *batch[B], *it;
	size_t k = 0;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &tap, FO_PASSIVE), FO_OK);
	if (active)
		assert_int_equal(fo_stream_cursor(s, &act, FO_ACTIVE), FO_OK);
	uint64_t i = 0;
	for (; i < SEG; i++)
		assert_int_equal(fo_stream_push(s, ft_item_new(i)), FO_OK);
	for (unsigned j = 0; j < START; j++) /* the tap stands inside its segment */
		assert_int_equal(fo_cursor_next_many(tap, batch, 1, &k), FO_OK);
	assert_int_equal(fo_cursor_next_many(tap, batch, B, &k), FO_OK);
	assert_int_equal(k, B);
	size_t max_retained = 0;
	for (; i < N; i++) {
		assert_int_equal(fo_stream_push(s, ft_item_new(i)), FO_OK);
		if (active) {
			assert_int_equal(fo_cursor_try_next(act, &it), FO_OK);
			assert_int_equal(((ft_item *)it)->seq, i - SEG);
		}
		if (i % SEG == 0) {
			fo_stream_stats st;
			fo_stream_get_stats(s, &st);
			if (st.retained_items > max_retained)
				max_retained = st.retained_items;
		}
	}
	/* The window (rounded to segments, + 1 of slack), the producers' reclamation gap, the
	 * active cursor's backlog of one segment, and the tap's batch: not its segment. */
	assert_true(max_retained <= WINDOW + (2 + RECLAIM_GAP + 1) * SEG + B);
	for (unsigned j = 0; j < SEG; j++) {
		if (j >= START && j < START + B) { /* the batch: still ours */
			assert_int_equal(ft_mark(&cnt, j), 0);
			assert_true(ft_item_ok(batch[j - START]));
			assert_int_equal(((ft_item *)batch[j - START])->seq, j);
		} else { /* the rest of the tap's segment: destroyed once, while it stood */
			assert_int_equal(ft_mark(&cnt, j), 1);
		}
	}
	/* Its next read reports the lap: it skipped from its position to the oldest item. */
	size_t lagged_before = fo_cursor_lagged(tap);
	assert_int_equal(fo_cursor_next_many(tap, batch, B, &k), FO_LAGGED);
	uint64_t skipped = fo_cursor_lagged(tap) - lagged_before;
	assert_true(skipped >= N - WINDOW - (2 + RECLAIM_GAP + 1) * SEG - (START + B));
	for (unsigned j = START; j < START + B; j++) /* the batch went with the lap */
		assert_int_equal(ft_mark(&cnt, j), 1);
	/* It resumes, in order, at the first position it had not skipped. */
	uint64_t next = START + B + skipped;
	assert_int_equal(fo_cursor_next_many(tap, batch, B, &k), FO_OK);
	assert_true(k >= 1);
	for (size_t j = 0; j < k; j++)
		assert_int_equal(((ft_item *)batch[j])->seq, next + j);
	fo_cursor_close(tap);
	fo_cursor_close(act);
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), N);
	for (size_t j = 0; j < N; j++)
		assert_int_equal(ft_mark(&cnt, j), 1);
	ft_counter_fini(&cnt);
}

static void test_stalled_passive_keeps_only_its_batch(void **state)
{
	(void)state;
	stalled_passive(false);
}

static void test_stalled_passive_keeps_only_its_batch_with_active(void **state)
{
	(void)state;
	stalled_passive(true);
}

/* Steady state allocates nothing (design.md §6, "Reusing a segment without a grace period"):
 * a single-producer stream recycles each segment its reclamation passes release straight into
 * its pool when no passive is walking (here: none, or one that stands still, or one that reads
 * along; single-threaded, so never during a pass), so after the first fill no push allocates,
 * whether the reader follows item by item or drains a full stream at once (the pool keeps the
 * capacity's worth of segments).  So does a default-options stream while it is biased to its
 * one pushing thread (design.md §6, "A default stream still biased to its first producer"),
 * except where the library never biases (ft_bias_on(): TSan builds, kernels without
 * membarrier), so that every default stream there claims by CAS and retires through a grace
 * period.  Allocations are counted through fo_set_allocator(),
 * forwarding to what the library uses by default. */
static atomic_long seg_allocs;

static void *count_alloc(size_t size, void *ctx)
{
	void *p = NULL;
	(void)ctx;
	atomic_fetch_add(&seg_allocs, 1);
	return posix_memalign(&p, 64, size ? size : 1) ? NULL : p;
}

static void count_free(void *p, void *ctx)
{
	(void)ctx;
	free(p);
}

enum tap { TAP_NONE, TAP_STALLED, TAP_READING };

static long steady_allocs(size_t burst, enum tap tap, bool single)
{
	enum { CAP = 16 * SEG, ROUNDS = 400 * SEG };
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.single_producer = single; /* else default options: biased to this thread */
	o.capacity = CAP;
	fo_stream *s = NULL;
	o.passive_window = CAP;
	fo_cursor *c = NULL, *p = NULL;
	void *it, *b[64];
	size_t k;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	if (tap != TAP_NONE)
		assert_int_equal(fo_stream_cursor(s, &p, FO_PASSIVE), FO_OK);
	uint64_t in = 0, out = 0;
	long warm = 0;
	while (in < ROUNDS) {
		if (in == 4 * CAP) /* warmed up: the stream was full several times */
			warm = atomic_load(&seg_allocs);
		for (size_t j = 0; j < burst; j++)
			assert_int_equal(fo_stream_push(s, ft_tok(in++)), FO_OK);
		for (size_t j = 0; j < burst; j++) {
			assert_int_equal(fo_cursor_try_next(c, &it), FO_OK);
			assert_int_equal(ft_seq(it), out++);
		}
		while (tap == TAP_READING && fo_cursor_available(p) &&
		       fo_cursor_next_many(p, b, 64, &k) != FO_EMPTY)
			;
	}
	long n = atomic_load(&seg_allocs) - warm;
	fo_cursor_close(p);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	return n;
}

static void test_steady_state_allocates_nothing(void **state)
{
	(void)state;
	fo_allocator a = {count_alloc, count_free, NULL};
	fo_set_allocator(&a);
	long n[2][3][2];
	for (int d = 0; d < 2; d++) {
		for (int t = TAP_NONE; t <= TAP_READING; t++) {
			n[d][t][0] = steady_allocs(1, (enum tap)t, d == 0);
			n[d][t][1] = steady_allocs(16 * SEG, (enum tap)t, d == 0);
		}
	}
	fo_set_allocator(NULL);
	for (int d = 0; d < 2; d++) {
		for (int t = TAP_NONE; t <= TAP_READING; t++) {
			print_message("%s, tap %d: %ld allocations following, %ld draining\n",
			              d ? "default (biased)" : "single producer", t, n[d][t][0],
			              n[d][t][1]);
			if (d == 1 && !ft_bias_on())
				continue; /* CAS claims and grace periods (above) */
			assert_int_equal(n[d][t][0], 0);
			assert_int_equal(n[d][t][1], 0);
		}
	}
}

int main(void)
{
	for (size_t i = 0; i < MAX_BATCH; i++)
		token_items[i] = ft_tok(i);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_steady_state_allocates_nothing),
	    cmocka_unit_test(test_bug1_push_many_no_cursor_bounded),
	    cmocka_unit_test(test_bug1_push_many_taps_bounded),
	    cmocka_unit_test(test_bug1_push_many_share_group_bounded),
	    cmocka_unit_test(test_bug1_single_pushes_bounded),
	    cmocka_unit_test(test_bug5_stalled_producer_no_cursor_bounded),
	    cmocka_unit_test(test_bug5_stalled_producer_taps_bounded),
	    cmocka_unit_test(test_bug5_stalled_producer_active_after_bounded),
	    cmocka_unit_test(test_bug5_stalled_producer_loses_nothing_for_active_before),
	    cmocka_unit_test(test_bug5_blocking_destructor_in_push_holds_no_memory),
	    cmocka_unit_test(test_bug6_share_group_reads_reclaim_after_producer_stops),
	    cmocka_unit_test(test_miss_after_frontier_holds_until_pass_ends),
	    cmocka_unit_test(test_misses_a_pass_covers_hold_until_it_ends),
	    cmocka_unit_test(test_close_far_behind_last_cursor_frees_all),
	    cmocka_unit_test(test_close_far_behind_frees_below_the_next),
	    cmocka_unit_test(test_stalled_passive_keeps_only_its_batch),
	    cmocka_unit_test(test_stalled_passive_keeps_only_its_batch_with_active),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

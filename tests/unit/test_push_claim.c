/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_push_claim.c - the multi-producer claim without a read section
 * (docs/design.md §4): a producer stopped in the middle of a crossing claim
 * (tail word STALE, tail_seg not moved yet) stops nobody.  Other producers
 * help it and push on; a close in that window ends the stream after the
 * stopped claim; every item arrives once, in claim order.
 *
 * The stop is the library's test hook fo__cross_hook (src/stream_impl.h),
 * called right after a crossing claim's CAS.
 */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

#include <fanout/fanout.h>

#define SEG    256 /* positions per segment (src/stream_impl.h) */
#define BEFORE (SEG - 1)
#define AFTER  (3 * SEG)

/* Only the library built with FO_TEST_HOOKS has it: the build links this
 * test to that one because of the #ifndef below (tests/CMakeLists.txt). */
#ifndef FO_TEST_HOOKS
#error "test_push_claim.c needs the library's test hooks (fanout_add_test TEST_HOOKS)"
#endif
extern void (*fo__cross_hook)(fo_stream *s, uint64_t first, size_t n);

static _Thread_local bool stop_here; /* set on the thread to stop */
static sem_t stopped, resume;
static _Atomic uint64_t stopped_at;

static void cross_hook(fo_stream *s, uint64_t first, size_t n)
{
	(void)s;
	(void)n;
	if (!stop_here)
		return;
	stop_here = false;
	atomic_store(&stopped_at, first);
	sem_post(&stopped);
	while (sem_wait(&resume) != 0)
		;
}

/* Item values: positions pushed by the test thread are their own number,
 * the stopped producer's two items are 1000000 and 1000001. */
static int vals[BEFORE + AFTER];
static int stopped_vals[2] = {1000000, 1000001};

typedef struct crosser {
	pthread_t th;
	fo_stream *s;
	int rc;
} crosser;

static void *crosser_main(void *arg)
{
	crosser *c = arg;
	void *items[2] = {&stopped_vals[0], &stopped_vals[1]};
	stop_here = true;
	c->rc = fo_stream_push_many(c->s, items, 2); /* positions 255, 256: a crossing */
	return NULL;
}

/* Open a stream with one active cursor, push BEFORE items, and start a
 * producer whose claim of 2 crosses into segment 1; return once it stopped
 * with STALE set. */
static void start(fo_stream **s, fo_cursor **c, crosser *x)
{
	assert_int_equal(fo_stream_create(s, NULL), FO_OK); /* default: several producers */
	assert_int_equal(fo_stream_cursor(*s, c, FO_ACTIVE), FO_OK);
	for (int i = 0; i < BEFORE; i++) {
		vals[i] = i;
		assert_int_equal(fo_stream_push(*s, &vals[i]), FO_OK);
	}
	assert_int_equal(sem_init(&stopped, 0, 0), 0);
	assert_int_equal(sem_init(&resume, 0, 0), 0);
	fo__cross_hook = cross_hook;
	x->s = *s;
	assert_int_equal(pthread_create(&x->th, NULL, crosser_main, x), 0);
	while (sem_wait(&stopped) != 0)
		;
	assert_int_equal(atomic_load(&stopped_at), BEFORE);
}

static void finish(crosser *x)
{
	assert_int_equal(sem_post(&resume), 0);
	assert_int_equal(pthread_join(x->th, NULL), 0);
	fo__cross_hook = NULL;
	assert_int_equal(x->rc, FO_OK);
	sem_destroy(&stopped);
	sem_destroy(&resume);
}

static void read_expect(fo_cursor *c, int want)
{
	void *it;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_OK);
	assert_int_equal(*(int *)it, want);
}

static void test_producers_help_a_stopped_crossing_and_push_on(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	crosser x;
	start(&s, &c, &x);
	/* Single pushes and batches while the crossing is stopped: each one
	 * finds STALE, helps (moves tail_seg, clears STALE) and claims after it. */
	for (int i = BEFORE; i < BEFORE + AFTER; i++) {
		vals[i] = i;
		if (i % 3 == 0 && i + 1 < BEFORE + AFTER) {
			vals[i + 1] = i + 1;
			void *two[2] = {&vals[i], &vals[i + 1]};
			assert_int_equal(fo_stream_push_many(s, two, 2), FO_OK);
			i++;
		} else {
			assert_int_equal(fo_stream_push(s, &vals[i]), FO_OK);
		}
	}
	finish(&x);
	fo_stream_stats st;
	assert_int_equal(fo_stream_get_stats(s, &st), FO_OK);
	assert_int_equal(st.pushed, BEFORE + 2 + AFTER);
	for (int i = 0; i < BEFORE; i++)
		read_expect(c, i);
	read_expect(c, stopped_vals[0]);
	read_expect(c, stopped_vals[1]);
	for (int i = BEFORE; i < BEFORE + AFTER; i++)
		read_expect(c, i);
	void *it;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_EMPTY);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

static void test_close_during_a_stopped_crossing_ends_after_it(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	crosser x;
	start(&s, &c, &x);
	assert_int_equal(fo_stream_close(s), FO_OK);
	int late = -1;
	assert_int_equal(fo_stream_push(s, &late), FO_ECLOSED);
	void *one[1] = {&late};
	assert_int_equal(fo_stream_push_many(s, one, 1), FO_ECLOSED);
	finish(&x); /* claimed before the close: delivered */
	for (int i = 0; i < BEFORE; i++)
		read_expect(c, i);
	read_expect(c, stopped_vals[0]);
	read_expect(c, stopped_vals[1]);
	void *it;
	assert_int_equal(fo_cursor_try_next(c, &it), FO_END);
	fo_cursor_close(c);
	fo_stream_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_producers_help_a_stopped_crossing_and_push_on),
	    cmocka_unit_test(test_close_during_a_stopped_crossing_ends_after_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

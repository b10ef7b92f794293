/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_bias_stall.c - the biased claim's owner stopped inside its claim
 * (docs/design.md §4, "a default stream biased to its first producer").
 * The owner of a default stream stops between its plain-store claim and
 * its stores (the library's claim hook); a second producer's first push
 * revokes the bias and must wait for it (with membarrier), and must not
 * hang once it goes on; a close meanwhile must not wait for it.  TSan
 * builds claim by CAS from the start: the second producer does not wait
 * there, and the checks that say it does are skipped.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fo_test.h"

#include <fanout/fanout.h>

/* Only the library built with FO_TEST_HOOKS has it: the build links this
 * test to that one because of the #ifndef below (tests/CMakeLists.txt). */
#ifndef FO_TEST_HOOKS
#error "test_bias_stall.c needs the library's test hooks (fanout_add_test TEST_HOOKS)"
#endif
extern void (*fo__claim_hook)(fo_stream *s, uint64_t first, size_t n);

static _Thread_local bool stop_here; /* set on the thread to stop */
static sem_t stopped, resume;

static void stall_hook(fo_stream *s, uint64_t first, size_t n)
{
	(void)s;
	(void)first;
	(void)n;
	if (!stop_here)
		return;
	stop_here = false;
	sem_post(&stopped);
	while (sem_wait(&resume) != 0)
		;
}

static int vals[4] = {0, 1, 2, 100};

struct job {
	pthread_t th;
	fo_stream *s;
	int rc[2];
	atomic_bool done;
};

/* The owner: pushes 0 (its first push makes it the owner), then 1 and 2
 * in one push_many, which stops inside its claim. */
static void *owner_main(void *arg)
{
	struct job *j = arg;
	j->rc[0] = fo_stream_push(j->s, &vals[0]);
	void *two[2] = {&vals[1], &vals[2]};
	stop_here = true;
	j->rc[1] = fo_stream_push_many(j->s, two, 2);
	atomic_store(&j->done, true);
	return NULL;
}

/* The second producer: its first push revokes the bias. */
static void *second_main(void *arg)
{
	struct job *j = arg;
	j->rc[0] = fo_stream_push(j->s, &vals[3]);
	atomic_store(&j->done, true);
	return NULL;
}

static void start(struct job *j, fo_stream *s, void *(*fn)(void *))
{
	j->s = s;
	atomic_init(&j->done, false);
	assert_int_equal(pthread_create(&j->th, NULL, fn, j), 0);
}

/* Read @n values from @c (all there), then expect END if @end. */
static void expect_vals(fo_cursor *c, const int *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		void *it = NULL;
		assert_int_equal(fo_cursor_next(c, &it), FO_OK);
		assert_int_equal(*(int *)it, want[i]);
	}
}

static void stall_owner(fo_stream **s, fo_cursor **c, struct job *owner, struct job *second)
{
	assert_int_equal(sem_init(&stopped, 0, 0), 0);
	assert_int_equal(sem_init(&resume, 0, 0), 0);
	fo__claim_hook = stall_hook;
	assert_int_equal(fo_stream_create(s, NULL), FO_OK); /* default options */
	assert_int_equal(fo_stream_cursor(*s, c, FO_ACTIVE), FO_OK);
	start(owner, *s, owner_main);
	while (sem_wait(&stopped) != 0)
		;
	start(second, *s, second_main);
	ft_sleep_ms(50);
	if (ft_bias_on()) /* it waits for the owner to leave its claim */
		assert_false(atomic_load(&second->done));
	assert_false(atomic_load(&owner->done));
}

/* Let the stopped owner go on, join both producers; the owner's two
 * pushes (its claim came first) succeed. */
static void resume_owner(struct job *owner, struct job *second)
{
	sem_post(&resume);
	pthread_join(owner->th, NULL);
	pthread_join(second->th, NULL);
	assert_int_equal(owner->rc[0], FO_OK);
	assert_int_equal(owner->rc[1], FO_OK);
}

static void finish(fo_stream *s, fo_cursor *c)
{
	fo__claim_hook = NULL;
	fo_cursor_close(c);
	fo_stream_destroy(s);
	sem_destroy(&stopped);
	sem_destroy(&resume);
}

static void test_second_producer_waits_for_a_stopped_owner(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	struct job owner, second;
	stall_owner(&s, &c, &owner, &second);
	resume_owner(&owner, &second);
	assert_int_equal(second.rc[0], FO_OK);
	/* The owner's claim came first; the bias is gone: both push on. */
	assert_int_equal(fo_stream_push(s, &vals[3]), FO_OK);
	void *two[2] = {&vals[1], &vals[2]};
	assert_int_equal(fo_stream_push_many(s, two, 2), FO_OK);
	assert_int_equal(fo_stream_close(s), FO_OK);
	expect_vals(c, (const int[]){0, 1, 2, 100, 100, 1, 2}, 7);
	void *it;
	assert_int_equal(fo_cursor_next(c, &it), FO_END);
	finish(s, c);
}

static void test_close_while_owner_stopped_and_revoker_waits(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	struct job owner, second;
	stall_owner(&s, &c, &owner, &second);
	assert_int_equal(fo_stream_close(s), FO_OK); /* does not wait for the owner */
	resume_owner(&owner, &second);               /* its pushes were claimed before the close */
	/* With the bias, the second producer waited: closed by then.  By CAS
	 * (TSan) it may have pushed before the close. */
	if (ft_bias_on())
		assert_int_equal(second.rc[0], FO_ECLOSED);
	expect_vals(c, (const int[]){0, 1, 2}, 3);
	void *it = NULL;
	int rc = fo_cursor_next(c, &it);
	if (second.rc[0] == FO_OK) {
		assert_int_equal(rc, FO_OK);
		assert_int_equal(*(int *)it, 100);
		rc = fo_cursor_next(c, &it);
	}
	assert_int_equal(rc, FO_END);
	finish(s, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_second_producer_waits_for_a_stopped_owner),
	    cmocka_unit_test(test_close_while_owner_stopped_and_revoker_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

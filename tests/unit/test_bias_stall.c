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
 * there, and the checks that say it does are skipped.  And the owner
 * stopped in its closing path (fenced_closing(), holding the lock) while a
 * reader's reclamation requests find the lock taken: the pass they leave
 * pending runs only once the owner left its busy window (design.md §4,
 * "no reclamation pass inside the owner's busy window"; skipped without
 * the bias).
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
extern void (*fo__closing_hook)(fo_stream *s);
extern bool fo__bias_busy(fo_stream *s);

static _Thread_local bool stop_here; /* set on the thread to stop */
static sem_t stopped, resume;

/* If this thread is @armed (once): say so on `stopped`, wait for `resume`. */
static void stop_if(bool *armed)
{
	if (!*armed)
		return;
	*armed = false;
	sem_post(&stopped);
	while (sem_wait(&resume) != 0)
		;
}

static void stall_hook(fo_stream *s, uint64_t first, size_t n)
{
	(void)s;
	(void)first;
	(void)n;
	stop_if(&stop_here);
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

/* ---- no reclamation pass inside the owner's busy window (design.md §4) ---- */

#define SEG 256 /* SEG_SLOTS (src/stream_impl.h) */

static _Thread_local bool closing_stop; /* the owner stops in its closing path */
static _Thread_local bool is_owner;
static fo_stream *window_stream;
static atomic_uint window_frees, owner_frees, busy_frees;

static void closing_stall(fo_stream *s)
{
	(void)s;
	stop_if(&closing_stop);
}

/* Counts where it ran: on the owner's thread, and there inside its
 * plain-store push (busy set: a pass judging a half-stored claim, or a
 * destructor whose own push would clear busy under the outer one). */
static void window_free(void *item, void *ctx)
{
	(void)item;
	(void)ctx;
	atomic_fetch_add(&window_frees, 1);
	if (!is_owner)
		return;
	atomic_fetch_add(&owner_frees, 1);
	if (fo__bias_busy(window_stream))
		atomic_fetch_add(&busy_frees, 1);
}

/* The owner: 8 segments of items, then pushes on, armed to stop in its
 * closing path, until the stream is closed. */
static void *window_owner(void *arg)
{
	struct job *j = arg;
	is_owner = true;
	size_t i = 0;
	for (; i < 8 * SEG; i++)
		if (fo_stream_push(j->s, ft_tok(i)) != FO_OK)
			break;
	j->rc[0] = (int)i;
	atomic_store(&j->done, true); /* the first part is in */
	closing_stop = true;
	while (fo_stream_push(j->s, ft_tok(i)) == FO_OK)
		i++;
	j->rc[1] = !closing_stop; /* stopped in the closing path */
	closing_stop = false;
	return NULL;
}

/*
 * The owner's push races a close and stops in fenced_closing() holding the
 * lock; meanwhile the reader crosses segments, so its reclamation requests
 * find the lock taken and leave reclaim_pending set.  The owner's unlock
 * must not run that pass while it is inside its busy window: the pass runs
 * after it left (on its thread, so owner_frees > 0), and no destructor sees
 * busy.  The race with close is retried until the owner hits the window.
 */
static void test_no_pass_inside_the_owners_busy_window(void **state)
{
	(void)state;
	if (!ft_bias_on())
		skip(); /* no bias (TSan, no membarrier): no busy window */
	fo__closing_hook = closing_stall;
	int hit = 0;
	for (int trial = 0; trial < 200 && !hit; trial++) {
		assert_int_equal(sem_init(&stopped, 0, 0), 0);
		assert_int_equal(sem_init(&resume, 0, 0), 0);
		atomic_store(&window_frees, 0);
		atomic_store(&owner_frees, 0);
		atomic_store(&busy_frees, 0);
		fo_stream *s;
		fo_cursor *c;
		fo_stream_opts o = {.item_free = window_free};
		assert_int_equal(fo_stream_create(&s, &o), FO_OK);
		window_stream = s;
		assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
		struct job owner;
		start(&owner, s, window_owner);
		while (!atomic_load(&owner.done))
			ft_sleep_ms(1);
		assert_int_equal(owner.rc[0], 8 * SEG);
		assert_int_equal(fo_stream_close(s), FO_OK);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (sem_timedwait(&stopped, &ts) == 0) {
			/* The owner holds the lock: cross 4 segments, each
			 * crossing's request finds it taken. */
			for (size_t i = 0; i < 4 * SEG + 1; i++) {
				void *it = NULL;
				assert_int_equal(fo_cursor_next(c, &it), FO_OK);
				assert_int_equal(ft_seq(it), i);
			}
			assert_int_equal(atomic_load(&window_frees), 0); /* no pass yet */
			sem_post(&resume);
			hit = 1;
		}
		pthread_join(owner.th, NULL);
		assert_int_equal(owner.rc[1], hit);
		if (hit) {
			/* The pending pass ran on the owner's thread, outside busy. */
			assert_true(atomic_load(&owner_frees) > 0);
			assert_int_equal(atomic_load(&busy_frees), 0);
		}
		fo_cursor_close(c);
		fo_stream_destroy(s);
		sem_destroy(&stopped);
		sem_destroy(&resume);
	}
	fo__closing_hook = NULL;
	assert_true(hit);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_second_producer_waits_for_a_stopped_owner),
	    cmocka_unit_test(test_close_while_owner_stopped_and_revoker_waits),
	    cmocka_unit_test(test_no_pass_inside_the_owners_busy_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

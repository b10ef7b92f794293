/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_task.c - fanout/task.h: futures (wait, timed wait, result, take, cancel, fd/arm) and
 * fo_waitfor (completion order, NEED_WORK, END, limits, fd/arm, destroy), every return code,
 * and the SEMANTICS.md §8 inparallel rows that apply to threads, named after their edge cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <poll.h>
#include <sys/resource.h>

#include "ft_flow.h"

/* A task that waits for its gate, then returns its value (or its code). */
typedef struct job {
	atomic_bool go;
	int code;
	uintptr_t value;
	atomic_int *order; /* completion counter */
	int finished_as;   /* its place in completion order */
	atomic_int freed;  /* its value was dropped by the future (result_free) */
} job;

static int job_fn(void *arg, void **value)
{
	job *j = arg;
	while (!atomic_load(&j->go))
		ft_sleep_ms(1);
	if (j->order)
		j->finished_as = atomic_fetch_add(j->order, 1);
	if (j->code != FO_OK)
		return j->code;
	*value = (void *)j->value;
	return FO_OK;
}

static void value_free(void *v, void *ctx)
{
	(void)v;
	atomic_fetch_add(&((job *)ctx)->freed, 1);
}

static fo_future *spawn(job *j)
{
	fo_future *f = NULL;
	fo_task_opts o;
	fo_task_opts_init(&o);
	o.result_free = value_free;
	o.result_ctx = j;
	assert_int_equal(fo_task_spawn(&f, job_fn, j, &o), FO_OK);
	return f;
}

static void test_task_spawn_einval(void **state)
{
	(void)state;
	fo_future *f = NULL;
	job j = {.go = true};
	fo_task_opts o;
	fo_task_opts_init(&o);
	assert_int_equal(fo_task_spawn(NULL, job_fn, &j, &o), FO_EINVAL);
	assert_int_equal(fo_task_spawn(&f, NULL, &j, &o), FO_EINVAL);
	o.backend = FO_PROCESSES; /* without out_codec */
	assert_int_equal(fo_task_spawn(&f, job_fn, &j, &o), FO_EINVAL);
	assert_null(f);
	assert_int_equal(fo_future_wait(NULL), FO_EINVAL);
	assert_int_equal(fo_future_timed_wait(NULL, 0), FO_EINVAL);
	assert_int_equal(fo_future_result(NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_future_take(NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_future_cancel(NULL), FO_EINVAL);
	assert_int_equal(fo_future_fd(NULL), FO_EINVAL);
	assert_int_equal(fo_future_arm(NULL), FO_EINVAL);
	assert_false(fo_future_done(NULL));
	fo_future_destroy(NULL);
	fo_task_opts_init(NULL);
	assert_int_equal(fo_task_spawn(&f, job_fn, &j, NULL), FO_OK); /* NULL opts: defaults */
	assert_int_equal(fo_future_arm(f), FO_EINVAL);                /* no fd yet */
	assert_int_equal(fo_future_timed_wait(f, -1), FO_OK);         /* negative: no limit */
	fo_future_destroy(f);
}

static void test_task_value_and_result(void **state)
{
	(void)state;
	job j = {.value = 42};
	fo_future *f = spawn(&j);
	void *v = (void *)1;
	const fo_error *e = (void *)1;
	assert_int_equal(fo_future_result(f, &v, &e), FO_EMPTY);
	assert_null(v);
	assert_null(e);
	assert_false(fo_future_done(f));
	assert_int_equal(fo_future_timed_wait(f, 0), FO_TIMEDOUT);
	assert_int_equal(fo_future_timed_wait(f, FT_MS(10)), FO_TIMEDOUT);
	atomic_store(&j.go, true);
	assert_int_equal(fo_future_wait(f), FO_OK);
	assert_true(fo_future_done(f));
	assert_int_equal(fo_future_timed_wait(f, FT_MS(10)), FO_OK);
	assert_int_equal(fo_future_result(f, &v, &e), FO_OK);
	assert_int_equal((uintptr_t)v, 42);
	assert_null(e);
	assert_int_equal(fo_future_cancel(f), FO_END); /* too late: result kept */
	assert_int_equal(fo_future_result(f, &v, NULL), FO_OK);
	fo_future_destroy(f);
	FT_WAIT_UNTIL(atomic_load(&j.freed) == 1, 2000); /* freed with the future */
	assert_int_equal(atomic_load(&j.freed), 1);
}

static void test_task_take_transfers_the_value(void **state)
{
	(void)state;
	job j = {.go = true, .value = 9};
	fo_future *f = spawn(&j);
	assert_int_equal(fo_future_wait(f), FO_OK);
	void *v;
	assert_int_equal(fo_future_take(f, &v, NULL), FO_OK);
	assert_int_equal((uintptr_t)v, 9);
	assert_int_equal(fo_future_take(f, &v, NULL), FO_OK);
	assert_null(v);
	fo_future_destroy(f);
	ft_sleep_ms(5);
	assert_int_equal(atomic_load(&j.freed), 0);
}

/* inparallel: a child that dies without writing never resolves; a thread task that fails
 * resolves with its error. */
static void test_inparallel_task_failure_resolves_with_error_never_hangs(void **state)
{
	(void)state;
	job j = {.go = true, .code = FO_ESYS};
	fo_future *f = spawn(&j);
	assert_int_equal(fo_future_wait(f), FO_OK);
	void *v;
	const fo_error *e;
	assert_int_equal(fo_future_result(f, &v, &e), FO_FAILED);
	assert_null(v);
	assert_non_null(e);
	assert_int_equal(e->code, FO_ESYS);
	assert_non_null(e->message);
	fo_future_destroy(f);
}

static void test_task_cancel_running_wait_returns_ecanceled_value_discarded(void **state)
{
	(void)state;
	job j = {.value = 5};
	fo_future *f = spawn(&j);
	assert_int_equal(fo_future_cancel(f), FO_OK);
	assert_int_equal(fo_future_cancel(f), FO_OK); /* idempotent */
	assert_int_equal(fo_future_wait(f), FO_ECANCELED);
	assert_int_equal(fo_future_timed_wait(f, 0), FO_ECANCELED);
	assert_true(fo_future_done(f));
	void *v;
	assert_int_equal(fo_future_result(f, &v, NULL), FO_ECANCELED);
	atomic_store(&j.go, true); /* the thread finishes later; its value is dropped */
	FT_WAIT_UNTIL(atomic_load(&j.freed) == 1, 2000);
	assert_int_equal(atomic_load(&j.freed), 1);
	assert_int_equal(fo_future_result(f, &v, NULL), FO_ECANCELED);
	fo_future_destroy(f);
}

static void test_task_destroy_while_running_frees_later(void **state)
{
	(void)state;
	job *j = calloc(1, sizeof(*j)); /* outlives the handle: the thread still reads it */
	j->value = 3;
	fo_future *f = spawn(j);
	fo_future_destroy(f);
	atomic_store(&j->go, true);
	FT_WAIT_UNTIL(atomic_load(&j->freed) == 1, 2000);
	assert_int_equal(atomic_load(&j->freed), 1); /* after fn's last touch of j */
	ft_sleep_ms(5);                              /* the thread may still be inside value_free */
	free(j);
}

static void test_task_fd_arm_protocol(void **state)
{
	(void)state;
	job j = {.value = 1};
	fo_future *f = spawn(&j);
	int fd = fo_future_fd(f);
	assert_true(fd >= 0);
	assert_int_equal(fo_future_fd(f), fd); /* the same every time */
	assert_int_equal(fo_future_arm(f), 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 20), 0); /* nothing yet */
	atomic_store(&j.go, true);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(fo_future_arm(f), 1);
	assert_int_equal(fo_future_wait(f), FO_OK);
	fo_future_destroy(f);

	job k = {.value = 1};
	f = spawn(&k);
	fd = fo_future_fd(f);
	assert_int_equal(fo_future_arm(f), 0);
	fo_future_cancel(f); /* cancel wakes the fd too */
	p.fd = fd;
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(fo_future_arm(f), 1);
	atomic_store(&k.go, true);
	fo_future_destroy(f);
	/* k lives on this stack: wait until the thread is done with it. */
	FT_WAIT_UNTIL(atomic_load(&k.freed) == 1, 2000);
	assert_int_equal(atomic_load(&k.freed), 1);
	ft_sleep_ms(5); /* the thread may still be inside value_free */
}

/* ---- waitfor ------------------------------------------------------------------------------ */

static void test_waitfor_einval(void **state)
{
	(void)state;
	fo_waitfor *w;
	fo_future *f = NULL;
	assert_int_equal(fo_waitfor_create(NULL, 1), FO_EINVAL);
	assert_int_equal(fo_waitfor_create(&w, 1), FO_OK);
	assert_int_equal(fo_waitfor_add(NULL, f), FO_EINVAL);
	assert_int_equal(fo_waitfor_add(w, NULL), FO_EINVAL);
	assert_int_equal(fo_waitfor_next(NULL, &f), FO_EINVAL);
	assert_int_equal(fo_waitfor_next(w, NULL), FO_EINVAL);
	assert_int_equal(fo_waitfor_arm(w), FO_EINVAL); /* no fd yet */
	assert_int_equal(fo_waitfor_arm(NULL), FO_EINVAL);
	assert_int_equal(fo_waitfor_fd(NULL), FO_EINVAL);
	assert_int_equal(fo_waitfor_in_flight(NULL), 0);
	job j = {.go = true};
	f = spawn(&j);
	assert_int_equal(fo_waitfor_add(w, f), FO_OK);
	assert_int_equal(fo_waitfor_add(w, f), FO_EINVAL); /* already in a set */
	assert_int_equal(fo_future_fd(f), FO_EINVAL);      /* the set owns its readiness */
	fo_future *g;
	assert_int_equal(fo_waitfor_next(w, &g), FO_OK);
	assert_ptr_equal(g, f);
	fo_future_destroy(g);
	fo_waitfor_destroy(w);
	fo_waitfor_destroy(NULL);
}

static void test_inparallel_waitfor_completion_order(void **state)
{
	(void)state;
	fo_waitfor *w;
	assert_int_equal(fo_waitfor_create(&w, 0), FO_OK);
	atomic_int order = 0;
	job j[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
	fo_future *f[4];
	for (int i = 0; i < 4; i++) {
		j[i].order = &order;
		f[i] = spawn(&j[i]);
		assert_int_equal(fo_waitfor_add(w, f[i]), FO_OK);
	}
	assert_int_equal(fo_waitfor_in_flight(w), 4);
	int release[4] = {2, 0, 3, 1};
	for (int k = 0; k < 4; k++) {
		fo_future *g;
		atomic_store(&j[release[k]].go, true);
		assert_int_equal(fo_waitfor_next(w, &g), FO_OK);
		assert_ptr_equal(g, f[release[k]]);
		void *v;
		assert_int_equal(fo_future_result(g, &v, NULL), FO_OK);
		assert_int_equal((uintptr_t)v, (uintptr_t)release[k]);
		fo_future_destroy(g);
	}
	fo_future *g;
	assert_int_equal(fo_waitfor_next(w, &g), FO_END); /* limit 0: drained, no asking */
	assert_int_equal(fo_waitfor_timed_next(w, &g, 0), FO_END);
	fo_waitfor_destroy(w);
}

static void test_inparallel_waitfor_caller_adds_zero_per_need_work_ends(void **state)
{
	(void)state;
	fo_waitfor *w;
	fo_future *g;
	assert_int_equal(fo_waitfor_create(&w, 2), FO_OK);
	assert_int_equal(fo_waitfor_next(w, &g), FO_NEED_WORK); /* empty: asks once ... */
	assert_int_equal(fo_waitfor_next(w, &g), FO_END);       /* ... declined: ends */
	/* Not sticky: adding starts again. */
	job j = {.value = 1};
	assert_int_equal(fo_waitfor_add(w, spawn(&j)), FO_OK);
	assert_int_equal(fo_waitfor_next(w, &g), FO_NEED_WORK); /* 1 < 2 in flight */
	atomic_store(&j.go, true);
	assert_int_equal(fo_waitfor_next(w, &g), FO_OK); /* declined: waits for it */
	fo_future_destroy(g);
	assert_int_equal(fo_waitfor_next(w, &g), FO_NEED_WORK);
	assert_int_equal(fo_waitfor_next(w, &g), FO_END);
	fo_waitfor_destroy(w);
}

static void test_inparallel_waitfor_caller_adds_several_per_need_work_limit_holds(void **state)
{
	(void)state;
	fo_waitfor *w;
	fo_future *g;
	assert_int_equal(fo_waitfor_create(&w, 3), FO_OK);
	job j[6];
	memset(j, 0, sizeof(j));
	size_t added = 0, done = 0;
	int rc;
	while ((rc = fo_waitfor_next(w, &g)) != FO_END) {
		if (rc == FO_NEED_WORK) {
			assert_true(fo_waitfor_in_flight(w) < 3);
			/* add two at a time while work is left */
			for (int k = 0; k < 2 && added < 6; k++) {
				j[added].go = true;
				assert_int_equal(fo_waitfor_add(w, spawn(&j[added])), FO_OK);
				added++;
			}
			assert_true(fo_waitfor_in_flight(w) <=
			            4); /* at most limit + 1 from a batch */
		} else {
			assert_int_equal(rc, FO_OK);
			fo_future_destroy(g);
			done++;
		}
	}
	assert_int_equal(added, 6);
	assert_int_equal(done, 6);
	fo_waitfor_destroy(w);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_inparallel_waitfor_no_busy_polling(void **state)
{
	(void)state;
	fo_waitfor *w;
	fo_future *g;
	assert_int_equal(fo_waitfor_create(&w, 1), FO_OK);
	job j = {.value = 1};
	assert_int_equal(fo_waitfor_next(w, &g), FO_NEED_WORK);
	assert_int_equal(fo_waitfor_add(w, spawn(&j)), FO_OK);
	uint64_t cpu0 = thread_cpu_ns();
	/* 200 ms of waiting for a completion that does not come: it must sleep. */
	assert_int_equal(fo_waitfor_timed_next(w, &g, FT_MS(200)), FO_TIMEDOUT);
	uint64_t spent = thread_cpu_ns() - cpu0;
	assert_true(spent < 20000000u); /* inparallel wakes every 1 ms */
	atomic_store(&j.go, true);
	assert_int_equal(fo_waitfor_next(w, &g), FO_OK);
	fo_future_destroy(g);
	fo_waitfor_destroy(w);
}

static void test_waitfor_fd_arm_and_already_done_future(void **state)
{
	(void)state;
	fo_waitfor *w;
	fo_future *g;
	assert_int_equal(fo_waitfor_create(&w, 1), FO_OK);
	int fd = fo_waitfor_fd(w);
	assert_true(fd >= 0);
	assert_int_equal(fo_waitfor_arm(w), 1); /* NEED_WORK is due */
	assert_int_equal(fo_waitfor_next(w, &g), FO_NEED_WORK);
	job j = {.value = 1};
	assert_int_equal(fo_waitfor_add(w, spawn(&j)), FO_OK);
	assert_int_equal(fo_waitfor_arm(w), 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 20), 0);
	atomic_store(&j.go, true);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(fo_waitfor_arm(w), 1);
	assert_int_equal(fo_waitfor_next(w, &g), FO_OK);
	fo_future_destroy(g);

	/* A future that is already resolved when added comes back at once. */
	job k = {.go = true, .value = 2};
	fo_future *f = spawn(&k);
	assert_int_equal(fo_future_wait(f), FO_OK);
	assert_int_equal(fo_waitfor_add(w, f), FO_OK);
	assert_int_equal(fo_waitfor_timed_next(w, &g, 0), FO_OK);
	assert_ptr_equal(g, f);
	fo_future_destroy(g);
	fo_waitfor_destroy(w);
}

static atomic_int own_freed;
static void own_free(void *v, void *ctx)
{
	(void)v;
	(void)ctx;
	atomic_fetch_add(&own_freed, 1);
}

static void test_waitfor_destroy_cancels_futures_in_flight(void **state)
{
	(void)state;
	fo_task_opts o;
	fo_task_opts_init(&o);
	o.result_free = own_free;
	fo_waitfor *w;
	assert_int_equal(fo_waitfor_create(&w, 4), FO_OK);
	static job j[3]; /* static: the threads outlive the set */
	memset(j, 0, sizeof(j));
	for (int i = 0; i < 3; i++)
		j[i].value = 1 + (uintptr_t)i;
	for (int i = 0; i < 3; i++) {
		fo_future *f;
		assert_int_equal(fo_task_spawn(&f, job_fn, &j[i], &o), FO_OK);
		assert_int_equal(fo_waitfor_add(w, f), FO_OK);
	}
	fo_waitfor_destroy(w); /* never blocks */
	for (int i = 0; i < 3; i++)
		atomic_store(&j[i].go, true);
	FT_WAIT_UNTIL(atomic_load(&own_freed) == 3, 2000);
	assert_int_equal(atomic_load(&own_freed), 3);
	ft_sleep_ms(10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_task_spawn_einval),
	    cmocka_unit_test(test_task_value_and_result),
	    cmocka_unit_test(test_task_take_transfers_the_value),
	    cmocka_unit_test(test_inparallel_task_failure_resolves_with_error_never_hangs),
	    cmocka_unit_test(test_task_cancel_running_wait_returns_ecanceled_value_discarded),
	    cmocka_unit_test(test_task_destroy_while_running_frees_later),
	    cmocka_unit_test(test_task_fd_arm_protocol),
	    cmocka_unit_test(test_waitfor_einval),
	    cmocka_unit_test(test_inparallel_waitfor_completion_order),
	    cmocka_unit_test(test_inparallel_waitfor_caller_adds_zero_per_need_work_ends),
	    cmocka_unit_test(test_inparallel_waitfor_caller_adds_several_per_need_work_limit_holds),
	    cmocka_unit_test(test_inparallel_waitfor_no_busy_polling),
	    cmocka_unit_test(test_waitfor_fd_arm_and_already_done_future),
	    cmocka_unit_test(test_waitfor_destroy_cancels_futures_in_flight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

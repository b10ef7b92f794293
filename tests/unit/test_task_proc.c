/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_task_proc.c - fo_task_spawn with FO_PROCESSES (inparallel's @task): one fork per call,
 * the child sees the caller's memory as it was at the call, the value comes back through
 * opts.out_codec, fo_fail code + message and errno too; a child killed by a signal or exiting
 * without a result resolves the future with an error naming it; fo_future_cancel kills the
 * child; fd/arm and fo_waitfor work over process futures.  After every test: every child
 * reaped, no fd left open.
 */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fo_test.h"

static long g_value;

typedef struct call {
	long mult;
	int how; /* 0 value, 1 fo_fail, 2 SIGKILL, 3 _exit(4), 4 sleep, 5 NULL value, 6 ESYS */
} call;

static int child_fn(void *arg, void **value)
{
	call *c = arg;
	switch (c->how) {
	case 1:
		return fo_fail(FO_USER(7), "nope %d", 7);
	case 2:
		raise(SIGKILL);
		break;
	case 3:
		_exit(4);
	case 4:
		ft_sleep_ms(60000);
		break;
	case 5:
		return FO_OK;
	case 6:
		errno = EACCES;
		return FO_ESYS;
	case 7:
		ft_sleep_ms(100); /* outlives the thread that spawned it */
		break;
	}
	long *v = malloc(sizeof(*v));
	*v = g_value * c->mult; /* the memory as it was at the call */
	g_value = -1;           /* stays in the child */
	*value = v;
	return FO_OK;
}

static void opts(fo_task_opts *o)
{
	fo_task_opts_init(o);
	o->backend = FO_PROCESSES;
	o->out_codec = fo_codec_pod(sizeof(long));
	o->result_free = o->out_codec.item_free;
	o->result_ctx = o->out_codec.ctx;
}

static int fds_before;

static int setup(void **state)
{
	(void)state;
	fds_before = ft_count_fds();
	return 0;
}

/* Every child reaped (peeked without reaping: the supervisors reap their own, a little after
 * resolving), and no fd left (the supervisor closes them before it resolves). */
static int teardown(void **state)
{
	(void)state;
	int64_t until = ft_now_ns() + FT_MS(10000);
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD &&
		    ft_count_fds() == fds_before)
			break;
		assert_true(ft_now_ns() < until);
		ft_sleep_ms(1);
	}
	return 0;
}

static void test_task_proc_einval_without_codec(void **state)
{
	(void)state;
	fo_future *f = NULL;
	call c = {0};
	fo_task_opts o;
	opts(&o);
	o.out_codec.decode = NULL;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_EINVAL);
	assert_null(f);
}

static void test_inparallel_task_child_sees_memory_at_the_call_value_through_codec(void **state)
{
	(void)state;
	g_value = 21;
	call c = {.mult = 2};
	fo_task_opts o;
	opts(&o);
	fo_future *f;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_OK);
	g_value = 1000; /* after the call: the child does not see it */
	assert_int_equal(fo_future_wait(f), FO_OK);
	void *v;
	const fo_error *e;
	assert_int_equal(fo_future_take(f, &v, &e), FO_OK);
	assert_int_equal(*(long *)v, 42);
	assert_int_equal(g_value, 1000); /* the child's write stayed there */
	o.out_codec.item_free(v, o.out_codec.ctx);
	fo_future_destroy(f);
	/* a NULL value */
	c.how = 5;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_OK);
	assert_int_equal(fo_future_wait(f), FO_OK);
	assert_int_equal(fo_future_result(f, &v, &e), FO_OK);
	assert_null(v);
	fo_future_destroy(f);
}

/* A task spawned by a thread that exits at once still runs to its result: the child's
 * parent-death signal follows the task's supervisor, not the spawning thread. */
static void *spawn_and_exit(void *arg)
{
	fo_future **f = arg;
	static call c = {.mult = 3, .how = 7};
	fo_task_opts o;
	opts(&o);
	if (fo_task_spawn(f, child_fn, &c, &o) != FO_OK)
		*f = NULL;
	return NULL;
}

static void test_task_proc_child_outlives_the_spawning_thread(void **state)
{
	(void)state;
	g_value = 5;
	fo_future *f = NULL;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, spawn_and_exit, &f), 0);
	assert_int_equal(pthread_join(th, NULL), 0); /* the spawning thread is gone */
	assert_non_null(f);
	assert_int_equal(fo_future_wait(f), FO_OK);
	void *v;
	const fo_error *e;
	assert_int_equal(fo_future_result(f, &v, &e), FO_OK);
	assert_int_equal(*(long *)v, 15);
	fo_future_destroy(f);
}

static void test_task_proc_fo_fail_code_message_and_errno(void **state)
{
	(void)state;
	call c = {.how = 1};
	fo_task_opts o;
	opts(&o);
	fo_future *f;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_OK);
	assert_int_equal(fo_future_wait(f), FO_OK);
	const fo_error *e;
	assert_int_equal(fo_future_result(f, NULL, &e), FO_FAILED);
	assert_int_equal(e->code, FO_USER(7));
	assert_string_equal(e->message, "nope 7");
	fo_future_destroy(f);
	c.how = 6;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_OK);
	assert_int_equal(fo_future_wait(f), FO_OK);
	assert_int_equal(fo_future_result(f, NULL, &e), FO_FAILED);
	assert_int_equal(e->code, FO_ESYS);
	assert_int_equal(e->sys_errno, EACCES);
	fo_future_destroy(f);
}

static void test_inparallel_child_killed_or_exiting_without_result_is_an_error(void **state)
{
	(void)state;
	call c = {.how = 2};
	fo_task_opts o;
	opts(&o);
	fo_future *f;
	const fo_error *e;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_OK);
	assert_int_equal(fo_future_wait(f), FO_OK);
	assert_int_equal(fo_future_result(f, NULL, &e), FO_FAILED);
	assert_int_equal(e->code, FO_FAILED);
	assert_non_null(strstr(e->message, "killed by signal 9 (SIGKILL)"));
	fo_future_destroy(f);
	c.how = 3;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_OK);
	assert_int_equal(fo_future_wait(f), FO_OK);
	assert_int_equal(fo_future_result(f, NULL, &e), FO_FAILED);
	assert_non_null(strstr(e->message, "exited with status 4 before its result"));
	fo_future_destroy(f);
}

static void test_task_proc_cancel_kills_the_child(void **state)
{
	(void)state;
	call c = {.how = 4};
	fo_task_opts o;
	opts(&o);
	fo_future *f;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_OK);
	assert_int_equal(fo_future_timed_wait(f, FT_MS(50)), FO_TIMEDOUT);
	int64_t t0 = ft_now_ns();
	assert_int_equal(fo_future_cancel(f), FO_OK);
	assert_int_equal(fo_future_wait(f), FO_ECANCELED);
	fo_future_destroy(f);
	/* teardown: the child is gone long before its 60 s sleep */
	(void)t0;
}

static void test_task_proc_fd_arm_and_waitfor(void **state)
{
	(void)state;
	g_value = 3;
	call c = {.mult = 1};
	fo_task_opts o;
	opts(&o);
	fo_future *f;
	assert_int_equal(fo_task_spawn(&f, child_fn, &c, &o), FO_OK);
	int fd = fo_future_fd(f);
	assert_true(fd >= 0);
	if (fo_future_arm(f) == 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		assert_int_equal(poll(&p, 1, 10000), 1);
	}
	assert_true(fo_future_done(f));
	fo_future_destroy(f);

	fo_waitfor *w;
	assert_int_equal(fo_waitfor_create(&w, 2), FO_OK);
	call cs[6];
	int spawned = 0, got = 0;
	long sum = 0;
	for (;;) {
		fo_future *d;
		int rc = fo_waitfor_next(w, &d);
		if (rc == FO_NEED_WORK) {
			if (spawned < 6) {
				cs[spawned] = (call){.mult = spawned + 1};
				assert_int_equal(fo_task_spawn(&d, child_fn, &cs[spawned], &o),
				                 FO_OK);
				assert_int_equal(fo_waitfor_add(w, d), FO_OK);
				spawned++;
			}
			continue;
		}
		if (rc == FO_END)
			break;
		assert_int_equal(rc, FO_OK);
		void *v;
		assert_int_equal(fo_future_result(d, &v, NULL), FO_OK);
		sum += *(long *)v;
		got++;
		fo_future_destroy(d);
	}
	fo_waitfor_destroy(w);
	assert_int_equal(got, 6);
	assert_int_equal(sum, 3 * (1 + 2 + 3 + 4 + 5 + 6));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_task_proc_einval_without_codec, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_inparallel_task_child_sees_memory_at_the_call_value_through_codec, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_task_proc_child_outlives_the_spawning_thread,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_task_proc_fo_fail_code_message_and_errno, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_inparallel_child_killed_or_exiting_without_result_is_an_error, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_task_proc_cancel_kills_the_child, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_task_proc_fd_arm_and_waitfor, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

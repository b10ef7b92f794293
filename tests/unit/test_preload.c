/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_preload.c - fanout/preload.h: a source read in a child process, bounded read-ahead,
 * errors and messages across the boundary, a crashing child, early close, fd/arm.
 */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fo_test.h"

/* An item: the sequence number and the pid of the process that made it. */
struct rec {
	uint64_t seq;
	int64_t pid;
};

/* Source: items 0..n-1; counts pulls in shared memory; fails or dies at @bad. */
struct gen {
	uint64_t next, n, bad;
	int how; /* 0 none, 1 fo_fail(FO_USER(4)), 2 FO_ESYS with EIO, 3 SIGKILL itself, 4 block */
	_Atomic uint64_t *pulled; /* shared with the parent (MAP_SHARED) */
};

static int gen_next(void *ctx, void **item, uint64_t deadline)
{
	struct gen *g = ctx;
	(void)deadline;
	if (g->next == g->n)
		return FO_END;
	if (g->next == g->bad) {
		switch (g->how) {
		case 1:
			return fo_fail(FO_USER(4), "bad row %llu", (unsigned long long)g->next);
		case 2:
			errno = EIO;
			return FO_ESYS;
		case 3:
			raise(SIGKILL);
			break;
		case 4:
			pause();
			break;
		}
	}
	struct rec *r = malloc(sizeof(*r));
	r->seq = g->next++;
	r->pid = getpid();
	atomic_fetch_add(g->pulled, 1);
	*item = r;
	return FO_OK;
}

static void rec_free(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

static _Atomic uint64_t *shared_counter(void)
{
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	return m;
}

static fo_iter *make_preload(struct gen *g, size_t ahead)
{
	fo_iter *src, *it = NULL;
	fo_codec c = fo_codec_pod(sizeof(struct rec));
	assert_int_equal(fo_iter_from_fn(&src, gen_next, NULL, g, rec_free, NULL), FO_OK);
	assert_int_equal(fo_process_preload(&it, src, ahead, &c), FO_OK);
	return it;
}

static void assert_no_children(void)
{
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void test_items_come_from_the_child_in_order_bounded(void **state)
{
	(void)state;
	const size_t ahead = 8;
	struct gen g = {.n = 1000, .bad = UINT64_MAX, .pulled = shared_counter()};
	fo_iter *it = make_preload(&g, ahead);
	void *x;
	ft_sleep_ms(20);
	assert_int_equal(atomic_load(g.pulled), 0); /* nothing pulled before the first read */
	for (uint64_t i = 0; i < g.n; i++) {
		assert_int_equal(fo_iter_next(it, &x), FO_OK);
		struct rec *r = x;
		assert_int_equal(r->seq, i);
		assert_int_not_equal(r->pid, getpid());
		/* pulled and not yet returned never exceeds ahead */
		assert_true(atomic_load(g.pulled) <= i + 1 + ahead);
		fo_iter_release(it, x);
	}
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	assert_int_equal(g.next, 0); /* the parent's copy of the source was never read */
	fo_iter_close(it);
	assert_no_children();
	munmap((void *)g.pulled, 4096);
}

static void test_user_error_and_message_cross_the_boundary(void **state)
{
	(void)state;
	struct gen g = {.n = 100, .bad = 3, .how = 1, .pulled = shared_counter()};
	fo_iter *it = make_preload(&g, 4);
	void *x;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fo_iter_next(it, &x), FO_OK);
		fo_iter_release(it, x);
	}
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	const fo_error *e = fo_iter_error(it);
	assert_non_null(e);
	assert_int_equal(e->code, FO_USER(4));
	assert_string_equal(e->message, "bad row 3");
	fo_iter_close(it);
	assert_no_children();
	munmap((void *)g.pulled, 4096);
}

static void test_errno_of_a_failing_source_is_kept(void **state)
{
	(void)state;
	struct gen g = {.n = 100, .bad = 0, .how = 2, .pulled = shared_counter()};
	fo_iter *it = make_preload(&g, 4);
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, FO_ESYS);
	assert_int_equal(fo_iter_error(it)->sys_errno, EIO);
	fo_iter_close(it);
	assert_no_children();
	munmap((void *)g.pulled, 4096);
}

static void test_a_child_killed_mid_source_fails_naming_the_signal(void **state)
{
	(void)state;
	struct gen g = {.n = 100, .bad = 5, .how = 3, .pulled = shared_counter()};
	fo_iter *it = make_preload(&g, 2);
	void *x;
	int rc, got = 0;
	while ((rc = fo_iter_next(it, &x)) == FO_OK) {
		assert_int_equal(((struct rec *)x)->seq, (uint64_t)got++);
		fo_iter_release(it, x);
	}
	assert_int_equal(got, 5);
	assert_int_equal(rc, FO_FAILED);
	assert_non_null(strstr(fo_iter_error(it)->message, "signal 9"));
	fo_iter_close(it);
	assert_no_children();
	munmap((void *)g.pulled, 4096);
}

static void test_early_close_kills_a_blocked_child(void **state)
{
	(void)state;
	struct gen g = {.n = 100, .bad = 2, .how = 4, .pulled = shared_counter()};
	fo_iter *it = make_preload(&g, 16);
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_OK);
	fo_iter_release(it, x);
	assert_int_equal(fo_iter_timed_next(it, &x, 5000000000), FO_OK);
	fo_iter_release(it, x);
	assert_int_equal(fo_iter_timed_next(it, &x, 20000000), FO_TIMEDOUT); /* blocked at 2 */
	assert_int_equal(fo_iter_try_next(it, &x), FO_EMPTY);
	fo_iter_close(it); /* returns: the child is killed and reaped */
	assert_no_children();
	munmap((void *)g.pulled, 4096);
}

static void test_fd_and_arm_with_poll(void **state)
{
	(void)state;
	struct gen g = {.n = 300, .bad = UINT64_MAX, .pulled = shared_counter()};
	fo_iter *it = make_preload(&g, 32);
	int fd = fo_iter_fd(it);
	assert_true(fd >= 0);
	uint64_t seen = 0;
	int rc;
	void *x;
	for (;;) {
		while ((rc = fo_iter_try_next(it, &x)) == FO_OK) {
			assert_int_equal(((struct rec *)x)->seq, seen++);
			fo_iter_release(it, x);
		}
		if (rc == FO_END)
			break;
		assert_int_equal(rc, FO_EMPTY);
		if (fo_iter_arm(it) == 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			assert_int_equal(poll(&p, 1, 10000), 1);
		}
	}
	assert_int_equal(seen, 300);
	fo_iter_close(it);
	assert_no_children();
	munmap((void *)g.pulled, 4096);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	fo_iter *src, *it = NULL;
	fo_codec c = fo_codec_cstr(), none = {0};
	char *items[] = {"a"};
	assert_int_equal(fo_iter_from_array(&src, (void *const *)items, 1), FO_OK);
	assert_int_equal(fo_process_preload(NULL, src, 1, &c), FO_EINVAL);
	assert_int_equal(fo_process_preload(&it, NULL, 1, &c), FO_EINVAL);
	assert_int_equal(fo_process_preload(&it, src, 0, &c), FO_EINVAL);
	assert_int_equal(fo_process_preload(&it, src, 1, NULL), FO_EINVAL);
	assert_int_equal(fo_process_preload(&it, src, 1, &none), FO_EINVAL);
	assert_null(it);
	/* the caller still owns src: it works */
	void *x;
	assert_int_equal(fo_process_preload(&it, src, 1, &c), FO_OK);
	assert_int_equal(fo_iter_next(it, &x), FO_OK);
	assert_string_equal(x, "a");
	fo_iter_release(it, x);
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	fo_iter_close(it);
	assert_no_children();
}

static fo_iter *gen_source(struct gen *g)
{
	fo_iter *src;
	assert_int_equal(fo_iter_from_fn(&src, gen_next, NULL, g, rec_free, NULL), FO_OK);
	return src;
}

/* fo_feed with FO_PROCESSES: the source runs in a child; forks of the cursor see everything. */
static void test_feed_with_processes(void **state)
{
	(void)state;
	fo_codec c = fo_codec_pod(sizeof(struct rec));
	for (int mode = 0; mode < 2; mode++) {
		struct gen g = {.n = 500, .bad = 400, .how = 1, .pulled = shared_counter()};
		fo_feed_opts o;
		fo_feed_opts_init(&o);
		o.mode = mode ? FO_FEED_ON_DEMAND : FO_FEED_BACKGROUND;
		o.ahead = 16;
		o.backend = FO_PROCESSES;
		o.codec = &c;
		fo_feeder *f;
		fo_cursor *cur;
		fo_iter *src = gen_source(&g);
		assert_int_equal(fo_feed_create(&f, &cur, src, &o), FO_OK);
		void *x;
		int rc;
		uint64_t seen = 0;
		while ((rc = fo_feed_next(f, cur, &x)) == FO_OK) {
			assert_int_equal(((struct rec *)x)->seq, seen++);
			assert_int_not_equal(((struct rec *)x)->pid, getpid());
		}
		assert_int_equal(seen, 400);
		assert_int_equal(rc, FO_FAILED);
		assert_int_equal(fo_cursor_error(cur)->code, FO_USER(4));
		assert_string_equal(fo_cursor_error(cur)->message, "bad row 400");
		fo_cursor_close(cur);
		fo_feed_destroy(f);
		assert_no_children();
		munmap((void *)g.pulled, 4096);
	}
	/* no codec: refused, the caller keeps the source */
	struct gen g = {.n = 1, .bad = UINT64_MAX, .pulled = shared_counter()};
	fo_iter *src = gen_source(&g);
	fo_feed_opts o;
	fo_feed_opts_init(&o);
	o.backend = FO_PROCESSES;
	fo_feeder *f;
	fo_cursor *cur;
	assert_int_equal(fo_feed_create(&f, &cur, src, &o), FO_EINVAL);
	o.backend = (fo_backend)7;
	o.codec = &c;
	assert_int_equal(fo_feed_create(&f, &cur, src, &o), FO_EINVAL);
	fo_iter_close(src);
	munmap((void *)g.pulled, 4096);
}

/* A pipeline stage whose source runs in a child: n + 1 ahead at most, root error kept. */
static void test_pipeline_stage_in_a_process(void **state)
{
	(void)state;
	fo_codec c = fo_codec_pod(sizeof(struct rec));
	struct gen g = {.n = 2000, .bad = UINT64_MAX, .pulled = shared_counter()};
	fo_pipeline *p;
	fo_iter *out;
	assert_int_equal(fo_pipeline_create(&p, NULL), FO_OK);
	assert_int_equal(fo_pipeline_buffer_process(p, &out, gen_source(&g), 8, &c), FO_OK);
	void *x;
	for (uint64_t i = 0; i < g.n; i++) {
		assert_int_equal(fo_iter_next(out, &x), FO_OK);
		assert_int_equal(((struct rec *)x)->seq, i);
		assert_true(atomic_load(g.pulled) <= i + 1 + 8 + 1);
		fo_iter_release(out, x);
	}
	assert_int_equal(fo_iter_next(out, &x), FO_END);
	fo_iter_close(out);
	fo_pipeline_destroy(p);
	assert_no_children();
	munmap((void *)g.pulled, 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_items_come_from_the_child_in_order_bounded),
	    cmocka_unit_test(test_user_error_and_message_cross_the_boundary),
	    cmocka_unit_test(test_errno_of_a_failing_source_is_kept),
	    cmocka_unit_test(test_a_child_killed_mid_source_fails_naming_the_signal),
	    cmocka_unit_test(test_early_close_kills_a_blocked_child),
	    cmocka_unit_test(test_fd_and_arm_with_poll),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_feed_with_processes),
	    cmocka_unit_test(test_pipeline_stage_in_a_process),
	};
	return cmocka_run_group_tests_name("preload", tests, NULL, NULL);
}

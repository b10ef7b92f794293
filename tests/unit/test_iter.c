/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_iter.c - fanout/iter.h: the three sources (cursor, array, callbacks), every public
 * function and return code, the ownership rule (destructors exactly once, borrowing
 * iterators), error items, and constructors under a failing allocator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

/* ---- a scripted callback source ------------------------------------------------------------ */

typedef struct src_ctx {
	size_t n;    /* items to produce: heap ft_items 0..n-1 */
	size_t i;    /* next one */
	int fail_at; /* >= 0: return fail_code instead of item fail_at */
	int fail_code;
	int fail_errno;       /* errno set with the failure (0: untouched) */
	const char *fail_msg; /* given to fo_fail() with the failure (NULL: none) */
	int closes;           /* close callback calls */
	bool empty_once;      /* return FO_EMPTY once (whatever the deadline) */
	bool null_item;       /* return FO_OK with NULL */
	size_t calls;
	uint64_t last_deadline;
	ft_counter cnt;
} src_ctx;

static int src_next(void *ctx, void **item, uint64_t deadline)
{
	src_ctx *s = ctx;
	s->calls++;
	s->last_deadline = deadline;
	if (s->null_item) {
		*item = NULL;
		return FO_OK;
	}
	if (s->empty_once) {
		s->empty_once = false;
		return FO_EMPTY;
	}
	if (s->fail_at >= 0 && s->i == (size_t)s->fail_at) {
		if (s->fail_errno)
			errno = s->fail_errno;
		if (s->fail_msg)
			return fo_fail(s->fail_code, "%s", s->fail_msg);
		return s->fail_code;
	}
	if (s->i == s->n)
		return FO_END;
	*item = ft_item_new(s->i++);
	return FO_OK;
}

static void src_close(void *ctx)
{
	((src_ctx *)ctx)->closes++;
}

static void src_init(src_ctx *s, size_t n)
{
	memset(s, 0, sizeof(*s));
	s->n = n;
	s->fail_at = -1;
	ft_counter_init(&s->cnt, 0);
}

/* next and close share one ctx, so the destructor reaches the counter through it. */
static void src_item_free(void *item, void *ctx)
{
	ft_item_free(item, &((src_ctx *)ctx)->cnt);
}

static fo_iter *make_src(src_ctx *s)
{
	fo_iter *it = NULL;
	assert_int_equal(fo_iter_from_fn(&it, src_next, src_close, s, src_item_free, s), FO_OK);
	return it;
}

/* ---- array ------------------------------------------------------------------------------------
 */

static void test_array_yields_items_in_order_then_end_sticky(void **state)
{
	(void)state;
	void *items[3] = {ft_tok(0), ft_tok(1), ft_tok(2)};
	fo_iter *it;
	assert_int_equal(fo_iter_from_array(&it, items, 3), FO_OK);
	items[0] = ft_tok(99); /* the pointer array was copied */
	void *x;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(fo_iter_next(it, &x), FO_OK);
		assert_int_equal(ft_seq(x), i);
		fo_iter_release(it, x); /* no destructor: a no-op */
	}
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	assert_int_equal(fo_iter_try_next(it, &x), FO_END);
	assert_int_equal(fo_iter_timed_next(it, &x, 1000), FO_END);
	assert_false(fo_iter_borrows(it));
	assert_null(fo_iter_item_free(it, NULL));
	assert_null(fo_iter_error(it));
	fo_iter_close(it);
}

static void test_array_invalid_arguments(void **state)
{
	(void)state;
	void *items[2] = {ft_tok(0), NULL};
	fo_iter *it = NULL;
	assert_int_equal(fo_iter_from_array(NULL, items, 1), FO_EINVAL);
	assert_int_equal(fo_iter_from_array(&it, NULL, 1), FO_EINVAL);
	assert_int_equal(fo_iter_from_array(&it, items, 2), FO_EINVAL); /* NULL item */
	assert_null(it);
	assert_int_equal(fo_iter_from_array(&it, NULL, 0), FO_OK); /* empty */
	void *x;
	assert_int_equal(fo_iter_try_next(it, &x), FO_END);
	fo_iter_close(it);
}

static void test_null_iterator_calls(void **state)
{
	(void)state;
	void *x;
	fo_iter *it;
	assert_int_equal(fo_iter_next(NULL, &x), FO_EINVAL);
	assert_int_equal(fo_iter_try_next(NULL, &x), FO_EINVAL);
	assert_int_equal(fo_iter_timed_next(NULL, &x, 0), FO_EINVAL);
	assert_int_equal(fo_iter_from_array(&it, NULL, 0), FO_OK);
	assert_int_equal(fo_iter_next(it, NULL), FO_EINVAL);
	assert_int_equal(fo_iter_try_next(it, NULL), FO_EINVAL);
	assert_int_equal(fo_iter_timed_next(it, NULL, 0), FO_EINVAL);
	assert_int_equal(fo_iter_timed_next(it, &x, -1), FO_END); /* negative: no limit */
	assert_int_equal(fo_iter_fd(it), FO_EINVAL);              /* arrays have no readiness */
	assert_int_equal(fo_iter_arm(it), FO_EINVAL);
	fo_iter_close(it);
	fo_iter_close(NULL);
	fo_iter_close_item(NULL, NULL);
	fo_iter_release(NULL, ft_tok(1));
	assert_false(fo_iter_borrows(NULL));
	assert_false(fo_iter_emits_errors(NULL));
	assert_false(fo_iter_is_error(NULL));
	assert_null(fo_iter_error(NULL));
	assert_int_equal(fo_iter_lagged(NULL), 0);
	void *ctx = (void *)1;
	assert_null(fo_iter_item_free(NULL, &ctx));
	assert_null(ctx);
	assert_int_equal(fo_iter_fd(NULL), FO_EINVAL);
	assert_int_equal(fo_iter_arm(NULL), FO_EINVAL);
	fo_error_item_free(NULL);
}

/* ---- callback source ----------------------------------------------------------------------- */

static void test_fn_source_items_end_close_once(void **state)
{
	(void)state;
	src_ctx s;
	src_init(&s, 3);
	fo_iter *it = make_src(&s);
	void *ctx;
	assert_ptr_equal(fo_iter_item_free(it, &ctx), src_item_free);
	assert_ptr_equal(ctx, &s);
	void *x;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(fo_iter_next(it, &x), FO_OK);
		assert_int_equal(((ft_item *)x)->seq, i);
		assert_int_equal(s.last_deadline, UINT64_MAX);
		fo_iter_release(it, x);
	}
	assert_int_equal(ft_freed(&s.cnt), 3);
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	size_t calls = s.calls;
	assert_int_equal(fo_iter_next(it, &x), FO_END); /* sticky: the source is not asked */
	assert_int_equal(s.calls, calls);
	assert_int_equal(s.closes, 0);
	fo_iter_close(it);
	assert_int_equal(s.closes, 1);
}

static void test_fn_source_error_is_sticky_with_code(void **state)
{
	(void)state;
	src_ctx s;
	src_init(&s, 5);
	s.fail_at = 2;
	s.fail_code = 42;
	fo_iter *it = make_src(&s);
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_OK);
	fo_iter_release(it, x);
	assert_int_equal(fo_iter_next(it, &x), FO_OK);
	fo_iter_release(it, x);
	assert_null(fo_iter_error(it));
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	const fo_error *e = fo_iter_error(it);
	assert_non_null(e);
	assert_int_equal(e->code, 42);
	assert_non_null(e->message);
	size_t calls = s.calls;
	assert_int_equal(fo_iter_try_next(it, &x), FO_FAILED);
	assert_int_equal(fo_iter_timed_next(it, &x, 10), FO_FAILED);
	assert_int_equal(s.calls, calls);
	fo_iter_close(it);
	assert_int_equal(ft_freed(&s.cnt), 2);
}

static void test_fn_source_null_item_fails_einval(void **state)
{
	(void)state;
	src_ctx s;
	src_init(&s, 5);
	s.null_item = true;
	fo_iter *it = make_src(&s);
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, FO_EINVAL);
	fo_iter_close(it);
}

static void test_fn_source_try_and_timed_pass_deadlines(void **state)
{
	(void)state;
	src_ctx s;
	src_init(&s, 5);
	fo_iter *it = make_src(&s);
	void *x;
	s.empty_once = true;
	assert_int_equal(fo_iter_try_next(it, &x), FO_EMPTY);
	assert_int_equal(s.last_deadline, 0);
	s.empty_once = true;
	assert_int_equal(fo_iter_timed_next(it, &x, 0), FO_TIMEDOUT); /* EMPTY maps to TIMEDOUT */
	s.empty_once = true;
	uint64_t before = (uint64_t)ft_now_ns();
	assert_int_equal(fo_iter_timed_next(it, &x, FT_MS(50)), FO_TIMEDOUT);
	assert_true(s.last_deadline >= before + (uint64_t)FT_MS(50));
	assert_int_equal(fo_iter_try_next(it, &x), FO_OK); /* nothing was lost */
	assert_int_equal(((ft_item *)x)->seq, 0);
	fo_iter_release(it, x);
	fo_iter_close(it);
}

static void test_fn_source_empty_on_blocking_read_fails(void **state)
{
	(void)state;
	src_ctx s;
	src_init(&s, 5);
	s.empty_once = true;
	fo_iter *it = make_src(&s);
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, FO_EINVAL);
	fo_iter_close(it);
}

static void test_fn_invalid_arguments(void **state)
{
	(void)state;
	fo_iter *it = NULL;
	assert_int_equal(fo_iter_from_fn(NULL, src_next, NULL, NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_iter_from_fn(&it, NULL, NULL, NULL, NULL, NULL), FO_EINVAL);
	assert_null(it);
}

/* ---- cursor source -------------------------------------------------------------------------- */

static void *copy_item(const void *item, void *ctx)
{
	(void)ctx;
	return ft_item_new(ft_seq(item));
}

static void *copy_fail(const void *item, void *ctx)
{
	(void)item;
	(void)ctx;
	return NULL;
}

static void test_cursor_borrowing_iterator(void **state)
{
	(void)state;
	ft_counter cnt;
	ft_counter_init(&cnt, 0);
	fo_stream_opts o = ft_opts(&cnt);
	fo_stream *s;
	fo_cursor *c;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_iter *it;
	assert_int_equal(fo_iter_from_cursor(&it, c, NULL, NULL, NULL), FO_OK);
	assert_true(fo_iter_borrows(it));
	assert_null(fo_iter_item_free(it, NULL));
	void *x;
	assert_int_equal(fo_iter_try_next(it, &x), FO_EMPTY);
	assert_int_equal(fo_iter_timed_next(it, &x, 0), FO_TIMEDOUT);
	assert_int_equal(fo_iter_timed_next(it, &x, FT_MS(5)), FO_TIMEDOUT);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
	fo_stream_close(s);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(fo_iter_next(it, &x), FO_OK);
		assert_int_equal(ft_seq(x), i);
		fo_iter_release(it, x); /* borrowing: no-op, the stream frees */
	}
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	assert_int_equal(fo_iter_try_next(it, &x), FO_END);
	fo_iter_close(it); /* closes the cursor */
	fo_stream_destroy(s);
	assert_int_equal(ft_freed(&cnt), 4);
}

static void test_cursor_copying_iterator_owns_copies(void **state)
{
	(void)state;
	ft_counter scnt, ccnt;
	ft_counter_init(&scnt, 0);
	ft_counter_init(&ccnt, 0);
	fo_stream_opts o = ft_opts(&scnt);
	fo_stream *s;
	fo_cursor *c;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_iter *it;
	assert_int_equal(fo_iter_from_cursor(NULL, c, NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_iter_from_cursor(&it, NULL, NULL, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_iter_from_cursor(&it, c, NULL, ft_item_free, &ccnt), FO_EINVAL);
	assert_int_equal(fo_iter_from_cursor(&it, c, copy_item, ft_item_free, &ccnt), FO_OK);
	assert_false(fo_iter_borrows(it));
	void *keep[3];
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(fo_iter_next(it, &keep[i]), FO_OK);
		assert_true(ft_item_ok(keep[i]));
	}
	fo_iter_close(it);
	fo_stream_destroy(s);
	/* The copies outlive the cursor and the stream: they are ours. */
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(((ft_item *)keep[i])->seq, i);
		ft_item_free(keep[i], &ccnt);
	}
	assert_int_equal(ft_freed(&scnt), 3);
	assert_int_equal(ft_freed(&ccnt), 3);
}

static void test_cursor_copy_failure_fails_enomem(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_iter *it;
	assert_int_equal(fo_iter_from_cursor(&it, c, copy_fail, NULL, NULL), FO_OK);
	assert_int_equal(fo_stream_push(s, ft_tok(0)), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, FO_ENOMEM);
	fo_iter_close(it);
	fo_stream_destroy(s);
}

static void test_cursor_stream_failure_carries_code_and_message(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_iter *it;
	assert_int_equal(fo_iter_from_cursor(&it, c, NULL, NULL, NULL), FO_OK);
	assert_int_equal(fo_stream_push(s, ft_tok(0)), FO_OK);
	assert_int_equal(fo_stream_fail(s, 77, "disk on fire"), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_OK); /* the item before the error */
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, 77);
	assert_string_equal(fo_iter_error(it)->message, "disk on fire");
	fo_stream_destroy(s);
	assert_string_equal(fo_iter_error(it)->message, "disk on fire"); /* a copy */
	fo_iter_close(it);
}

static void test_cursor_passive_lap_is_absorbed_and_counted(void **state)
{
	(void)state;
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.passive_window = 1;
	fo_stream *s;
	fo_cursor *a, *p;
	assert_int_equal(fo_stream_create(&s, &o), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &a, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_cursor_fork(a, &p, FO_PASSIVE), FO_OK);
	fo_iter *it;
	assert_int_equal(fo_iter_from_cursor(&it, p, NULL, NULL, NULL), FO_OK);
	size_t n = 256 * 8;
	void *x;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(fo_stream_push(s, ft_tok(i)), FO_OK);
		assert_int_equal(fo_cursor_next(a, &x), FO_OK);
	}
	fo_stream_close(s);
	size_t got = 0, last = 0;
	int rc;
	while ((rc = fo_iter_next(it, &x)) == FO_OK) {
		if (got)
			assert_true(ft_seq(x) > last);
		last = ft_seq(x);
		got++;
	}
	assert_int_equal(rc, FO_END); /* never FO_LAGGED */
	assert_true(fo_iter_lagged(it) > 0);
	assert_int_equal(got + fo_iter_lagged(it), n);
	fo_iter_close(it);
	fo_cursor_close(a);
	fo_stream_destroy(s);
}

static void test_cursor_fd_and_arm(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_iter *it;
	assert_int_equal(fo_iter_from_cursor(&it, c, NULL, NULL, NULL), FO_OK);
	assert_true(fo_iter_fd(it) >= 0);
	assert_int_equal(fo_iter_arm(it), 0);
	assert_int_equal(fo_stream_push(s, ft_tok(0)), FO_OK);
	assert_int_equal(fo_iter_arm(it), 1);
	fo_iter_close(it);
	fo_stream_destroy(s);
}

/* ---- failing allocator ----------------------------------------------------------------------- */

static ft_failalloc fa;

static void test_constructors_under_failing_allocator(void **state)
{
	(void)state;
	ft_failalloc_init(&fa);
	ft_failalloc_install(&fa);
	void *items[2] = {ft_tok(0), ft_tok(1)};
	for (long k = 1; k < 4; k++) {
		fo_iter *it = NULL;
		ft_failalloc_arm(&fa, k);
		int rc = fo_iter_from_array(&it, items, 2);
		if (rc == FO_OK)
			fo_iter_close(it);
		else
			assert_int_equal(rc, FO_ENOMEM);
		src_ctx s;
		src_init(&s, 1);
		ft_failalloc_arm(&fa, k);
		rc = fo_iter_from_fn(&it, src_next, src_close, &s, src_item_free, &s);
		if (rc == FO_OK)
			fo_iter_close(it);
		else
			assert_int_equal(rc, FO_ENOMEM);
		assert_int_equal(s.closes, rc == FO_OK ? 1 : 0); /* close not called on failure */
	}
	ft_failalloc_arm(&fa, 0);
	assert_int_equal(atomic_load(&fa.live), 0);
	fo_set_allocator(NULL);
}

/* ---- a callback's errno reaches the reader (issue 12, bug 4) ------------------------------ */

/* FO_ESYS with errno = EIO at item 2 of a callback source (with fo_fail(@msg) if not NULL). */
static fo_iter *make_eio_src(src_ctx *s, const char *msg)
{
	src_init(s, 5);
	s->fail_at = 2;
	s->fail_code = FO_ESYS;
	s->fail_errno = EIO;
	s->fail_msg = msg;
	return make_src(s);
}

/* Reads @n items, then expects FO_FAILED {FO_ESYS, EIO, @msg}. */
static void expect_eio_after(fo_iter *it, size_t n, const char *msg)
{
	void *x;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(fo_iter_next(it, &x), FO_OK);
		fo_iter_release(it, x);
	}
	errno = 0;
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	const fo_error *e = fo_iter_error(it);
	assert_int_equal(e->code, FO_ESYS);
	assert_int_equal(e->sys_errno, EIO);
	assert_string_equal(e->message, msg);
}

static void test_callback_errno_dropped_fn_source(void **state)
{
	(void)state;
	for (int with_msg = 0; with_msg <= 1; with_msg++) {
		src_ctx s;
		fo_iter *it = make_eio_src(&s, with_msg ? "disk 3: read error" : NULL);
		expect_eio_after(it, 2, with_msg ? "disk 3: read error" : fo_strerror(FO_ESYS));
		fo_iter_close(it);
		assert_int_equal(ft_freed(&s.cnt), 2);
	}
	/* A user code; a stale message from outside the call is not taken. */
	src_ctx s;
	src_init(&s, 5);
	s.fail_at = 1;
	s.fail_code = FO_USER(7);
	fo_fail(FO_USER(7), "stale");
	fo_iter *it = make_src(&s);
	void *x;
	assert_int_equal(fo_iter_next(it, &x), FO_OK);
	fo_iter_release(it, x);
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, FO_USER(7));
	assert_int_equal(fo_iter_error(it)->sys_errno, 0);
	assert_string_equal(fo_iter_error(it)->message, fo_strerror(FO_USER(7)));
	fo_iter_close(it);
	assert_int_equal(ft_freed(&s.cnt), 1);
}

/* ctx non-NULL: fail with fo_fail(ctx). */
static int map_eio(void *ctx, void *in, void **out)
{
	if (((ft_item *)in)->seq == 1) {
		errno = EIO;
		return ctx ? fo_fail(FO_ESYS, "%s", (const char *)ctx) : FO_ESYS;
	}
	*out = in;
	return FO_OK;
}

static int filter_eio(void *ctx, const void *in)
{
	if (((const ft_item *)in)->seq == 1) {
		errno = EIO;
		return ctx ? fo_fail(FO_ESYS, "%s", (const char *)ctx) : FO_ESYS;
	}
	return 1;
}

static int map_filter_eio(void *ctx, void *in, fo_emit_fn emit, void *emit_ctx)
{
	if (((ft_item *)in)->seq == 1) {
		errno = EIO;
		return ctx ? fo_fail(FO_ESYS, "%s", (const char *)ctx) : FO_ESYS;
	}
	return emit(emit_ctx, in);
}

static void test_callback_errno_dropped_map_filter_map_filter(void **state)
{
	(void)state;
	for (int kind = 0; kind < 6; kind++) {
		char *msg = kind >= 3 ? "callback: EIO on item 1" : NULL;
		src_ctx s;
		src_init(&s, 5);
		fo_adapt_opts o;
		fo_adapt_opts_init(&o);
		o.item_free = src_item_free;
		o.item_free_ctx = &s;
		fo_iter *m;
		if (kind % 3 == 0) {
			assert_int_equal(fo_map(&m, make_src(&s), map_eio, msg, &o), FO_OK);
			expect_eio_after(m, 1, msg ? msg : "map callback failed");
		} else if (kind % 3 == 1) {
			assert_int_equal(fo_filter(&m, make_src(&s), filter_eio, msg, &o), FO_OK);
			expect_eio_after(m, 1, msg ? msg : "filter callback failed");
		} else {
			assert_int_equal(fo_map_filter(&m, make_src(&s), map_filter_eio, msg, &o),
			                 FO_OK);
			expect_eio_after(m, 1, msg ? msg : "map_filter callback failed");
		}
		fo_iter_close(m);
		assert_int_equal(ft_freed(&s.cnt), s.i);
	}
	/* EMIT: the error item carries it too. */
	src_ctx s;
	src_init(&s, 3);
	fo_adapt_opts o;
	fo_adapt_opts_init(&o);
	o.on_error = FO_ERR_EMIT;
	o.item_free = src_item_free;
	o.item_free_ctx = &s;
	fo_iter *m;
	assert_int_equal(fo_map(&m, make_src(&s), map_eio, "emitted", &o), FO_OK);
	void *x;
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	fo_iter_release(m, x);
	assert_int_equal(fo_iter_next(m, &x), FO_OK);
	assert_true(fo_iter_is_error(m));
	assert_int_equal(((fo_error_item *)x)->err.sys_errno, EIO);
	assert_string_equal(((fo_error_item *)x)->err.message, "emitted");
	fo_error_item_free(x); /* frees the input too */
	fo_iter_close(m);
	assert_int_equal(ft_freed(&s.cnt), 2);
}

static int yield_once(void *ctx, void **item, uint64_t deadline)
{
	(void)deadline;
	fo_iter **slot = ctx;
	if (!*slot)
		return FO_END;
	*item = *slot;
	*slot = NULL;
	return FO_OK;
}

static void test_callback_errno_dropped_flatten(void **state)
{
	(void)state;
	src_ctx s;
	fo_iter *inner = make_eio_src(&s, "inner: EIO"), *outer, *f;
	assert_int_equal(
	    fo_iter_from_fn(&outer, yield_once, NULL, &inner, fo_iter_close_item, NULL), FO_OK);
	fo_adapt_opts o;
	fo_adapt_opts_init(&o);
	o.item_free = src_item_free;
	o.item_free_ctx = &s;
	assert_int_equal(fo_flatten(&f, outer, &o), FO_OK);
	expect_eio_after(f, 2, "inner: EIO");
	fo_iter_close(f);
	assert_int_equal(ft_freed(&s.cnt), 2);
	assert_int_equal(s.closes, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_constructors_under_failing_allocator),
	    cmocka_unit_test(test_array_yields_items_in_order_then_end_sticky),
	    cmocka_unit_test(test_array_invalid_arguments),
	    cmocka_unit_test(test_null_iterator_calls),
	    cmocka_unit_test(test_fn_source_items_end_close_once),
	    cmocka_unit_test(test_fn_source_error_is_sticky_with_code),
	    cmocka_unit_test(test_fn_source_null_item_fails_einval),
	    cmocka_unit_test(test_fn_source_try_and_timed_pass_deadlines),
	    cmocka_unit_test(test_fn_source_empty_on_blocking_read_fails),
	    cmocka_unit_test(test_fn_invalid_arguments),
	    cmocka_unit_test(test_cursor_borrowing_iterator),
	    cmocka_unit_test(test_cursor_copying_iterator_owns_copies),
	    cmocka_unit_test(test_cursor_copy_failure_fails_enomem),
	    cmocka_unit_test(test_cursor_stream_failure_carries_code_and_message),
	    cmocka_unit_test(test_cursor_passive_lap_is_absorbed_and_counted),
	    cmocka_unit_test(test_cursor_fd_and_arm),
	    cmocka_unit_test(test_callback_errno_dropped_fn_source),
	    cmocka_unit_test(test_callback_errno_dropped_map_filter_map_filter),
	    cmocka_unit_test(test_callback_errno_dropped_flatten),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

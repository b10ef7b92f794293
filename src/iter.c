/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * iter.c - the common part of every fo_iter (sticky ends, errors, deadline
 * mapping) and the three sources: cursor, array, callbacks.
 */
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "iter_impl.h"

/* ------------------------------------------------------------------------ */
/* Common part                                                               */

void fo__iter_init(fo_iter *it, const struct fo__iter_vt *vt, fo_item_free_fn item_free,
                   void *item_ctx)
{
	memset(it, 0, sizeof(*it));
	it->vt = vt;
	it->item_free = item_free;
	it->item_ctx = item_free ? item_ctx : NULL;
}

void fo__iter_fini(fo_iter *it)
{
	fo__free(it->err_msg);
	it->err_msg = NULL;
}

int fo__iter_fail(fo_iter *it, int code, int sys_errno, const char *msg)
{
	if (it->err.code) /* the first error wins */
		return FO_FAILED;
	it->err.code = code ? code : FO_FAILED;
	it->err.sys_errno = sys_errno;
	it->err_msg = msg ? fo__strdup(msg) : NULL;
	/* No copy (none asked, or no memory): the static text of the code. */
	it->err.message = it->err_msg ? it->err_msg : fo_strerror(it->err.code);
	return FO_FAILED;
}

int fo__iter_fail_from(fo_iter *it, const fo_error *e)
{
	if (!e)
		return fo__iter_fail(it, FO_FAILED, 0, NULL);
	return fo__iter_fail(it, e->code, e->sys_errno, e->message);
}

int fo__iter_fail_cb(fo_iter *it, int code)
{
	fo_error e;
	char *owned;
	fo__cb_capture(code, &e, &owned);
	fo__iter_fail_from(it, &e); /* copies the message */
	fo__free(owned);
	return FO_FAILED;
}

int fo__iter_pull(fo_iter *src, void **item, uint64_t deadline, bool *is_err)
{
	if (src->done)
		return src->done;
	src->last_err = false;
	int rc = src->vt->next(src, item, deadline);
	switch (rc) {
	case FO_OK:
		break;
	case FO_END:
		src->done = FO_END;
		break;
	case FO_EMPTY:
	case FO_TIMEDOUT:
		if (deadline == FO__NO_DEADLINE) {
			/* A blocking read must not come back empty-handed. */
			rc = fo__iter_fail(src, FO_EINVAL, 0,
			                   "source returned nothing to a blocking read");
			src->done = FO_FAILED;
		}
		break;
	default:
		fo__iter_fail(src, rc, 0, NULL); /* keeps an error recorded first */
		src->done = rc = FO_FAILED;
		break;
	}
	if (is_err)
		*is_err = rc == FO_OK && src->last_err;
	return rc;
}

fo_error_item *fo__error_item_new(const fo_error *e, void *input, fo_item_free_fn input_free,
                                  void *input_ctx)
{
	const char *msg = e->message ? e->message : fo_strerror(e->code);
	size_t len = strlen(msg) + 1;
	fo_error_item *ei = fo__alloc(sizeof(*ei) + len);
	if (!ei)
		return NULL;
	char *copy = (char *)(ei + 1);
	memcpy(copy, msg, len);
	ei->err.code = e->code;
	ei->err.sys_errno = e->sys_errno;
	ei->err.message = copy;
	ei->input = input;
	ei->input_free = input_free;
	ei->input_ctx = input_ctx;
	return ei;
}

int fo__iter_apply_policy(fo_iter *it, fo_error_policy policy, fo_iter *src, const fo_error *e,
                          void *in, void **item)
{
	switch (policy) {
	case FO_ERR_DROP:
		fo_iter_release(src, in);
		return FO_EMPTY;
	case FO_ERR_EMIT: {
		fo_error_item *ei =
		    fo__error_item_new(e, in, in ? src->item_free : NULL, src->item_ctx);
		if (!ei) {
			fo_iter_release(src, in);
			return fo__iter_fail(it, FO_ENOMEM, 0, "no memory for an error item");
		}
		*item = ei;
		it->last_err = true;
		return FO_OK;
	}
	case FO_ERR_STOP:
	default:
		/* The error is recorded (message copied) before @in, which it may
		 * describe, is released. */
		fo__iter_fail_from(it, e);
		fo_iter_release(src, in);
		return FO_FAILED;
	}
}

void fo_error_item_free(fo_error_item *e)
{
	if (!e)
		return;
	if (e->input && e->input_free)
		e->input_free(e->input, e->input_ctx);
	fo__free(e); /* the message lives in the same block */
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                              */

int fo_iter_next(fo_iter *it, void **item)
{
	if (!it || !item)
		return FO_EINVAL;
	return fo__iter_pull(it, item, FO__NO_DEADLINE, NULL);
}

int fo_iter_try_next(fo_iter *it, void **item)
{
	if (!it || !item)
		return FO_EINVAL;
	int rc = fo__iter_pull(it, item, 0, NULL);
	return rc == FO_TIMEDOUT ? FO_EMPTY : rc;
}

int fo_iter_timed_next(fo_iter *it, void **item, int64_t timeout_ns)
{
	if (!it || !item)
		return FO_EINVAL;
	int rc = fo__iter_pull(it, item, fo__iter_deadline(timeout_ns), NULL);
	return rc == FO_EMPTY ? FO_TIMEDOUT : rc;
}

void fo_iter_release(fo_iter *it, void *item)
{
	if (it && item && it->item_free)
		it->item_free(item, it->item_ctx);
}

void fo_iter_close(fo_iter *it)
{
	if (it)
		it->vt->close(it);
}

bool fo_iter_borrows(const fo_iter *it)
{
	return it && it->borrows;
}

bool fo_iter_emits_errors(const fo_iter *it)
{
	return it && it->emits_errors;
}

bool fo_iter_is_error(const fo_iter *it)
{
	return it && it->last_err;
}

const fo_error *fo_iter_error(const fo_iter *it)
{
	return it && it->done == FO_FAILED ? &it->err : NULL;
}

uint64_t fo_iter_lagged(const fo_iter *it)
{
	return it ? it->lagged : 0;
}

fo_item_free_fn fo_iter_item_free(const fo_iter *it, void **ctx)
{
	if (ctx)
		*ctx = it ? it->item_ctx : NULL;
	return it ? it->item_free : NULL;
}

void fo_iter_close_item(void *item, void *ctx)
{
	(void)ctx;
	fo_iter_close(item);
}

int fo_iter_fd(fo_iter *it)
{
	if (!it || !it->vt->fd)
		return FO_EINVAL;
	return it->vt->fd(it);
}

int fo_iter_arm(fo_iter *it)
{
	if (!it || !it->vt->arm)
		return FO_EINVAL;
	if (it->done) /* sticky END / FAILED: always ready */
		return 1;
	return it->vt->arm(it);
}

int fo__iter_watch(fo_iter *src, void (*fn)(void *arg), void *arg)
{
	if (!src || !src->vt->watch)
		return FO_EINVAL;
	return src->vt->watch(src, fn, arg);
}

/* ------------------------------------------------------------------------ */
/* Wakers (see iter_impl.h)                                                  */

void fo__waker_init(struct fo__waker *w)
{
	w->efd = -1;
	w->fn = NULL;
	w->arg = NULL;
	atomic_init(&w->armed, 0);
	atomic_init(&w->busy, 0);
}

void fo__waker_fini(struct fo__waker *w)
{
	if (w->efd >= 0)
		close(w->efd);
	w->efd = -1;
}

int fo__waker_fd(struct fo__waker *w)
{
	if (w->fn)
		return FO_EINVAL;
	if (w->efd < 0) {
		/* No signal can run yet: nothing is armed before the first fd/watch. */
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			return FO_ESYS;
		w->efd = fd;
	}
	return w->efd;
}

void fo__waker_stop(struct fo__waker *w)
{
	/* Disarm, then wait out a signal in flight (it counted itself in busy
	 * before its CAS, seq_cst both sides), so none runs after this. */
	atomic_store_explicit(&w->armed, 0, memory_order_seq_cst);
	while (atomic_load_explicit(&w->busy, memory_order_seq_cst))
		sched_yield();
}

int fo__waker_watch(struct fo__waker *w, void (*fn)(void *arg), void *arg)
{
	if (w->efd >= 0)
		return FO_EINVAL;
	fo__waker_stop(w); /* no signal runs with a half-changed hook */
	w->fn = fn;
	w->arg = arg;
	return FO_OK;
}

int fo__waker_prepare(struct fo__waker *w)
{
	if (w->efd < 0 && !w->fn)
		return FO_EINVAL;
	if (w->efd >= 0) {
		uint64_t v; /* consume earlier signals: quiet until the next one */
		ssize_t r = read(w->efd, &v, sizeof(v));
		(void)r;
	}
	atomic_store_explicit(&w->armed, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst); /* armed before the re-check */
	return FO_OK;
}

void fo__waker_cancel(struct fo__waker *w)
{
	uint32_t exp = 1; /* if a publisher won, the signal is merely spurious */
	atomic_compare_exchange_strong_explicit(&w->armed, &exp, 0, memory_order_relaxed,
	                                        memory_order_relaxed);
}

void fo__waker_signal(struct fo__waker *w)
{
	atomic_thread_fence(memory_order_seq_cst); /* the change before the armed check */
	if (!atomic_load_explicit(&w->armed, memory_order_relaxed))
		return; /* nobody armed: one load */
	atomic_fetch_add_explicit(&w->busy, 1, memory_order_seq_cst);
	uint32_t exp = 1;
	/* acquire: efd / fn were set before the arm that stored 1. */
	if (atomic_compare_exchange_strong_explicit(&w->armed, &exp, 0, memory_order_seq_cst,
	                                            memory_order_relaxed)) {
		if (w->efd >= 0) {
			uint64_t one = 1;
			ssize_t r = write(w->efd, &one, sizeof(one));
			(void)r;
		} else if (w->fn) {
			w->fn(w->arg);
		}
	}
	atomic_fetch_sub_explicit(
	    &w->busy, 1,
	    memory_order_release); /* release: our signal is done before close sees 0 */
}

/* ------------------------------------------------------------------------ */
/* Cursor source                                                             */

struct cursor_iter {
	fo_iter it;
	fo_cursor *c;
	fo_item_copy_fn copy;
	void *ctx;
};

int fo__cursor_read_until(fo_cursor *c, void **item, uint64_t deadline)
{
	if (deadline == 0)
		return fo_cursor_try_next(c, item);
	if (deadline == FO__NO_DEADLINE)
		return fo_cursor_next(c, item);
	int64_t left = fo__remaining(deadline);
	if (left == 0) {
		int rc = fo_cursor_try_next(c, item);
		return rc == FO_EMPTY ? FO_TIMEDOUT : rc;
	}
	return fo_cursor_timed_next(c, item, left);
}

int fo__iter_cursor_read(fo_iter *it, fo_cursor *c, fo_item_copy_fn copy, void *ctx,
                         int (*read)(fo_cursor *c, void **raw, uint64_t deadline, void *arg),
                         void *arg, void **item, uint64_t deadline)
{
	void *raw;
	int rc;
	uint64_t before = fo_cursor_lagged(c);
	/* A lap is not an end: continue at the oldest retained item. */
	while ((rc = read(c, &raw, deadline, arg)) == FO_LAGGED)
		;
	it->lagged += fo_cursor_lagged(c) - before;
	if (rc == FO_FAILED)
		return fo__iter_fail_from(it, fo_cursor_error(c));
	if (rc != FO_OK)
		return rc;
	if (copy) {
		void *dup = copy(raw, ctx);
		if (!dup)
			return fo__iter_fail(it, FO_ENOMEM, 0, "item copy failed");
		raw = dup;
	}
	*item = raw;
	return FO_OK;
}

static int cursor_read_cb(fo_cursor *c, void **raw, uint64_t deadline, void *arg)
{
	(void)arg;
	return fo__cursor_read_until(c, raw, deadline);
}

static int cursor_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct cursor_iter *ci = (struct cursor_iter *)it;
	return fo__iter_cursor_read(it, ci->c, ci->copy, ci->ctx, cursor_read_cb, NULL, item,
	                            deadline);
}

static void cursor_close(fo_iter *it)
{
	struct cursor_iter *ci = (struct cursor_iter *)it;
	fo_cursor_close(ci->c);
	fo__iter_fini(it);
	fo__free(ci);
}

static int cursor_fd(fo_iter *it)
{
	return fo_cursor_fd(((struct cursor_iter *)it)->c);
}

static int cursor_arm(fo_iter *it)
{
	return fo_cursor_arm(((struct cursor_iter *)it)->c);
}

static int cursor_watch(fo_iter *it, void (*fn)(void *arg), void *arg)
{
	return fo_cursor_set_notify(((struct cursor_iter *)it)->c, fn, arg);
}

static const struct fo__iter_vt cursor_vt = {
    .name = "cursor",
    .next = cursor_next,
    .close = cursor_close,
    .fd = cursor_fd,
    .arm = cursor_arm,
    .watch = cursor_watch,
};

int fo_iter_from_cursor(fo_iter **it, fo_cursor *c, fo_item_copy_fn copy, fo_item_free_fn copy_free,
                        void *ctx)
{
	if (!it || !c || (!copy && copy_free))
		return FO_EINVAL;
	struct cursor_iter *ci = fo__alloc(sizeof(*ci));
	if (!ci)
		return FO_ENOMEM;
	fo__iter_init(&ci->it, &cursor_vt, copy_free, ctx);
	ci->it.borrows = copy == NULL;
	ci->c = c;
	ci->copy = copy;
	ci->ctx = ctx;
	*it = &ci->it;
	return FO_OK;
}

fo_cursor *fo__iter_cursor(fo_iter *it)
{
	return it && it->vt == &cursor_vt ? ((struct cursor_iter *)it)->c : NULL;
}

/* ------------------------------------------------------------------------ */
/* Array source                                                              */

struct array_iter {
	fo_iter it;
	size_t n, i;
	void *items[];
};

static int array_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct array_iter *ai = (struct array_iter *)it;
	(void)deadline;
	if (ai->i == ai->n)
		return FO_END;
	*item = ai->items[ai->i++];
	return FO_OK;
}

static void array_close(fo_iter *it)
{
	fo__iter_fini(it);
	fo__free(it);
}

static const struct fo__iter_vt array_vt = {
    .name = "array",
    .next = array_next,
    .close = array_close,
};

int fo_iter_from_array(fo_iter **it, void *const *items, size_t n)
{
	if (!it || (!items && n))
		return FO_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!items[i])
			return FO_EINVAL;
	if (n > (SIZE_MAX - sizeof(struct array_iter)) / sizeof(void *))
		return FO_ENOMEM;
	struct array_iter *ai = fo__alloc(sizeof(*ai) + n * sizeof(void *));
	if (!ai)
		return FO_ENOMEM;
	fo__iter_init(&ai->it, &array_vt, NULL, NULL);
	ai->n = n;
	ai->i = 0;
	if (n)
		memcpy(ai->items, items, n * sizeof(void *));
	*it = &ai->it;
	return FO_OK;
}

/* ------------------------------------------------------------------------ */
/* Callback source                                                           */

struct fn_iter {
	fo_iter it;
	fo_iter_next_fn next;
	void (*close)(void *ctx);
	void *ctx;
};

static int fn_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct fn_iter *fi = (struct fn_iter *)it;
	void *out = NULL;
	fo__cb_begin();
	int rc = fi->next(fi->ctx, &out, deadline);
	if (fo__unlikely(fo__iter_cb_failed(rc)))
		return fo__iter_fail_cb(it, rc); /* errno and message: before anything else */
	if (rc == FO_OK && !out)
		return fo__iter_fail(it, FO_EINVAL, 0, "source returned a NULL item");
	if (rc == FO_OK)
		*item = out;
	return rc; /* FO_END / FO_EMPTY / FO_TIMEDOUT: fo__iter_pull maps them */
}

static void fn_close(fo_iter *it)
{
	struct fn_iter *fi = (struct fn_iter *)it;
	if (fi->close)
		fi->close(fi->ctx);
	fo__iter_fini(it);
	fo__free(fi);
}

static const struct fo__iter_vt fn_vt = {
    .name = "fn",
    .next = fn_next,
    .close = fn_close,
};

int fo_iter_from_fn(fo_iter **it, fo_iter_next_fn next, void (*close)(void *ctx), void *ctx,
                    fo_item_free_fn item_free, void *item_ctx)
{
	if (!it || !next)
		return FO_EINVAL;
	struct fn_iter *fi = fo__alloc(sizeof(*fi));
	if (!fi)
		return FO_ENOMEM;
	fo__iter_init(&fi->it, &fn_vt, item_free, item_ctx);
	fi->next = next;
	fi->close = close;
	fi->ctx = ctx;
	*it = &fi->it;
	return FO_OK;
}

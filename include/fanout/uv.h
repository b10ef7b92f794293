/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/uv.h - a header-only libuv adapter: watch a cursor from a libuv loop and get its
 * items in batches.
 *
 * Optional: <fanout/fanout.h> does not include it, and libfanout does not link libuv.
 * Include it after <uv.h> is available (Debian: libuv1-dev) and link libuv yourself
 * (`pkg-config --cflags --libs libuv`).  Needs libuv >= 1.0 (uv_poll_*, uv_idle_*,
 * uv_close; nothing newer).  libuv's <uv.h> needs POSIX declarations (pthread_rwlock_t):
 * under a strict -std=c11 define _POSIX_C_SOURCE (e.g. -D_POSIX_C_SOURCE=200809L) before
 * any include, or compile with -std=gnu11 (the compilers' default); this header stops with
 * an #error saying so otherwise.
 *
 *   static void on_items(fo_uv_watch *w, int status, void **items, size_t n)
 *   {
 *           if (status == FO_OK)
 *                   for (size_t i = 0; i < n; i++) use(items[i]);  // valid until we return
 *           else if (status != FO_LAGGED)                          // FO_END, FO_FAILED, FO_ESYS
 *                   fo_uv_watch_close(w, on_closed);               // the watch has stopped
 *   }
 *   fo_uv_watch w;
 *   fo_uv_watch_init(loop, &w, cursor);
 *   fo_uv_watch_start(&w, on_items);
 *   uv_run(loop, UV_RUN_DEFAULT);
 *
 * How it waits (and why it cannot lose a wake-up).  The watch polls the cursor's readiness
 * descriptor, fo_cursor_fd(), with a uv_poll_t, and follows the protocol of
 * fo_cursor_arm(): read with fo_cursor_next_many() until FO_EMPTY, then arm; 1 means
 * something arrived meanwhile (read again), 0 means the descriptor will poll readable when
 * the next item, the end or a failure is published.  The alternative, a uv_async_t woken by
 * fo_cursor_set_notify() + uv_async_send(), would not lose wake-ups either (libuv runs the
 * async callback at least once after every send), but this adapter uses the descriptor
 * because:
 *   - readiness is kernel state (an eventfd, level-triggered): a signal that arrives while
 *     the watch is stopped, or while the loop is busy elsewhere, stays until the next arm,
 *     so fo_uv_watch_stop()/fo_uv_watch_start() can pause a subscription without any
 *     bookkeeping, and restarting always re-reads first;
 *   - no libuv code runs on producer threads, and there is no ordering trap at teardown
 *     (a notify hook calling uv_async_send() on a handle already closed is a use-after-free
 *     unless the cursor is closed first);
 *   - the producer's cost is the same: one write() per armed -> signalled transition, none
 *     while the watch is busy reading.
 * The watch reads at most FO_UV_BUDGET batches per loop iteration, then yields to the other
 * handles (a uv_idle_t brings it back on the next iteration without waiting for the
 * descriptor), so a fast producer cannot starve the loop.
 *
 * Ownership: the watch does not own the cursor.  The caller keeps the cursor open while the
 * watch is initialised and uses it from the loop thread only; after fo_uv_watch_close()
 * returns the descriptor is out of the loop (libuv stops a poll handle synchronously in
 * uv_close), so the cursor may be closed at once.  The fo_uv_watch memory must stay valid
 * until the close callback runs.
 *
 * Threads: every fo_uv_* call, and the cursor, on the loop's thread.  Producers push from
 * any thread.  Callbacks run on the loop's thread, never inside the fo_uv_* call that
 * started them.
 *
 * Concurrency table: none of the functions below may run concurrently with each other or
 * with uv_run() on the same loop (libuv's own rule); the batch callback may call
 * fo_uv_watch_stop() and fo_uv_watch_close() on its own watch.
 */
#ifndef FANOUT_UV_H
#define FANOUT_UV_H

#include <errno.h>
#include <stddef.h>

#if defined(__STRICT_ANSI__) && !defined(__cplusplus) && !defined(_POSIX_C_SOURCE) && \
    !defined(_XOPEN_SOURCE) && !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#error "<fanout/uv.h>: libuv's <uv.h> needs POSIX: -D_POSIX_C_SOURCE=200809L or -std=gnu11"
#endif

#include <uv.h>

#include <fanout/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Items per fo_cursor_next_many() call (and per batch callback at most). */
#ifndef FO_UV_BATCH
#define FO_UV_BATCH 64
#endif

/** Batches per loop iteration before the watch lets the loop's other handles run. */
#ifndef FO_UV_BUDGET
#define FO_UV_BUDGET 16
#endif

typedef struct fo_uv_watch fo_uv_watch;

/**
 * fo_uv_batch_cb - called on the loop thread with what the cursor had:
 *   FO_OK      @items[0 .. @n-1] (1 <= n <= FO_UV_BATCH), in stream order.  They are valid
 *              until the callback returns (the watch reads the cursor again afterwards).
 *   FO_LAGGED  a passive cursor was lapped (fo_cursor_lagged() counts the skipped items);
 *              the watch goes on reading.  @items NULL, @n 0.
 *   FO_END, FO_FAILED (see fo_cursor_error()), FO_ESYS (the poll failed; errno holds the
 *              libuv error as a positive errno value): final.  The watch has stopped and
 *              calls back no more; call fo_uv_watch_close().  @items NULL, @n 0.
 * The callback may call fo_uv_watch_stop() or fo_uv_watch_close() on @w, never free @w.
 */
typedef void (*fo_uv_batch_cb)(fo_uv_watch *w, int status, void **items, size_t n);

/** fo_uv_close_cb - @w's handles are closed: its memory may be freed now. */
typedef void (*fo_uv_close_cb)(fo_uv_watch *w);

/**
 * fo_uv_watch - caller-allocated watch (embed it or allocate it); @data is the caller's
 * (like a libuv handle's data: set it before or after fo_uv_watch_init(), which leaves it
 * alone).  The other fields are private.
 */
struct fo_uv_watch {
	void *data;
	/* private */
	fo_cursor *cursor;
	fo_uv_batch_cb cb;
	fo_uv_close_cb close_cb;
	uv_poll_t poll;  /* the cursor's descriptor */
	uv_idle_t again; /* brings the watch back after a full budget, or at start */
	unsigned flags;
	int closing; /* handles not closed yet */
	void *batch[FO_UV_BATCH];
};

#define FO_UV__ACTIVE 1u /* started and not stopped: reads and calls back */
#define FO_UV__ENDED  2u /* delivered a final status */
#define FO_UV__CLOSED 4u /* fo_uv_watch_close() was called */

static inline void fo_uv__stop(fo_uv_watch *w)
{
	w->flags &= ~FO_UV__ACTIVE;
	uv_poll_stop(&w->poll);
	uv_idle_stop(&w->again);
}

static inline void fo_uv__on_idle(uv_idle_t *h);

/* Read until the cursor is empty and armed, a final status, the budget, or the callback
 * stopped us. */
static inline void fo_uv__drain(fo_uv_watch *w)
{
	for (int b = 0; b < FO_UV_BUDGET; b++) {
		size_t n = 0;
		int rc;
		if (!(w->flags & FO_UV__ACTIVE))
			return;
		rc = fo_cursor_next_many(w->cursor, w->batch, FO_UV_BATCH, &n);
		if (rc == FO_OK) {
			w->cb(w, FO_OK, w->batch, n);
		} else if (rc == FO_LAGGED) {
			w->cb(w, FO_LAGGED, NULL, 0);
		} else if (rc == FO_EMPTY) {
			/* Read to empty, now arm: 1 = something arrived meanwhile. */
			if (fo_cursor_arm(w->cursor) == 1)
				continue;
			/* Armed: the descriptor polls readable on the next publish. */
			uv_idle_stop(&w->again);
			return;
		} else { /* FO_END, FO_FAILED: sticky, deliver once */
			fo_uv__stop(w);
			w->flags |= FO_UV__ENDED;
			w->cb(w, rc, NULL, 0);
			return;
		}
	}
	/* Budget spent with items left: come back on the next loop iteration (the descriptor
	 * is not armed, so it would stay quiet) - unless the last callback stopped or closed
	 * the watch. */
	if (w->flags & FO_UV__ACTIVE)
		uv_idle_start(&w->again, fo_uv__on_idle);
}

static inline void fo_uv__on_poll(uv_poll_t *h, int status, int events)
{
	fo_uv_watch *w = (fo_uv_watch *)h->data;
	(void)events;
	if (!(w->flags & FO_UV__ACTIVE))
		return;
	if (status < 0) {
		fo_uv__stop(w);
		w->flags |= FO_UV__ENDED;
		errno = -status;
		w->cb(w, FO_ESYS, NULL, 0);
		return;
	}
	fo_uv__drain(w);
}

static inline void fo_uv__on_idle(uv_idle_t *h)
{
	fo_uv__drain((fo_uv_watch *)h->data);
}

static inline void fo_uv__on_closed(uv_handle_t *h)
{
	fo_uv_watch *w = (fo_uv_watch *)h->data;
	if (--w->closing == 0 && w->close_cb)
		w->close_cb(w);
}

/**
 * fo_uv_watch_init() - prepare @w to watch cursor @c on @loop (stopped).
 * Gets the cursor's descriptor (fo_cursor_fd(): the cursor must not have a notify hook).
 * Returns: FO_OK; FO_EINVAL (a NULL argument, or @c has a notify hook); FO_ESYS (no
 * descriptor, or libuv refused it; errno is set).  On failure nothing needs closing.
 * Ownership: @c stays the caller's; @w must stay valid until fo_uv_watch_close()'s
 * callback.  Threads: the loop thread.
 */
static inline int fo_uv_watch_init(uv_loop_t *loop, fo_uv_watch *w, fo_cursor *c)
{
	int fd, r;
	if (!loop || !w || !c)
		return FO_EINVAL;
	fd = fo_cursor_fd(c);
	if (fd < 0)
		return fd;
	w->cursor = c; /* w->data stays the caller's */
	w->cb = NULL;
	w->close_cb = NULL;
	w->flags = 0;
	w->closing = 0;
	/* uv_poll_init() registers nothing when it fails; uv_idle_init() cannot fail. */
	r = uv_poll_init(loop, &w->poll, fd);
	if (r < 0) {
		errno = -r;
		return FO_ESYS;
	}
	(void)uv_idle_init(loop, &w->again);
	w->poll.data = w;
	w->again.data = w;
	return FO_OK;
}

/**
 * fo_uv_watch_start() - start (or resume) delivering batches to @cb.  The first read
 * happens on the next loop iteration (never inside this call), so items that arrived while
 * the watch was stopped are delivered without waiting for a new publish.
 * Returns: FO_OK (also when already started: @cb replaces the callback); FO_EINVAL (@w or
 * @cb NULL, the watch is closed, or it already delivered a final status); FO_ESYS (libuv
 * refused the poll; errno is set).
 * Threads: the loop thread.
 */
static inline int fo_uv_watch_start(fo_uv_watch *w, fo_uv_batch_cb cb)
{
	int r;
	if (!w || !cb || (w->flags & (FO_UV__CLOSED | FO_UV__ENDED)))
		return FO_EINVAL;
	w->cb = cb;
	if (w->flags & FO_UV__ACTIVE)
		return FO_OK;
	r = uv_poll_start(&w->poll, UV_READABLE, fo_uv__on_poll);
	if (r < 0) {
		errno = -r;
		return FO_ESYS;
	}
	uv_idle_start(&w->again, fo_uv__on_idle);
	w->flags |= FO_UV__ACTIVE;
	return FO_OK;
}

/**
 * fo_uv_watch_stop() - stop delivering (no callback after this returns) until the next
 * fo_uv_watch_start().  Publishes meanwhile are not lost: the cursor keeps them, and its
 * descriptor keeps the signal.  The loop no longer counts the watch as active.
 * Returns: FO_OK (also when already stopped); FO_EINVAL (@w NULL or closed).
 * Threads: the loop thread, also from the batch callback.
 */
static inline int fo_uv_watch_stop(fo_uv_watch *w)
{
	if (!w || (w->flags & FO_UV__CLOSED))
		return FO_EINVAL;
	fo_uv__stop(w);
	return FO_OK;
}

/**
 * fo_uv_watch_close() - stop for good and close the watch's libuv handles; @cb (may be
 * NULL) runs on the loop thread once they are closed, after which @w may be freed.  The
 * cursor's descriptor is out of the loop when this returns: the cursor may be closed
 * (fo_cursor_close) right away.  A second call, or NULL @w, is a no-op.
 * Threads: the loop thread, also from the batch callback.
 */
static inline void fo_uv_watch_close(fo_uv_watch *w, fo_uv_close_cb cb)
{
	if (!w || (w->flags & FO_UV__CLOSED))
		return;
	fo_uv__stop(w);
	w->flags |= FO_UV__CLOSED;
	w->close_cb = cb;
	w->closing = 2;
	uv_close((uv_handle_t *)&w->poll, fo_uv__on_closed);
	uv_close((uv_handle_t *)&w->again, fo_uv__on_closed);
}

/** fo_uv_watch_cursor() - the watched cursor (for fo_cursor_lagged(), fo_cursor_error()). */
static inline fo_cursor *fo_uv_watch_cursor(const fo_uv_watch *w)
{
	return w ? w->cursor : NULL;
}

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_UV_H */

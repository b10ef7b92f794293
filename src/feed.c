/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * feed.c - an iterator pumped into a stream.
 *
 * BACKGROUND: one thread: wait for room for one item, then pull, then push.
 * The thread is the stream's only producer, so the room it waited for is
 * still there at its push: the source is read exactly `ahead` items past the
 * slowest active cursor, never one more (no item waits in the thread's hand).
 * ahead = 0: an unbounded stream, room is always there, the source is
 * drained eagerly.  Stopping fails the stream, which wakes the wait for room
 * (FO_ECLOSED) or, in a race, a push (FO_ECLOSED; the item is released).
 *
 * ON_DEMAND: the puller role is a flag under f->mu.  A reader at the end of
 * its cursor takes the role, pulls outside the lock, pushes (or ends the
 * stream), then clears the role, bumps f->gen and broadcasts f->cv.  Readers
 * that found the role taken wait on f->cv for gen to move, then re-read
 * their cursor.  Because every exit path of a pull clears the role and
 * broadcasts, a reader can only wait on a pull that is still running.
 *
 * Lifetime: the handle and every open fo_feed_iter() iterator each hold a
 * reference (f->refs).  fo_feed_destroy() stops pulling (fails the stream,
 * joins the thread, or sets `ended` and waits out a puller, so no pull can
 * start or be running), closes the source and the stream handle, then drops
 * its reference; the last reference frees the rest (mu, cv, mode, flags:
 * all an iterator still touches).  An iterator owned by something the
 * caller tears down later - e.g. a pipeline stage that is another feed's
 * source - may thus be read, even on another thread, after its feed was
 * destroyed: it reads what was pushed, then the stream's end.
 */
#include <string.h>

#include <fanout/feed.h>
#include <fanout/preload.h>

#include "iter_impl.h"

struct fo_feeder {
	fo_iter *src;
	fo_stream *s;
	fo_feed_mode mode;
	size_t ahead; /* BACKGROUND: the stream's capacity (0: unbounded) */
	pthread_t thread;
	bool has_thread;
	bool detached; /* fo_feed(): the thread owns the feed */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* ON_DEMAND: a pull finished (gen moved) */
	bool pulling;      /* under mu: the puller role is taken */
	bool ended;        /* under mu: the stream was closed or failed */
	uint64_t gen;      /* under mu: pulls finished */
	atomic_bool stop;  /* destroy asked the thread to stop */
	_Atomic uint64_t pulled;
	atomic_uint refs; /* the handle (or detached thread) + open fo_feed_iter()s */
};

void fo_feed_opts_init(fo_feed_opts *o)
{
	if (o)
		memset(o, 0, sizeof(*o));
}

/* End the stream with @code even when @msg cannot be copied (then with the
 * code's static text): readers must never wait on a stream nobody will end
 * (found by tests/fault/fault_stress under injected allocation failures). */
static void end_failed(fo_stream *s, int code, const char *msg)
{
	if (fo_stream_fail(s, code, msg) == FO_ENOMEM)
		fo_stream_fail(s, code, NULL);
}

/*
 * Pull one item and publish the outcome in the stream.  Returns the pull's
 * status: FO_OK (pushed), FO_END / FO_FAILED (the stream is ended), FO_EMPTY
 * / FO_TIMEDOUT (nothing happened), or FO_ECLOSED (the stream was ended
 * meanwhile, by destroy: the item was released).
 */
static int pull_one(fo_feeder *f, uint64_t deadline)
{
	void *x;
	int rc = fo__iter_pull(f->src, &x, deadline, NULL);
	if (rc == FO_OK) {
		atomic_fetch_add_explicit(&f->pulled, 1, memory_order_relaxed); /* a statistic */
		int prc = fo_stream_push(f->s, x);
		if (prc == FO_OK)
			return FO_OK;
		fo_iter_release(f->src, x);
		if (prc == FO_ENOMEM) {
			end_failed(f->s, FO_ENOMEM, "feed: no memory to push an item");
			return FO_FAILED;
		}
		return FO_ECLOSED;
	}
	if (rc == FO_END) {
		fo_stream_close(f->s);
	} else if (rc == FO_FAILED) {
		fo__stream_fail_err(f->s, fo_iter_error(f->src)); /* code, sys_errno, message */
	}
	return rc;
}

static void feed_unref(fo_feeder *f)
{
	/* acq_rel: the last holder sees every other holder's use of f (its
	 * unlock of mu included) before it frees f. */
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	fo__free(f);
}

/* Nothing pulls any more: close the source and the stream handle, drop the
 * handle's reference (open fo_feed_iter()s keep the rest). */
static void feed_free(fo_feeder *f)
{
	fo_iter_close(f->src);
	f->src = NULL;
	fo_stream_destroy(f->s);
	f->s = NULL;
	feed_unref(f);
}

static void *feed_thread(void *arg)
{
	fo_feeder *f = arg;
	for (;;) {
		/* Room first: never pull an item the stream cannot take now.  On
		 * an unbounded stream (or with no active cursor) this returns at
		 * once; destroy fails the stream, which ends the wait (ECLOSED). */
		if (f->ahead && fo_stream_wait_room(f->s, 1, -1) != FO_OK)
			break;
		/* relaxed: destroy also fails the stream, which the push sees. */
		if (atomic_load_explicit(&f->stop, memory_order_relaxed))
			break;
		if (fo__stream_ncursors(f->s) == 0)
			break; /* nobody can ever read again: stop pulling */
		int rc = pull_one(f, FO__NO_DEADLINE);
		if (rc != FO_OK)
			break;
	}
	if (f->detached)
		feed_free(f);
	return NULL;
}

static int create_on(fo_feeder **out, fo_cursor **c, fo_iter *src, const fo_feed_opts *o,
                     bool detached)
{
	if (src->borrows || src->emits_errors)
		return FO_EINVAL;
	int rc = FO_ENOMEM;
	fo_feeder *f = fo__zalloc(sizeof(*f));
	if (!f)
		return FO_ENOMEM;
	if (pthread_mutex_init(&f->mu, NULL) != 0)
		goto fail_free;
	if (fo__cond_init(&f->cv) != FO_OK)
		goto fail_mu;
	fo_stream_opts so;
	fo_stream_opts_init(&so);
	so.capacity = o->mode == FO_FEED_BACKGROUND ? o->ahead : 0;
	so.passive_window = o->passive_window;
	so.item_free = src->item_free;
	so.item_free_ctx = src->item_ctx;
	so.single_producer = true; /* one thread, or one puller at a time (mutex) */
	rc = fo_stream_create(&f->s, &so);
	if (rc != FO_OK)
		goto fail_cv;
	fo_cursor *cur;
	rc = fo_stream_cursor(f->s, &cur, FO_ACTIVE);
	if (rc != FO_OK)
		goto fail_stream;
	f->src = src;
	f->mode = o->mode;
	f->ahead = so.capacity;
	f->detached = detached;
	atomic_init(&f->stop, false);
	atomic_init(&f->pulled, 0);
	atomic_init(&f->refs, 1);
	if (o->mode == FO_FEED_BACKGROUND) {
		pthread_attr_t attr;
		if (pthread_attr_init(&attr) != 0) {
			rc = FO_ENOMEM;
			fo_cursor_close(cur);
			goto fail_stream;
		}
		if (detached)
			pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		f->has_thread = !detached;
		/* Detached: from here on the thread owns f (it may be gone already). */
		pthread_t tid;
		int prc = pthread_create(&tid, &attr, feed_thread, f);
		pthread_attr_destroy(&attr);
		if (prc != 0) {
			rc = FO_ESYS;
			fo_cursor_close(cur);
			goto fail_stream;
		}
		if (!detached)
			f->thread = tid; /* read only by destroy, on the handle's thread */
	}
	*c = cur;
	if (out)
		*out = f;
	return FO_OK;

fail_stream:
	fo_stream_destroy(f->s);
fail_cv:
	pthread_cond_destroy(&f->cv);
fail_mu:
	pthread_mutex_destroy(&f->mu);
fail_free:
	fo__free(f);
	return rc;
}

static int create(fo_feeder **out, fo_cursor **c, fo_iter *src, const fo_feed_opts *o,
                  bool detached)
{
	fo_feed_opts d;
	if (!o) {
		fo_feed_opts_init(&d);
		o = &d;
	}
	if (!c || !src || (!out && !detached))
		return FO_EINVAL;
	if (o->mode != FO_FEED_BACKGROUND && o->mode != FO_FEED_ON_DEMAND)
		return FO_EINVAL;
	if (o->backend == FO_THREADS)
		return create_on(out, c, src, o, detached);
	if (o->backend != FO_PROCESSES)
		return FO_EINVAL;
	/* The source runs in a child one item ahead of the feed's own pulls
	 * (fanout/preload.h); the feed reads the child's iterator. */
	fo_iter *pre;
	int rc = fo_process_preload(&pre, src, 1, o->codec);
	if (rc != FO_OK)
		return rc;
	rc = create_on(out, c, pre, o, detached);
	if (rc != FO_OK)
		fo__preload_undo(pre); /* the caller keeps src, unread */
	return rc;
}

int fo_feed_create(fo_feeder **f, fo_cursor **c, fo_iter *src, const fo_feed_opts *o)
{
	if (!f)
		return FO_EINVAL;
	return create(f, c, src, o, false);
}

int fo_feed(fo_cursor **c, fo_iter *src, const fo_feed_opts *o)
{
	if (o && o->mode != FO_FEED_BACKGROUND)
		return FO_EINVAL;
	return create(NULL, c, src, o, true);
}

/* Returns as fo_cursor_next(), plus FO_EMPTY (try) / FO_TIMEDOUT. */
static int feed_read(fo_feeder *f, fo_cursor *c, void **item, uint64_t deadline)
{
	if (f->mode == FO_FEED_BACKGROUND)
		return fo__cursor_read_until(c, item, deadline);
	for (;;) {
		int rc = fo_cursor_try_next(c, item);
		if (rc != FO_EMPTY)
			return rc;
		pthread_mutex_lock(&f->mu);
		if (f->ended) {
			/* The stream is closed: END/FAILED (or a straggler) is ready. */
			pthread_mutex_unlock(&f->mu);
			return fo__cursor_read_until(c, item, deadline);
		}
		if (f->pulling) {
			/* Wait for this pull to finish, then read again. */
			uint64_t g = f->gen;
			while (f->pulling && f->gen == g) {
				if (fo__cond_wait_until(&f->cv, &f->mu, deadline) == FO_TIMEDOUT) {
					pthread_mutex_unlock(&f->mu);
					return deadline == 0 ? FO_EMPTY : FO_TIMEDOUT;
				}
			}
			pthread_mutex_unlock(&f->mu);
			continue;
		}
		f->pulling = true; /* this thread is the puller now */
		pthread_mutex_unlock(&f->mu);

		/* The one puller: f->src is ours until the role is cleared. */
		rc = pull_one(f, deadline);

		pthread_mutex_lock(&f->mu);
		f->pulling = false;
		f->gen++;
		if (rc != FO_OK && rc != FO_EMPTY && rc != FO_TIMEDOUT)
			f->ended = true; /* END, FAILED or ECLOSED: no more pulls */
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		if (rc == FO_EMPTY || rc == FO_TIMEDOUT)
			return rc; /* the role is handed on: a waiter takes it */
		                   /* Read what was published (the item, or END/FAILED). */
	}
}

/* Passive cursors never pull (and a lapped one would report FO_LAGGED). */
static bool usable(const fo_cursor *c)
{
	return c && fo_cursor_kind(c) != FO_PASSIVE;
}

int fo_feed_next(fo_feeder *f, fo_cursor *c, void **item)
{
	if (!f || !usable(c) || !item)
		return FO_EINVAL;
	return feed_read(f, c, item, FO__NO_DEADLINE);
}

int fo_feed_try_next(fo_feeder *f, fo_cursor *c, void **item)
{
	if (!f || !usable(c) || !item)
		return FO_EINVAL;
	int rc = feed_read(f, c, item, 0);
	return rc == FO_TIMEDOUT ? FO_EMPTY : rc;
}

int fo_feed_timed_next(fo_feeder *f, fo_cursor *c, void **item, int64_t timeout_ns)
{
	if (!f || !usable(c) || !item)
		return FO_EINVAL;
	int rc = feed_read(f, c, item, fo__iter_deadline(timeout_ns));
	return rc == FO_EMPTY ? FO_TIMEDOUT : rc;
}

uint64_t fo_feed_pulled(const fo_feeder *f)
{
	return f ? atomic_load_explicit(&f->pulled, memory_order_relaxed) : 0; /* stats only */
}

void fo_feed_destroy(fo_feeder *f)
{
	if (!f)
		return;
	atomic_store_explicit(&f->stop, true, memory_order_relaxed);
	/* Wakes a push waiting for room; FO_ECLOSED if the source ended first. */
	end_failed(f->s, FO_ECANCELED, "feed destroyed before its source ended");
	if (f->has_thread)
		pthread_join(f->thread, NULL);
	/* ON_DEMAND: no new puller (a reader that finds the role free and the
	 * stream not ended would pull), and wait out the one running, if any:
	 * its pull uses f->src and f->s, which feed_free() closes.  An
	 * fo_feed_iter() read may still be in progress on another thread. */
	pthread_mutex_lock(&f->mu);
	f->ended = true;
	while (f->pulling)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
	feed_free(f);
}

/* ------------------------------------------------------------------------ */
/* fo_feed_iter                                                              */

struct feed_iter {
	fo_iter it;
	fo_feeder *f;
	fo_cursor *c;
	fo_item_copy_fn copy;
	void *ctx;
};

static int feed_read_cb(fo_cursor *c, void **raw, uint64_t deadline, void *arg)
{
	return feed_read(arg, c, raw, deadline);
}

static int feed_iter_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct feed_iter *fi = (struct feed_iter *)it;
	return fo__iter_cursor_read(it, fi->c, fi->copy, fi->ctx, feed_read_cb, fi->f, item,
	                            deadline);
}

static void feed_iter_close(fo_iter *it)
{
	struct feed_iter *fi = (struct feed_iter *)it;
	fo_cursor_close(fi->c);
	feed_unref(fi->f);
	fo__iter_fini(it);
	fo__free(fi);
}

/*
 * Readiness: in BACKGROUND mode a read is a cursor read, so the cursor's
 * fd/arm/hook are exact.  In ON_DEMAND mode a read at the end runs the
 * source in the reader's thread: nothing could signal it, so unsupported.
 */
static fo_cursor *ready_cursor(fo_iter *it)
{
	struct feed_iter *fi = (struct feed_iter *)it;
	return fi->f->mode == FO_FEED_BACKGROUND ? fi->c : NULL;
}

static int feed_iter_fd(fo_iter *it)
{
	fo_cursor *c = ready_cursor(it);
	return c ? fo_cursor_fd(c) : FO_EINVAL;
}

static int feed_iter_arm(fo_iter *it)
{
	fo_cursor *c = ready_cursor(it);
	return c ? fo_cursor_arm(c) : FO_EINVAL;
}

static int feed_iter_watch(fo_iter *it, void (*fn)(void *arg), void *arg)
{
	fo_cursor *c = ready_cursor(it);
	return c ? fo_cursor_set_notify(c, fn, arg) : FO_EINVAL;
}

static const struct fo__iter_vt feed_iter_vt = {
    .name = "feed",
    .next = feed_iter_next,
    .close = feed_iter_close,
    .fd = feed_iter_fd,
    .arm = feed_iter_arm,
    .watch = feed_iter_watch,
};

int fo_feed_iter(fo_iter **it, fo_feeder *f, fo_cursor *c, fo_item_copy_fn copy,
                 fo_item_free_fn copy_free, void *ctx)
{
	if (!it || !f || !usable(c) || (!copy && copy_free))
		return FO_EINVAL;
	struct feed_iter *fi = fo__alloc(sizeof(*fi));
	if (!fi)
		return FO_ENOMEM;
	fo__iter_init(&fi->it, &feed_iter_vt, copy_free, ctx);
	fi->it.borrows = copy == NULL;
	/* relaxed: the caller holds the handle's reference, so refs cannot reach
	 * 0 meanwhile; the handoff of f to a reader thread orders the rest. */
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
	fi->f = f;
	fi->c = c;
	fi->copy = copy;
	fi->ctx = ctx;
	*it = &fi->it;
	return FO_OK;
}

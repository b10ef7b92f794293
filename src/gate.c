/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * gate.c - credits guard the source: the reader takes a credit under the
 * mutex, then pulls.  A pull that comes back empty (try/timed) gives the
 * credit back, so neither an item nor a credit is lost.
 *
 * The gate and its iterator are one allocation with two handles (refs).
 *
 * Readiness (fo_iter_fd / fo_iter_arm on the output): a read would return
 * something when (credits > 0 and the source has something) or (credits == 0
 * and the gate is closed: FO_END).  The gate owns a waker; the source's
 * readiness reaches it through a hook on the source (src_cb), which records
 * src_ready.  arm() resets src_ready, arms the source (1: ready now), then,
 * under mu, arms the waker and re-checks; release, close and src_cb change
 * state under mu and signal after unlocking.  The mutex orders arm against
 * each publisher, so no wake-up is lost.
 */
#include <fanout/gate.h>
#include "iter_impl.h"

struct fo_gate {
	fo_iter it; /* the output iterator (first: the vtable casts) */
	fo_iter *src;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* credits > 0 or closed */
	int64_t credits;   /* under mu */
	bool closed;       /* under mu: no more releases */
	bool iter_closed;  /* under mu: the reader is gone */
	bool iter_taken;   /* fo_gate_iter() was called (gate handle's thread) */
	bool src_ready;    /* under mu: the source signalled (or was ready) since arm */
	bool src_watched;  /* reader: src_cb hangs off the source */
	struct fo__waker w;
	atomic_int refs; /* gate handle + iterator */
};

static void gate_unref(fo_gate *g)
{
	/* acq_rel: the last one sees every write made under either handle. */
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	fo__waker_fini(&g->w);
	fo__iter_fini(&g->it);
	fo__free(g);
}

static void give_back(fo_gate *g)
{
	pthread_mutex_lock(&g->mu);
	if (g->credits < INT64_MAX)
		g->credits++;
	pthread_mutex_unlock(&g->mu);
}

static int gate_next(fo_iter *it, void **item, uint64_t deadline)
{
	fo_gate *g = (fo_gate *)it;
	pthread_mutex_lock(&g->mu);
	while (g->credits == 0 && !g->closed) {
		if (fo__cond_wait_until(&g->cv, &g->mu, deadline) == FO_TIMEDOUT) {
			pthread_mutex_unlock(&g->mu);
			return deadline == 0 ? FO_EMPTY : FO_TIMEDOUT;
		}
	}
	if (g->credits == 0) { /* closed and every credited item delivered */
		pthread_mutex_unlock(&g->mu);
		return FO_END;
	}
	g->credits--;
	pthread_mutex_unlock(&g->mu);

	/* Only now, holding a credit, touch the source: no read-ahead. */
	bool is_err;
	int rc = fo__iter_pull(g->src, item, deadline, &is_err);
	switch (rc) {
	case FO_OK:
		it->last_err = is_err;
		return FO_OK;
	case FO_EMPTY:
	case FO_TIMEDOUT:
		give_back(g);
		return rc;
	case FO_FAILED:
		return fo__iter_fail_from(it, fo_iter_error(g->src));
	default:
		return rc; /* FO_END: remaining credits are ignored */
	}
}

static void gate_iter_close(fo_iter *it)
{
	fo_gate *g = (fo_gate *)it;
	pthread_mutex_lock(&g->mu);
	g->iter_closed = true;
	pthread_mutex_unlock(&g->mu);
	/* A hook set by an adapter over this output must not run after its
	 * owner closed us (a later release would call it). */
	fo__waker_stop(&g->w);
	fo_iter_close(g->src); /* after this, src_cb never runs again */
	g->src = NULL;
	gate_unref(g);
}

/* ---- readiness ---------------------------------------------------------- */

/* The source has something (a hook call on a publisher's thread). */
static void src_cb(void *arg)
{
	fo_gate *g = arg;
	pthread_mutex_lock(&g->mu);
	g->src_ready = true;
	bool fire = g->credits > 0;
	pthread_mutex_unlock(&g->mu);
	if (fire)
		fo__waker_signal(&g->w);
}

static int watch_src(fo_gate *g)
{
	if (g->src_watched)
		return FO_OK;
	int rc = fo__iter_watch(g->src, src_cb, g);
	if (rc != FO_OK)
		return rc; /* the source cannot tell when it is ready */
	g->src_watched = true;
	return FO_OK;
}

static int gate_fd(fo_iter *it)
{
	fo_gate *g = (fo_gate *)it;
	if (g->w.fn)
		return FO_EINVAL;
	int rc = watch_src(g);
	return rc != FO_OK ? rc : fo__waker_fd(&g->w);
}

static int gate_watch(fo_iter *it, void (*fn)(void *arg), void *arg)
{
	fo_gate *g = (fo_gate *)it;
	if (g->w.efd >= 0)
		return FO_EINVAL;
	int rc = fn ? watch_src(g) : FO_OK;
	return rc != FO_OK ? rc : fo__waker_watch(&g->w, fn, arg);
}

static int gate_arm(fo_iter *it)
{
	fo_gate *g = (fo_gate *)it;
	if (!g->src_watched || (g->w.efd < 0 && !g->w.fn))
		return FO_EINVAL;
	pthread_mutex_lock(&g->mu);
	g->src_ready = false;
	pthread_mutex_unlock(&g->mu);
	int r = fo_iter_arm(g->src); /* 0: src_cb will run once it has something */
	if (r < 0)
		return r;
	pthread_mutex_lock(&g->mu);
	if (r == 1)
		g->src_ready = true;
	fo__waker_prepare(&g->w);
	bool ready = g->credits > 0 ? g->src_ready : g->closed;
	if (ready)
		fo__waker_cancel(&g->w);
	pthread_mutex_unlock(&g->mu);
	return ready ? 1 : 0;
}

static const struct fo__iter_vt gate_vt = {
    .name = "gate",
    .next = gate_next,
    .close = gate_iter_close,
    .fd = gate_fd,
    .arm = gate_arm,
    .watch = gate_watch,
};

int fo_gate_create(fo_gate **out, fo_iter *src)
{
	if (!out || !src)
		return FO_EINVAL;
	fo_gate *g = fo__zalloc(sizeof(*g));
	if (!g)
		return FO_ENOMEM;
	if (pthread_mutex_init(&g->mu, NULL) != 0) {
		fo__free(g);
		return FO_ENOMEM;
	}
	if (fo__cond_init(&g->cv) != FO_OK) {
		pthread_mutex_destroy(&g->mu);
		fo__free(g);
		return FO_ENOMEM;
	}
	fo__iter_init(&g->it, &gate_vt, src->item_free, src->item_ctx);
	fo__waker_init(&g->w);
	g->it.borrows = src->borrows;
	g->it.emits_errors = src->emits_errors;
	g->src = src;
	atomic_init(&g->refs, 2);
	*out = g;
	return FO_OK;
}

fo_iter *fo_gate_iter(fo_gate *g)
{
	if (!g || g->iter_taken)
		return NULL;
	g->iter_taken = true;
	return &g->it;
}

int fo_gate_release(fo_gate *g, int64_t n)
{
	if (!g || n <= 0)
		return FO_EINVAL;
	pthread_mutex_lock(&g->mu);
	if (g->closed || g->iter_closed) {
		pthread_mutex_unlock(&g->mu);
		return FO_ECLOSED;
	}
	g->credits = g->credits > INT64_MAX - n ? INT64_MAX : g->credits + n;
	bool fire = g->src_ready;
	pthread_cond_signal(&g->cv); /* one reader at a time: one waiter at most */
	pthread_mutex_unlock(&g->mu);
	if (fire)
		fo__waker_signal(&g->w);
	return FO_OK;
}

int fo_gate_close(fo_gate *g)
{
	if (!g)
		return FO_EINVAL;
	pthread_mutex_lock(&g->mu);
	g->closed = true;
	bool fire = g->credits == 0; /* FO_END is ready */
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	if (fire)
		fo__waker_signal(&g->w);
	return FO_OK;
}

int64_t fo_gate_credits(const fo_gate *g)
{
	if (!g)
		return 0;
	fo_gate *m = (fo_gate *)g; /* the mutex is not part of the value */
	pthread_mutex_lock(&m->mu);
	int64_t n = m->credits;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void fo_gate_destroy(fo_gate *g)
{
	if (!g)
		return;
	fo_gate_close(g);
	if (!g->iter_taken) {
		g->iter_taken = true;
		gate_iter_close(&g->it);
	}
	gate_unref(g);
}

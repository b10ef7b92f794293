/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * readiness.c - waiting and readiness for streams, off the per-item paths:
 * the sleeping side of the wait queues (a thread about to sleep), readiness
 * queries that do not consume (fo_cursor_available, fo_cursor_at_least),
 * and event-loop watchers (fo_cursor_fd, fo_cursor_set_notify,
 * fo_cursor_arm and the publishers' signal, once per arm).  Protocol:
 * docs/design.md §7.  The waking side that publishers run per item
 * (fo__waitq_wake) is static inline in stream_impl.h.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "stream_impl.h"

/* ------------------------------------------------------------------------ */
/* Sleeping                                                                   */

/* First half of a sleep: read gen BEFORE announcing @bit (NEED_SLEEP, or
 * NEED_BATCH with the watermark stored by the caller).  (Read after, a
 * waker that cleared @need between the announcement and a second
 * producer's publish could leave the sleeper with a fresh gen and no
 * wake-up.)  The caller then re-checks its condition and, if still unmet,
 * calls fo__waitq_sleep() with the returned ticket. */
uint32_t fo__waitq_prepare(struct waitq *q, uint32_t bit)
{
	uint32_t g = atomic_load_explicit(
	    &q->gen, memory_order_seq_cst); /* seq_cst: read before announcing (see above) */
	atomic_fetch_or_explicit(&q->need, bit, memory_order_seq_cst);
	fo__fence_heavy(); /* the announcement before the caller's re-check */
	return g;
}

int fo__waitq_sleep(struct waitq *q, uint32_t ticket, uint64_t deadline)
{
	return fo__futex_wait(&q->gen, ticket, deadline);
}

/* ------------------------------------------------------------------------ */
/* Readiness queries                                                          */

/* Count ready items from @pos in @x, at most @limit.  In a read section. */
static size_t scan_ready(struct seg *x, uint64_t pos, size_t limit)
{
	size_t k = 0;
	while (k < limit) {
		struct seg *nx = fo__seg_step(x, pos);
		if (!nx)
			break;
		x = nx;
		/* acquire: pairs with the producer's release store of the slot. */
		if (!atomic_load_explicit(&x->slot[pos & SEG_MASK], memory_order_acquire))
			break;
		k++;
		pos++;
	}
	return k;
}

static size_t count_ready(const fo_cursor *c, size_t limit)
{
	if (!c || c->done)
		return 0;
	fo_stream *s = c->s;
	size_t k;
	bool passive = c->kind == K_PASSIVE;
	if (passive)
		fo__walk_enter(s);
	else
		fo__rcu_lock();
	if (c->kind == K_MEMBER) {
		/* Hint first, then pos (as cursor.c does): members move the hint
		 * only into segments they claimed in, so hint->base <= pos, and the
		 * walk reaches pos's segment however far the hint lags. */
		struct seg *h = atomic_load_explicit(&c->g->hint, memory_order_acquire);
		uint64_t p = atomic_load_explicit(&c->g->pos, memory_order_acquire);
		k = scan_ready(fo__seg_walk(h, p), p, limit);
	} else if (passive && /* seq_cst: after our walker count (design.md §6) */
	           (atomic_load_explicit(&c->seg->state, memory_order_seq_cst) & SEG_DEAD)) {
		/* seq_cst: as above; oldest is linked and initialised. */
		struct seg *z = atomic_load_explicit(&s->oldest, memory_order_seq_cst);
		k = scan_ready(z, z->base, limit);
	} else {
		k = scan_ready(c->seg, c->pos, limit);
	}
	if (passive)
		fo__walk_leave(s);
	else
		fo__rcu_unlock();
	return k;
}

size_t fo_cursor_available(const fo_cursor *c)
{
	return count_ready(c, SIZE_MAX);
}

bool fo_cursor_at_least(const fo_cursor *c, size_t n)
{
	return n == 0 || count_ready(c, n) >= n;
}

/* ------------------------------------------------------------------------ */
/* Event-loop readiness                                                      */

/* Signal every armed watcher once (armed -> idle).  In a read section:
 * closing cursors leave the chain under the lock and are freed after a
 * grace period; busy tells a closing cursor that a signal is in flight. */
void fo__signal_watchers(fo_stream *s)
{
	fo__rcu_lock();
	for (fo_cursor *w = atomic_load_explicit(&s->watchers, memory_order_acquire);
	     w; /* acquire: linked after initialisation */
	     w = atomic_load_explicit(
	         &w->wnext, memory_order_acquire)) { /* acquire: linked after initialisation */
		if (atomic_load_explicit(&w->armed, memory_order_relaxed) !=
		    ARM_ARMED) /* a peek: the CAS below decides */
			continue;
		/* seq_cst: busy is visible to close before we test armed. */
		atomic_fetch_add_explicit(&w->busy, 1, memory_order_seq_cst);
		uint32_t exp = ARM_ARMED;
		if (atomic_compare_exchange_strong_explicit(
		        &w->armed, &exp, ARM_IDLE, memory_order_seq_cst, memory_order_relaxed)) {
			if (w->notify) {
				w->notify(w->notify_arg);
			} else if (w->efd >= 0) {
				uint64_t one = 1;
				/* EAGAIN only if the counter is saturated: still readable. */
				ssize_t r = write(w->efd, &one, sizeof(one));
				(void)r;
			}
		}
		atomic_fetch_sub_explicit(
		    &w->busy, 1,
		    memory_order_release); /* release: our signal is done before close sees 0 */
	}
	fo__rcu_unlock();
}

static void watcher_add_locked(fo_stream *s, fo_cursor *c)
{
	atomic_store_explicit(&c->wnext, atomic_load_explicit(&s->watchers, memory_order_relaxed),
	                      memory_order_relaxed);
	/* release: c is initialised before a producer can reach it. */
	atomic_store_explicit(&s->watchers, c, memory_order_release);
	c->watching = true;
}

void fo__watcher_del_locked(fo_stream *s, fo_cursor *c)
{
	_Atomic(fo_cursor *) *pp = &s->watchers;
	fo_cursor *w;
	while ((w = atomic_load_explicit(pp, memory_order_relaxed)) != c)
		pp = &w->wnext;
	/* c->wnext stays intact: a producer standing on c goes on from there. */
	atomic_store_explicit(pp, atomic_load_explicit(&c->wnext, memory_order_relaxed),
	                      memory_order_release);
}

/* Would a read return something other than FO_EMPTY now?  Does not consume. */
static bool probe_ready(fo_cursor *c)
{
	if (c->done || count_ready(c, 1))
		return true;
	if (c->kind == K_PASSIVE &&
	    (atomic_load_explicit(&c->seg->state, memory_order_acquire) & SEG_DEAD))
		return true; /* a lap to report */
	uint64_t pos =
	    c->kind == K_MEMBER ? atomic_load_explicit(&c->g->pos, memory_order_acquire) : c->pos;
	/* acquire: pairs with the end's release. */
	return pos >= atomic_load_explicit(&c->s->end, memory_order_acquire);
}

/* Put @c on the stream's watcher chain (once). */
static void watch(fo_cursor *c)
{
	if (c->watching)
		return;
	pthread_mutex_lock(&c->s->lock);
	watcher_add_locked(c->s, c);
	fo__stream_unlock(c->s);
}

int fo_cursor_fd(fo_cursor *c)
{
	if (!c || c->notify)
		return FO_EINVAL;
	if (c->efd < 0) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			return FO_ESYS;
		c->efd = fd;
		watch(c);
	}
	return c->efd;
}

int fo_cursor_set_notify(fo_cursor *c, void (*fn)(void *arg), void *arg)
{
	if (!c || c->efd >= 0)
		return FO_EINVAL;
	/* Disarm first: no signal may run with a half-changed hook. */
	atomic_store_explicit(&c->armed, ARM_IDLE, memory_order_seq_cst);
	while (atomic_load_explicit(&c->busy, memory_order_seq_cst))
		sched_yield();
	c->notify = fn;
	c->notify_arg = arg;
	if (fn)
		watch(c);
	return FO_OK;
}

int fo_cursor_arm(fo_cursor *c)
{
	if (!c || (c->efd < 0 && !c->notify))
		return FO_EINVAL;
	if (c->efd >= 0) {
		uint64_t v; /* consume earlier signals: the fd stays quiet until the next */
		ssize_t r = read(c->efd, &v, sizeof(v));
		(void)r;
	}
	if (c->done)
		return 1;
	atomic_store_explicit(&c->armed, ARM_ARMED, memory_order_seq_cst);
	atomic_fetch_or_explicit(&c->s->data.need, NEED_WATCH, memory_order_seq_cst);
	fo__fence_heavy(); /* the announcement before the re-check (Dekker, §7) */
	if (probe_ready(c)) {
		uint32_t exp = ARM_ARMED; /* if a producer won, the fd is readable: fine */
		atomic_compare_exchange_strong_explicit(&c->armed, &exp, ARM_IDLE,
		                                        memory_order_relaxed, memory_order_relaxed);
		return 1;
	}
	return 0;
}

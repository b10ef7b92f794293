/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * rcu.c - the library's only contact with liburcu.
 *
 * We use the urcu-bp ("bulletproof") flavour: any user thread may call into
 * fanout without registering, and it survives fork().  _LGPL_SOURCE is not
 * defined (BSD-3-Clause project), so these are calls into liburcu-bp.so.
 *
 * TSan does not see the ordering a grace period provides, so every read
 * section's end releases one token and every deferred call acquires it (and
 * the node itself, which the retiring thread released).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <urcu-bp.h>
#include <urcu/call-rcu.h>

#include "internal.h"

static int rcu_token;
static atomic_bool rcu_used; /* a deferred call was ever made: the barrier has work */

#if defined(FO_TSAN) && FO_TSAN
/* TSan builds wait for deferred calls by counting them (fo__rcu_barrier()):
 * calls made and not yet run, under a mutex and condvar TSan intercepts. */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pending_done = PTHREAD_COND_INITIALIZER;
static unsigned long pending;

static void pending_add(int d)
{
	pthread_mutex_lock(&pending_lock);
	pending += (unsigned long)d;
	if (pending == 0)
		pthread_cond_broadcast(&pending_done);
	pthread_mutex_unlock(&pending_lock);
}
#else
static inline void pending_add(int d)
{
	(void)d;
}
#endif

void fo__rcu_lock(void)
{
	rcu_read_lock();
}

void fo__rcu_unlock(void)
{
	FO_TSAN_RELEASE(&rcu_token);
	rcu_read_unlock();
}

_Static_assert(sizeof(struct rcu_head) <= sizeof(((fo__rcu_node *)0)->urcu_head),
               "fo__rcu_node too small for struct rcu_head");

static void call_cb(struct rcu_head *head)
{
	fo__rcu_node *node = (fo__rcu_node *)(void *)head;
	/* call_rcu's queue orders this after fo__rcu_call(); tell TSan, and
	 * that every read section that could see the memory has ended. */
	FO_TSAN_ACQUIRE(node);
	FO_TSAN_ACQUIRE(&rcu_token);
	node->fn(node);
	pending_add(-1); /* TSan: after fn, which may have freed node */
}

void fo__rcu_call(fo__rcu_node *node, void (*fn)(fo__rcu_node *node))
{
	node->fn = fn;
	FO_TSAN_RELEASE(node);
	/* relaxed: read by fo__rcu_barrier() on a thread ordered after this
	 * call by the caller (it destroyed the object that made it).  Stored
	 * once: later calls leave the shared line clean. */
	if (!atomic_load_explicit(&rcu_used, memory_order_relaxed))
		atomic_store_explicit(&rcu_used, true, memory_order_relaxed);
	pending_add(1);
	call_rcu((struct rcu_head *)(void *)node, call_cb);
}

void fo__rcu_barrier(void)
{
	/* relaxed: see fo__rcu_call(); without any call there is nothing to
	 * wait for, and no call_rcu worker to start. */
	if (!atomic_load_explicit(&rcu_used, memory_order_relaxed))
		return;
#if defined(FO_TSAN) && FO_TSAN
	/* Not rcu_barrier(): it callocs a work item per call_rcu worker on
	 * this thread and each worker frees its own after a hand-off through
	 * liburcu's (uninstrumented) queue, which TSan reports as a race
	 * between the calloc and the free inside liburcu (design.md §6).  Wait
	 * until no deferred call is pending instead: correct whatever the
	 * number of call_rcu workers (the application may create per-CPU or
	 * per-thread ones), and the mutex orders each callback's work before
	 * our return.  It also waits for calls made meanwhile: it ends once
	 * they stop, as fo_set_allocator()'s contract (no fanout object
	 * exists) and the tests that call it ensure. */
	pthread_mutex_lock(&pending_lock);
	while (pending)
		pthread_cond_wait(&pending_done, &pending_lock);
	pthread_mutex_unlock(&pending_lock);
#else
	rcu_barrier(); /* a work item behind the calls on every call_rcu worker */
#endif
}

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
#include <stdatomic.h>
#include <semaphore.h>
#include <stdbool.h>

#include <urcu-bp.h>
#include <urcu/call-rcu.h>

#include "internal.h"

static int rcu_token;
static int rcu_done_token;   /* TSan: every deferred call, before fo__rcu_barrier() returns */
static atomic_bool rcu_used; /* a deferred call was ever made: the barrier has work */

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
	FO_TSAN_RELEASE(&rcu_done_token); /* not node: fn may have freed it */
}

void fo__rcu_call(fo__rcu_node *node, void (*fn)(fo__rcu_node *node))
{
	node->fn = fn;
	FO_TSAN_RELEASE(node);
	/* relaxed: read by fo__rcu_barrier() on a thread ordered after this
	 * call by the caller (it destroyed the object that made it). */
	atomic_store_explicit(&rcu_used, true, memory_order_relaxed);
	call_rcu((struct rcu_head *)(void *)node, call_cb);
}

#if defined(FO_TSAN) && FO_TSAN
static void barrier_marker(fo__rcu_node *node)
{
	sem_post(node->arg);
}
#endif

void fo__rcu_barrier(void)
{
	/* relaxed: see fo__rcu_call(); without any call there is nothing to
	 * wait for, and no call_rcu worker to start. */
	if (!atomic_load_explicit(&rcu_used, memory_order_relaxed))
		return;
#if defined(FO_TSAN) && FO_TSAN
	/* TSan cannot see rcu_barrier()'s own hand-offs (liburcu is not
	 * instrumented): queue a marker behind every earlier call on the
	 * default call_rcu thread (the library creates no other) and wait for
	 * it through a semaphore TSan intercepts. */
	sem_t done;
	fo__rcu_node marker = {.arg = &done};
	sem_init(&done, 0, 0);
	fo__rcu_call(&marker, barrier_marker);
	while (sem_wait(&done) != 0)
		;
	sem_destroy(&done);
	FO_TSAN_ACQUIRE(&rcu_done_token);
#else
	rcu_barrier();
#endif
}

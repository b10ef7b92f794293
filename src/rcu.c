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
#include <urcu-bp.h>
#include <urcu/call-rcu.h>

#include "internal.h"

static int rcu_token;

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
}

void fo__rcu_call(fo__rcu_node *node, void (*fn)(fo__rcu_node *node))
{
	node->fn = fn;
	FO_TSAN_RELEASE(node);
	call_rcu((struct rcu_head *)(void *)node, call_cb);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/alloc.h - the injectable allocator.
 *
 * Every allocation fanout makes goes through the allocator installed here
 * (default: malloc/free).  Tests install one that fails the n-th call to
 * check that every constructor returns FO_ENOMEM and leaves state unchanged.
 */
#ifndef FANOUT_ALLOC_H
#define FANOUT_ALLOC_H

#include <stddef.h>
#include <fanout/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * fo_allocator - allocation hooks.
 * @alloc: return @size bytes aligned to at least 64, or NULL on failure.
 * @free:  release memory from @alloc; never called with NULL.
 * @ctx:   passed to both.
 * Both must be callable from any thread at any time.
 */
typedef struct fo_allocator {
	void *(*alloc)(size_t size, void *ctx);
	void (*free)(void *ptr, void *ctx);
	void *ctx;
} fo_allocator;

/**
 * fo_set_allocator() - install @a for all later allocations.
 * @a: the hooks (copied), or NULL to restore malloc/free.
 * Threads: call only while no fanout object exists (memory from one
 * allocator must go back to the same one), and not from a fanout callback
 * (an item destructor, a map function).  A destroyed stream may still
 * release segments after an RCU grace period: this call first waits for
 * every such release that is pending (liburcu's rcu_barrier()), so that
 * they reach the hooks that allocated them.  Blocks for about one grace
 * period once the library has deferred any release, else returns at once.
 */
FO_API void fo_set_allocator(const fo_allocator *a);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_ALLOC_H */

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * internal.h - helpers shared by the library's modules (never installed).
 *
 *   fo__alloc/fo__free      the injectable allocator (alloc.c)
 *   fo__panic               broken internal invariant: print file:line, abort
 *   fo__rcu_*               liburcu-bp read sections and deferred frees, with
 *                           ThreadSanitizer annotations (TSan cannot see
 *                           inside Debian's liburcu)
 *   fo__fence_light/heavy   the two halves of an asymmetric Dekker fence
 *   fo__futex_*, fo__now_ns sleeping and deadlines (wait.c)
 */
#ifndef FO_INTERNAL_H
#define FO_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fanout/status.h>

#define FO_CACHELINE    64
#define FO_ALIGNED      __attribute__((aligned(FO_CACHELINE)))
#define fo__likely(x)   __builtin_expect(!!(x), 1)
#define fo__unlikely(x) __builtin_expect(!!(x), 0)

/* alloc.c */
void *fo__alloc(size_t size);
void *fo__zalloc(size_t size);
void fo__free(void *p);
/* A 64-byte-aligned block for items made and freed per item (codec decodes):
 * cheaper than fo__alloc with the default allocator; free it with
 * fo__item_free() only. */
void *fo__item_alloc(size_t size);
void fo__item_free(void *item);
char *fo__strdup(const char *s);

/* status.c: a user callback's failure.  Call fo__cb_begin() right before
 * invoking a user callback, and fo__cb_capture() right after it returned an
 * error @code (it reads errno first): *e gets {code, errno if code is
 * FO_ESYS, the callback's fo_fail() message for this code or
 * fo_strerror(code)}; a copied message is returned in *owned (fo__free it;
 * NULL when e->message is static or the copy failed).  Returns @code.
 * fo__cb_message(code) peeks at the pending message (NULL: none), for a
 * process child that sends it in a frame. */
#define FO__FAIL_MSG_MAX 1024
void fo__cb_begin(void);
int fo__cb_capture(int code, fo_error *e, char **owned);
const char *fo__cb_message(int code);

/* Broken internal invariant: never returns. */
_Noreturn void fo__panic(const char *file, int line, const char *what);
#define FO_ASSERT(cond)                                       \
	do {                                                  \
		if (fo__unlikely(!(cond)))                    \
			fo__panic(__FILE__, __LINE__, #cond); \
	} while (0)

/* ThreadSanitizer annotations: no-ops unless built with FO_TSAN. */
#if defined(FO_TSAN) && FO_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define FO_TSAN_ACQUIRE(a) __tsan_acquire((void *)(a))
#define FO_TSAN_RELEASE(a) __tsan_release((void *)(a))
#else
#define FO_TSAN_ACQUIRE(a) ((void)(a))
#define FO_TSAN_RELEASE(a) ((void)(a))
#endif

/* rcu.c: urcu-bp read sections (any thread, registers itself on first use)
 * and deferred calls.  fo__rcu_call(node, fn) runs fn(node) on liburcu's
 * call_rcu thread after a grace period: no thread that was inside a read
 * section when it was called can still be in that section.  @node lives in
 * the memory @fn releases; @arg is the caller's. */
typedef struct fo__rcu_node fo__rcu_node;
struct fo__rcu_node {
	void *urcu_head[2]; /* a struct rcu_head (size checked in rcu.c) */
	void (*fn)(fo__rcu_node *node);
	void *arg;
};
void fo__rcu_lock(void);
void fo__rcu_unlock(void);
void fo__rcu_call(fo__rcu_node *node, void (*fn)(fo__rcu_node *node));
/* Wait until every fo__rcu_call() made before it has run, on whichever
 * call_rcu worker (liburcu's rcu_barrier; under TSan, until no deferred
 * call is pending, so also those made meanwhile): the memory destroyed
 * objects still return after a grace period is back.  Not from a read
 * section or a deferred call. */
void fo__rcu_barrier(void);

/* stream.c: open cursors of every kind (a relaxed snapshot; 0 stays 0 only
 * while nobody creates one).  For feeds deciding whether to keep pulling. */
typedef struct fo_stream fo_stream;
size_t fo__stream_ncursors(fo_stream *s);
/* fo_stream_fail() with a whole error: code, sys_errno and message (the
 * static text of the code if the copy runs out of memory).  For feeds and
 * joins passing a source's failure on.  Returns FO_OK or FO_ECLOSED. */
int fo__stream_fail_err(fo_stream *s, const fo_error *e);

/* preload.c: stop a fo_process_preload() iterator that nobody read and give
 * back the parent's copy of its source, as it was (for constructors that
 * wrap a source and then fail). */
typedef struct fo_iter fo_iter;
fo_iter *fo__preload_undo(fo_iter *it);

/* wait.c */
uint64_t fo__now_ns(void);
/* Absolute CLOCK_MONOTONIC deadline for a relative timeout; INT64_MAX-ish
 * "never" for timeout < 0 is not used: callers pass FO__NO_DEADLINE. */
#define FO__NO_DEADLINE UINT64_MAX
uint64_t fo__deadline(int64_t timeout_ns);
/* Sleep while *word == expect, until woken or @deadline (FO__NO_DEADLINE:
 * forever).  Returns 0 when woken or the word changed (maybe spuriously),
 * FO_TIMEDOUT when the deadline passed. */
int fo__futex_wait(_Atomic uint32_t *word, uint32_t expect, uint64_t deadline);
void fo__futex_wake_all(_Atomic uint32_t *word);
/* Before a lock-based sleep: spin with backoff, then yield a few times,
 * until one of the @n words differs from its @old value (about 10 us of
 * spinning at most).  Returns whether one changed; the caller re-checks under
 * its lock either way.  For waits whose wake-up (a futex syscall and a
 * reschedule, ~2-5 us) costs more than the expected gap between events. */
bool fo__brief_wait(_Atomic uint64_t *const *words, const uint64_t *old, size_t n);

/* Cheap monotonic ticks for timing a wait's phases: the TSC on x86 (~12 ns
 * a read on the 2-vCPU VM against ~45 ns for clock_gettime; 1-5 GHz),
 * else ns. */
static inline uint64_t fo__ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	return fo__now_ns();
#endif
}
/* sched_yield() for a waiter on oversubscribed cores (design.md §7):
 * true if it ran another thread and so took long, in which case the
 * caller sleeps rather than yields again.  A hint, never a decision. */
bool fo__wait_yield(void);

/*
 * Asymmetric fence for the "sleepers present" Dekker handshakes.  The
 * frequent side (a producer after publishing an item, a reader after
 * publishing its position) runs fo__fence_light(); the rare side (a thread
 * about to sleep, after announcing itself) runs fo__fence_heavy().  With
 * membarrier(PRIVATE_EXPEDITED) available, light is a compiler barrier and
 * heavy forces a full barrier on every running thread of the process;
 * otherwise (and under TSan, which does not model membarrier) both are
 * seq_cst fences.  Either way, one of the two sides sees the other's store.
 */
/* hidden: a PC-relative load in the per-item paths, not one through the GOT */
extern int fo__have_membarrier __attribute__((visibility("hidden")));
void fo__fence_heavy(void);
static inline void fo__fence_light(void)
{
#if defined(FO_TSAN) && FO_TSAN
	atomic_thread_fence(memory_order_seq_cst);
#else
	if (fo__likely(fo__have_membarrier))
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
#endif
}

static inline void fo__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif /* FO_INTERNAL_H */

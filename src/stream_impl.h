/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stream_impl.h - the inside of a stream (never installed): the layout of
 * streams, segments and cursors, the protocol's constants, and the helpers
 * that the push path and the read paths both run per item.  docs/design.md
 * is the protocol these files implement; read it first.  In short:
 *
 *   - Items live in segments of SEG_SLOTS slots (an unrolled list).  Item
 *     number q lives in the segment with base = q & ~SEG_MASK, slot q & MASK.
 *     A slot is NULL until its producer stores the item (release); the item
 *     pointer itself is the "ready" flag, so readers need no shared counter.
 *   - Producers claim positions by CAS on s->tail ((claimed << TAIL_SHIFT) |
 *     flags; a single producer, and a default stream's first producer until
 *     a second one pushes, by plain store: the fenced and biased claims of
 *     design.md §4) after making sure the segments for the claim exist (so a claim
 *     never has to allocate, and ENOMEM leaves no trace).  A claim inside the
 *     tail segment needs no read section: it never dereferences the segment
 *     before its claim succeeded, and a segment with a claimed, unwritten
 *     slot is never freed.  A claim that enters a later segment walks in an
 *     RCU read section and moves tail_seg (the STALE bit, design.md §4).
 *   - Active cursors and share groups ("consumers") publish a position; the
 *     reclaimer (under s->lock) unlinks whole segments that lie strictly
 *     below F = min(consumers, tail hint, tail - window if passives exist).
 *   - Passive cursors and share-group members pin the one segment they
 *     stand in (one RMW per segment, not per item).  An unlinked segment is
 *     freed (items destroyed, memory handed to call_rcu) by whoever drops
 *     the last of {link, pins}.
 *
 * One job per file:
 *
 *   stream.c     create/destroy, close/fail, stats; the push path
 *   segment.c    the segment pool, retirement after a grace period,
 *                reclamation and the last-cursor sweep
 *   cursor.c     cursor create/fork/close; pins; the three read paths and
 *                the blocking read
 *   readiness.c  the sleeping side of the wait queues, readiness queries
 *                (available, at_least) and event-loop watchers (fd, notify,
 *                arm)
 *
 * No per-item path crosses between them: the push path and the read paths
 * each live in one file, and what both run per item is static inline below.
 * Calls between the files happen per segment, per sleep or per cursor.
 */
#ifndef FO_STREAM_IMPL_H
#define FO_STREAM_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fanout/stream.h>
#include "internal.h"

#define SEG_SHIFT 8
#define SEG_SLOTS (1u << SEG_SHIFT)
#define SEG_MASK  ((uint64_t)SEG_SLOTS - 1)

/* s->tail = (claimed << TAIL_SHIFT) | BIASED | FENCED | STALE | CLOSED (design.md §4). */
#define TAIL_CLOSED 1u /* bit 0: closed or failed, no claim succeeds */
#define TAIL_STALE  2u /* bit 1: a claim entered a later segment; tail_seg not moved yet */
#define TAIL_FENCED 4u /* bit 2: plain-store claims (fenced or biased), set at creation */
#define TAIL_BIASED 8u /* bit 3: with FENCED: biased to s->owner; cleared by revocation */
#define TAIL_SHIFT  4
#define TAIL_ONE    ((uint64_t)1 << TAIL_SHIFT)
#define TAIL_POS(t) ((uint64_t)(t) >> TAIL_SHIFT) /* claimed positions */
#define NO_END      UINT64_MAX

#define SEG_DEAD 1u /* bit 0 of seg->state: unlinked; pins count in units of 2 */
#define SEG_PIN  2u

/* Written into a slot whose item was freed at once (no cursor existed).
 * Defined in stream.c.  Hidden: its address is a PC-relative constant in
 * the readers' per-item check, not a load from the GOT. */
extern char fo__dead_item __attribute__((visibility("hidden")));
#define DEAD_ITEM ((void *)&fo__dead_item)

/*
 * Segment.  Line 0: base (immutable), next (written once by a producer),
 * state (pins: written by passive cursors / members once per segment
 * crossing; DEAD: written once by the reclaimer).  The slots start on their
 * own line; each slot is written once by one producer and read by cursors.
 */
struct seg {
	uint64_t base;
	_Atomic(struct seg *) next;
	_Atomic uint64_t state;
	_Atomic uint32_t ndead; /* DEAD_ITEM slots: exact stats without a scan */
	uint32_t nbatch;        /* head of a batch handed to call_rcu: its length */
	struct seg *rnext;      /* retired batch / pool chain, under pool_lock; the
	                           limbo chain (s->limbo), under s->lock */
	fo__rcu_node rcu;
	_Atomic(void *) slot[SEG_SLOTS] FO_ALIGNED;
};

/* A registered lossless consumer: an active cursor or a share group. */
struct consumer {
	struct consumer *next, *prev; /* s->consumers, under s->lock */
	_Atomic uint64_t *pos;        /* position for capacity */
	_Atomic uint64_t *hold;       /* cursors: F contribution (first item still held) */
	_Atomic(struct seg *) *hint;  /* groups: F contribution is hint->base */
};

struct group {
	_Atomic uint64_t pos FO_ALIGNED; /* next unclaimed position: CAS by members */
	_Atomic(struct seg *) hint;      /* segment with base <= pos; moves forward */
	struct consumer cons FO_ALIGNED; /* under s->lock */
	int members;                     /* under s->lock */
};

enum kind { K_ACTIVE, K_PASSIVE, K_MEMBER };

struct fo_cursor {
	/* Line 0: private to the cursor's user thread. */
	fo_stream *s;
	struct seg *seg; /* active/passive: segment holding pos (or ending at pos);
	                    passive/member: pinned (member: NULL until first read) */
	uint64_t pos;    /* active/passive: next position to read */
	uint64_t lim;    /* active, not done: seg->base + SEG_SLOTS, where the
	                    per-item fast path stops; 0 otherwise (design.md §5) */
	enum kind kind;
	int done; /* 0, FO_END or FO_FAILED: sticky */
	uint64_t lagged;
	struct group *g;
	/* Line 1: published positions (active only).  pub: items before it are
	 * consumed (capacity).  hold: first item of the last batch returned,
	 * still valid for the caller (reclamation). */
	_Atomic uint64_t pub FO_ALIGNED;
	_Atomic uint64_t hold;
	struct consumer cons;
	/* Passive only: [plo, phi) holds the positions this cursor may read in
	 * the call it is making (phi = UINT64_MAX meanwhile) or returned in its
	 * last call.  Written by its user thread, read by the reclaimer, which
	 * destroys a DEAD pinned segment's items outside every passive's range
	 * (design.md §6, "A stalled passive cursor").  pnext/pprev: the
	 * stream's passive list, under s->lock. */
	_Atomic uint64_t plo, phi;
	fo_cursor *pnext, *pprev;

	/* Line 2: event-loop readiness (design.md §7).  armed: written by the
	 * user thread (arm) and by the producer that signals (CAS 1 -> 0).
	 * busy: producers inside a signal of this cursor. */
	_Atomic uint32_t armed FO_ALIGNED;
	_Atomic uint32_t busy;
	int efd; /* -1 until fo_cursor_fd() */
	void (*notify)(void *arg);
	void *notify_arg;
	bool watching;              /* on s->watchers */
	_Atomic(fo_cursor *) wnext; /* s->watchers chain: RCU-read, changed under lock */
	fo_cursor *spare_next;      /* s->spare list, under lock */
	fo__rcu_node rcu;           /* a watcher's memory outlives readers of the chain */
};

/*
 * A wait queue: sleepers set @need (after reading @gen), the waker clears
 * it with one exchange and bumps @gen.  So only the first publish after a
 * sleeper announced itself pays the system call, however long the sleeper
 * takes to get a CPU (design.md §7).
 */
struct waitq {
	_Atomic uint32_t need; /* NEED_SLEEP | NEED_WATCH | NEED_BATCH */
	_Atomic uint32_t gen;
	/* NEED_BATCH (space waitq): a producer sleeps until the consumers'
	 * minimum position reaches @want, i.e. until the last of the @behind
	 * consumers that were below it crosses it (design.md §7).  Hints: its
	 * sleep is bounded, so a lost hint costs latency, never progress. */
	_Atomic uint64_t want;
	_Atomic uint32_t behind;
};

#define NEED_SLEEP 1u /* a thread sleeps on gen: wake at the next publish */
#define NEED_WATCH 2u /* a cursor is armed (fd or notify hook): data waitq only */
#define NEED_BATCH 4u /* a thread sleeps on gen, with a deadline, for a watermark */

/* cursor->armed */
#define ARM_IDLE   0u
#define ARM_ARMED  1u
#define ARM_CLOSED 2u /* closing: no more signals */

/*
 * Stream.  Each group of fields sits on its own line(s) because a different
 * set of threads writes it.
 */
struct fo_stream {
	/* Producers: the claim word and the tail segment.  While tail has no
	 * STALE bit, tail_seg holds position TAIL_POS(tail) - 1 (segment 0 while
	 * nothing is claimed); it moves only between a claim that sets STALE and
	 * the CAS that clears it (design.md §4). */
	_Atomic uint64_t tail FO_ALIGNED;
	_Atomic(struct seg *) tail_seg;
	_Atomic uint64_t cached_min; /* bounded streams: lower bound of min consumer */
	/* The biased claim (design.md §4): the thread the claim is biased to
	 * (0 until the first push; set once by CAS), and 1 while that thread
	 * is inside a plain-store push (written by it, read by a revoker). */
	_Atomic uintptr_t owner;
	_Atomic uint32_t busy;

	/* Read-mostly: options and end state. */
	size_t capacity FO_ALIGNED;
	size_t window;
	void (*item_free)(void *item, void *ctx);
	void *item_free_ctx;
	bool single_producer;  /* pushes skip the read section (design.md §4) */
	bool fenced;           /* single producer claiming by plain store (design.md §4) */
	bool biased;           /* default options, created biased (design.md §4) */
	_Atomic uint64_t end;  /* NO_END until close/fail published it */
	_Atomic uint32_t gate; /* GATE_EMPTY | GATE_CLOSING | GATE_REVOKED: loaded by every push */
	fo_error err;          /* written before end is published */

	/* Readers going to sleep for data (see struct waitq). */
	struct waitq data FO_ALIGNED;

	/* Producers going to sleep for room. */
	struct waitq space FO_ALIGNED;

	/* Counters for fo_stream_stats(). */
	_Atomic uint64_t freed FO_ALIGNED;
	_Atomic size_t live_segments;

	/* Cold: registry, reclamation, close, handles.  The counts a cursor's
	 * creation, fork and close write live here, not on the read-mostly
	 * line every push loads: a fork under load would take that line from
	 * the producer and back on every fork (B5). */
	pthread_mutex_t lock FO_ALIGNED;
	_Atomic int ncursors;            /* open cursors of every kind, changed under lock */
	_Atomic int npassive;            /* open passive cursors, changed under lock */
	fo_cursor *passives;             /* their list (pnext/pprev), under lock */
	_Atomic(struct seg *) oldest;    /* written under lock; read by lapped passives */
	_Atomic uint32_t walkers;        /* passives in a walk (fo__walk_enter), design.md §6 */
	struct consumer consumers;       /* list head, under lock */
	_Atomic(fo_cursor *) watchers;   /* cursors with an fd or notify hook */
	_Atomic int reclaim_pending;     /* a fo__reclaim_try found the lock taken */
	_Atomic unsigned reclaim_misses; /* fo__reclaim_try()s that found it taken, no pass done */
	struct seg *limbo; /* unlinked with a claimed, unwritten slot (design.md §6), under lock */
	fo_cursor *spare;  /* closed cursor objects for reuse, under lock */
	unsigned nspare;
	_Atomic int handles; /* creator + open cursors */
	_Atomic int refs;    /* 1 for all handles + 1 per pending retire batch */
	char *err_msg;

	/* Segment recycling: producers pop, the call_rcu thread pushes. */
	pthread_mutex_t pool_lock FO_ALIGNED;
	struct seg *pool, *retired; /* chains through rnext */
	unsigned npool, nretired;
	unsigned ngrace;                /* segments in call_rcu's hands now (design.md §6) */
	unsigned nstarved;              /* allocations while ngrace > 0: pool_keep()'s extra */
	unsigned pool_low;              /* lowest npool in the decay window (design.md §6) */
	unsigned nidle;                 /* ends of a wait (ngrace back to 0) in the window */
	_Atomic size_t cached_segments; /* stats: pool + retired + in grace period */
};

/* s->gate, the word a push loads after its claim (design.md §4, "the
 * fenced claim"): clear in the common case. */
#define GATE_EMPTY   1u /* no cursor open: items pushed now are destroyed at once */
#define GATE_CLOSING 2u /* a fenced stream's close has begun */
#define GATE_REVOKED 4u /* a biased stream's bias is being or was revoked: for good */

/* Closed or failed?  @t: a load of s->tail.  In a fenced stream a doomed
 * claim may hide CLOSED for a moment (design.md §4), so threads other than
 * the producer look at the end too. */
static inline bool fo__tail_closed(fo_stream *s, uint64_t t)
{
	return (t & TAIL_CLOSED) ||
	       ((t & TAIL_FENCED) && /* acquire: the end's error, as readers do */
	        atomic_load_explicit(&s->end, memory_order_acquire) != NO_END);
}

/* ------------------------------------------------------------------------ */
/* Per-item helpers shared between the files                                */

/* Walk forward from @x (alive; caller in a read section or holding
 * s->lock) to the segment containing @pos, or the last linked one before
 * it.  Returns the segment; callers check whether it contains @pos.
 * Per push; a member's read walks once per segment. */
static inline struct seg *fo__seg_walk(struct seg *x, uint64_t pos)
{
	FO_ASSERT(x->base <= pos); /* callers load the hint before the position */
	while (pos - x->base >= SEG_SLOTS) {
		/* acquire: the new segment's initialisation happened before. */
		struct seg *n = atomic_load_explicit(&x->next, memory_order_acquire);
		if (!n)
			break;
		x = n;
	}
	return x;
}

/* The segment holding @pos, when @x holds @pos or ends right before it;
 * NULL if that next segment is not linked yet.  Hot path: per item of an
 * active read and of a readiness scan. */
static inline struct seg *fo__seg_step(struct seg *x, uint64_t pos)
{
	if (pos - x->base < SEG_SLOTS)
		return x;
	/* acquire: the new segment's initialisation happened before. */
	return atomic_load_explicit(&x->next, memory_order_acquire);
}

/* A passive cursor's walk through segments it has not pinned (the lapped,
 * crossing and readiness paths): an RCU read section, counted in
 * s->walkers so that a reclamation pass that reads 0 after its unlinks may
 * recycle what it released without a grace period (design.md §6, "With
 * passive cursors: the walker count").  Per segment crossing or lap, never
 * per item. */
static inline void fo__walk_enter(fo_stream *s)
{
	fo__rcu_lock();
	/* seq_cst: before this walk's loads of DEAD and oldest, against the
	 * pass's unlinks and then its load of walkers (design.md §6). */
	atomic_fetch_add_explicit(&s->walkers, 1, memory_order_seq_cst);
}

static inline void fo__walk_leave(fo_stream *s)
{
	/* seq_cst (release is what matters): the walk's reads before a pass
	 * that reads 0 recycles anything. */
	atomic_fetch_sub_explicit(&s->walkers, 1, memory_order_seq_cst);
	fo__rcu_unlock();
}

/* The caller published (an item, a position, the end) and then fenced.
 * Costs one load when nobody sleeps.  The sleeping side is in readiness.c. */
static inline uint32_t fo__waitq_wake(struct waitq *q)
{
	uint32_t need = 0;
	if (atomic_load_explicit(
	        &q->need, memory_order_relaxed)) /* a peek: the caller fenced after publishing */
		need = atomic_exchange_explicit(
		    &q->need, 0,
		    memory_order_seq_cst); /* seq_cst: one waker clears, before its gen bump */
	if (need & (NEED_SLEEP | NEED_BATCH)) {
		/* seq_cst: the bump is after the clear, so any sleeper that
		 * announced before the clear sees gen change. */
		atomic_fetch_add_explicit(&q->gen, 1, memory_order_seq_cst);
		fo__futex_wake_all(&q->gen);
	}
	return need;
}

/* A reader moved its position, or a cursor closed: wake producers waiting
 * for room. */
static inline void fo__wake_space(fo_stream *s)
{
	fo__waitq_wake(&s->space);
}

/* ------------------------------------------------------------------------ */
/* Between the files (per segment, per sleep or per cursor, never per item) */

/* stream.c: the stream's lifetime. */
void fo__stream_unref(fo_stream *s);
void fo__stream_unref_mem(fo_stream *s);

/* stream.c: tests only (tests/unit/test_reclaim.c), compiled in only with
 * FO_TEST_HOOKS (the fanout_static_hooks library the tests that ask for it
 * link; never the installed ones).  If set, every push that goes through
 * the general path calls it between its claim of [@first, @first + @n) and
 * its stores (outside any read section): a stalled producer on demand.  Set
 * and cleared while no push runs. */
#ifdef FO_TEST_HOOKS
extern void (*fo__claim_hook)(fo_stream *s, uint64_t first, size_t n)
    __attribute__((visibility("hidden")));
#endif

/* stream.c: tests only (tests/unit/test_push_claim.c), with FO_TEST_HOOKS
 * as above.  If set, a claim of [@first, @first + @n) that enters a later
 * segment calls it right after its CAS, with STALE set and tail_seg not
 * moved yet: a crossing producer stopped mid-way, for other producers to
 * help. */
#ifdef FO_TEST_HOOKS
extern void (*fo__cross_hook)(fo_stream *s, uint64_t first, size_t n)
    __attribute__((visibility("hidden")));
#endif

/* stream.c: tests only (tests/unit/test_bias_stall.c), with FO_TEST_HOOKS
 * as above.  fo__closing_hook, if set, is called by a fenced claim that
 * found the stream closing (fenced_closing()), holding s->lock: an owner
 * stopped inside its busy window with the lock held.  fo__bias_busy()
 * tells whether a biased stream's owner is inside its plain-store push
 * (busy set), for a destructor that must never run there (design.md §4). */
#ifdef FO_TEST_HOOKS
extern void (*fo__closing_hook)(fo_stream *s) __attribute__((visibility("hidden")));
bool fo__bias_busy(fo_stream *s) __attribute__((visibility("hidden")));
#endif

/* segment.c: tests only (tests/unit/test_reclaim.c), with FO_TEST_HOOKS as
 * above.  fo__frontier_hook, if set, is called by every reclamation pass
 * (holding s->lock) once it has read its frontier and before it unlinks
 * anything: where a pass that read the misses' count after its frontier
 * could erase misses counted meanwhile (design.md §6).
 * fo__reclaim_wait_hook, if set, is called by a producer's request that is
 * about to wait for the registry lock (RECLAIM_MISSES uncovered misses),
 * right before it does.  Set and cleared while no push or pass runs. */
#ifdef FO_TEST_HOOKS
extern void (*fo__frontier_hook)(fo_stream *s) __attribute__((visibility("hidden")));
extern void (*fo__reclaim_wait_hook)(fo_stream *s) __attribute__((visibility("hidden")));
#endif

/* segment.c: *_locked callers hold s->lock. */
struct seg *fo__seg_new(fo_stream *s, uint64_t base);
void fo__seg_unused(fo_stream *s, struct seg *x);
void fo__seg_release(fo_stream *s, struct seg *x, bool deferred);
void fo__seg_pool_free(fo_stream *s);
void fo__reclaim_locked(fo_stream *s);
void fo__sweep_locked(fo_stream *s);
void fo__reclaim_try(fo_stream *s);
void fo__reclaim_push(fo_stream *s);
void fo__reclaim_pending(fo_stream *s);
void fo__stream_unlock(fo_stream *s);

/* readiness.c: the sleeping side and the watcher chain. */
uint32_t fo__waitq_prepare(struct waitq *q, uint32_t bit);
int fo__waitq_sleep(struct waitq *q, uint32_t ticket, uint64_t deadline);
void fo__signal_watchers(fo_stream *s);
void fo__watcher_del_locked(fo_stream *s, fo_cursor *c);

#endif /* FO_STREAM_IMPL_H */

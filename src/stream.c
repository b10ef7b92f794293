/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stream.c - push streams and cursors.  docs/design.md is the protocol this
 * file implements; read it first.  In short:
 *
 *   - Items live in segments of SEG_SLOTS slots (an unrolled list).  Item
 *     number q lives in the segment with base = q & ~SEG_MASK, slot q & MASK.
 *     A slot is NULL until its producer stores the item (release); the item
 *     pointer itself is the "ready" flag, so readers need no shared counter.
 *   - Producers claim positions by CAS on s->tail ((claimed << 1) | CLOSED)
 *     after making sure the segments for the claim exist (so a claim never
 *     has to allocate, and ENOMEM leaves no trace).  Claim+store run inside
 *     an RCU read section: that is what keeps the segment memory a producer
 *     walks alive.
 *   - Active cursors and share groups ("consumers") publish a position; the
 *     reclaimer (under s->lock) unlinks whole segments that lie strictly
 *     below F = min(consumers, tail hint, tail - window if passives exist).
 *   - Passive cursors and share-group members pin the one segment they
 *     stand in (one RMW per segment, not per item).  An unlinked segment is
 *     freed (items destroyed, memory handed to call_rcu) by whoever drops
 *     the last of {link, pins}.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <fanout/stream.h>
#include "internal.h"

#define SEG_SHIFT 8
#define SEG_SLOTS (1u << SEG_SHIFT)
#define SEG_MASK  ((uint64_t)SEG_SLOTS - 1)

#define TAIL_CLOSED 1u /* bit 0 of s->tail */
#define NO_END      UINT64_MAX

#define SEG_DEAD 1u /* bit 0 of seg->state: unlinked; pins count in units of 2 */
#define SEG_PIN  2u

#define SPIN_ROUNDS    16 /* brief spin before sleeping: 1+2+..+64 pauses, ~1-10 us */
#define SPIN_MAX_SHIFT 6
#define SPIN_LIMIT     128 /* producers waiting for room */
#define YIELD_LIMIT    4   /* then a few sched_yield()s, then sleep */

/* Unlinked segments wait for a grace period in batches (one call_rcu, one
 * wake of liburcu's worker and one grace period per RETIRE_BATCH segments),
 * then return to a per-stream pool of at most POOL_MAX for reuse: no malloc
 * per segment in steady state. */
#define RETIRE_BATCH           16
#define PRODUCER_RECLAIM_EVERY 4  /* segments; a power of two */
#define SPARE_CURSORS          64 /* closed cursor objects kept for reuse by forks (B5): <= 16 KiB */
#define POOL_MAX               32

/* Written into a slot whose item was freed at once (no cursor existed). */
static char dead_item;
#define DEAD_ITEM ((void *)&dead_item)

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
	struct seg *rnext;      /* retired batch / pool chain, under pool_lock */
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
	_Atomic uint32_t need; /* NEED_SLEEP | NEED_WATCH */
	_Atomic uint32_t gen;
};

#define NEED_SLEEP 1u /* a thread sleeps on gen */
#define NEED_WATCH 2u /* a cursor is armed (fd or notify hook): data waitq only */

/* cursor->armed */
#define ARM_IDLE   0u
#define ARM_ARMED  1u
#define ARM_CLOSED 2u /* closing: no more signals */

/*
 * Stream.  Each group of fields sits on its own line(s) because a different
 * set of threads writes it.
 */
struct fo_stream {
	/* Producers: claim counter and segment hint. */
	_Atomic uint64_t tail FO_ALIGNED;
	_Atomic(struct seg *) tail_seg;
	_Atomic uint64_t cached_min; /* bounded streams: lower bound of min consumer */

	/* Read-mostly: options and end state. */
	size_t capacity FO_ALIGNED;
	size_t window;
	void (*item_free)(void *item, void *ctx);
	void *item_free_ctx;
	bool single_producer; /* pushes skip the read section (design.md §4) */
	_Atomic uint64_t end; /* NO_END until close/fail published it */
	_Atomic int ncursors; /* open cursors of every kind */
	_Atomic int npassive; /* open passive cursors */
	fo_error err;         /* written before end is published */

	/* Readers going to sleep for data (see struct waitq). */
	struct waitq data FO_ALIGNED;

	/* Producers going to sleep for room. */
	struct waitq space FO_ALIGNED;

	/* Counters for fo_stream_stats(). */
	_Atomic uint64_t freed FO_ALIGNED;
	_Atomic size_t live_segments;

	/* Cold: registry, reclamation, close, handles. */
	pthread_mutex_t lock FO_ALIGNED;
	_Atomic(struct seg *) oldest;  /* written under lock; read by lapped passives */
	struct consumer consumers;     /* list head, under lock */
	_Atomic(fo_cursor *) watchers; /* cursors with an fd or notify hook */
	_Atomic int reclaim_pending;   /* a reclaim_try found the lock taken */
	fo_cursor *spare;              /* closed cursor objects for reuse, under lock */
	unsigned nspare;
	_Atomic int handles; /* creator + open cursors */
	_Atomic int refs;    /* 1 for all handles + 1 per pending retire batch */
	char *err_msg;

	/* Segment recycling: producers pop, the call_rcu thread pushes. */
	pthread_mutex_t pool_lock FO_ALIGNED;
	struct seg *pool, *retired; /* chains through rnext */
	unsigned npool, nretired;
	_Atomic size_t cached_segments; /* stats: pool + retired + in grace period */
};

/* ------------------------------------------------------------------------ */
/* Segments                                                                  */

static struct seg *seg_new(fo_stream *s, uint64_t base)
{
	pthread_mutex_lock(&s->pool_lock);
	struct seg *x = s->pool;
	if (x) {
		s->pool = x->rnext;
		s->npool--;
		atomic_fetch_sub_explicit(&s->cached_segments, 1,
		                          memory_order_relaxed); /* stats only */
	}
	pthread_mutex_unlock(&s->pool_lock);
	if (!x && !(x = fo__alloc(sizeof(*x))))
		return NULL;
	x->base = base;
	atomic_init(&x->next, NULL);
	atomic_init(&x->state, 0);
	atomic_init(&x->ndead, 0);
	/* calloc-like: every slot starts NULL = not yet written. */
	memset((void *)x->slot, 0, sizeof(x->slot));
	atomic_fetch_add_explicit(&s->live_segments, 1, memory_order_relaxed); /* stats only */
	return x;
}

static void stream_free(fo_stream *s);
static void sweep_locked(fo_stream *s);

/* Drop a memory reference; the last one frees the stream's memory. */
static void stream_unref_mem(fo_stream *s)
{
	/* acq_rel: everything done under this reference happens before the free. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		stream_free(s);
}

/* Drop a user handle (creator or cursor).  The last one destroys every
 * item still held before returning (the API promises it), even if a retire
 * batch keeps the memory a little longer. */
static void stream_unref(fo_stream *s)
{
	/* acq_rel: everything this handle did happens before the teardown. */
	if (atomic_fetch_sub_explicit(&s->handles, 1, memory_order_acq_rel) == 1) {
		sweep_locked(s); /* nobody else is left: the lock is not needed */
		stream_unref_mem(s);
	}
}

/* After a grace period: no thread can still reach the batch's segments. */
static void retire_done(fo__rcu_node *node)
{
	struct seg *x = (struct seg *)((char *)node - offsetof(struct seg, rcu));
	fo_stream *s = node->arg;
	pthread_mutex_lock(&s->pool_lock);
	while (x) {
		struct seg *n = x->rnext;
		if (s->npool < POOL_MAX) {
			x->rnext = s->pool;
			s->pool = x;
			s->npool++;
		} else {
			atomic_fetch_sub_explicit(&s->cached_segments, 1,
			                          memory_order_relaxed); /* stats only */
			fo__free(x);
		}
		x = n;
	}
	pthread_mutex_unlock(&s->pool_lock);
	stream_unref_mem(s); /* the batch's reference */
}

/* Queue an unlinked, destroyed segment for reuse after a grace period
 * (producers and lapped passives may still walk its header). */
static void seg_retire(fo_stream *s, struct seg *x)
{
	struct seg *batch = NULL;
	atomic_fetch_add_explicit(&s->cached_segments, 1, memory_order_relaxed); /* stats only */
	pthread_mutex_lock(&s->pool_lock);
	x->rnext = s->retired;
	s->retired = x;
	if (++s->nretired == RETIRE_BATCH) {
		batch = s->retired;
		s->retired = NULL;
		s->nretired = 0;
	}
	pthread_mutex_unlock(&s->pool_lock);
	if (batch) {
		/* The batch holds a reference: the stream outlives the callback.
		 * relaxed: a user handle, held by our caller, keeps refs > 0. */
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
		batch->rcu.arg = s;
		fo__rcu_call(&batch->rcu, retire_done);
	}
}

/* Destroy the items of a segment no cursor can reach, then retire its
 * memory (@deferred) or free it at once (teardown: nobody else left). */
static void seg_release(fo_stream *s, struct seg *x, bool deferred)
{
	uint64_t n = 0;
	if (deferred && !s->item_free) {
		/* Unlinked segments are fully written: nothing to call, and the
		 * count needs no scan. */
		n = SEG_SLOTS - atomic_load_explicit(&x->ndead, memory_order_relaxed);
		goto counted;
	}
	for (unsigned i = 0; i < SEG_SLOTS; i++) {
		/* acquire: the item's contents were written before its slot. */
		void *it = atomic_load_explicit(&x->slot[i], memory_order_acquire);
		if (it && it != DEAD_ITEM) {
			if (s->item_free)
				s->item_free(it, s->item_free_ctx);
			n++;
		}
	}
counted:
	atomic_fetch_add_explicit(&s->freed, n, memory_order_relaxed); /* stats only */
	atomic_fetch_sub_explicit(&s->live_segments, 1, memory_order_relaxed);
	if (deferred)
		seg_retire(s, x);
	else
		fo__free(x);
}

/* Pin @x unless it is already unlinked.  Caller is in a read section (or
 * otherwise knows @x's memory is alive). */
static bool seg_pin(struct seg *x)
{
	uint64_t st = atomic_load_explicit(
	    &x->state, memory_order_relaxed); /* a peek: the CAS below decides */
	do {
		if (st & SEG_DEAD)
			return false;
		/* acq_rel: orders our later slot reads after the pin, and pairs
		 * with the reclaimer's fetch_or so exactly one side frees. */
	} while (!atomic_compare_exchange_weak_explicit(
	    &x->state, &st, st + SEG_PIN, memory_order_acq_rel, memory_order_relaxed));
	return true;
}

/* Pin a segment the caller already has pinned (so it cannot be freed). */
static void seg_pin_again(struct seg *x)
{
	atomic_fetch_add_explicit(&x->state, SEG_PIN, memory_order_relaxed); /* held already */
}

static void seg_unpin(fo_stream *s, struct seg *x)
{
	/* acq_rel: our reads of its items happen before whoever frees it. */
	uint64_t old = atomic_fetch_sub_explicit(&x->state, SEG_PIN, memory_order_acq_rel);
	if (old == (SEG_PIN | SEG_DEAD))
		seg_release(s, x, true);
}

/* Walk forward from @x (alive; caller in a read section or holding
 * s->lock) to the segment containing @pos, or the last linked one before
 * it.  Returns the segment; *exact tells whether it contains @pos. */
static struct seg *seg_walk(struct seg *x, uint64_t pos)
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
 * NULL if that next segment is not linked yet.  Hot path. */
static inline struct seg *seg_step(struct seg *x, uint64_t pos)
{
	if (pos - x->base < SEG_SLOTS)
		return x;
	/* acquire: the new segment's initialisation happened before. */
	return atomic_load_explicit(&x->next, memory_order_acquire);
}

/* Make sure segments exist from @x through position @last (inclusive).
 * Called before claiming, so a failure leaves nothing behind. */
static int seg_ensure(fo_stream *s, struct seg *x, uint64_t last)
{
	while (last - x->base >= SEG_SLOTS) {
		struct seg *n = atomic_load_explicit(
		    &x->next,
		    memory_order_acquire); /* acquire: the next segment's initialisation */
		if (!n) {
			struct seg *fresh = seg_new(s, x->base + SEG_SLOTS);
			if (!fresh)
				return FO_ENOMEM;
			/* release: publish the zeroed slots with the link. */
			if (atomic_compare_exchange_strong_explicit(
			        &x->next, &n, fresh, memory_order_acq_rel, memory_order_acquire)) {
				n = fresh;
			} else {
				/* Lost the race: never published, free directly. */
				atomic_fetch_sub_explicit(&s->live_segments, 1,
				                          memory_order_relaxed);
				fo__free(fresh);
			}
		}
		x = n;
	}
	return FO_OK;
}

/* ------------------------------------------------------------------------ */
/* Registry and reclamation (all under s->lock)                              */

static void cons_add(fo_stream *s, struct consumer *c)
{
	c->next = s->consumers.next;
	c->prev = &s->consumers;
	s->consumers.next->prev = c;
	s->consumers.next = c;
	/* A consumer can join behind the cached minimum (a fork of a lagging
	 * cursor): lower it so capacity stays exact. */
	uint64_t p = atomic_load_explicit(c->pos, memory_order_relaxed);
	if (p < atomic_load_explicit(&s->cached_min, memory_order_relaxed))
		atomic_store_explicit(
		    &s->cached_min, p,
		    memory_order_relaxed); /* a hint only: full rescans take the lock */
}

static void cons_del(struct consumer *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->next = c->prev = c;
}

/* Minimum capacity position over consumers; UINT64_MAX if none. */
static uint64_t cons_min_pos(fo_stream *s)
{
	uint64_t m = UINT64_MAX;
	for (struct consumer *c = s->consumers.next; c != &s->consumers; c = c->next) {
		/* acquire: pairs with the reader's release publish. */
		uint64_t p = atomic_load_explicit(c->pos, memory_order_acquire);
		if (p < m)
			m = p;
	}
	return m;
}

/* Is every slot of @x stored?  With a single producer the last slot is
 * proof (stores land in order).  (A consumer's position is no proof: a new
 * cursor starts at the tail, past slots claimed but not yet stored.) */
static bool seg_fully_written(const fo_stream *s, const struct seg *x)
{
	if (s->single_producer) /* acquire: the earlier stores came before it */
		return atomic_load_explicit(&x->slot[SEG_SLOTS - 1], memory_order_acquire);
	for (unsigned i = 0; i < SEG_SLOTS; i++)
		if (!atomic_load_explicit(&x->slot[i], memory_order_acquire))
			return false;
	return true;
}

/* Unlink every segment below the frontier: strictly below while cursors
 * exist (an active cursor may stand at a segment's very end and still need
 * its next pointer).  Caller holds s->lock. */
static void reclaim_locked(fo_stream *s)
{
	struct seg *hint = atomic_load_explicit(
	    &s->tail_seg,
	    memory_order_acquire); /* acquire: under the lock the hint segment is linked */
	uint64_t f = hint->base;
	bool none = atomic_load_explicit(&s->ncursors, memory_order_relaxed) ==
	            0; /* changed only under the lock we hold */
	for (struct consumer *c = s->consumers.next; c != &s->consumers; c = c->next) {
		uint64_t p;
		if (c->hint) /* a group: its hint segment and later stay */
			p = atomic_load_explicit(c->hint, memory_order_acquire)->base;
		else /* acquire: the cursor is done with everything below */
			p = atomic_load_explicit(c->hold, memory_order_acquire);
		if (p < f)
			f = p;
	}
	if (atomic_load_explicit(&s->npassive, memory_order_relaxed) >
	    0) { /* changed only under the lock we hold */
		uint64_t t = atomic_load_explicit(&s->tail, memory_order_relaxed) >>
		             1; /* only bounds the passive window */
		uint64_t keep = t > s->window ? t - s->window : 0;
		if (keep < f)
			f = keep;
	}
	struct seg *x = atomic_load_explicit(
	    &s->oldest, memory_order_relaxed); /* written only under the lock we hold */
	uint64_t slack = none ? 0 : 1;
	while (x != hint && x->base + SEG_SLOTS + slack <= f && seg_fully_written(s, x)) {
		struct seg *n = atomic_load_explicit(&x->next, memory_order_acquire);
		/* release: a lapped passive that loads oldest sees a linked one. */
		atomic_store_explicit(&s->oldest, n, memory_order_release);
		/* acq_rel: pairs with pins/unpins; exactly one side frees. */
		uint64_t old = atomic_fetch_or_explicit(&x->state, SEG_DEAD, memory_order_acq_rel);
		if ((old >> 1) == 0)
			seg_release(s, x, true);
		x = n;
	}
}

/*
 * The last cursor is gone: no cursor can return any retained item (a new
 * one starts at the tail), so destroy the written items of the segments
 * still linked, leaving DEAD_ITEM behind.  Producers only ever store into
 * NULL slots and every other destroyer holds s->lock or a pin (none left),
 * so nobody races with us on a non-NULL slot.  Caller holds s->lock.
 */
static void sweep_locked(fo_stream *s)
{
	uint64_t n = 0;
	for (struct seg *x = atomic_load_explicit(&s->oldest, memory_order_relaxed);
	     x; /* written only under the lock we hold */
	     x = atomic_load_explicit(
	         &x->next, memory_order_acquire)) { /* acquire: the next segment's initialisation */
		for (unsigned i = 0; i < SEG_SLOTS; i++) {
			/* acquire: the item's contents before its destructor. */
			void *it = atomic_load_explicit(&x->slot[i], memory_order_acquire);
			if (!it || it == DEAD_ITEM)
				continue;
			atomic_store_explicit(
			    &x->slot[i], DEAD_ITEM,
			    memory_order_relaxed); /* nobody can read a swept slot */
			atomic_fetch_add_explicit(&x->ndead, 1,
			                          memory_order_relaxed); /* stats only */
			if (s->item_free)
				s->item_free(it, s->item_free_ctx);
			n++;
		}
	}
	atomic_fetch_add_explicit(&s->freed, n, memory_order_relaxed); /* stats only */
}

/*
 * Reclaim without ever blocking on the registry lock.  A request that finds
 * the lock taken is not lost: it sets reclaim_pending, and every holder
 * checks the flag after unlocking (stream_unlock).  seq_cst store then
 * trylock, against unlock, fence, load: one of the two sides sees the other.
 */
static void reclaim_try(fo_stream *s)
{
	atomic_store_explicit(&s->reclaim_pending, 1,
	                      memory_order_seq_cst); /* seq_cst: before our trylock (see above) */
	while (
	    atomic_load_explicit(&s->reclaim_pending,
	                         memory_order_seq_cst) && /* seq_cst: after the holder's unlock */
	    pthread_mutex_trylock(&s->lock) == 0) {
		atomic_store_explicit(&s->reclaim_pending, 0,
		                      memory_order_relaxed); /* we hold the lock */
		reclaim_locked(s);
		pthread_mutex_unlock(&s->lock);
		atomic_thread_fence(memory_order_seq_cst); /* unlock before the re-check */
	}
}

/* Unlock the registry; run a reclamation that was requested meanwhile. */
static void stream_unlock(fo_stream *s)
{
	pthread_mutex_unlock(&s->lock);
	atomic_thread_fence(memory_order_seq_cst); /* unlock before the check */
	if (atomic_load_explicit(&s->reclaim_pending, memory_order_relaxed))
		reclaim_try(s);
}

/* ------------------------------------------------------------------------ */
/* Wake-ups                                                                   */

/* The caller published (an item, a position, the end) and then fenced.
 * Costs one load when nobody sleeps. */
static uint32_t waitq_wake(struct waitq *q)
{
	uint32_t need = 0;
	if (atomic_load_explicit(
	        &q->need, memory_order_relaxed)) /* a peek: the caller fenced after publishing */
		need = atomic_exchange_explicit(
		    &q->need, 0,
		    memory_order_seq_cst); /* seq_cst: one waker clears, before its gen bump */
	if (need & NEED_SLEEP) {
		/* seq_cst: the bump is after the clear, so any sleeper that
		 * announced before the clear sees gen change. */
		atomic_fetch_add_explicit(&q->gen, 1, memory_order_seq_cst);
		fo__futex_wake_all(&q->gen);
	}
	return need;
}

/* First half of a sleep: read gen BEFORE announcing.  (Read after, a
 * waker that cleared @need between the announcement and a second
 * producer's publish could leave the sleeper with a fresh gen and no
 * wake-up.)  The caller then re-checks its condition and, if still unmet,
 * calls waitq_sleep() with the returned ticket. */
static uint32_t waitq_prepare(struct waitq *q)
{
	uint32_t g = atomic_load_explicit(
	    &q->gen, memory_order_seq_cst); /* seq_cst: read before announcing (see above) */
	atomic_fetch_or_explicit(&q->need, NEED_SLEEP, memory_order_seq_cst);
	fo__fence_heavy(); /* the announcement before the caller's re-check */
	return g;
}

static int waitq_sleep(struct waitq *q, uint32_t ticket, uint64_t deadline)
{
	return fo__futex_wait(&q->gen, ticket, deadline);
}

/* Signal every armed watcher once (armed -> idle).  In a read section:
 * closing cursors leave the chain under the lock and are freed after a
 * grace period; busy tells a closing cursor that a signal is in flight. */
static void signal_watchers(fo_stream *s)
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

static void wake_data(fo_stream *s)
{
	if (waitq_wake(&s->data) & NEED_WATCH)
		signal_watchers(s);
}

static void wake_space(fo_stream *s)
{
	waitq_wake(&s->space);
}

/* A reader moved its published position: a producer may wait for room. */
static inline void reader_moved(fo_stream *s)
{
	if (s->capacity) {
		fo__fence_light(); /* our position store before the waiter check */
		wake_space(s);
	}
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                    */

void fo_stream_opts_init(fo_stream_opts *o)
{
	if (o)
		*o = (fo_stream_opts){0, FO_DEFAULT_PASSIVE_WINDOW, NULL, NULL, false};
}

int fo_stream_create(fo_stream **sp, const fo_stream_opts *o)
{
	if (!sp)
		return FO_EINVAL;
	fo_stream_opts d;
	if (!o) {
		fo_stream_opts_init(&d);
		o = &d;
	}
	fo_stream *s = fo__zalloc(sizeof(*s));
	if (!s)
		return FO_ENOMEM;
	struct seg *first = seg_new(s, 0);
	if (!first) {
		fo__free(s);
		return FO_ENOMEM;
	}
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		fo__free(first);
		fo__free(s);
		return FO_ENOMEM;
	}
	if (pthread_mutex_init(&s->pool_lock, NULL) != 0) {
		pthread_mutex_destroy(&s->lock);
		fo__free(first);
		fo__free(s);
		return FO_ENOMEM;
	}
	s->capacity = o->capacity;
	s->window = o->passive_window ? o->passive_window : FO_DEFAULT_PASSIVE_WINDOW;
	s->item_free = o->item_free;
	s->item_free_ctx = o->item_free_ctx;
	s->single_producer = o->single_producer;
	atomic_init(&s->tail, 0);
	atomic_init(&s->tail_seg, first);
	atomic_init(&s->oldest, first);
	atomic_init(&s->end, NO_END);
	atomic_init(&s->live_segments, 1);
	s->consumers.next = s->consumers.prev = &s->consumers;
	atomic_init(&s->handles, 1);
	atomic_init(&s->refs, 1);
	*sp = s;
	return FO_OK;
}

static void free_chain(struct seg *x)
{
	while (x) {
		struct seg *n = x->rnext;
		fo__free(x);
		x = n;
	}
}

/* Free everything; the last handle and reference are gone (no retire batch
 * is pending: each holds a reference), so no other thread can touch the
 * stream.  Items were destroyed by the last handle's sweep. */
static void stream_free(fo_stream *s)
{
	struct seg *x = atomic_load_explicit(
	    &s->oldest, memory_order_acquire); /* last owner: nothing runs concurrently */
	while (x) {
		struct seg *n = atomic_load_explicit(
		    &x->next, memory_order_acquire); /* last owner: nothing runs concurrently */
		seg_release(s, x, false);
		x = n;
	}
	while (s->spare) {
		fo_cursor *c = s->spare;
		s->spare = c->spare_next;
		fo__free(c);
	}
	free_chain(s->retired); /* items already destroyed */
	free_chain(s->pool);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&s->lock);
	fo__free(s->err_msg);
	fo__free(s);
}

void fo_stream_destroy(fo_stream *s)
{
	if (s)
		stream_unref(s);
}

/* Is there room for @k more items after claimed position @t? */
static bool has_room(fo_stream *s, uint64_t t, size_t k)
{
	uint64_t m = atomic_load_explicit(&s->cached_min, memory_order_relaxed);
	if (t + k - m <= s->capacity)
		return true;
	pthread_mutex_lock(&s->lock);
	m = cons_min_pos(s);
	if (m == UINT64_MAX) /* no active consumer: never full */
		m = t;
	atomic_store_explicit(&s->cached_min, m, memory_order_relaxed);
	stream_unlock(s);
	return t + k - m <= s->capacity;
}

/* Wait until there may be room, the stream closes, or the deadline. */
static int wait_room(fo_stream *s, size_t k, uint64_t deadline)
{
	for (int spin = 0; spin < SPIN_LIMIT; spin++) {
		fo__cpu_relax();
		uint64_t t = atomic_load_explicit(
		    &s->tail, memory_order_relaxed); /* a peek: has_room re-checks under the lock */
		if ((t & TAIL_CLOSED) || has_room(s, t >> 1, k))
			return FO_OK;
	}
	uint32_t g = waitq_prepare(&s->space);
	uint64_t t = atomic_load_explicit(
	    &s->tail, memory_order_relaxed); /* a peek: has_room re-checks under the lock */
	if ((t & TAIL_CLOSED) || has_room(s, t >> 1, k))
		return FO_OK;
	return waitq_sleep(&s->space, g, deadline);
}

/*
 * Claim @n positions and store @items there.  @deadline: 0 = never wait,
 * FO__NO_DEADLINE = wait forever.
 */
/* Producers' read section.  A single producer needs none: only it moves the
 * hint, and the reclaimer never unlinks the hint segment or anything after
 * it, so every segment it walks stays linked. */
static inline void producer_enter(fo_stream *s)
{
	if (!s->single_producer)
		fo__rcu_lock();
}

static inline void producer_leave(fo_stream *s)
{
	if (!s->single_producer)
		fo__rcu_unlock();
}

static inline __attribute__((always_inline)) int push_batch(fo_stream *s, void *const *items,
                                                            size_t n, uint64_t deadline)
{
	uint64_t t;
	struct seg *h;

	producer_enter(s);
	for (;;) {
		/* Hint first, then tail: hint->base <= claimed position. */
		h = atomic_load_explicit(&s->tail_seg, memory_order_acquire);
		t = atomic_load_explicit(&s->tail, memory_order_acquire);
		if (t & TAIL_CLOSED) {
			producer_leave(s);
			return FO_ECLOSED;
		}
		if (s->capacity && !has_room(s, t >> 1, n)) {
			producer_leave(s);
			if (deadline == 0)
				return FO_FULL;
			int rc = wait_room(s, n, deadline);
			if (rc == FO_TIMEDOUT) {
				t = atomic_load_explicit(
				    &s->tail, memory_order_relaxed); /* a peek: has_room re-checks
				                                        under the lock */
				if (t & TAIL_CLOSED)
					return FO_ECLOSED;
				if (!has_room(s, t >> 1, n))
					return FO_TIMEDOUT;
			}
			producer_enter(s);
			continue;
		}
		int rc = FO_OK;
		if (fo__unlikely((t >> 1) + n - 1 - h->base >= SEG_SLOTS)) /* usually fits */
			rc = seg_ensure(s, h, (t >> 1) + n - 1);
		if (rc != FO_OK) {
			producer_leave(s);
			return rc;
		}
		/* seq_cst: orders the claim before the ncursors check below,
		 * against cursor creation (ncursors++ then tail load). */
		if (atomic_compare_exchange_weak_explicit(&s->tail, &t, t + 2 * (uint64_t)n,
		                                          memory_order_seq_cst,
		                                          memory_order_relaxed))
			break;
	}

	uint64_t p = t >> 1;
	bool nobody = atomic_load_explicit(&s->ncursors, memory_order_seq_cst) == 0;
	if (nobody) /* stats only */
		atomic_fetch_add_explicit(&s->freed, n, memory_order_relaxed);
	struct seg *x = seg_walk(h, p);
	for (size_t i = 0; i < n; i++, p++) {
		if (p - x->base >= SEG_SLOTS)
			x = atomic_load_explicit(
			    &x->next, memory_order_acquire); /* acquire: linked by seg_ensure before
			                                        our claim */
		void *it = items[i];
		if (nobody) {
			/* No cursor existed at our claim and any later one starts
			 * after it: nobody can ever read this item. */
			if (s->item_free)
				s->item_free(it, s->item_free_ctx);
			atomic_fetch_add_explicit(&x->ndead, 1, memory_order_relaxed); /* stats */
			it = DEAD_ITEM;
		}
		/* release: the item's contents before its pointer. */
		atomic_store_explicit(&x->slot[p & SEG_MASK], it, memory_order_release);
	}
	/* Move the hint forward to the last segment we wrote (never back). */
	bool moved = false;
	while (h->base < x->base) {
		if (atomic_compare_exchange_weak_explicit(&s->tail_seg, &h, x, memory_order_release,
		                                          memory_order_acquire)) {
			moved = true;
			break;
		}
	}
	fo__fence_light(); /* the slot stores before the sleeper check */
	if (fo__unlikely(atomic_load_explicit(&s->data.need, memory_order_relaxed)))
		wake_data(s);
	producer_leave(s);
	/* Producers reclaim every PRODUCER_RECLAIM_EVERY segments (readers do
	 * at each crossing): a quarter of the cost per item, at most 3 more
	 * segments retained. */
	if (moved && ((x->base >> SEG_SHIFT) & (PRODUCER_RECLAIM_EVERY - 1)) == 0)
		reclaim_try(s);
	return FO_OK;
}

int fo_stream_push(fo_stream *s, void *item)
{
	if (!s || !item)
		return FO_EINVAL;
	return push_batch(s, &item, 1, FO__NO_DEADLINE);
}

int fo_stream_try_push(fo_stream *s, void *item)
{
	if (!s || !item)
		return FO_EINVAL;
	return push_batch(s, &item, 1, 0);
}

int fo_stream_timed_push(fo_stream *s, void *item, int64_t timeout_ns)
{
	if (!s || !item || timeout_ns < 0)
		return FO_EINVAL;
	int rc = push_batch(s, &item, 1, timeout_ns ? fo__deadline(timeout_ns) : 0);
	return rc == FO_FULL ? FO_TIMEDOUT : rc;
}

int fo_stream_push_many(fo_stream *s, void *const *items, size_t n)
{
	if (!s || !items || n == 0 || (s->capacity && n > s->capacity))
		return FO_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!items[i])
			return FO_EINVAL;
	return push_batch(s, items, n, FO__NO_DEADLINE);
}

int fo_stream_wait_room(fo_stream *s, size_t n, int64_t timeout_ns)
{
	if (!s || n == 0 || (s->capacity && n > s->capacity))
		return FO_EINVAL;
	uint64_t deadline = timeout_ns < 0    ? FO__NO_DEADLINE
	                    : timeout_ns == 0 ? 0
	                                      : fo__deadline(timeout_ns);
	for (;;) {
		uint64_t t = atomic_load_explicit(
		    &s->tail, memory_order_acquire); /* acquire: the closed bit with its end */
		if (t & TAIL_CLOSED)
			return FO_ECLOSED;
		if (!s->capacity || has_room(s, t >> 1, n))
			return FO_OK;
		if (deadline == 0)
			return FO_FULL;
		if (wait_room(s, n, deadline) == FO_TIMEDOUT) {
			t = atomic_load_explicit(
			    &s->tail,
			    memory_order_acquire); /* acquire: the closed bit with its end */
			if (t & TAIL_CLOSED)
				return FO_ECLOSED;
			return has_room(s, t >> 1, n) ? FO_OK : FO_TIMEDOUT;
		}
	}
}

static int stream_end(fo_stream *s, int code, const char *message)
{
	pthread_mutex_lock(&s->lock);
	if (atomic_load_explicit(&s->tail, memory_order_relaxed) &
	    TAIL_CLOSED) { /* changed only under the lock we hold */
		stream_unlock(s);
		return code ? FO_ECLOSED : FO_OK;
	}
	if (code) {
		/* No message: the static text, so this path cannot fail (feeds
		 * and joins fall back to it when a copy ran out of memory). */
		const char *m = fo_strerror(code);
		if (message) {
			if (!(s->err_msg = fo__strdup(message))) {
				stream_unlock(s);
				return FO_ENOMEM;
			}
			m = s->err_msg;
		}
		s->err = (fo_error){code, 0, m};
	}
	/* seq_cst RMW: after this no claim succeeds; old gives the end. */
	uint64_t old = atomic_fetch_or_explicit(&s->tail, TAIL_CLOSED, memory_order_seq_cst);
	/* release: the error is visible to whoever sees the end. */
	atomic_store_explicit(&s->end, old >> 1, memory_order_release);
	stream_unlock(s);
	fo__fence_light();
	wake_data(s);
	atomic_thread_fence(memory_order_seq_cst); /* rare: wake producers for sure */
	wake_space(s);
	return FO_OK;
}

int fo_stream_close(fo_stream *s)
{
	return s ? stream_end(s, 0, NULL) : FO_EINVAL;
}

int fo_stream_fail(fo_stream *s, int code, const char *message)
{
	if (!s)
		return FO_EINVAL;
	return stream_end(s, code ? code : FO_FAILED, message);
}

bool fo_stream_is_closed(const fo_stream *s)
{
	if (!s)
		return true;
	return atomic_load_explicit(&((fo_stream *)s)->tail, memory_order_acquire) &
	       TAIL_CLOSED; /* acquire: the closed bit with its end */
}

int fo_stream_get_stats(fo_stream *s, fo_stream_stats *out)
{
	if (!s || !out)
		return FO_EINVAL;
	uint64_t pushed = atomic_load_explicit(&s->tail, memory_order_acquire) >>
	                  1; /* acquire: with the end state */
	uint64_t freed = atomic_load_explicit(&s->freed, memory_order_relaxed); /* stats only */
	size_t segs =
	    atomic_load_explicit(&s->live_segments, memory_order_relaxed); /* stats only */
	size_t curs =
	    (size_t)atomic_load_explicit(&s->ncursors, memory_order_relaxed); /* stats only */
	out->live_segments = segs;
	out->retained_items = pushed > freed ? (size_t)(pushed - freed) : 0;
	size_t cached =
	    atomic_load_explicit(&s->cached_segments, memory_order_relaxed); /* stats only */
	out->cached_segments = cached;
	out->live_bytes =
	    sizeof(*s) + (segs + cached) * sizeof(struct seg) + curs * sizeof(fo_cursor);
	out->pushed = pushed;
	out->cursors = curs;
	return FO_OK;
}

/* ------------------------------------------------------------------------ */
/* Cursor creation                                                           */

/* With s->lock held: a cursor object from the spare list, or a fresh one
 * (the lock is dropped around the allocation; callers read no shared state
 * before this).  NULL: out of memory, and the lock is NOT held. */
static fo_cursor *cursor_get_locked(fo_stream *s, enum kind kind)
{
	fo_cursor *c = s->spare;
	if (c) {
		s->spare = c->spare_next;
		s->nspare--;
		memset(c, 0, sizeof(*c));
	} else {
		pthread_mutex_unlock(&s->lock);
		if (!(c = fo__zalloc(sizeof(*c))))
			return NULL;
		pthread_mutex_lock(&s->lock);
	}
	c->s = s;
	c->kind = kind;
	c->cons.pos = &c->pub;
	c->cons.hold = &c->hold;
	c->cons.next = c->cons.prev = &c->cons;
	c->efd = -1;
	return c;
}

/* Register @c (allocated, kind set) at @pos in @x.  Under s->lock.
 * @held: the caller's own cursor pins @x (it may be unlinked already). */
static void attach_locked(fo_stream *s, fo_cursor *c, uint64_t pos, struct seg *x, bool held)
{
	c->pos = pos;
	c->seg = x;
	atomic_fetch_add_explicit(&s->handles, 1, memory_order_relaxed); /* caller has one */
	if (c->kind == K_ACTIVE) {
		atomic_store_explicit(&c->pub, pos, memory_order_relaxed);
		atomic_store_explicit(&c->hold, pos, memory_order_relaxed);
		cons_add(s, &c->cons);
	} else if (c->kind == K_PASSIVE) {
		atomic_fetch_add_explicit(&s->npassive, 1, memory_order_relaxed);
		if (held)
			seg_pin_again(x);
		else if (!seg_pin(x)) /* otherwise callers pass a linked segment */
			fo__panic(__FILE__, __LINE__,
			          "passive cursor attached to unlinked segment");
	}
}

static struct group *group_new(fo_stream *s, uint64_t pos, struct seg *x)
{
	struct group *g = fo__zalloc(sizeof(*g));
	if (!g)
		return NULL;
	(void)s;
	atomic_init(&g->pos, pos);
	atomic_init(&g->hint, x);
	g->cons.pos = &g->pos;
	g->cons.hint = &g->hint;
	return g;
}

int fo_stream_cursor(fo_stream *s, fo_cursor **out, unsigned flags)
{
	if (!s || !out || (flags & ~(unsigned)(FO_PASSIVE | FO_SHARED)) ||
	    flags == (FO_PASSIVE | FO_SHARED))
		return FO_EINVAL;
	enum kind kind = (flags & FO_PASSIVE)  ? K_PASSIVE
	                 : (flags & FO_SHARED) ? K_MEMBER
	                                       : K_ACTIVE;
	struct group *g = NULL;
	if (kind == K_MEMBER && !(g = group_new(s, 0, NULL)))
		return FO_ENOMEM;
	pthread_mutex_lock(&s->lock);
	fo_cursor *c = cursor_get_locked(s, kind);
	if (!c) {
		fo__free(g);
		return FO_ENOMEM;
	}
	/* seq_cst pair with push: ncursors++ then read tail, so every later
	 * claim sees a cursor, and every earlier claim is before our start. */
	atomic_fetch_add_explicit(&s->ncursors, 1, memory_order_seq_cst);
	/* Hint first, then tail (as producers do): the hint only ever points
	 * at a segment where a position was already claimed, so its base is
	 * <= pos.  Read the other way round, producers could move the hint
	 * past pos in between and seg_walk would start ahead of pos.  Under
	 * the lock nothing is unlinked, so h stays valid. */
	struct seg *h = atomic_load_explicit(&s->tail_seg, memory_order_acquire);
	uint64_t pos = atomic_load_explicit(&s->tail, memory_order_seq_cst) >> 1;
	struct seg *x = seg_walk(h, pos);
	if (g) {
		atomic_store_explicit(&g->pos, pos, memory_order_relaxed);
		atomic_store_explicit(&g->hint, x, memory_order_relaxed);
		g->members = 1;
		c->g = g;
		cons_add(s, &g->cons);
		c->pos = pos;
		atomic_fetch_add_explicit(&s->handles, 1,
		                          memory_order_relaxed); /* caller has one */
	} else {
		attach_locked(s, c, pos, x, false);
	}
	stream_unlock(s);
	*out = c;
	return FO_OK;
}

int fo_cursor_fork(fo_cursor *c, fo_cursor **out, unsigned flags)
{
	if (!c || !out || (flags & ~(unsigned)(FO_PASSIVE | FO_SHARED)) ||
	    flags == (FO_PASSIVE | FO_SHARED))
		return FO_EINVAL;
	if ((flags & FO_SHARED) && c->kind == K_PASSIVE)
		return FO_EINVAL;
	fo_stream *s = c->s;
	enum kind kind = (flags & FO_PASSIVE)  ? K_PASSIVE
	                 : (flags & FO_SHARED) ? K_MEMBER
	                                       : K_ACTIVE;
	struct group *g = NULL;
	if (kind == K_MEMBER && c->kind == K_ACTIVE && !c->done && !(g = group_new(s, 0, NULL)))
		return FO_ENOMEM;
	pthread_mutex_lock(&s->lock);
	fo_cursor *f = cursor_get_locked(s, kind);
	if (!f) {
		fo__free(g);
		return FO_ENOMEM;
	}
	atomic_fetch_add_explicit(&s->ncursors, 1, memory_order_relaxed); /* a parent exists */
	if (c->done) {
		/* A fork of a drained cursor is drained at once; it holds no
		 * position, so it is registered nowhere. */
		f->done = c->done;
		f->kind = K_ACTIVE;
		atomic_fetch_add_explicit(&s->handles, 1,
		                          memory_order_relaxed); /* caller has one */
	} else if (kind == K_MEMBER) {
		if (g) { /* @c becomes the first member of a new group */
			atomic_store_explicit(&g->pos, c->pos, memory_order_relaxed);
			atomic_store_explicit(&g->hint, c->seg, memory_order_relaxed);
			cons_add(s, &g->cons);
			cons_del(&c->cons);
			c->kind = K_MEMBER;
			c->g = g;
			c->seg = NULL;
			g->members = 1;
		}
		f->g = c->g;
		f->g->members++;
		atomic_fetch_add_explicit(&s->handles, 1,
		                          memory_order_relaxed); /* caller has one */
	} else {
		uint64_t pos;
		struct seg *x;
		bool held = false;
		if (c->kind == K_MEMBER) {
			/* Hint first, then pos: members move the hint only into
			 * segments they claimed in, so hint->base <= pos. */
			struct seg *gh = atomic_load_explicit(&c->g->hint, memory_order_acquire);
			pos = atomic_load_explicit(&c->g->pos, memory_order_acquire);
			x = seg_walk(gh, pos);
		} else if (kind == K_ACTIVE && c->kind == K_PASSIVE &&
		           (atomic_load_explicit(&c->seg->state, memory_order_acquire) &
		            SEG_DEAD)) {
			/* An active fork of a lapped passive cursor starts at the oldest
			 * retained item.  (A passive fork shares the parent's pin and
			 * reports the lap itself on its first read.) */
			x = atomic_load_explicit(&s->oldest, memory_order_relaxed);
			pos = x->base;
		} else {
			pos = c->pos;
			x = c->seg;
			held = c->kind == K_PASSIVE;
		}
		attach_locked(s, f, pos, x, held);
	}
	stream_unlock(s);
	*out = f;
	return FO_OK;
}

static void cursor_free_cb(fo__rcu_node *node)
{
	fo__free((char *)node - offsetof(fo_cursor, rcu));
}

static void watcher_add_locked(fo_stream *s, fo_cursor *c)
{
	atomic_store_explicit(&c->wnext, atomic_load_explicit(&s->watchers, memory_order_relaxed),
	                      memory_order_relaxed);
	/* release: c is initialised before a producer can reach it. */
	atomic_store_explicit(&s->watchers, c, memory_order_release);
	c->watching = true;
}

static void watcher_del_locked(fo_stream *s, fo_cursor *c)
{
	_Atomic(fo_cursor *) *pp = &s->watchers;
	fo_cursor *w;
	while ((w = atomic_load_explicit(pp, memory_order_relaxed)) != c)
		pp = &w->wnext;
	/* c->wnext stays intact: a producer standing on c goes on from there. */
	atomic_store_explicit(pp, atomic_load_explicit(&c->wnext, memory_order_relaxed),
	                      memory_order_release);
}

void fo_cursor_close(fo_cursor *c)
{
	if (!c)
		return;
	fo_stream *s = c->s;
	if (c->kind != K_ACTIVE && c->seg)
		seg_unpin(s, c->seg);
	if (c->watching) {
		/* seq_cst: a producer that raises busy after this sees CLOSED;
		 * one that raised it before is waited for, so no signal (and no
		 * notify call) happens after close returns. */
		atomic_store_explicit(&c->armed, ARM_CLOSED, memory_order_seq_cst);
		while (atomic_load_explicit(&c->busy, memory_order_seq_cst))
			sched_yield();
	}
	pthread_mutex_lock(&s->lock);
	if (c->watching)
		watcher_del_locked(s, c);
	if (c->kind == K_ACTIVE) {
		if (c->cons.next != &c->cons)
			cons_del(&c->cons);
	} else if (c->kind == K_PASSIVE) {
		atomic_fetch_sub_explicit(&s->npassive, 1, memory_order_relaxed);
	} else if (c->g && --c->g->members == 0) {
		cons_del(&c->g->cons);
		fo__free(c->g);
	}
	/* Under the lock, so no cursor creation sees the count in between. */
	bool none = atomic_fetch_sub_explicit(&s->ncursors, 1, memory_order_relaxed) == 1;
	reclaim_locked(s);
	if (none)
		sweep_locked(s);
	/* Our position no longer bounds the producers. */
	atomic_store_explicit(&s->cached_min, 0, memory_order_relaxed);
	int efd = c->efd;
	bool watching = c->watching;
	if (!watching && s->nspare < SPARE_CURSORS) { /* keep the object for a fork */
		c->spare_next = s->spare;
		s->spare = c;
		s->nspare++;
		c = NULL;
	}
	stream_unlock(s);
	if (efd >= 0)
		close(efd);
	if (c && watching) /* producers may still walk past it in the chain */
		fo__rcu_call(&c->rcu, cursor_free_cb);
	else if (c)
		fo__free(c);
	atomic_thread_fence(memory_order_seq_cst); /* rare: wake producers for sure */
	wake_space(s);
	stream_unref(s);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                    */

/* Nothing at @pos: the end, or not yet. */
static int at_end_or_empty(fo_cursor *c, uint64_t pos)
{
	/* acquire: pairs with the end's release; the error is visible. */
	uint64_t end = atomic_load_explicit(&c->s->end, memory_order_acquire);
	if (pos < end)
		return FO_EMPTY;
	c->done = c->s->err.code ? FO_FAILED : FO_END;
	return c->done;
}

/* Active cursor: up to @max items, no waiting.  Hot path. */
static int take_active(fo_cursor *c, void **items, size_t max, size_t *n)
{
	fo_stream *s = c->s;
	struct seg *x = c->seg;
	uint64_t pos = c->pos;
	size_t k = 0;
	while (k < max) {
		struct seg *nx = seg_step(x, pos);
		if (!nx)
			break;
		x = nx;
		/* acquire: pairs with the producer's release store. */
		void *it = atomic_load_explicit(&x->slot[pos & SEG_MASK], memory_order_acquire);
		if (!it)
			break;
		FO_ASSERT(it != DEAD_ITEM);
		items[k++] = it;
		pos++;
	}
	*n = k;
	if (k == 0)
		return at_end_or_empty(c, pos);
	bool crossed = x != c->seg;
	c->seg = x;
	/* release (both): our reads of items before c->pos happen before their
	 * free.  The batch [c->pos, pos) stays valid until the next read:
	 * segments are unlinked only when they end strictly below hold. */
	atomic_store_explicit(&c->hold, c->pos, memory_order_release);
	atomic_store_explicit(&c->pub, pos, memory_order_release);
	c->pos = pos;
	reader_moved(s);
	if (crossed)
		reclaim_try(s);
	return FO_OK;
}

/* The passive cursor's segment was unlinked: jump to the oldest retained
 * segment.  Returns FO_LAGGED if items were skipped, else FO_OK (it only
 * stood at the end of the unlinked segment: nothing was lost). */
static int passive_lapped(fo_cursor *c)
{
	fo_stream *s = c->s;
	struct seg *z;
	fo__rcu_lock();
	do /* acquire: pairs with the reclaimer's release store */
		z = atomic_load_explicit(&s->oldest, memory_order_acquire);
	while (!seg_pin(z));
	fo__rcu_unlock();
	seg_unpin(s, c->seg);
	/* Everything below oldest was unlinked, our segment included, so
	 * z->base >= c->pos. */
	FO_ASSERT(z->base >= c->pos);
	uint64_t skipped = z->base - c->pos;
	c->lagged += skipped;
	c->pos = z->base;
	c->seg = z;
	return skipped ? FO_LAGGED : FO_OK;
}

static int take_passive(fo_cursor *c, void **items, size_t max, size_t *n)
{
	fo_stream *s = c->s;
	size_t k = 0;
	*n = 0;
	while (k < max) {
		struct seg *x = c->seg;
		/* acquire: a DEAD mark means the frontier passed us. */
		if (atomic_load_explicit(&x->state, memory_order_acquire) & SEG_DEAD) {
			if (k)
				break; /* report the lap on the next call */
			int rc = passive_lapped(c);
			if (rc != FO_OK)
				return rc;
			continue;
		}
		if (c->pos - x->base >= SEG_SLOTS) {
			fo__rcu_lock();
			/* Re-check inside the read section: if x is still linked
			 * now, x->next is unlinked (and retired) only after this
			 * section began, so its memory outlives the section. */
			bool lapped =
			    atomic_load_explicit(&x->state, memory_order_acquire) & SEG_DEAD;
			struct seg *nx =
			    lapped ? NULL : atomic_load_explicit(&x->next, memory_order_acquire);
			bool ok = nx && seg_pin(nx);
			fo__rcu_unlock();
			if (lapped) {
				if (k)
					break;
				int rc = passive_lapped(c);
				if (rc != FO_OK)
					return rc;
				continue;
			}
			if (!nx)
				break;
			if (!ok) {
				if (k)
					break;
				int rc = passive_lapped(c);
				if (rc != FO_OK)
					return rc;
				continue;
			}
			if (k) { /* items[] may point into x: keep it until next call */
				seg_unpin(s, nx);
				break;
			}
			seg_unpin(s, x);
			c->seg = x = nx;
		}
		void *it = atomic_load_explicit(&x->slot[c->pos & SEG_MASK], memory_order_acquire);
		if (!it)
			break;
		items[k++] = it;
		c->pos++;
	}
	*n = k;
	return k ? FO_OK : at_end_or_empty(c, c->pos);
}

/* Share-group member: claim up to @max ready items of one segment. */
static int take_member(fo_cursor *c, void **items, size_t max, size_t *n)
{
	fo_stream *s = c->s;
	struct group *g = c->g;
	*n = 0;
	fo__rcu_lock();
	for (;;) {
		uint64_t p = atomic_load_explicit(&g->pos, memory_order_acquire);
		struct seg *h = atomic_load_explicit(&g->hint, memory_order_acquire);
		if (h->base > p)
			continue; /* p is stale: others claimed past it */
		struct seg *x = c->seg;
		if (!x || x->base > p || p - x->base >= SEG_SLOTS)
			x = seg_walk(h, p);
		if (p - x->base >= SEG_SLOTS) { /* segment not linked yet */
			fo__rcu_unlock();
			return at_end_or_empty(c, p);
		}
		if (x != c->seg) {
			if (!seg_pin(x))
				continue; /* unlinked: p is stale */
			if (c->seg)
				seg_unpin(s, c->seg);
			c->seg = x;
		}
		size_t k = 0, room = SEG_SLOTS - (size_t)(p & SEG_MASK);
		if (room > max)
			room = max;
		while (k < room) {
			void *it = atomic_load_explicit(&x->slot[(p + k) & SEG_MASK],
			                                memory_order_acquire);
			if (!it)
				break;
			items[k++] = it;
		}
		if (k == 0) {
			fo__rcu_unlock();
			return at_end_or_empty(c, p);
		}
		/* acq_rel: exactly one member wins positions p..p+k-1. */
		if (!atomic_compare_exchange_strong_explicit(
		        &g->pos, &p, p + k, memory_order_acq_rel, memory_order_relaxed))
			continue;
		while (h->base < x->base &&
		       !atomic_compare_exchange_weak_explicit(&g->hint, &h, x, memory_order_release,
		                                              memory_order_acquire))
			;
		fo__rcu_unlock();
		*n = k;
		reader_moved(s);
		return FO_OK;
	}
}

static int take(fo_cursor *c, void **items, size_t max, size_t *n)
{
	if (c->done) {
		*n = 0;
		return c->done;
	}
	switch (c->kind) {
	case K_ACTIVE:
		return take_active(c, items, max, n);
	case K_PASSIVE:
		return take_passive(c, items, max, n);
	default:
		return take_member(c, items, max, n);
	}
}

/* Read with waiting up to @deadline (0: never wait). */
static int next_wait(fo_cursor *c, void **items, size_t max, size_t *n, uint64_t deadline)
{
	fo_stream *s = c->s;
	int rc = take(c, items, max, n);
	if (rc != FO_EMPTY || deadline == 0)
		return rc;
	/* Spin with exponential backoff: a reader that re-polled at once would
	 * sit on the line the producer is writing and bounce it every item. */
	for (unsigned spin = 0; spin < SPIN_ROUNDS; spin++) {
		for (unsigned k = 1u << (spin < SPIN_MAX_SHIFT ? spin : SPIN_MAX_SHIFT); k; k--)
			fo__cpu_relax();
		if ((rc = take(c, items, max, n)) != FO_EMPTY)
			return rc;
	}
	/* More threads than cores: let the producer run before paying for a
	 * sleep and a wake-up. */
	for (int y = 0; y < YIELD_LIMIT; y++) {
		sched_yield();
		if ((rc = take(c, items, max, n)) != FO_EMPTY)
			return rc;
	}
	for (;;) {
		uint32_t g = waitq_prepare(&s->data);
		if ((rc = take(c, items, max, n)) != FO_EMPTY)
			return rc;
		int w = waitq_sleep(&s->data, g, deadline);
		if ((rc = take(c, items, max, n)) != FO_EMPTY)
			return rc;
		if (w == FO_TIMEDOUT)
			return FO_TIMEDOUT;
	}
}

int fo_cursor_next(fo_cursor *c, void **item)
{
	size_t n;
	if (!c || !item)
		return FO_EINVAL;
	return next_wait(c, item, 1, &n, FO__NO_DEADLINE);
}

int fo_cursor_try_next(fo_cursor *c, void **item)
{
	size_t n;
	if (!c || !item)
		return FO_EINVAL;
	return take(c, item, 1, &n);
}

int fo_cursor_timed_next(fo_cursor *c, void **item, int64_t timeout_ns)
{
	size_t n;
	if (!c || !item || timeout_ns < 0)
		return FO_EINVAL;
	int rc = next_wait(c, item, 1, &n, timeout_ns ? fo__deadline(timeout_ns) : 0);
	return rc == FO_EMPTY ? FO_TIMEDOUT : rc;
}

int fo_cursor_next_many(fo_cursor *c, void **items, size_t max, size_t *n)
{
	if (n)
		*n = 0;
	if (!c || !items || !n || max == 0)
		return FO_EINVAL;
	return take(c, items, max, n);
}

/* Count ready items from @pos in @x, at most @limit.  In a read section. */
static size_t scan_ready(struct seg *x, uint64_t pos, size_t limit)
{
	size_t k = 0;
	while (k < limit) {
		struct seg *nx = seg_step(x, pos);
		if (!nx)
			break;
		x = nx;
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
	fo__rcu_lock();
	if (c->kind == K_MEMBER) {
		uint64_t p = atomic_load_explicit(&c->g->pos, memory_order_acquire);
		struct seg *h = atomic_load_explicit(&c->g->hint, memory_order_acquire);
		k = h->base <= p ? scan_ready(h, p, limit) : 0;
	} else if (c->kind == K_PASSIVE &&
	           (atomic_load_explicit(&c->seg->state, memory_order_acquire) & SEG_DEAD)) {
		struct seg *z = atomic_load_explicit(&s->oldest, memory_order_acquire);
		k = scan_ready(z, z->base, limit);
	} else {
		k = scan_ready(c->seg, c->pos, limit);
	}
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

bool fo_cursor_is_drained(const fo_cursor *c)
{
	return !c || c->done != 0;
}

int fo_cursor_kind(const fo_cursor *c)
{
	if (!c)
		return FO_EINVAL;
	return c->kind == K_PASSIVE ? FO_PASSIVE : c->kind == K_MEMBER ? FO_SHARED : FO_ACTIVE;
}

uint64_t fo_cursor_lagged(const fo_cursor *c)
{
	return c ? c->lagged : 0;
}

const fo_error *fo_cursor_error(const fo_cursor *c)
{
	return c && c->done == FO_FAILED ? &c->s->err : NULL;
}

/* ------------------------------------------------------------------------ */
/* Event-loop readiness                                                      */

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
	stream_unlock(c->s);
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

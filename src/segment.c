/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * segment.c - the life of a segment after the push path links it: the
 * per-stream pool that new segments come from, retirement after an RCU
 * grace period, and reclamation under the registry lock (the frontier F
 * unlinks old segments; the last cursor's sweep destroys what is left).
 * Protocol: docs/design.md §6; layout: stream_impl.h.  Pins, the other half
 * of "whoever drops the last of {link, pins} frees", are in cursor.c.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "stream_impl.h"

/* Unlinked segments return to a per-stream pool for reuse: at once when no
 * walker is possible (design.md §6, "Reusing a segment without a grace
 * period"), else after a grace period, in batches (one call_rcu, one wake of
 * liburcu's worker and one grace period per RETIRE_BATCH segments).  The
 * pool keeps POOL_MAX segments, or a bounded stream's capacity in segments
 * (what it may hold live anyway; at most POOL_CAP_MAX): a reader that drains
 * a full stream while its producer is descheduled returns them all, and the
 * producer refills the stream from the pool.  What comes back from a grace
 * period may also keep as many segments as the producers had to allocate
 * while earlier ones waited for one, up to POOL_GP_MAX (design.md §6,
 * "Supply through a grace period"): what the next wait will want again.
 * That extra decays: every DECAY_WAITS times no grace period is pending any
 * more, half of what the pool never gave out since the last decay, beyond
 * DECAY_MARGIN segments, goes back to free(). */
#define RETIRE_BATCH 16
#define POOL_MAX     32
#define POOL_CAP_MAX 1024
#define POOL_GP_MAX  4096
#define DECAY_WAITS  16
#define DECAY_MARGIN RETIRE_BATCH

static unsigned pool_max(const fo_stream *s)
{
	/* + 2: the partly filled tail segment and the one a slot straddles. */
	size_t n = s->capacity ? s->capacity / SEG_SLOTS + 2 : 0;
	if (n > POOL_CAP_MAX)
		n = POOL_CAP_MAX;
	return n > POOL_MAX ? (unsigned)n : POOL_MAX;
}

/* The pool's bound for segments that come back from a grace period or were
 * never linked: pool_max() plus the producers' allocations while segments
 * waited, at most POOL_GP_MAX.  Caller holds pool_lock. */
static unsigned pool_keep(const fo_stream *s)
{
	unsigned n = pool_max(s) + s->nstarved;
	return n < POOL_GP_MAX ? n : POOL_GP_MAX;
}

/* Push @x on the pool if it is below @max (caller holds pool_lock). */
static bool pool_put_locked(fo_stream *s, struct seg *x, unsigned max)
{
	if (s->npool >= max)
		return false;
	x->rnext = s->pool;
	s->pool = x;
	s->npool++;
	return true;
}

/* Give @x, which no other thread can reach, to the pool if it is below
 * pool_keep() (@grace: a race loser's segment, bounded like a grace
 * period's) or pool_max() (a pass's immediate reuse), else to free(). */
static void pool_give(fo_stream *s, struct seg *x, bool grace)
{
	pthread_mutex_lock(&s->pool_lock);
	bool kept = pool_put_locked(s, x, grace ? pool_keep(s) : pool_max(s));
	if (kept)
		atomic_fetch_add_explicit(&s->cached_segments, 1,
		                          memory_order_relaxed); /* stats only */
	pthread_mutex_unlock(&s->pool_lock);
	if (!kept)
		fo__free(x);
}

/* Reclamation requests that may find the registry lock taken, not yet
 * covered by a finished pass, before a producer waits for it
 * (fo__reclaim_push; design.md §6). */
#define RECLAIM_MISSES 8

#ifdef FO_TEST_HOOKS
void (*fo__frontier_hook)(fo_stream *s);     /* stream_impl.h */
void (*fo__reclaim_wait_hook)(fo_stream *s); /* stream_impl.h */
#endif

/* ------------------------------------------------------------------------ */
/* Segments                                                                  */

/* A zeroed segment at @base, from the pool or fresh; NULL: out of memory. */
struct seg *fo__seg_new(fo_stream *s, uint64_t base)
{
	pthread_mutex_lock(&s->pool_lock);
	struct seg *x = s->pool;
	if (x) {
		s->pool = x->rnext;
		if (--s->npool < s->pool_low)
			s->pool_low = s->npool; /* the decay window's low-water mark */
		atomic_fetch_sub_explicit(&s->cached_segments, 1,
		                          memory_order_relaxed); /* stats only */
	} else if (s->ngrace && s->nstarved < POOL_GP_MAX) {
		s->nstarved++; /* a wait's supply was short by one: keep one more */
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

/* A segment from fo__seg_new() that was never linked (seg_ensure() lost
 * the race to link it): no other thread ever saw it, so it goes straight
 * back to the pool, or to free() if the pool is at pool_keep(). */
void fo__seg_unused(fo_stream *s, struct seg *x)
{
	atomic_fetch_sub_explicit(&s->live_segments, 1, memory_order_relaxed); /* stats only */
	pool_give(s, x, true);
}

/* No grace period is pending any more (caller holds pool_lock, and puts
 * the batch that ended the wait back next): every DECAY_WAITS such ends,
 * lower nstarved by half of what the pool held all along since the last
 * decay (pool_low) beyond DECAY_MARGIN, and start a new window (design.md
 * §6, "Supply through a grace period", decay).  A pool that ran dry in the
 * window (a producer starved: pool_low 0) keeps its supply. */
static void pool_decay_locked(fo_stream *s)
{
	if (++s->nidle < DECAY_WAITS)
		return;
	unsigned spare = s->pool_low > DECAY_MARGIN ? (s->pool_low - DECAY_MARGIN) / 2 : 0;
	s->nstarved -= spare < s->nstarved ? spare : s->nstarved;
	s->nidle = 0;
	s->pool_low = UINT_MAX; /* the first pop, or the reset below, sets it */
}

/* Take the segments beyond @keep off the pool (caller holds pool_lock);
 * the caller frees the chain returned outside the lock. */
static struct seg *pool_trim_locked(fo_stream *s, unsigned keep, struct seg *chain)
{
	while (s->npool > keep) {
		struct seg *x = s->pool;
		s->pool = x->rnext;
		s->npool--;
		x->rnext = chain;
		chain = x;
	}
	return chain;
}

/* After a grace period: no thread can still reach the batch's segments. */
static void retire_done(fo__rcu_node *node)
{
	struct seg *x = (struct seg *)((char *)node - offsetof(struct seg, rcu));
	fo_stream *s = node->arg;
	pthread_mutex_lock(&s->pool_lock);
	s->ngrace -= x->nbatch;
	bool idle = s->ngrace == 0;
	if (idle)
		pool_decay_locked(s);
	unsigned keep = pool_keep(s);
	while (x) {
		struct seg *n = x->rnext;
		if (!pool_put_locked(s, x, keep))
			break;
		x = n;
	}
	if (idle) {
		x = pool_trim_locked(s, keep, x); /* what a decay took off the keep */
		if (s->pool_low > s->npool)
			s->pool_low = s->npool; /* a new window starts from here */
	}
	pthread_mutex_unlock(&s->pool_lock);
	/* The rest outside the lock: a pass that closed a cursor far behind
	 * retires thousands at once, and producers take pool_lock for every
	 * new segment. */
	while (x) {
		struct seg *n = x->rnext;
		atomic_fetch_sub_explicit(&s->cached_segments, 1,
		                          memory_order_relaxed); /* stats only */
		fo__free(x);
		x = n;
	}
	fo__stream_unref_mem(s); /* the batch's reference */
}

/* Hand the retired chain to call_rcu: one grace period, one wake of
 * liburcu's worker for all of it. */
static void retire_batch(fo_stream *s, struct seg *batch)
{
	/* The batch holds a reference: the stream outlives the callback.
	 * relaxed: a user handle, held by our caller, keeps refs > 0. */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	batch->rcu.arg = s;
	fo__rcu_call(&batch->rcu, retire_done);
}

/* Take the retired chain if it holds at least @min segments (else NULL),
 * counted in flight from now on: the caller hands it to retire_batch(). */
static struct seg *retired_take(fo_stream *s, unsigned min)
{
	struct seg *batch = NULL;
	pthread_mutex_lock(&s->pool_lock);
	if (s->nretired && s->nretired >= min) {
		batch = s->retired;
		batch->nbatch = s->nretired;
		s->ngrace += s->nretired;
		s->retired = NULL;
		s->nretired = 0;
	}
	pthread_mutex_unlock(&s->pool_lock);
	return batch;
}

/* Queue an unlinked, destroyed segment for reuse after a grace period
 * (producers and lapped passives may still walk its header).  @flush:
 * hand a full batch to call_rcu now; a reclamation pass passes false and
 * hands over everything it unlinked once, at its end (retire_flush()), so
 * a pass over thousands of segments (closing a cursor far behind) waits
 * for one grace period instead of one per RETIRE_BATCH, and liburcu's
 * worker does not free segments concurrently with the pass's destructors
 * (B6b: 2 x free() alone -> see design.md §6, "Closing far behind"). */
static void seg_retire(fo_stream *s, struct seg *x, bool flush)
{
	atomic_fetch_add_explicit(&s->cached_segments, 1, memory_order_relaxed); /* stats only */
	pthread_mutex_lock(&s->pool_lock);
	x->rnext = s->retired;
	s->retired = x;
	bool full = ++s->nretired >= RETIRE_BATCH;
	pthread_mutex_unlock(&s->pool_lock);
	if (full && flush) {
		struct seg *batch = retired_take(s, RETIRE_BATCH);
		if (batch)
			retire_batch(s, batch);
	}
}

/* A reclamation pass found no walker possible (design.md §6, "Reusing a
 * segment without a grace period"): @x, destroyed, goes straight back to
 * the pool, or to free() if the pool is full.  Caller holds s->lock. */
static void seg_recycle(fo_stream *s, struct seg *x)
{
	pool_give(s, x, false);
}

/* End of a reclamation pass: retire what it queued, if a batch is full. */
static void retire_flush(fo_stream *s)
{
	struct seg *batch = retired_take(s, RETIRE_BATCH);
	if (batch)
		retire_batch(s, batch);
}

/* Destroy the items of a segment no cursor can reach (stats too). */
static void seg_destroy(fo_stream *s, struct seg *x, bool deferred)
{
	uint64_t n = 0;
	if (deferred && !s->item_free) {
		/* Unlinked segments are fully written: nothing to call, and the
		 * count needs no scan. */
		n = SEG_SLOTS - atomic_load_explicit(&x->ndead, memory_order_relaxed);
		goto counted;
	}
	/* All the slots first, then the destructors: the slot lines' misses
	 * overlap instead of each waiting behind a destructor's own miss on
	 * its cold item (closing far behind: 1.76 -> 1.55 x a free() loop,
	 * design.md §6).  One memcpy, not 256 atomic loads: no slot of @x
	 * changes any more, and every store to one happens before us (the
	 * pass saw it written with acquire loads; a last unpin's acq_rel RMW
	 * on state follows them), so the plain copy races with nothing; and
	 * the destructor and its context in locals, not reloaded from the
	 * stream after each call (B6b: ~19 -> ~9 instructions per item). */
	void *v[SEG_SLOTS];
	memcpy(v, (const void *)x->slot, sizeof(v));
	void (*item_free)(void *item, void *ctx) = s->item_free;
	void *ctx = s->item_free_ctx;
	for (unsigned i = 0; i < SEG_SLOTS; i++) {
		if (v[i] && v[i] != DEAD_ITEM) {
			if (item_free)
				item_free(v[i], ctx);
			n++;
		}
	}
counted:
	atomic_fetch_add_explicit(&s->freed, n, memory_order_relaxed); /* stats only */
	atomic_fetch_sub_explicit(&s->live_segments, 1, memory_order_relaxed);
}

/* Destroy the items of a segment no cursor can reach, then retire its
 * memory (@deferred) or free it at once (teardown: nobody else left). */
void fo__seg_release(fo_stream *s, struct seg *x, bool deferred)
{
	seg_destroy(s, x, deferred);
	if (deferred)
		seg_retire(s, x, true);
	else
		fo__free(x);
}

static void free_chain(struct seg *x)
{
	while (x) {
		struct seg *n = x->rnext;
		fo__free(x);
		x = n;
	}
}

/* Teardown: free the limbo segments (no push runs any more, so they are
 * written; the last handle's sweep destroyed their items), the pool and
 * the retired segments that never filled a batch. */
void fo__seg_pool_free(fo_stream *s)
{
	while (s->limbo) {
		struct seg *x = s->limbo;
		s->limbo = x->rnext;
		fo__seg_release(s, x, false);
	}
	free_chain(s->retired); /* items already destroyed */
	free_chain(s->pool);
}

/* ------------------------------------------------------------------------ */
/* Reclamation (all under s->lock)                                           */

/* Does every push reach segments as a single producer's, without a read
 * section: single_producer, or a default stream still biased to its first
 * producer (design.md §6, "A default stream still biased to its first
 * producer")?  Caller holds s->lock: REVOKED is set only under it. */
static bool one_producer_locked(fo_stream *s)
{
	return s->single_producer ||
	       (s->biased && /* relaxed: REVOKED changes only under the lock we hold */
	        !(atomic_load_explicit(&s->gate, memory_order_relaxed) & GATE_REVOKED));
}

/* Is every slot of @x stored?  With @one producer (one_producer_locked():
 * every claim so far was one thread's) the last slot is proof (its stores
 * land in order).  (A consumer's position is no proof: a new cursor starts
 * at the tail, past slots claimed but not yet stored.) */
static bool seg_fully_written(const struct seg *x, bool one)
{
	if (one) /* acquire: the earlier stores came before it */
		return atomic_load_explicit(&x->slot[SEG_SLOTS - 1], memory_order_acquire);
	for (unsigned i = 0; i < SEG_SLOTS; i++)
		if (!atomic_load_explicit(&x->slot[i], memory_order_acquire))
			return false;
	return true;
}

/* Drop a reference to unlinked segment @x (the link's, or the limbo's):
 * whoever drops the last of {link, pins} destroys it; the pass queues it on
 * @rel, which pass_end() recycles or retires. */
static void seg_put_dead(fo_stream *s, struct seg *x, uint64_t old, struct seg **rel)
{
	if ((old >> 1) == 0) {
		seg_destroy(s, x, true);
		x->rnext = *rel;
		*rel = x;
	}
}

/* How a pass may hand back what it released (design.md §6, "Reusing a
 * segment without a grace period"). */
enum reuse {
	REUSE_NOW,       /* one producer, no group, no passive: no walker */
	REUSE_NO_WALKER, /* one producer, no group: if s->walkers is 0 */
	REUSE_NEVER,     /* several producers or a group: a grace period */
};

/* End of a pass: recycle the segments it released (@rel), or retire them
 * after a grace period, and hand a full retired batch to call_rcu. */
static void pass_end(fo_stream *s, struct seg *rel, enum reuse how)
{
	/* seq_cst: after every unlink of this pass (the oldest stores and DEAD
	 * RMWs, seq_cst): 0 means no passive walk began before them and is
	 * still running (design.md §6, "the walker count"). */
	if (rel && how == REUSE_NO_WALKER)
		how = atomic_load_explicit(&s->walkers, memory_order_seq_cst) ? REUSE_NEVER
		                                                              : REUSE_NOW;
	while (rel) {
		struct seg *n = rel->rnext;
		if (how == REUSE_NOW)
			seg_recycle(s, rel);
		else
			seg_retire(s, rel, false); /* flushed below */
		rel = n;
	}
	retire_flush(s);
}

/* Release the limbo segments whose last claimed slot has been stored since
 * (design.md §6): they hold the limbo's pin until then. */
static void limbo_scan_locked(fo_stream *s, struct seg **rel, bool one)
{
	for (struct seg **pp = &s->limbo, *x; (x = *pp);) {
		if (!seg_fully_written(x, one)) {
			pp = &x->rnext;
			continue;
		}
		*pp = x->rnext;
		/* acq_rel: the stores we saw, and the pinners' reads, happen
		 * before the destroy pass; exactly one side frees. */
		uint64_t old = atomic_fetch_sub_explicit(&x->state, SEG_PIN, memory_order_acq_rel);
		seg_put_dead(s, x, old - SEG_PIN, rel);
	}
}

/* Destroy the written items of @x whose slot is not set in the bitmap @keep
 * (NULL: none kept), leaving DEAD_ITEM behind.  Nobody reads those slots
 * any more (the last-cursor sweep: no cursor left; a trim: design.md §6) and
 * producers only store into NULL slots, so the DEAD_ITEM store races with
 * nothing; whoever destroys the rest later is ordered after us by the lock
 * or by the pin's acq_rel.  Returns the number destroyed. */
static uint64_t kill_items(fo_stream *s, struct seg *x, const uint64_t *keep)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < SEG_SLOTS; i++) {
		if (keep && (keep[i / 64] & (1ull << (i % 64))))
			continue;
		/* acquire: the item's contents before its destructor. */
		void *it = atomic_load_explicit(&x->slot[i], memory_order_acquire);
		if (!it || it == DEAD_ITEM)
			continue;
		atomic_store_explicit(&x->slot[i], DEAD_ITEM,
		                      memory_order_relaxed); /* nobody reads it (above) */
		atomic_fetch_add_explicit(&x->ndead, 1, memory_order_relaxed); /* stats only */
		if (s->item_free)
			s->item_free(it, s->item_free_ctx);
		n++;
	}
	return n;
}

/*
 * Unlink fully written segment @x while passive cursors exist and every pin
 * is a passive's (design.md §6, "A stalled passive cursor";
 * docs/models/trim.pml).  DEAD and our own pin in one RMW: no pin succeeds
 * after it, and no passive's last unpin releases @x while we trim it.  If
 * passives pin @x, destroy its items outside every passive's [plo, phi)
 * (what one may still read, or returned last), leaving DEAD_ITEM; then drop
 * our pin: whoever drops the last one destroys the rest and retires @x.
 * Caller holds s->lock (the passive list).
 */
static void seg_unlink_trim(fo_stream *s, struct seg *x, struct seg **rel)
{
	/* seq_cst: before our loads of plo/phi, against each passive's seq_cst
	 * stores of them before its DEAD check (store-load both ways). */
	uint64_t old =
	    atomic_fetch_add_explicit(&x->state, SEG_DEAD | SEG_PIN, memory_order_seq_cst);
	if (old >> 1) {
		uint64_t keep[SEG_SLOTS / 64] = {0};
		for (fo_cursor *c = s->passives; c; c = c->pnext) {
			/* seq_cst: see the fetch_add above; plo before phi, the
			 * reverse of the passive's stores, so a new plo comes with
			 * phi = UINT64_MAX. */
			uint64_t lo = atomic_load_explicit(&c->plo, memory_order_seq_cst);
			uint64_t hi = atomic_load_explicit(&c->phi, memory_order_seq_cst);
			if (lo < x->base)
				lo = x->base;
			if (hi > x->base + SEG_SLOTS)
				hi = x->base + SEG_SLOTS;
			for (uint64_t q = lo; q < hi; q++)
				keep[(q - x->base) / 64] |= 1ull << ((q - x->base) % 64);
		}
		/* stats only */
		atomic_fetch_add_explicit(&s->freed, kill_items(s, x, keep), memory_order_relaxed);
	}
	/* acq_rel: our trim before whoever releases; exactly one side frees. */
	uint64_t now = atomic_fetch_sub_explicit(&x->state, SEG_PIN, memory_order_acq_rel);
	seg_put_dead(s, x, now - SEG_PIN, rel);
}

/* Unlink every segment below the frontier: strictly below while cursors
 * exist (an active cursor may stand at a segment's very end and still need
 * its next pointer).  A segment with a claimed slot whose producer has not
 * stored yet is unlinked all the same but parked in limbo, keeping its
 * memory and items until the store lands.  Caller holds s->lock. */
void fo__reclaim_locked(fo_stream *s)
{
	/* The producers' misses this pass covers: read before the frontier,
	 * taken off only once its segments are gone (design.md §6).
	 * acquire (every write is an RMW: one release sequence): each miss
	 * counted in m0 follows a claim that happens before our loads of
	 * tail_seg and tail below. */
	unsigned m0 = atomic_load_explicit(&s->reclaim_misses, memory_order_acquire);
	struct seg *hint = atomic_load_explicit(
	    &s->tail_seg,
	    memory_order_acquire); /* acquire: under the lock the hint segment is linked */
	uint64_t f = hint->base;
	bool none = atomic_load_explicit(&s->ncursors, memory_order_relaxed) ==
	            0; /* changed only under the lock we hold */
	/* Trim the items of pinned segments we unlink only when every pin is a
	 * passive's: a member's pin also keeps the batch it returned, which
	 * it does not publish.  (Members pin only while their group is
	 * registered, under the lock we hold.) */
	bool trim = s->passives != NULL;
	bool groups = false;
	for (struct consumer *c = s->consumers.next; c != &s->consumers; c = c->next) {
		uint64_t p;
		if (c->hint) { /* a group: its hint segment and later stay */
			trim = false;
			groups = true;
			p = atomic_load_explicit(c->hint, memory_order_acquire)->base;
		} else /* acquire: the cursor is done with everything below */
			p = atomic_load_explicit(c->hold, memory_order_acquire);
		if (p < f)
			f = p;
	}
	/* Who may reach what this pass releases other than through a pin or
	 * the frontier (design.md §6, "Reusing a segment without a grace
	 * period" and the biased stream after it): nobody, passives (counted
	 * in s->walkers), or producers and members (a grace period). */
	bool one = one_producer_locked(s);
	enum reuse how = !one || groups ? REUSE_NEVER
	                 : atomic_load_explicit(&s->npassive, memory_order_relaxed) == 0
	                     ? REUSE_NOW /* npassive changes only under the lock we hold */
	                     : REUSE_NO_WALKER;
	struct seg *rel = NULL; /* released by this pass */
	if (atomic_load_explicit(&s->npassive, memory_order_relaxed) >
	    0) { /* changed only under the lock we hold */
		uint64_t t = atomic_load_explicit(&s->tail, memory_order_relaxed) >>
		             TAIL_SHIFT; /* only bounds the passive window */
		uint64_t keep = t > s->window ? t - s->window : 0;
		if (keep < f)
			f = keep;
	}
#ifdef FO_TEST_HOOKS
	if (fo__unlikely(fo__frontier_hook != NULL)) /* tests: a pass stopped past its frontier */
		fo__frontier_hook(s);
#endif
	if (s->limbo)
		limbo_scan_locked(s, &rel, one);
	struct seg *x = atomic_load_explicit(
	    &s->oldest, memory_order_relaxed); /* written only under the lock we hold */
	uint64_t slack = none ? 0 : 1;
	while (x != hint && x->base + SEG_SLOTS + slack <= f) {
		struct seg *n = atomic_load_explicit(&x->next, memory_order_acquire);
		/* seq_cst: a lapped passive that loads oldest sees a linked one,
		 * and the store precedes pass_end()'s load of walkers. */
		atomic_store_explicit(&s->oldest, n, memory_order_seq_cst);
		bool written = seg_fully_written(x, one);
		if (written && trim) {
			seg_unlink_trim(s, x, &rel);
		} else if (written) {
			/* seq_cst: pairs with pins/unpins (exactly one side frees),
			 * and precedes pass_end()'s load of walkers. */
			seg_put_dead(
			    s, x,
			    atomic_fetch_or_explicit(&x->state, SEG_DEAD, memory_order_seq_cst),
			    &rel);
		} else {
			/* A producer claimed a slot here and has not stored yet:
			 * DEAD (no new pin; passives in it are lapped) plus the
			 * limbo's pin, which keeps the memory its store lands in
			 * and the items until limbo_scan_locked() sees it written.
			 * seq_cst: as the fetch_or above. */
			atomic_fetch_add_explicit(&x->state, SEG_DEAD | SEG_PIN,
			                          memory_order_seq_cst);
			x->rnext = s->limbo;
			s->limbo = x;
		}
		x = n;
	}
	/* Misses counted since m0 was read stay: their claims may lie above
	 * this frontier.  relaxed: a heuristic count; only lock holders
	 * subtract, so it cannot wrap. */
	atomic_fetch_sub_explicit(&s->reclaim_misses, m0, memory_order_relaxed);
	pass_end(s, rel, how);
}

/*
 * The last cursor is gone: no cursor can return any retained item (a new
 * one starts at the tail), so destroy the written items of the segments
 * still linked, leaving DEAD_ITEM behind.  Producers only ever store into
 * NULL slots and every other destroyer holds s->lock or a pin (none left),
 * so nobody races with us on a non-NULL slot.  Caller holds s->lock.
 */
static uint64_t sweep_seg(fo_stream *s, struct seg *x)
{
	return kill_items(s, x, NULL);
}

void fo__sweep_locked(fo_stream *s)
{
	uint64_t n = 0;
	for (struct seg *x = atomic_load_explicit(&s->oldest, memory_order_relaxed);
	     x; /* written only under the lock we hold */
	     x = atomic_load_explicit(
	         &x->next, memory_order_acquire)) /* acquire: the next segment's initialisation */
		n += sweep_seg(s, x);
	/* Limbo segments too (no pin but the limbo's is left: no cursor): a
	 * store that lands later is destroyed by their release. */
	for (struct seg *x = s->limbo; x; x = x->rnext)
		n += sweep_seg(s, x);
	atomic_fetch_add_explicit(&s->freed, n, memory_order_relaxed); /* stats only */
}

/*
 * Reclaim without ever blocking on the registry lock.  A request that finds
 * the lock taken is not lost: it sets reclaim_pending, and every holder
 * checks the flag after unlocking (fo__stream_unlock).  seq_cst store then
 * trylock, against unlock, fence, load: one of the two sides sees the other.
 * A request that found the lock taken counts a miss; the first pass that
 * reads its frontier after the miss takes it off when it ends.
 */
void fo__reclaim_try(fo_stream *s)
{
	bool ran = false;
	atomic_store_explicit(&s->reclaim_pending, 1,
	                      memory_order_seq_cst); /* seq_cst: before our trylock (see above) */
	while (
	    atomic_load_explicit(&s->reclaim_pending,
	                         memory_order_seq_cst) && /* seq_cst: after the holder's unlock */
	    pthread_mutex_trylock(&s->lock) == 0) {
		atomic_store_explicit(&s->reclaim_pending, 0,
		                      memory_order_relaxed); /* we hold the lock */
		fo__reclaim_locked(s);
		pthread_mutex_unlock(&s->lock);
		atomic_thread_fence(memory_order_seq_cst); /* unlock before the re-check */
		ran = true;
	}
	if (!ran)
		atomic_fetch_add_explicit(
		    &s->reclaim_misses, 1,
		    memory_order_release); /* release: our claim before a pass's m0
		                              (fo__reclaim_locked) */
}

/*
 * A producer's reclamation: as fo__reclaim_try(), but once RECLAIM_MISSES
 * requests found the lock taken and no finished pass covers them yet (its
 * holder was descheduled, or is slow destroying a backlog, while producers
 * kept pushing: thousands of segments on a loaded machine), wait for the
 * lock.  That bounds what a descheduled reclaimer costs in memory
 * (design.md §6) at the price of this push waiting for it.
 */
void fo__reclaim_push(fo_stream *s)
{
	if (fo__likely(atomic_load_explicit(&s->reclaim_misses, memory_order_relaxed) <
	               RECLAIM_MISSES)) { /* a heuristic count */
		fo__reclaim_try(s);
		return;
	}
#ifdef FO_TEST_HOOKS
	if (fo__unlikely(fo__reclaim_wait_hook != NULL)) /* tests: this request waits */
		fo__reclaim_wait_hook(s);
#endif
	pthread_mutex_lock(&s->lock);
	atomic_store_explicit(&s->reclaim_pending, 0, memory_order_relaxed); /* we hold the lock */
	fo__reclaim_locked(s);
	fo__stream_unlock(s);
}

/* Run a reclamation that was requested while we held the registry lock,
 * which we have released since (fo__stream_unlock, or later: the owner of a
 * biased stream after it left its busy window, design.md §4). */
void fo__reclaim_pending(fo_stream *s)
{
	atomic_thread_fence(memory_order_seq_cst); /* our unlock before the check */
	if (atomic_load_explicit(&s->reclaim_pending, memory_order_relaxed))
		fo__reclaim_try(s);
}

/* Unlock the registry; run a reclamation that was requested meanwhile. */
void fo__stream_unlock(fo_stream *s)
{
	pthread_mutex_unlock(&s->lock);
	fo__reclaim_pending(s);
}

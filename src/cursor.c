/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * cursor.c - cursors: create, fork and close (registration under the
 * registry lock), pins on segments, and the three read paths (active,
 * passive, share-group member) with the blocking read around them
 * (docs/design.md §5-§7).  Everything a read runs per item is in this file
 * or static inline in stream_impl.h; it leaves the file only per segment
 * (fo__reclaim_try, the last unpin's fo__seg_release) and to sleep.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "stream_impl.h"

/* Brief spin before yielding: rounds of 1 and 2 pauses, then of 4 (a poll
 * every ~150 ns where a pause is ~35-40 ns, the 2-vCPU EPYC VM), 63 pauses
 * in all, ~2.5 us there, about a futex hand-off's cost (design.md §7).  The
 * step is capped: with the backoff doubling to 32 pauses, an item arriving
 * ~1 us into the wait waited up to 32 pauses for the next poll, and B7's
 * median moved with the pause's cost from run to run. */
#define SPIN_ROUNDS   17
#define SPIN_STEP_MAX 4
/* Then yields, each followed by ACTIVE_POLLS polls (64 pauses), for up to
 * ACTIVE_WAIT_TICKS (~50 us at 2 GHz: a sleep's heavy fence and a wake-up
 * of an idle vCPU cost ~20 + ~40 us on the VM) unless a yield ran another
 * thread (design.md §7). */
#define ACTIVE_POLLS      16
#define ACTIVE_WAIT_TICKS 100000u
#define SPARE_CURSORS     64 /* closed cursor objects kept for reuse by forks (B5): <= 16 KiB */

/* ------------------------------------------------------------------------ */
/* Pins (the other half is the reclaimer's DEAD mark, segment.c)             */

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
		fo__seg_release(s, x, true);
}

/* ------------------------------------------------------------------------ */
/* Registry (under s->lock)                                                  */

static void cons_add(fo_stream *s, struct consumer *c)
{
	/* At the end: the list stays oldest first, which full streams'
	 * rescans rely on to stop early (has_room(), design.md §9). */
	c->next = &s->consumers;
	c->prev = s->consumers.prev;
	s->consumers.prev->next = c;
	s->consumers.prev = c;
}

/* An active cursor registered at @p, which may lie behind the cached
 * minimum (only a fork of a passive cursor can: design.md §3, cached_min):
 * lower it so capacity stays exact.  Under s->lock.  Every other consumer
 * joins at the tail or at or above a registered consumer's position, and
 * skips this load of the producers' line (B5). */
static void cached_min_lower_locked(fo_stream *s, uint64_t p)
{
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

/* ------------------------------------------------------------------------ */
/* Cursor creation                                                           */

/* The kind FO_ACTIVE / FO_PASSIVE / FO_SHARED flags ask for (checked by the caller). */
static enum kind kind_of(unsigned flags)
{
	return (flags & FO_PASSIVE) ? K_PASSIVE : (flags & FO_SHARED) ? K_MEMBER : K_ACTIVE;
}

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
		c->lim = x->base + SEG_SLOTS;
		/* relaxed: under s->lock, which producers' rescans and the
		 * reclaimer take before reading them. */
		atomic_store_explicit(&c->pub, pos, memory_order_relaxed);
		atomic_store_explicit(&c->hold, pos, memory_order_relaxed);
		cons_add(s, &c->cons);
	} else if (c->kind == K_PASSIVE) {
		atomic_fetch_add_explicit(&s->npassive, 1,
		                          memory_order_relaxed); /* under s->lock */
		/* It returned nothing yet.  relaxed: the reclaimer reads them
		 * under the lock we hold. */
		atomic_store_explicit(&c->plo, pos, memory_order_relaxed);
		atomic_store_explicit(&c->phi, pos, memory_order_relaxed);
		c->pprev = NULL;
		c->pnext = s->passives;
		if (s->passives)
			s->passives->pprev = c;
		s->passives = c;
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
	enum kind kind = kind_of(flags);
	struct group *g = NULL;
	if (kind == K_MEMBER && !(g = group_new(s, 0, NULL)))
		return FO_ENOMEM;
	pthread_mutex_lock(&s->lock);
	fo_cursor *c = cursor_get_locked(s, kind);
	if (!c) {
		fo__free(g);
		return FO_ENOMEM;
	}
	/* The first cursor clears GATE_EMPTY, then reads tail: every claim
	 * whose push saw EMPTY lies before our start (design.md §4, §5).
	 * relaxed: ncursors changes only under the lock we hold. */
	if (atomic_fetch_add_explicit(&s->ncursors, 1, memory_order_relaxed) == 0) {
		/* seq_cst: the pair of the producer's claim, then gate load. */
		atomic_fetch_and_explicit(&s->gate, ~GATE_EMPTY, memory_order_seq_cst);
		/* Claims by plain store (fenced, or biased not yet revoked:
		 * FENCED changes only under the lock we hold): the other half. */
		if (atomic_load_explicit(&s->tail, memory_order_relaxed) & TAIL_FENCED)
			fo__fence_heavy();
	}
	/* Hint first, then tail (as producers do): the hint only ever points
	 * at a segment where a position was already claimed, so its base is
	 * <= pos.  Read the other way round, producers could move the hint
	 * past pos in between and fo__seg_walk would start ahead of pos.  Under
	 * the lock nothing is unlinked, so h stays valid. */
	struct seg *h = atomic_load_explicit(&s->tail_seg, memory_order_acquire);
	uint64_t pos = atomic_load_explicit(&s->tail, memory_order_seq_cst) >> TAIL_SHIFT;
	struct seg *x = fo__seg_walk(h, pos);
	if (g) {
		/* relaxed: the group is published by cons_add under s->lock and
		 * to its one member by the handle we return. */
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
	fo__stream_unlock(s);
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
	enum kind kind = kind_of(flags);
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
			/* relaxed: published under s->lock, as in fo_stream_cursor(). */
			atomic_store_explicit(&g->pos, c->pos, memory_order_relaxed);
			atomic_store_explicit(&g->hint, c->seg, memory_order_relaxed);
			cons_add(s, &g->cons);
			cons_del(&c->cons);
			c->kind = K_MEMBER;
			c->lim = 0; /* no active fast path any more */
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
			x = fo__seg_walk(gh, pos);
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
		if (kind == K_ACTIVE && c->kind == K_PASSIVE)
			cached_min_lower_locked(s, pos);
	}
	fo__stream_unlock(s);
	*out = f;
	return FO_OK;
}

static void cursor_free_cb(fo__rcu_node *node)
{
	fo__free((char *)node - offsetof(fo_cursor, rcu));
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
		fo__watcher_del_locked(s, c);
	if (c->kind == K_ACTIVE) {
		if (c->cons.next != &c->cons)
			cons_del(&c->cons);
	} else if (c->kind == K_PASSIVE) {
		atomic_fetch_sub_explicit(&s->npassive, 1,
		                          memory_order_relaxed); /* under s->lock */
		if (c->pprev)
			c->pprev->pnext = c->pnext;
		else
			s->passives = c->pnext;
		if (c->pnext)
			c->pnext->pprev = c->pprev;
	} else if (c->g && --c->g->members == 0) {
		cons_del(&c->g->cons);
		fo__free(c->g);
	}
	/* Under the lock, so no cursor creation sees the count in between. */
	bool none = atomic_fetch_sub_explicit(&s->ncursors, 1, memory_order_relaxed) == 1;
	/* relaxed: a push that misses it stores a real item, which the sweep
	 * below or the segment's release destroys (design.md §4). */
	if (none)
		atomic_fetch_or_explicit(&s->gate, GATE_EMPTY, memory_order_relaxed);
	fo__reclaim_locked(s);
	if (none)
		fo__sweep_locked(s);
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
	fo__stream_unlock(s);
	if (efd >= 0)
		close(efd);
	if (c && watching) /* producers may still walk past it in the chain */
		fo__rcu_call(&c->rcu, cursor_free_cb);
	else if (c)
		fo__free(c);
	atomic_thread_fence(memory_order_seq_cst); /* rare: wake producers for sure */
	fo__wake_space(s);
	fo__stream_unref(s);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                    */

/* A producer sleeps for room (design.md §7).  NEED_SLEEP: wake it now.
 * Only NEED_BATCH: wake it when this move is the last of the counted
 * crossings of its watermark (relaxed: hints, its sleep is bounded). */
static __attribute__((noinline)) void space_wake(fo_stream *s, uint32_t need, uint64_t from,
                                                 uint64_t to)
{
	if (!(need & NEED_SLEEP)) {
		uint64_t w = atomic_load_explicit(&s->space.want, memory_order_relaxed);
		if (from >= w || to < w ||
		    atomic_fetch_sub_explicit(&s->space.behind, 1, memory_order_relaxed) != 1)
			return;
	}
	fo__wake_space(s);
}

/* A consumer moved its published position from @from to @to: a producer
 * may wait for room. */
static inline void reader_moved(fo_stream *s, uint64_t from, uint64_t to)
{
	if (s->capacity) {
		fo__fence_light(); /* our position store before the waiter check */
		uint32_t need = atomic_load_explicit(
		    &s->space.need, memory_order_relaxed); /* a peek: we fenced after publishing */
		if (fo__unlikely(need))
			space_wake(s, need, from, to);
	}
}

/* Nothing at @pos: the end, or not yet. */
static int at_end_or_empty(fo_cursor *c, uint64_t pos)
{
	/* acquire: pairs with the end's release; the error is visible. */
	uint64_t end = atomic_load_explicit(&c->s->end, memory_order_acquire);
	if (pos < end)
		return FO_EMPTY;
	c->done = c->s->err.code ? FO_FAILED : FO_END;
	c->lim = 0; /* sticky: the fast path never reads again */
	return c->done;
}

/* A fast path (active_one_fast, member_pinned) could not decide: the general
 * path does (not an FO_ code). */
#define TAKE_UNDECIDED (-1)

/* An active cursor read [@from, @pos) (@from: c->pos, passed so that the
 * caller's store of the items needs no reload): publish it (design.md §5)
 * and move. */
static inline __attribute__((always_inline)) void active_publish(fo_cursor *c, uint64_t from,
                                                                 uint64_t pos)
{
	/* release (both): our reads of items before from happen before their
	 * free.  The batch [from, pos) stays valid until the next read:
	 * segments are unlinked only when they end strictly below hold. */
	atomic_store_explicit(&c->hold, from, memory_order_release);
	atomic_store_explicit(&c->pub, pos, memory_order_release);
	c->pos = pos;
	reader_moved(c->s, from, pos);
}

/* Active cursor: up to @max items, no waiting.  Hot path. */
static int take_active(fo_cursor *c, void **items, size_t max, size_t *n)
{
	fo_stream *s = c->s;
	struct seg *x = c->seg;
	uint64_t pos = c->pos;
	size_t k = 0;
	while (k < max) {
		struct seg *nx = fo__seg_step(x, pos);
		if (!nx)
			break;
		x = nx;
		/* acquire: pairs with the producer's release store. */
		void *it = atomic_load_explicit(&x->slot[pos & SEG_MASK], memory_order_acquire);
		if (!it)
			break;
		items[k++] = it; /* never DEAD_ITEM: that needs GATE_EMPTY (design.md §5) */
		pos++;
	}
	*n = k;
	if (k == 0)
		return at_end_or_empty(c, pos);
	bool crossed = x != c->seg;
	c->seg = x;
	c->lim = x->base + SEG_SLOTS;
	active_publish(c, c->pos, pos);
	if (crossed)
		fo__reclaim_try(s);
	return FO_OK;
}

/*
 * One item for an active cursor whose position lies inside its segment and
 * whose slot is stored: take_active() for one item, without its loop and
 * its frame (inlined into the per-item read calls, design.md §5).  One
 * compare against c->lim stands for "active, not done, position inside
 * c->seg".  FO_OK, or TAKE_UNDECIDED with nothing taken (another kind, a
 * finished cursor, the end of the segment, an empty slot): the general
 * path decides, steps to the next segment and reclaims.
 */
static inline __attribute__((always_inline)) int active_one_fast(fo_cursor *c, void **item)
{
	uint64_t pos = c->pos;
	if (fo__unlikely(pos >= c->lim))
		return TAKE_UNDECIDED;
	/* acquire: pairs with the producer's release store. */
	void *it = atomic_load_explicit(&c->seg->slot[pos & SEG_MASK], memory_order_acquire);
	if (fo__unlikely(!it))
		return TAKE_UNDECIDED;
	*item = it; /* never DEAD_ITEM (take_active) */
	active_publish(c, pos, pos + 1);
	return FO_OK;
}

/* The passive cursor's segment was unlinked: jump to the oldest retained
 * segment.  Returns FO_LAGGED if items were skipped, else FO_OK (it only
 * stood at the end of the unlinked segment: nothing was lost). */
static int passive_lapped(fo_cursor *c)
{
	fo_stream *s = c->s;
	struct seg *z;
	fo__walk_enter(s);
	do /* seq_cst: pairs with the reclaimer's store (design.md §6, walker count) */
		z = atomic_load_explicit(&s->oldest, memory_order_seq_cst);
	while (!seg_pin(z));
	fo__walk_leave(s);
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

/* End of a passive read call: publish the batch it returned, [pos - k,
 * pos), which must outlive this call (design.md §6).  plo first: any mix of
 * old and new values read by a reclaimer still covers the batch. */
static inline void passive_publish(fo_cursor *c, size_t k)
{
	/* release: orders nothing the reclaimer needs (it only keeps more
	 * with an older value); the seq_cst pair is at the call's start. */
	atomic_store_explicit(&c->plo, c->pos - k, memory_order_release);
	atomic_store_explicit(&c->phi, c->pos, memory_order_release);
}

static int take_passive(fo_cursor *c, void **items, size_t max, size_t *n)
{
	fo_stream *s = c->s;
	size_t k = 0;
	int rc = FO_OK;
	*n = 0;
	/* The items of our last call may go from here on; the slots this call
	 * may read, from pos on, may not.  phi first, so a reclaimer that reads
	 * the new plo reads phi = UINT64_MAX.  seq_cst: both stores come before
	 * the DEAD check below in the total order, against the reclaimer's DEAD
	 * mark (seq_cst RMW) and its loads of plo/phi: either we see DEAD, or it
	 * sees [pos, UINT64_MAX) and keeps what we read (docs/models/trim.pml). */
	atomic_store_explicit(&c->phi, UINT64_MAX, memory_order_seq_cst);
	atomic_store_explicit(&c->plo, c->pos, memory_order_seq_cst);
	while (k < max) {
		struct seg *x = c->seg;
		/* seq_cst: a DEAD mark means the frontier passed us (and, the
		 * first time, the pairing described above). */
		if (atomic_load_explicit(&x->state, memory_order_seq_cst) & SEG_DEAD) {
			if (k)
				break; /* report the lap on the next call */
			if ((rc = passive_lapped(c)) != FO_OK)
				break;
			continue;
		}
		if (c->pos - x->base >= SEG_SLOTS) {
			fo__walk_enter(s);
			/* Re-check inside the read section: if x is still linked
			 * now, x->next is unlinked (and retired) only after this
			 * section began, so its memory outlives the section.
			 * seq_cst: after our walker count (design.md §6). */
			bool lapped =
			    atomic_load_explicit(&x->state, memory_order_seq_cst) & SEG_DEAD;
			struct seg *nx =
			    lapped ? NULL : atomic_load_explicit(&x->next, memory_order_acquire);
			bool ok = nx && seg_pin(nx);
			fo__walk_leave(s);
			if (!nx && !lapped)
				break; /* x is the newest segment */
			if (!ok) {     /* unlinked, or its successor is going */
				if (k)
					break;
				if ((rc = passive_lapped(c)) != FO_OK)
					break;
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
	passive_publish(c, k);
	*n = k;
	if (rc != FO_OK)
		return rc; /* a lap, reported with nothing taken */
	return k ? FO_OK : at_end_or_empty(c, c->pos);
}

/* Share-group member: claim up to @max ready items of one segment. */
/* Up to @max ready items from @p on, within @x's slots. */
static inline size_t member_run(struct seg *x, uint64_t p, void **items, size_t max)
{
	size_t k = 0, room = SEG_SLOTS - (size_t)(p & SEG_MASK);
	if (room > max)
		room = max;
	while (k < room) {
		/* acquire: pairs with the producer's release store of the slot. */
		void *it = atomic_load_explicit(&x->slot[(p + k) & SEG_MASK], memory_order_acquire);
		if (!it)
			break;
		items[k++] = it;
	}
	return k;
}

/*
 * A member's fast path: the group position lies in the segment this member
 * pins.  The pin keeps it from being freed, so no read section is needed, and
 * the hint is left alone (it only ever lags, which costs memory, never
 * safety; the slow path moves it).  A stale position fails the CAS, and the
 * retry stays here while the group is still in this segment.  An empty slot
 * at the position answers at once (design.md §5): a waiting member polls
 * here, never in the read section.  FO_OK (*@n taken), that answer, or
 * TAKE_UNDECIDED with nothing taken (no pin, another segment).  Inlined into
 * take_member() and, for one item, into the per-item read calls, which then
 * need no frame.
 */
static inline __attribute__((always_inline)) int member_pinned(fo_cursor *c, void **items,
                                                               size_t max, size_t *n)
{
	struct seg *px = c->seg;
	if (!px)
		return TAKE_UNDECIDED;
	struct group *g = c->g;
	/* acquire: pairs with the winning member's acq_rel CAS. */
	uint64_t p = atomic_load_explicit(&g->pos, memory_order_acquire);
	while (px->base <= p && p - px->base < SEG_SLOTS) {
		size_t k = member_run(px, p, items, max);
		if (!k)
			return at_end_or_empty(c, p);
		/* acq_rel: exactly one member wins positions p..p+k-1;
		 * acquire on failure: as the load above. */
		if (atomic_compare_exchange_weak_explicit(&g->pos, &p, p + k, memory_order_acq_rel,
		                                          memory_order_acquire)) {
			*n = k;
			reader_moved(c->s, p, p + k);
			return FO_OK;
		}
	}
	return TAKE_UNDECIDED;
}

static int take_member(fo_cursor *c, void **items, size_t max, size_t *n)
{
	fo_stream *s = c->s;
	struct group *g = c->g;
	*n = 0;
	int rc = member_pinned(c, items, max, n);
	if (rc != TAKE_UNDECIDED)
		return rc;
	fo__rcu_lock();
	for (;;) {
		/* acquire: pairs with the members' CASes on pos and hint. */
		uint64_t p = atomic_load_explicit(&g->pos, memory_order_acquire);
		struct seg *h = atomic_load_explicit(&g->hint, memory_order_acquire);
		if (h->base > p)
			continue; /* p is stale: others claimed past it */
		struct seg *x = c->seg;
		if (!x || x->base > p || p - x->base >= SEG_SLOTS)
			x = fo__seg_walk(h, p);
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
		size_t k = member_run(x, p, items, max);
		if (k == 0) {
			fo__rcu_unlock();
			return at_end_or_empty(c, p);
		}
		/* acq_rel: exactly one member wins positions p..p+k-1. */
		if (!atomic_compare_exchange_strong_explicit(
		        &g->pos, &p, p + k, memory_order_acq_rel, memory_order_relaxed))
			continue;
		/* release: x is linked and initialised before others walk from it. */
		bool crossed = false;
		while (h->base < x->base &&
		       !(crossed = atomic_compare_exchange_weak_explicit(
		             &g->hint, &h, x, memory_order_release, memory_order_acquire)))
			;
		fo__rcu_unlock();
		*n = k;
		reader_moved(s, p, p + k);
		/* The group's frontier moved on a segment: reclaim as active
		 * readers do (design.md §6); without it a group-only stream kept
		 * every segment until the next producer-side reclamation. */
		if (crossed)
			fo__reclaim_try(s);
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

/* Poll @c @rounds times, numbered from @from, round r after 1 << r pauses
 * capped at SPIN_STEP_MAX: a reader that re-polled at once would sit on the
 * line the producer is writing and bounce it every item.  Stops early
 * (FO_EMPTY) while a producer sleeps for room: it cannot push until the
 * slowest consumers read, and they may need this CPU (design.md §7). */
static int poll_rounds(fo_cursor *c, void **items, size_t max, size_t *n, unsigned from,
                       unsigned rounds)
{
	int rc = FO_EMPTY;
	for (unsigned r = from; r < from + rounds && rc == FO_EMPTY; r++) {
		/* relaxed: a hint to stop polling; the sleep re-checks. */
		if (atomic_load_explicit(&c->s->space.need, memory_order_relaxed))
			break;
		for (unsigned k = r < 2 ? 1u << r : SPIN_STEP_MAX; k; k--)
			fo__cpu_relax();
		rc = take(c, items, max, n);
	}
	return rc;
}

/* Read with waiting up to @deadline (0: never wait). */
static int next_wait(fo_cursor *c, void **items, size_t max, size_t *n, uint64_t deadline)
{
	fo_stream *s = c->s;
	int rc = take(c, items, max, n);
	if (rc != FO_EMPTY || deadline == 0)
		return rc;
	if ((rc = poll_rounds(c, items, max, n, 0, SPIN_ROUNDS)) != FO_EMPTY)
		return rc;
	/* Then yield, and while yields come back at once (no other thread
	 * wants this CPU, so waiting actively costs nobody) poll on for up to
	 * ACTIVE_WAIT_TICKS, about what a sleep and a wake-up cost here: a
	 * producer stalled for a few us then finds the reader awake.  Once a
	 * yield ran another thread and still nothing came, sleep: a yielder
	 * that stays runnable behind a busy thread waits for its turn (ms), a
	 * sleeper is woken at once.  Not if a producer sleeps for room:
	 * nothing comes until the slowest consumers have read (design.md §7). */
	uint64_t t0 = fo__ticks();
	for (;;) {
		/* relaxed: a hint, as in poll_rounds(). */
		if (atomic_load_explicit(&s->space.need, memory_order_relaxed))
			break;
		bool ran = fo__wait_yield();
		if ((rc = take(c, items, max, n)) != FO_EMPTY)
			return rc;
		if (ran || fo__ticks() - t0 > ACTIVE_WAIT_TICKS)
			break;
		if ((rc = poll_rounds(c, items, max, n, SPIN_ROUNDS, ACTIVE_POLLS)) != FO_EMPTY)
			return rc;
	}
	for (;;) {
		uint32_t g = fo__waitq_prepare(&s->data, NEED_SLEEP);
		if ((rc = take(c, items, max, n)) != FO_EMPTY)
			return rc;
		int w = fo__waitq_sleep(&s->data, g, deadline);
		if ((rc = take(c, items, max, n)) != FO_EMPTY)
			return rc;
		if (w == FO_TIMEDOUT)
			return FO_TIMEDOUT;
	}
}

/* One item on the general path, waiting up to @deadline (0: never).
 * noinline: reached by tail calls, so the per-item read calls' fast paths
 * need no frame. */
static __attribute__((noinline)) int next_slow(fo_cursor *c, void **item, uint64_t deadline)
{
	size_t n;
	return next_wait(c, item, 1, &n, deadline);
}

/* One item for a share-group member: its fast path (member_pinned, §5),
 * else next_slow().  Out of line for the same reason as next_slow(). */
static __attribute__((noinline)) int member_next(fo_cursor *c, void **item, uint64_t deadline)
{
	size_t n;
	int rc = c->done ? TAKE_UNDECIDED : member_pinned(c, item, 1, &n);
	if (rc != TAKE_UNDECIDED && (rc != FO_EMPTY || deadline == 0))
		return rc;
	return next_slow(c, item, deadline);
}

/* One item after the active fast path (active_one_fast) took nothing. */
static inline __attribute__((always_inline)) int next_other(fo_cursor *c, void **item,
                                                            uint64_t deadline)
{
	if (c->kind == K_MEMBER)
		return member_next(c, item, deadline);
	return next_slow(c, item, deadline);
}

int fo_cursor_next(fo_cursor *c, void **item)
{
	if (!c || !item)
		return FO_EINVAL;
	if (fo__likely(active_one_fast(c, item) == FO_OK))
		return FO_OK;
	return next_other(c, item, FO__NO_DEADLINE);
}

int fo_cursor_try_next(fo_cursor *c, void **item)
{
	if (!c || !item)
		return FO_EINVAL;
	if (fo__likely(active_one_fast(c, item) == FO_OK))
		return FO_OK;
	return next_other(c, item, 0);
}

int fo_cursor_timed_next(fo_cursor *c, void **item, int64_t timeout_ns)
{
	if (!c || !item)
		return FO_EINVAL;
	if (fo__likely(active_one_fast(c, item) == FO_OK))
		return FO_OK;
	/* status.h's convention: 0 = try, negative = no limit (fo__deadline) */
	int rc = next_other(c, item, timeout_ns ? fo__deadline(timeout_ns) : 0);
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

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stream.c - streams: create/destroy, close/fail, stats, and the push path
 * (docs/design.md §4).  Everything a push runs per item is in this file or
 * static inline in stream_impl.h; it leaves the file only per new segment
 * (fo__seg_new, fo__reclaim_try) and to wake sleepers or watchers.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "stream_impl.h"

#define ROOM_SPIN_ROUNDS       6      /* producers waiting for room: 1+2+..+32 pauses, */
#define ROOM_YIELDS            3      /* then a few sched_yield()s, then sleep */
#define ROOM_BOUND_NS          200000 /* a watermark sleep lasts at most this long */
#define PRODUCER_RECLAIM_EVERY 4      /* segments; a power of two */

char fo__dead_item; /* DEAD_ITEM points here (stream_impl.h) */

#ifdef FO_TEST_HOOKS
void (*fo__claim_hook)(fo_stream *s, uint64_t first, size_t n); /* stream_impl.h */
void (*fo__cross_hook)(fo_stream *s, uint64_t first, size_t n); /* stream_impl.h */
void (*fo__closing_hook)(fo_stream *s);                         /* stream_impl.h */

bool fo__bias_busy(fo_stream *s)
{
	return atomic_load_explicit(&s->busy, memory_order_acquire); /* acquire: a test's peek */
}
#endif

/* Items or the end were published, then fenced: wake sleeping readers and
 * signal armed watchers.  noinline: the rare branch of a push; inlined, it
 * costs the fast path a register (B3: one more instruction per push). */
static __attribute__((noinline)) void wake_data(fo_stream *s)
{
	if (fo__waitq_wake(&s->data) & NEED_WATCH)
		fo__signal_watchers(s);
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
	/* Adaptive: the registry's sections are short (a fork, a capacity
	 * rescan); a fork that met a full stream's producer rescanning slept on
	 * the futex and woke microseconds later (B5 loaded, design.md §9). */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	int mrc = pthread_mutex_init(&s->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (mrc != 0) {
		fo__free(s);
		return FO_ENOMEM;
	}
	/* Before the first segment: fo__seg_new() takes pool_lock. */
	if (pthread_mutex_init(&s->pool_lock, NULL) != 0) {
		pthread_mutex_destroy(&s->lock);
		fo__free(s);
		return FO_ENOMEM;
	}
	struct seg *first = fo__seg_new(s, 0);
	if (!first) {
		pthread_mutex_destroy(&s->pool_lock);
		pthread_mutex_destroy(&s->lock);
		fo__free(s);
		return FO_ENOMEM;
	}
	s->capacity = o->capacity;
	s->window = o->passive_window ? o->passive_window : FO_DEFAULT_PASSIVE_WINDOW;
	s->item_free = o->item_free;
	s->item_free_ctx = o->item_free_ctx;
	s->single_producer = o->single_producer;
	/* Fenced only with membarrier for the rare sides (never under TSan:
	 * fo__have_membarrier stays 0), chosen for the stream's whole life. */
	s->fenced = o->single_producer && fo__have_membarrier;
	/* Biased: several producers allowed, plain-store claims by the first
	 * one until a second pushes (design.md §4, the biased claim). */
	s->biased = !o->single_producer && fo__have_membarrier;
	atomic_init(&s->tail, s->fenced ? TAIL_FENCED : s->biased ? TAIL_FENCED | TAIL_BIASED : 0);
	atomic_init(&s->gate, GATE_EMPTY);
	atomic_init(&s->tail_seg, first);
	atomic_init(&s->oldest, first);
	atomic_init(&s->end, NO_END);
	s->consumers.next = s->consumers.prev = &s->consumers;
	atomic_init(&s->handles, 1);
	atomic_init(&s->refs, 1);
	*sp = s;
	return FO_OK;
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
		fo__seg_release(s, x, false);
		x = n;
	}
	while (s->spare) {
		fo_cursor *c = s->spare;
		s->spare = c->spare_next;
		fo__free(c);
	}
	fo__seg_pool_free(s);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&s->lock);
	fo__free(s->err_msg);
	fo__free(s);
}

/* Drop a memory reference; the last one frees the stream's memory. */
void fo__stream_unref_mem(fo_stream *s)
{
	/* acq_rel: everything done under this reference happens before the free. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		stream_free(s);
}

/* Drop a user handle (creator or cursor).  The last one destroys every
 * item still held before returning (the API promises it), even if a retire
 * batch keeps the memory a little longer. */
void fo__stream_unref(fo_stream *s)
{
	/* acq_rel: everything this handle did happens before the teardown. */
	if (atomic_fetch_sub_explicit(&s->handles, 1, memory_order_acq_rel) == 1) {
		fo__sweep_locked(s); /* nobody else is left: the lock is not needed */
		fo__stream_unref_mem(s);
	}
}

void fo_stream_destroy(fo_stream *s)
{
	if (!s)
		return;
	/* The creator's handle is the only one that may push: once it goes, the stream is
	 * over.  Closing wakes blocked readers (FO_END after every item); a stream already
	 * closed or failed keeps its first end. */
	(void)fo_stream_close(s);
	fo__stream_unref(s);
}

/* ------------------------------------------------------------------------ */
/* Pushing                                                                    */

/* Make sure segments exist from @x through position @last (inclusive).
 * Called before claiming, so a failure leaves nothing behind. */
static int seg_ensure(fo_stream *s, struct seg *x, uint64_t last)
{
	while (last - x->base >= SEG_SLOTS) {
		struct seg *n = atomic_load_explicit(
		    &x->next,
		    memory_order_acquire); /* acquire: the next segment's initialisation */
		if (!n) {
			struct seg *fresh = fo__seg_new(s, x->base + SEG_SLOTS);
			if (!fresh)
				return FO_ENOMEM;
			/* release: publish the zeroed slots with the link. */
			if (atomic_compare_exchange_strong_explicit(
			        &x->next, &n, fresh, memory_order_acq_rel, memory_order_acquire)) {
				n = fresh;
			} else {
				/* Lost the race: never published, so nobody else
				 * saw it: back to the pool (design.md §6). */
				fo__seg_unused(s, fresh);
			}
		}
		x = n;
	}
	return FO_OK;
}

/* Minimum capacity position over consumers; UINT64_MAX if none.  With
 * @stop > 0, the scan ends at the first position below @stop and returns it
 * (the minimum is below @stop then, that is all the caller needs).
 * Consumers are listed oldest first (cons_add), so a laggard comes before
 * the forks taken from it. */
static uint64_t cons_min_pos(fo_stream *s, uint64_t stop)
{
	uint64_t m = UINT64_MAX;
	for (struct consumer *c = s->consumers.next; c != &s->consumers; c = c->next) {
		/* acquire: pairs with the reader's release publish. */
		uint64_t p = atomic_load_explicit(c->pos, memory_order_acquire);
		if (p < m)
			m = p;
		if (m < stop)
			break;
	}
	return m;
}

/* Is there room for @k more items after claimed position @t?  noinline:
 * inlined into push_batch it costs unbounded pushes a register (B3: one
 * more instruction per push). */
static __attribute__((noinline)) bool has_room(fo_stream *s, uint64_t t, size_t k)
{
	uint64_t m = atomic_load_explicit(&s->cached_min, memory_order_relaxed);
	if (t + k - m <= s->capacity)
		return true;
	/* Full while the minimum is below @stop: a rescan that finds one
	 * consumer there stops and leaves the cached minimum as it was (a
	 * lower bound still), so a laggard's forks add no cache misses to a
	 * full stream's rescans, under the lock they wait for (B5, design.md
	 * §9). */
	uint64_t stop = t + k > s->capacity ? t + k - s->capacity : 0;
	pthread_mutex_lock(&s->lock);
	m = cons_min_pos(s, stop);
	if (m < stop) {
		fo__stream_unlock(s);
		return false;
	}
	if (m == UINT64_MAX) /* no active consumer: never full */
		m = t;
	atomic_store_explicit(&s->cached_min, m, memory_order_relaxed);
	fo__stream_unlock(s);
	return t + k - m <= s->capacity;
}

/* Room for @k more items now, or closed: stop waiting (the caller re-checks). */
static bool room_or_closed(fo_stream *s, size_t k)
{
	uint64_t t = atomic_load_explicit(
	    &s->tail, memory_order_relaxed); /* a peek: has_room re-checks under the lock */
	return fo__tail_closed(s, t) || has_room(s, TAIL_POS(t), k);
}

/*
 * The watermark of a producer about to sleep for room (design.md §7): the
 * consumers' minimum must reach @want so that there is room for half the
 * capacity (or for @k items, if more).  Under the lock, with a fresh scan:
 * false if there is room already; else stores the watermark and the number
 * of consumers below it, for the readers' crossings to count down.
 */
static bool room_watermark(fo_stream *s, size_t k)
{
	bool room;
	pthread_mutex_lock(&s->lock);
	uint64_t t = atomic_load_explicit(&s->tail, memory_order_relaxed) >>
	             TAIL_SHIFT; /* a peek: the claim is re-checked by the caller's loop */
	uint64_t m = cons_min_pos(s, 0);
	if (m == UINT64_MAX) /* no active consumer: never full */
		m = t;
	atomic_store_explicit(&s->cached_min, m, memory_order_relaxed); /* a hint, as in has_room */
	room = t + k - m <= s->capacity;
	if (!room) {
		uint64_t want = t + k - s->capacity, half = s->capacity / 2;
		if (t >= half && t - half > want)
			want = t - half;
		uint32_t behind = 0;
		for (struct consumer *c = s->consumers.next; c != &s->consumers; c = c->next)
			/* acquire: pairs with the reader's release publish. */
			behind += atomic_load_explicit(c->pos, memory_order_acquire) < want;
		/* relaxed: hints, published by the need word's seq_cst RMW that follows. */
		atomic_store_explicit(&s->space.want, want, memory_order_relaxed);
		atomic_store_explicit(&s->space.behind, behind, memory_order_relaxed);
	}
	fo__stream_unlock(s);
	return room;
}

/*
 * Wait until there may be room, the stream closes, or the deadline
 * (design.md §7): spin briefly, yield (the readers that make room may need
 * this CPU; no more once a yield ran another thread), then sleep until
 * room for half the capacity (NEED_BATCH, at most ROOM_BOUND_NS), and only
 * then, if still full, until any reader moves (NEED_SLEEP, the exact
 * protocol).
 */
static int wait_room(fo_stream *s, size_t k, uint64_t deadline)
{
	for (unsigned r = 0; r < ROOM_SPIN_ROUNDS; r++) {
		for (unsigned i = 1u << r; i; i--)
			fo__cpu_relax();
		if (room_or_closed(s, k))
			return FO_OK;
	}
	for (int y = 0; y < ROOM_YIELDS; y++) {
		bool ran = fo__wait_yield(); /* ran another thread: sleep now */
		if (room_or_closed(s, k))
			return FO_OK;
		if (ran)
			break;
	}
	if (room_watermark(s, k))
		return FO_OK;
	uint64_t bound = fo__now_ns() + ROOM_BOUND_NS;
	uint32_t g = fo__waitq_prepare(&s->space, NEED_BATCH);
	if (room_or_closed(s, k))
		return FO_OK;
	int w = fo__waitq_sleep(&s->space, g, bound < deadline ? bound : deadline);
	if (w != FO_TIMEDOUT || room_or_closed(s, k))
		return FO_OK;
	if (bound >= deadline)
		return FO_TIMEDOUT;
	g = fo__waitq_prepare(&s->space, NEED_SLEEP);
	if (room_or_closed(s, k))
		return FO_OK;
	return fo__waitq_sleep(&s->space, g, deadline);
}

/* The read section of a claim that leaves the tail segment.  A single
 * producer needs none: only it moves tail_seg, and the reclaimer never
 * unlinks the tail segment or anything after it, so every segment it walks
 * stays linked. */
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

/* Does the claim [@p, @p + @n) lie in the tail segment, the one holding
 * p - 1?  Then it needs neither a walk nor a read section. */
static inline bool claim_in_tail_seg(uint64_t p, size_t n)
{
	return (p & SEG_MASK) != 0 && (p & SEG_MASK) + n <= SEG_SLOTS;
}

/* Does the claim [@first, @end) hold the first position of a group of
 * PRODUCER_RECLAIM_EVERY segments?  One claim holds each such position, so
 * exactly one producer reclaims per group, whatever the batch sizes. */
static inline bool reclaim_due(uint64_t first, uint64_t end)
{
	const unsigned shift = SEG_SHIFT + __builtin_ctz(PRODUCER_RECLAIM_EVERY);
	return ((first - 1) >> shift) != ((end - 1) >> shift); /* first == 0: true, harmless */
}

/*
 * End a crossing (design.md §4): @t is the tail word a claim left with STALE
 * set (without CLOSED), @h the tail segment before it and @l the segment
 * holding TAIL_POS(t) - 1.  Move tail_seg from @h to @l, then clear STALE.
 * Run by the claimer and by any producer that finds STALE set (helping), in
 * a read section (several producers): @h cannot be freed and reused while
 * it lasts, so the CAS cannot take a recycled pointer for @h.
 */
static void finish_crossing(fo_stream *s, struct seg *h, struct seg *l, uint64_t t)
{
	/* release: @l's initialisation (seen through next) before the pointer;
	 * acquire on failure: another helper's value before our clear below. */
	if (h != l)
		atomic_compare_exchange_strong_explicit(&s->tail_seg, &h, l, memory_order_acq_rel,
		                                        memory_order_acquire);
	/* Clear STALE while the count is still ours (a close may have set
	 * CLOSED meanwhile): tail never returns to a count, so a late helper
	 * cannot clear a later crossing's bit.  seq_cst: as every tail RMW;
	 * release for the fast path's acquire load (tail_seg before it). */
	uint64_t cur = t;
	while (TAIL_POS(cur) == TAIL_POS(t) && (cur & TAIL_STALE) &&
	       !atomic_compare_exchange_weak_explicit(&s->tail, &cur, cur & ~(uint64_t)TAIL_STALE,
	                                              memory_order_seq_cst, memory_order_relaxed))
		;
}

/* Help the crossing that left @t (STALE set) unfinished.  In a read section
 * (several producers): tail_seg's segment is linked when loaded. */
static void help_crossing(fo_stream *s, uint64_t t)
{
	uint64_t last = TAIL_POS(t) - 1; /* STALE: at least one position claimed */
	/* acquire: loaded after t; the segment's initialisation. */
	struct seg *h = atomic_load_explicit(&s->tail_seg, memory_order_acquire);
	if (h->base > last) /* moved on since t was read: nothing to help */
		return;
	/* The crossing claimer linked every segment of its claim first. */
	finish_crossing(s, h, fo__seg_walk(h, last), t & ~(uint64_t)TAIL_CLOSED);
}

/*
 * A claim of [TAIL_POS(*t), + @n) that does not lie in the tail segment, or
 * a tail word with STALE set (help, then retry).  Caller in producer_enter().
 * Returns 1 and the segment holding the first position in @first if
 * claimed; 0 to retry with the reloaded *@t; FO_ENOMEM with nothing claimed.
 */
static __attribute__((noinline)) int claim_slow(fo_stream *s, uint64_t *t, size_t n,
                                                struct seg **first)
{
	if (*t & TAIL_STALE) {
		help_crossing(s, *t);
		goto reload;
	}
	uint64_t p = TAIL_POS(*t);
	/* acquire: after t (see push_batch); the segment's initialisation. */
	struct seg *h = atomic_load_explicit(&s->tail_seg, memory_order_acquire);
	if (h->base > (p ? p - 1 : 0)) /* a crossing since t was read */
		goto reload;
	if (fo__unlikely(p + n - 1 - h->base >= SEG_SLOTS)) {
		int rc = seg_ensure(s, h, p + n - 1);
		if (rc != FO_OK)
			return rc;
	}
	struct seg *f = fo__seg_walk(h, p);
	struct seg *l = fo__seg_walk(f, p + n - 1);
	uint64_t nt = *t + n * TAIL_ONE + (l != h ? TAIL_STALE : 0);
	/* seq_cst: orders the claim before the gate check (push_batch). */
	if (!atomic_compare_exchange_strong_explicit(&s->tail, t, nt, memory_order_seq_cst,
	                                             memory_order_acquire))
		return 0; /* acquire: the reloaded word, as the load in push_batch */
	if (l != h) {
#ifdef FO_TEST_HOOKS
		if (fo__unlikely(fo__cross_hook != NULL)) /* tests: a stall with STALE set */
			fo__cross_hook(s, p, n);
#endif
		finish_crossing(s, h, l, nt);
	}
	*first = f;
	return 1;
reload:
	*t = atomic_load_explicit(&s->tail, memory_order_acquire); /* as in push_batch */
	return 0;
}

/* Claimed at a moment no cursor existed (and any later one starts after the
 * claim): nobody can ever read the item.  Its slot gets DEAD_ITEM at once;
 * the push destroys the item itself (drop_unread) after its stores, so a
 * slow or blocking destructor never leaves a claimed slot unwritten
 * (design.md §6). */
static inline void *mark_dead(struct seg *x)
{
	atomic_fetch_add_explicit(&x->ndead, 1, memory_order_relaxed); /* stats only */
	return DEAD_ITEM;
}

/* Destroy @n items that mark_dead() kept out of their slots. */
static __attribute__((noinline)) void drop_unread(fo_stream *s, void *const *items, size_t n)
{
	if (s->item_free)
		for (size_t i = 0; i < n; i++)
			s->item_free(items[i], s->item_free_ctx);
	atomic_fetch_add_explicit(&s->freed, n, memory_order_relaxed); /* stats only */
}

/*
 * The claim after @t cannot go ahead now: the stream is closed or (bounded)
 * has no room for @n more items.  Wait for room as @deadline allows (0 =
 * never wait, FO__NO_DEADLINE = forever) and reload *@t.  FO_OK: check
 * again from *@t; anything else is the push's result.  noinline: the rare
 * branch of every push.
 */
static __attribute__((noinline)) int claim_blocked(fo_stream *s, uint64_t *t, size_t n,
                                                   uint64_t deadline)
{
	if (*t & TAIL_CLOSED)
		return FO_ECLOSED;
	if (deadline == 0)
		return FO_FULL;
	int rc = wait_room(s, n, deadline);
	/* acquire: a clean word's tail_seg (design.md §4), the closed bit with its end. */
	*t = atomic_load_explicit(&s->tail, memory_order_acquire);
	if (rc == FO_TIMEDOUT) {
		if (*t & TAIL_CLOSED)
			return FO_ECLOSED;
		if (!has_room(s, TAIL_POS(*t), n))
			return FO_TIMEDOUT;
	}
	return FO_OK;
}

/* Is the claim after @t blocked (closed, or no room for @n)? */
static inline bool claim_is_blocked(fo_stream *s, uint64_t t, size_t n)
{
	return (t & TAIL_CLOSED) || (s->capacity && !has_room(s, TAIL_POS(t), n));
}

/* The biased claim's owner side (design.md §4, the biased claim). */

/* This thread's identity for the bias: the thread pointer (one load of
 * %fs:0 on x86-64), else the address of a thread-local byte.  A thread
 * that exits may pass its identity to a later thread: harmless, the first
 * one pushes no more, so their pushes never overlap (design.md §4). */
#if defined(__has_builtin)
#if __has_builtin(__builtin_thread_pointer)
#define FO_HAVE_THREAD_POINTER 1
#endif
#endif
#ifndef FO_HAVE_THREAD_POINTER
static __thread char bias_self __attribute__((tls_model("initial-exec")));
#endif

static inline uintptr_t self_id(void)
{
#ifdef FO_HAVE_THREAD_POINTER
	return (uintptr_t)__builtin_thread_pointer();
#else
	return (uintptr_t)&bias_self;
#endif
}

/* A revoker waits for the owner's busy word: wake it.  noinline: rare. */
static __attribute__((noinline)) void bias_wake(fo_stream *s)
{
	fo__futex_wake_all(&s->busy);
}

/* The owner leaves a plain-store push: busy back to 0, then wake a revoker
 * that may be waiting for it. */
static inline __attribute__((always_inline)) void bias_leave(fo_stream *s)
{
	/* release: our claim, tail_seg and slot stores happen before the
	 * revoker's clear of BIASED (it acquires busy). */
	atomic_store_explicit(&s->busy, 0, memory_order_release);
	atomic_signal_fence(memory_order_seq_cst); /* busy before the gate load */
	/* relaxed: the other half is the revoker's membarrier. */
	if (fo__unlikely(atomic_load_explicit(&s->gate, memory_order_relaxed) & GATE_REVOKED))
		bias_wake(s);
}

/* The owner enters a plain-store push: true if it may claim so; false if a
 * revocation has begun (busy is clear again). */
static inline __attribute__((always_inline)) bool bias_enter(fo_stream *s)
{
	/* relaxed: ordered before the gate load by the compiler barrier, and
	 * against the revoker by its membarrier. */
	atomic_store_explicit(&s->busy, 1, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst); /* busy before the gate load */
	/* relaxed: the other half is the revoker's membarrier. */
	if (fo__likely(!(atomic_load_explicit(&s->gate, memory_order_relaxed) & GATE_REVOKED)))
		return true;
	bias_leave(s);
	return false;
}

/*
 * After a claim of [@p, @p + @n) (design.md §4, steps 4-6): store @items,
 * or DEAD_ITEM if @nobody (the gate said no cursor), from segment @x (which
 * holds @p) on; wake sleepers; destroy the dead items; reclaim if the claim
 * holds a group start.  Every segment written holds an unwritten slot of
 * ours until our store, so none is freed under us (§6).
 */
static inline __attribute__((always_inline)) void store_claimed(fo_stream *s, struct seg *x,
                                                                uint64_t p, void *const *items,
                                                                size_t n, bool nobody, bool biased)
{
	uint64_t first = p, end = p + n;
	for (; p < end; p++) {
		/* x holds p.  Load the next segment before the store to x's last
		 * slot: once every slot of x is stored, x may be freed. */
		struct seg *nx = NULL;
		if ((p & SEG_MASK) == SEG_MASK && p + 1 < end)
			nx = atomic_load_explicit(
			    &x->next, memory_order_acquire); /* acquire: linked before our claim */
		void *it = nobody ? mark_dead(x) : items[n - (end - p)];
		/* release: the item's contents before its pointer. */
		atomic_store_explicit(&x->slot[p & SEG_MASK], it, memory_order_release);
		if (nx)
			x = nx;
	}
	/* The owner of a biased stream is done with the claim: leave before
	 * anything that may block or run user code (wake-ups, destructors,
	 * the reclamation's lock), which a revoker would otherwise wait for. */
	if (biased)
		bias_leave(s);
	fo__fence_light(); /* the slot stores before the sleeper check */
	if (fo__unlikely(atomic_load_explicit(&s->data.need, memory_order_relaxed)))
		wake_data(s);
	if (fo__unlikely(nobody))
		drop_unread(s, items, n);
	/* Producers reclaim every PRODUCER_RECLAIM_EVERY segments (readers do
	 * at each crossing): a quarter of the cost per item, at most 3 more
	 * segments retained.  The producer whose claim [first, end) holds the
	 * first position of such a group reclaims, however far its batch
	 * reaches (design.md §4, step 6).  Single items in the tail segment
	 * never hold one: their fast path needs no check. */
	if (fo__unlikely(reclaim_due(first, end)))
		fo__reclaim_push(s);
}

/*
 * Claim @n positions and store @items there (the default, CAS claim; and a
 * single producer without membarrier).  @deadline: 0 = never wait,
 * FO__NO_DEADLINE = wait forever.  No read section but a crossing claim's
 * (claim_slow), design.md §4, §6.
 */
static inline __attribute__((always_inline)) int push_batch(fo_stream *s, void *const *items,
                                                            size_t n, uint64_t deadline)
{
	struct seg *x;
	/* acquire: a clean word's tail_seg (design.md §4), and the closed bit
	 * with its end. */
	uint64_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
	for (;;) {
		if (fo__unlikely(claim_is_blocked(s, t, n))) {
			int rc = claim_blocked(s, &t, n, deadline);
			if (rc != FO_OK)
				return rc;
			continue;
		}
		if (!(t & TAIL_STALE) && claim_in_tail_seg(TAIL_POS(t), n)) {
			/* acquire, after t: the segment holding TAIL_POS(t) - 1 if
			 * the claim below succeeds (design.md §4).  Not dereferenced
			 * before it. */
			x = atomic_load_explicit(&s->tail_seg, memory_order_acquire);
			/* seq_cst: orders the claim before the gate check below,
			 * against cursor creation (gate then tail load);
			 * acquire on failure: the reloaded word, as above. */
			if (atomic_compare_exchange_weak_explicit(&s->tail, &t, t + n * TAIL_ONE,
			                                          memory_order_seq_cst,
			                                          memory_order_acquire))
				break;
			continue;
		}
		producer_enter(s);
		int rc = claim_slow(s, &t, n, &x);
		producer_leave(s);
		if (rc == 1)
			break;
		if (rc != 0)
			return rc;
	}

	uint64_t p = TAIL_POS(t);
#ifdef FO_TEST_HOOKS
	if (fo__unlikely(fo__claim_hook != NULL)) /* tests: a stall between claim and store */
		fo__claim_hook(s, p, n);
#endif
	/* seq_cst: after the claim, against the first cursor's creation (§5).
	 * CLOSING is never set while the claim is a CAS; REVOKED may be. */
	bool nobody = atomic_load_explicit(&s->gate, memory_order_seq_cst) & GATE_EMPTY;
	store_claimed(s, x, p, items, n, nobody, false);
	return FO_OK;
}

/*
 * A fenced claim [TAIL_POS(@t), + @n) found GATE_CLOSING: decide against
 * the end that close published under s->lock (design.md §4, "the fenced
 * claim").  FO_OK: close counted the claim, store it.  FO_ECLOSED: the
 * claim lies at the end; the tail word goes back to @t with CLOSED.
 * Unlocks without running a requested reclamation pass: the caller (a
 * biased owner inside its busy window) runs fo__reclaim_pending() once it
 * has stored its claim and left the bias (design.md §4, "no pass inside
 * the owner's busy window").
 */
static __attribute__((noinline)) int fenced_closing(fo_stream *s, uint64_t t, size_t n)
{
	/* Close set CLOSING holding the lock and publishes the end before it
	 * lets go: once we hold it, the end is there. */
	pthread_mutex_lock(&s->lock);
	uint64_t e = atomic_load_explicit(
	    &s->end, memory_order_relaxed); /* written under the lock we hold */
	int rc = FO_OK;
	if (TAIL_POS(t) + n > e) {
		FO_ASSERT(TAIL_POS(t) == e); /* one store per claim; doomed claims are put back */
		/* relaxed: under the lock; close's CAS is over and no other push runs. */
		atomic_store_explicit(&s->tail, t | TAIL_CLOSED, memory_order_relaxed);
		rc = FO_ECLOSED;
	}
#ifdef FO_TEST_HOOKS
	if (fo__unlikely(fo__closing_hook != NULL)) /* tests: an owner stopped here */
		fo__closing_hook(s);
#endif
	pthread_mutex_unlock(&s->lock); /* no pass here: the caller's fo__reclaim_pending() */
	return rc;
}

/* ------------------------------------------------------------------------ */
/* The biased claim (design.md §4)                                            */

/* Wait until the owner is outside its plain-store push (busy 0, acquire):
 * spin briefly, then sleep; bias_leave() wakes us (the gate has REVOKED). */
static void bias_wait_idle(fo_stream *s)
{
	for (unsigned r = 0; r < ROOM_SPIN_ROUNDS; r++) {
		/* acquire: the owner's stores before its busy clear. */
		if (!atomic_load_explicit(&s->busy, memory_order_acquire))
			return;
		for (unsigned i = 1u << r; i; i--)
			fo__cpu_relax();
	}
	/* acquire: as above. */
	while (atomic_load_explicit(&s->busy, memory_order_acquire))
		fo__futex_wait(&s->busy, 1, FO__NO_DEADLINE);
}

/*
 * Revoke a biased stream's bias for good (design.md §4): set REVOKED,
 * membarrier, wait until the owner is outside any plain-store push, then
 * clear BIASED and FENCED so that every claim from now on is a CAS.  Any
 * thread may call it, several at once; it returns once the word has no
 * BIASED.  noinline: once per stream at most, plus the callers that race.
 */
static __attribute__((noinline)) void bias_revoke(fo_stream *s)
{
	pthread_mutex_lock(&s->lock);
	/* relaxed: BIASED is cleared only under the lock we hold. */
	if (!(atomic_load_explicit(&s->tail, memory_order_relaxed) & TAIL_BIASED)) {
		fo__stream_unlock(s);
		return;
	}
	/* seq_cst: REVOKED before the membarrier. */
	atomic_fetch_or_explicit(&s->gate, GATE_REVOKED, memory_order_seq_cst);
	fo__stream_unlock(s); /* the owner may need the lock to finish its push */
	/* Every owner push whose gate load comes after the membarrier's
	 * barrier on its thread sees REVOKED; every earlier one set busy
	 * before it, which we see now. */
	fo__fence_heavy();
	bias_wait_idle(s);
	pthread_mutex_lock(&s->lock);
	/* seq_cst, as every tail RMW: nobody stores the word now (the owner
	 * stays out, close and doomed-claim repairs need the lock), and the
	 * CAS claims that follow load it (acquire) after this. */
	atomic_fetch_and_explicit(&s->tail, ~(uint64_t)(TAIL_BIASED | TAIL_FENCED),
	                          memory_order_seq_cst);
	fo__stream_unlock(s);
}

/* A push into a biased stream by a thread that is not (yet) its owner:
 * take the ownership if nobody has it (true), else revoke the bias (false:
 * the caller reloads the tail word).  noinline: once per thread. */
static __attribute__((noinline)) bool bias_own_or_revoke(fo_stream *s)
{
	uintptr_t o = 0, me = self_id();
	/* seq_cst: one thread ever becomes the owner. */
	if (atomic_compare_exchange_strong_explicit(&s->owner, &o, me, memory_order_seq_cst,
	                                            memory_order_relaxed) ||
	    o == me)
		return true;
	bias_revoke(s);
	return false;
}

/* Is the calling thread the biased stream's owner?  relaxed: only this
 * thread ever stores its own id. */
static inline bool bias_mine(fo_stream *s)
{
	return atomic_load_explicit(&s->owner, memory_order_relaxed) == self_id();
}

#define PUSH_REVOKED 2 /* fenced_claim(): the bias is being revoked, nothing done */

/*
 * The fenced claim (design.md §4): a single producer with membarrier for
 * the rare sides.  The claim is a plain store; a compiler barrier orders it
 * before the gate load, and the first cursor's creation and close pay a
 * membarrier between their gate write and their tail load.  @biased: the
 * owner of a biased stream, between bias_enter() and bias_leave() around
 * the claim and its stores (PUSH_REVOKED: bias_enter() failed, nothing
 * done).  Otherwise the same contract as push_batch().
 */
static inline __attribute__((always_inline)) int
push_fenced(fo_stream *s, void *const *items, size_t n, uint64_t deadline, bool biased)
{
	/* relaxed: only this thread changes the count.  A CLOSED bit that
	 * close sets meanwhile is caught by the gate after the claim. */
	uint64_t t = atomic_load_explicit(&s->tail, memory_order_relaxed);
	while (fo__unlikely(claim_is_blocked(s, t, n))) {
		int rc = claim_blocked(s, &t, n, deadline);
		if (rc != FO_OK)
			return rc;
	}
	/* Biased: t was loaded before busy; a revocation that could have
	 * changed the word since is seen by bias_enter() (design.md §4). */
	if (biased && !bias_enter(s))
		return PUSH_REVOKED;
	uint64_t p = TAIL_POS(t);
	/* relaxed: only this thread moves tail_seg. */
	struct seg *h = atomic_load_explicit(&s->tail_seg, memory_order_relaxed);
	struct seg *x = h, *l = h;
	int rc = FO_OK;
	uint32_t g = 0;
	if (fo__unlikely(!claim_in_tail_seg(p, n))) {
		/* A crossing, without a read section (as any single producer:
		 * the reclaimer never unlinks tail_seg or what follows it).
		 * Allocate before claiming: ENOMEM leaves nothing behind. */
		if (p + n - 1 - h->base >= SEG_SLOTS && (rc = seg_ensure(s, h, p + n - 1)) != FO_OK)
			goto out;
		x = fo__seg_walk(h, p);
		l = fo__seg_walk(x, p + n - 1);
	}
	/* relaxed: the claim.  The compiler barrier keeps it before the gate
	 * load; the rare sides' membarrier does the rest (design.md §4). */
	atomic_store_explicit(&s->tail, t + n * TAIL_ONE, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst); /* the claim before the gate load */
	/* relaxed: the other half is the rare side's membarrier. */
	g = atomic_load_explicit(&s->gate, memory_order_relaxed);
	if (fo__unlikely(g & GATE_CLOSING) && (rc = fenced_closing(s, t, n)) != FO_OK)
		goto out;
	/* release: after the count (cursor creation loads the hint, then the
	 * count) and after the gate check (a doomed claim leaves it alone). */
	if (l != h)
		atomic_store_explicit(&s->tail_seg, l, memory_order_release);
#ifdef FO_TEST_HOOKS
	if (fo__unlikely(fo__claim_hook != NULL)) /* tests: a stall between claim and store */
		fo__claim_hook(s, p, n);
#endif
	store_claimed(s, x, p, items, n, g & GATE_EMPTY, biased); /* leaves the bias */
	if (fo__unlikely(g & GATE_CLOSING))
		fo__reclaim_pending(s); /* what fenced_closing() left, outside busy */
	return FO_OK;
out:
	if (biased)
		bias_leave(s);
	if (g & GATE_CLOSING)
		fo__reclaim_pending(s); /* as above */
	return rc;
}

/*
 * Any push into a biased stream but push_one_plain()'s: as the owner by
 * the fenced claim, or, once the bias is revoked (or by a second thread,
 * which revokes it), by push_batch()'s CAS claim.
 */
static __attribute__((noinline)) int push_biased(fo_stream *s, void *const *items, size_t n,
                                                 uint64_t deadline)
{
	for (;;) {
		/* acquire: a clean word's tail_seg for push_batch (design.md §4). */
		uint64_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
		if (!(t & TAIL_BIASED))
			return push_batch(s, items, n, deadline);
		if (!bias_mine(s) && !bias_own_or_revoke(s))
			continue;
		int rc = push_fenced(s, items, n, deadline, true);
		if (rc != PUSH_REVOKED)
			return rc;
		bias_revoke(s); /* help it finish, then take the CAS claim */
	}
}

/* A fenced single-item claim at @p in @h (the tail word was @t) found the
 * gate set: no cursor (store DEAD_ITEM), or closing (fenced_closing()).
 * @biased: a biased stream's owner, which leaves the bias here.  noinline:
 * the rare branch of push_one_plain(). */
static __attribute__((noinline)) int fenced_gate(fo_stream *s, struct seg *h, uint64_t t,
                                                 void *item, uint32_t g, bool biased)
{
	int rc = g & GATE_CLOSING ? fenced_closing(s, t, 1) : FO_OK;
	if (rc == FO_OK)
		store_claimed(s, h, TAIL_POS(t), &item, 1, g & GATE_EMPTY,
		              biased); /* leaves the bias */
	else if (biased)
		bias_leave(s);
	if (g & GATE_CLOSING)
		fo__reclaim_pending(s); /* what fenced_closing() left, outside busy */
	return rc;
}

static int push_one(fo_stream *s, void *item, uint64_t deadline);

/* Does one more item at claimed position @p fit in the tail segment (not
 * the first of a segment) and the cached room? */
static inline bool one_fits(fo_stream *s, uint64_t p)
{
	return (p & SEG_MASK) != 0 &&
	       /* relaxed: a lower bound kept by has_room(); stale means "no room". */
	       !(s->capacity &&
	         p + 1 - atomic_load_explicit(&s->cached_min, memory_order_relaxed) > s->capacity);
}

/* The fenced claim of one item after the tail word @t: a plain store, a
 * compiler barrier, the gate load (design.md §4).  Returns the gate. */
static inline uint32_t fenced_claim_one(fo_stream *s, uint64_t t)
{
	/* relaxed: the claim, as in push_fenced(). */
	atomic_store_explicit(&s->tail, t + TAIL_ONE, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst); /* the claim before the gate load */
	/* relaxed: the other half is the rare side's membarrier. */
	return atomic_load_explicit(&s->gate, memory_order_relaxed);
}

/* The rare ends of the single-item pushes, reached by tail calls so that
 * the fast path needs no frame (design.md §4): wake readers (a fenced and a
 * biased variant: one shared end let the compiler merge the two paths'
 * tails, and the fenced one paid a jump); wake a waiting revoker, then
 * readers as the push would.  All return FO_OK. */
static __attribute__((noinline)) int fenced_wake_data(fo_stream *s)
{
	wake_data(s);
	return FO_OK;
}

static __attribute__((noinline)) int biased_wake_data(fo_stream *s)
{
	wake_data(s);
	/* A body unlike fenced_wake_data()'s: identical functions may be
	 * folded into one, and then the two paths' tails merged. */
	atomic_signal_fence(memory_order_seq_cst);
	return FO_OK;
}

static __attribute__((noinline)) int biased_wake_revoker(fo_stream *s)
{
	bias_wake(s);
	atomic_signal_fence(memory_order_seq_cst); /* the slot store before the sleeper check */
	if (atomic_load_explicit(&s->data.need, memory_order_relaxed))
		wake_data(s);
	return FO_OK;
}

/*
 * One item in the tail segment with the cached room by a plain-store claim,
 * the tail word @t already loaded (design.md §4): a fenced stream's
 * producer (@biased false: @t is exactly FENCED), or a biased stream's
 * owner (@biased true: @t is FENCED | BIASED, not CLOSED or STALE; the
 * claim between bias_enter() and bias_leave(), the biased claim).  A plain
 * store claims, a compiler barrier, the gate load.  If it does not apply
 * (no cached room, a segment boundary; biased: not the owner, a revocation
 * begun), push_one() with @deadline does the push.  Returns the push's
 * result.  @biased is a constant in each caller; both are inline in the
 * fast path, push_one_fast(): out of line, the biased one cost a call, a
 * return and the caller's check of its result (B3: 72 -> 62 instructions
 * per push).
 */
static inline __attribute__((always_inline)) int
push_one_plain(fo_stream *s, void *item, uint64_t t, uint64_t deadline, const bool biased)
{
	uint64_t p = TAIL_POS(t);
	if (!one_fits(s, p))
		return push_one(s, item, deadline);
	if (biased && (!bias_mine(s) || !bias_enter(s)))
		return push_one(s, item, deadline);
	/* relaxed: only this thread moves tail_seg; it holds p - 1. */
	struct seg *h = atomic_load_explicit(&s->tail_seg, memory_order_relaxed);
	uint32_t g = fenced_claim_one(s, t);
	if (fo__unlikely(g))
		return fenced_gate(s, h, t, item, g, biased);
	/* release: the item's contents before its pointer.  Our last access to h. */
	atomic_store_explicit(&h->slot[p & SEG_MASK], item, memory_order_release);
	if (biased) {
		/* bias_leave() (before the wake-ups, as store_claimed() does),
		 * with its rare end out of line. */
		atomic_store_explicit(&s->busy, 0, memory_order_release); /* as in bias_leave() */
		atomic_signal_fence(
		    memory_order_seq_cst); /* busy (and the slot) before the loads */
		/* relaxed: as in bias_leave(). */
		if (fo__unlikely(atomic_load_explicit(&s->gate, memory_order_relaxed) &
		                 GATE_REVOKED))
			return biased_wake_revoker(s);
	} else {
		/* the slot store before the sleeper check: a fenced stream exists
		 * only with membarrier, so fo__fence_light() is this compiler
		 * barrier. */
		atomic_signal_fence(memory_order_seq_cst);
	}
	/* relaxed peek: the compiler barrier above orders the slot store
	 * before it (fenced and biased streams exist only with membarrier). */
	if (fo__unlikely(atomic_load_explicit(&s->data.need, memory_order_relaxed)))
		return biased ? biased_wake_data(s) : fenced_wake_data(s);
	return FO_OK;
}

/* The rare end of push_one_fast()'s CAS claim: wake readers if @need;
 * destroy the item (by value: taking its address cost the fast path a
 * frame) if @nobody.  A tail call.  Returns FO_OK. */
static __attribute__((noinline)) int cas_rare_end(fo_stream *s, void *item, bool need, bool nobody)
{
	if (need)
		wake_data(s);
	if (nobody)
		drop_unread(s, &item, 1);
	return FO_OK;
}

/*
 * One item in the tail segment and the cached room: push_batch()'s steps
 * for n = 1 (tail then tail_seg, seq_cst claim then the gate, release
 * store, light fence then the need peek) without its loop and its frame.
 * The same for one producer and several: no read section (design.md §4).
 * A fenced stream's push, and a biased one's by its owner, take
 * push_one_plain() at the first test.
 * Otherwise push_one() with @deadline does the push.  Every rare end is a
 * tail call with the push's result, so the entry points need no frame.
 * Returns the push's result.
 */
static inline __attribute__((always_inline)) int push_one_fast(fo_stream *s, void *item,
                                                               uint64_t deadline)
{
	/* acquire: a clean word's tail_seg (design.md §4). */
	uint64_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
	struct seg *h;
	uint64_t p;
	for (;;) {
		p = TAIL_POS(t);
		/* FENCED (and BIASED): the same test, at no cost for the
		 * default claim. */
		const uint64_t odd = TAIL_CLOSED | TAIL_STALE | TAIL_FENCED | TAIL_BIASED;
		if (fo__unlikely(t & odd)) {
			if ((t & odd) == TAIL_FENCED)
				return push_one_plain(s, item, t, deadline, false);
			if ((t & odd) == (TAIL_FENCED | TAIL_BIASED))
				return push_one_plain(s, item, t, deadline, true);
			return push_one(s, item, deadline);
		}
		if (!one_fits(s, p))
			return push_one(s, item, deadline);
		/* acquire, after t: holds p - 1 if the claim succeeds; not
		 * dereferenced before it. */
		h = atomic_load_explicit(&s->tail_seg, memory_order_acquire);
		/* seq_cst: the claim before the gate check (see push_batch);
		 * acquire on failure: the reloaded word, as above. */
		if (atomic_compare_exchange_weak_explicit(
		        &s->tail, &t, t + TAIL_ONE, memory_order_seq_cst, memory_order_acquire))
			break;
	}
	/* seq_cst: after the claim, as in push_batch (EMPTY or REVOKED here). */
	bool nobody = atomic_load_explicit(&s->gate, memory_order_seq_cst) & GATE_EMPTY;
	/* release: the item's contents before its pointer.  Our last access to h. */
	atomic_store_explicit(&h->slot[p & SEG_MASK], fo__unlikely(nobody) ? mark_dead(h) : item,
	                      memory_order_release);
	fo__fence_light(); /* the slot store before the sleeper check */
	/* relaxed: a peek, ordered after the slot store by the fence above. */
	bool need = atomic_load_explicit(&s->data.need, memory_order_relaxed) != 0;
	if (fo__unlikely(need || nobody))
		return cas_rare_end(s, item, need, nobody);
	return FO_OK;
}

/* The general single-item push, and every push of a fenced stream, out of
 * line so that the fast path's caller needs no frame (push_batch keeps many
 * values live). */
static __attribute__((noinline)) int push_one(fo_stream *s, void *item, uint64_t deadline)
{
	if (s->fenced)
		return push_fenced(s, &item, 1, deadline, false);
	if (s->biased)
		return push_biased(s, &item, 1, deadline);
	return push_batch(s, &item, 1, deadline);
}

/* One item, any producer: the fast path when it applies, else push_one().
 * always_inline: with the biased path inline, GCC otherwise keeps it out
 * of the entry points (B3: a jump and a saved register more per push). */
static inline __attribute__((always_inline)) int push_item(fo_stream *s, void *item,
                                                           uint64_t deadline)
{
	return push_one_fast(s, item, deadline);
}

int fo_stream_push(fo_stream *s, void *item)
{
	if (!s || !item)
		return FO_EINVAL;
	return push_item(s, item, FO__NO_DEADLINE);
}

int fo_stream_try_push(fo_stream *s, void *item)
{
	if (!s || !item)
		return FO_EINVAL;
	return push_item(s, item, 0);
}

int fo_stream_timed_push(fo_stream *s, void *item, int64_t timeout_ns)
{
	if (!s || !item)
		return FO_EINVAL;
	/* status.h's convention: 0 = try, negative = no limit (fo__deadline) */
	int rc = push_item(s, item, timeout_ns ? fo__deadline(timeout_ns) : 0);
	return rc == FO_FULL ? FO_TIMEDOUT : rc;
}

int fo_stream_push_many(fo_stream *s, void *const *items, size_t n)
{
	if (!s || !items || n == 0 || (s->capacity && n > s->capacity))
		return FO_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!items[i])
			return FO_EINVAL;
	if (s->fenced)
		return push_fenced(s, items, n, FO__NO_DEADLINE, false);
	if (s->biased)
		return push_biased(s, items, n, FO__NO_DEADLINE);
	return push_batch(s, items, n, FO__NO_DEADLINE);
}

int fo_stream_wait_room(fo_stream *s, size_t n, int64_t timeout_ns)
{
	if (!s || n == 0 || (s->capacity && n > s->capacity))
		return FO_EINVAL;
	uint64_t deadline = timeout_ns ? fo__deadline(timeout_ns) : 0; /* negative: no limit */
	for (;;) {
		uint64_t t = atomic_load_explicit(
		    &s->tail, memory_order_acquire); /* acquire: the closed bit with its end */
		if (fo__tail_closed(s, t))
			return FO_ECLOSED;
		if (!s->capacity || has_room(s, TAIL_POS(t), n))
			return FO_OK;
		if (deadline == 0)
			return FO_FULL;
		if (wait_room(s, n, deadline) == FO_TIMEDOUT) {
			t = atomic_load_explicit(
			    &s->tail,
			    memory_order_acquire); /* acquire: the closed bit with its end */
			if (fo__tail_closed(s, t))
				return FO_ECLOSED;
			return has_room(s, TAIL_POS(t), n) ? FO_OK : FO_TIMEDOUT;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Close, fail, stats                                                         */

static int stream_end(fo_stream *s, int code, int sys_errno, const char *message)
{
	pthread_mutex_lock(&s->lock);
	if (atomic_load_explicit(&s->end, memory_order_relaxed) !=
	    NO_END) { /* published only under the lock we hold */
		fo__stream_unlock(s);
		return code ? FO_ECLOSED : FO_OK;
	}
	if (code) {
		/* No message: the static text, so this path cannot fail (feeds
		 * and joins fall back to it when a copy ran out of memory). */
		const char *m = fo_strerror(code);
		if (message) {
			if (!(s->err_msg = fo__strdup(message))) {
				fo__stream_unlock(s);
				return FO_ENOMEM;
			}
			m = s->err_msg;
		}
		s->err = (fo_error){code, sys_errno, m};
	}
	uint64_t end;
	/* relaxed: FENCED changes only under the lock we hold (a biased
	 * stream's revocation clears it). */
	if (atomic_load_explicit(&s->tail, memory_order_relaxed) & TAIL_FENCED) {
		/* design.md §4, the fenced claim.  seq_cst: CLOSING before the
		 * membarrier; every push whose gate load misses it stored its
		 * claim before the membarrier's barrier on the producer. */
		atomic_fetch_or_explicit(&s->gate, GATE_CLOSING, memory_order_seq_cst);
		fo__fence_heavy();
		/* seq_cst: after the membarrier, so every claim whose push
		 * missed CLOSING is in it. */
		uint64_t v = atomic_load_explicit(&s->tail, memory_order_seq_cst);
		end = TAIL_POS(v);
		/* seq_cst, as every tail RMW.  Fails only if a doomed claim
		 * (one that saw CLOSING) landed since: its push puts CLOSED back. */
		atomic_compare_exchange_strong_explicit(&s->tail, &v, v | TAIL_CLOSED,
		                                        memory_order_seq_cst, memory_order_relaxed);
	} else {
		/* seq_cst RMW: after this no claim succeeds; old gives the end. */
		uint64_t old =
		    atomic_fetch_or_explicit(&s->tail, TAIL_CLOSED, memory_order_seq_cst);
		end = TAIL_POS(old);
	}
	/* release: the error is visible to whoever sees the end. */
	atomic_store_explicit(&s->end, end, memory_order_release);
	fo__stream_unlock(s);
	fo__fence_light();
	wake_data(s);
	atomic_thread_fence(memory_order_seq_cst); /* rare: wake producers for sure */
	fo__wake_space(s);
	return FO_OK;
}

int fo_stream_close(fo_stream *s)
{
	return s ? stream_end(s, 0, 0, NULL) : FO_EINVAL;
}

int fo_stream_fail(fo_stream *s, int code, const char *message)
{
	if (!s)
		return FO_EINVAL;
	return stream_end(s, code ? code : FO_FAILED, 0, message);
}

int fo__stream_fail_err(fo_stream *s, const fo_error *e)
{
	int code = e->code ? e->code : FO_FAILED;
	int rc = stream_end(s, code, e->sys_errno, e->message);
	if (rc == FO_ENOMEM) /* no copy of the message: the static text */
		rc = stream_end(s, code, e->sys_errno, NULL);
	return rc;
}

bool fo_stream_is_closed(const fo_stream *s)
{
	if (!s)
		return true;
	fo_stream *m = (fo_stream *)s;
	/* acquire: the closed bit with its end. */
	return fo__tail_closed(m, atomic_load_explicit(&m->tail, memory_order_acquire));
}

int fo_stream_get_stats(fo_stream *s, fo_stream_stats *out)
{
	if (!s || !out)
		return FO_EINVAL;
	uint64_t pushed = atomic_load_explicit(&s->tail, memory_order_acquire) >>
	                  TAIL_SHIFT; /* acquire: with the end state */
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

size_t fo__stream_ncursors(fo_stream *s)
{
	/* relaxed: a hint for the caller's loop; cursor creation is its own sync. */
	return (size_t)atomic_load_explicit(&s->ncursors, memory_order_relaxed);
}

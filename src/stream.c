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
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
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
	atomic_init(&s->tail, 0);
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

/* Is there room for @k more items after claimed position @t?  noinline:
 * inlined into push_batch it costs unbounded pushes a register (B3: one
 * more instruction per push). */
static __attribute__((noinline)) bool has_room(fo_stream *s, uint64_t t, size_t k)
{
	uint64_t m = atomic_load_explicit(&s->cached_min, memory_order_relaxed);
	if (t + k - m <= s->capacity)
		return true;
	pthread_mutex_lock(&s->lock);
	m = cons_min_pos(s);
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
	return (t & TAIL_CLOSED) || has_room(s, t >> 1, k);
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
	             1; /* a peek: the claim is re-checked by the caller's loop */
	uint64_t m = cons_min_pos(s);
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
 * this CPU), then sleep until room for half the capacity (NEED_BATCH, at
 * most ROOM_BOUND_NS), and only then, if still full, until any reader moves
 * (NEED_SLEEP, the exact protocol).
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
		sched_yield();
		if (room_or_closed(s, k))
			return FO_OK;
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

/* Does the claim [@first, @end) hold the first position of a group of
 * PRODUCER_RECLAIM_EVERY segments?  One claim holds each such position, so
 * exactly one producer reclaims per group, whatever the batch sizes. */
static inline bool reclaim_due(uint64_t first, uint64_t end)
{
	const unsigned shift = SEG_SHIFT + __builtin_ctz(PRODUCER_RECLAIM_EVERY);
	return ((first - 1) >> shift) != ((end - 1) >> shift); /* first == 0: true, harmless */
}

/* Claimed at a moment no cursor existed (and any later one starts after the
 * claim): nobody can ever read the item.  Its slot gets DEAD_ITEM at once;
 * the push destroys the item itself (drop_unread) after leaving its read
 * section, so a slow or blocking destructor neither leaves a claimed slot
 * unwritten nor holds back a grace period (design.md §6). */
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
 * Claim @n positions and store @items there.  @deadline: 0 = never wait,
 * FO__NO_DEADLINE = wait forever.
 */
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
#ifdef FO_TEST_HOOKS
	if (fo__unlikely(fo__claim_hook != NULL)) /* tests: a stall between claim and store */
		fo__claim_hook(s, p, n);
#endif
	bool nobody = atomic_load_explicit(&s->ncursors, memory_order_seq_cst) == 0;
	struct seg *x = fo__seg_walk(h, p);
	for (size_t i = 0; i < n; i++, p++) {
		if (p - x->base >= SEG_SLOTS)
			x = atomic_load_explicit(
			    &x->next, memory_order_acquire); /* acquire: linked by seg_ensure before
			                                        our claim */
		void *it = nobody ? mark_dead(x) : items[i];
		/* release: the item's contents before its pointer. */
		atomic_store_explicit(&x->slot[p & SEG_MASK], it, memory_order_release);
	}
	/* Move the hint forward to the last segment we wrote (never back). */
	while (h->base < x->base &&
	       !atomic_compare_exchange_weak_explicit(&s->tail_seg, &h, x, memory_order_release,
	                                              memory_order_acquire))
		;
	fo__fence_light(); /* the slot stores before the sleeper check */
	if (fo__unlikely(atomic_load_explicit(&s->data.need, memory_order_relaxed)))
		wake_data(s);
	producer_leave(s);
	if (fo__unlikely(nobody))
		drop_unread(s, items, n);
	/* Producers reclaim every PRODUCER_RECLAIM_EVERY segments (readers do
	 * at each crossing): a quarter of the cost per item, at most 3 more
	 * segments retained.  The producer whose claim [t>>1, p) holds the
	 * first position of such a group reclaims, however far its batch
	 * reaches (design.md §4, step 8).  Single items that fit the hint
	 * segment never hold one: their fast path needs no check. */
	if (fo__unlikely(reclaim_due((t >> 1), p)))
		fo__reclaim_push(s);
	return FO_OK;
}

/*
 * One item whose claim fits the hint segment and the cached room:
 * push_batch()'s steps for n = 1 (hint before tail, seq_cst claim then
 * ncursors, release store, light fence then the need peek) without its
 * loop, its walk and its frame (B3: 91 -> 56 instructions with a single
 * producer, 186 -> 161 with several).  Several producers keep the read
 * section (fo__rcu_lock()):
 * another may move the hint on and the reclaimer unlink the segment we
 * loaded.  false: not taken, nothing done; push_batch() decides.
 */
static inline __attribute__((always_inline)) bool push_one_fast_as(fo_stream *s, void *item,
                                                                   bool mp)
{
	if (mp)
		fo__rcu_lock();
	/* Hint first, then tail: hint->base <= claimed position. */
	struct seg *h = atomic_load_explicit(&s->tail_seg, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
	uint64_t p;
	for (;;) {
		p = t >> 1;
		if ((t & TAIL_CLOSED) || p - h->base >= SEG_SLOTS ||
		    /* relaxed: a lower bound kept by has_room(); stale means "no room". */
		    (s->capacity &&
		     p + 1 - atomic_load_explicit(&s->cached_min, memory_order_relaxed) >
		         s->capacity)) {
			if (mp)
				fo__rcu_unlock();
			return false;
		}
		/* seq_cst: the claim before the ncursors check (see push_batch).  On
		 * failure (another producer claimed, or spuriously) t is reloaded and
		 * only grows, so h->base <= p still holds: retry here rather than pay
		 * a second read section in push_batch(). */
		if (atomic_compare_exchange_weak_explicit(&s->tail, &t, t + 2, memory_order_seq_cst,
		                                          memory_order_relaxed))
			break;
	}
	bool nobody = atomic_load_explicit(&s->ncursors, memory_order_seq_cst) == 0;
	/* release: the item's contents before its pointer. */
	atomic_store_explicit(&h->slot[p & SEG_MASK], fo__unlikely(nobody) ? mark_dead(h) : item,
	                      memory_order_release);
	fo__fence_light(); /* the slot store before the sleeper check */
	if (fo__unlikely(atomic_load_explicit(&s->data.need, memory_order_relaxed)))
		wake_data(s);
	if (mp)
		fo__rcu_unlock();
	if (fo__unlikely(nobody))
		drop_unread(s, &item, 1);
	return true;
}

/* The general single-item push, out of line so that the fast path's caller
 * needs no frame (push_batch keeps many values live). */
static __attribute__((noinline)) int push_one(fo_stream *s, void *item, uint64_t deadline)
{
	return push_batch(s, &item, 1, deadline);
}

/* Several producers: the fast path in its read section, else the general one;
 * out of line, so the single producer's path needs no frame (tail calls only). */
static __attribute__((noinline)) int push_one_mp(fo_stream *s, void *item, uint64_t deadline)
{
	if (push_one_fast_as(s, item, true))
		return FO_OK;
	return push_batch(s, &item, 1, deadline);
}

/* One item, any producer: the fast path when it applies. */
static inline int push_item(fo_stream *s, void *item, uint64_t deadline)
{
	if (!s->single_producer)
		return push_one_mp(s, item, deadline);
	if (push_one_fast_as(s, item, false))
		return FO_OK;
	return push_one(s, item, deadline);
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

/* ------------------------------------------------------------------------ */
/* Close, fail, stats                                                         */

static int stream_end(fo_stream *s, int code, int sys_errno, const char *message)
{
	pthread_mutex_lock(&s->lock);
	if (atomic_load_explicit(&s->tail, memory_order_relaxed) &
	    TAIL_CLOSED) { /* changed only under the lock we hold */
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
	/* seq_cst RMW: after this no claim succeeds; old gives the end. */
	uint64_t old = atomic_fetch_or_explicit(&s->tail, TAIL_CLOSED, memory_order_seq_cst);
	/* release: the error is visible to whoever sees the end. */
	atomic_store_explicit(&s->end, old >> 1, memory_order_release);
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

size_t fo__stream_ncursors(fo_stream *s)
{
	/* relaxed: a hint for the caller's loop; cursor creation is its own sync. */
	return (size_t)atomic_load_explicit(&s->ncursors, memory_order_relaxed);
}

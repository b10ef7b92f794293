/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/stream.h - push streams and their cursors.
 *
 * A stream is one totally ordered sequence of items (non-NULL pointers)
 * pushed by any number of producers.  Cursors read it.  A cursor forks in
 * O(1) into another cursor at the same place; both then see every later
 * item.  Three kinds of cursor:
 *
 *   FO_ACTIVE  lossless; counts for capacity (backpressure) and keeps the
 *              items it has not read alive.
 *   FO_PASSIVE a tap: never slows a producer, pins at most the segment it
 *              stands in plus the stream's passive window; when lapped it
 *              skips ahead and reports FO_LAGGED.
 *   FO_SHARED  a member of a share group: each item from the fork point
 *              goes to exactly one member; the group counts as one active
 *              consumer.
 *
 * Ownership of items: a push hands the item to the stream.  The stream calls
 * opts.item_free (if set) exactly once per accepted item, when no cursor can
 * return it any more (possibly on a reader's or producer's thread).  An item
 * returned by a cursor stays valid at least until that cursor's next read,
 * fork or close.  A refused push (any code other than FO_OK) leaves the item
 * with the caller.
 *
 * Concurrency table (X = may run at the same time, on different threads):
 *
 *                     push*  close/fail  cursor()  next* on c  fork(c)  close(c)
 *   push* (any form)   X        X           X          X          X        X
 *   close / fail       X        X           X          X          X        X
 *   fo_stream_cursor   X        X           X          X          X        X
 *   next* on cursor c  X        X           X          -          -        -
 *   (a cursor is used by one thread at a time; different cursors are
 *    independent and may be used concurrently in any combination)
 *   fo_stream_destroy: once, by the creator, after its own pushes; cursors
 *   may still be read and closed afterwards.
 *
 * Progress: pushes are lock-free (a CAS claim; a cursor registry mutex is
 * only try-locked, once per 4 segments, unless 8 tries in a row found it
 * held: then the push waits for the holder, which bounds memory while a
 * reclaiming thread is descheduled), with one exception: where membarrier()
 * is available (not under TSan) a default stream claims without a locked
 * instruction for the first thread that pushes, and the first push of any
 * other thread switches it to the CAS claim for good, waiting until that
 * first thread is outside the claim it may be making (a few instructions;
 * longer only if it is descheduled there) and paying one membarrier, about
 * 1 us (docs/design.md §4, "the biased claim"); until then the stream's
 * first cursor and its close/fail cost one membarrier each, as with
 * single_producer.  Reads are lock-free except that an
 * active read waits for a slot a producer has claimed but not yet filled.
 * Memory: see docs/design.md §6 for the bound on live segments (passive
 * window, reclamation gap, segments of stalled pushes).
 * Blocking calls spin briefly, then sleep on a futex; a push makes no system
 * call unless a reader or producer is asleep.
 */
#ifndef FANOUT_STREAM_H
#define FANOUT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fanout/export.h>
#include <fanout/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_stream fo_stream;
typedef struct fo_cursor fo_cursor;

/** Cursor kinds for fo_stream_cursor() and fo_cursor_fork(). */
enum { FO_ACTIVE = 0, FO_PASSIVE = 1u << 0, FO_SHARED = 1u << 1 };

/** Default passive window, in items, when opts.passive_window is 0. */
#define FO_DEFAULT_PASSIVE_WINDOW 4096u

/**
 * fo_stream_opts - stream options; fill with fo_stream_opts_init() first.
 * @capacity:       0: unbounded.  n: the newest item may be at most n ahead
 *                  of the slowest active cursor (or share group); push waits,
 *                  try_push returns FO_FULL.  Passive cursors never count.
 *                  With no active cursor the stream never fills.
 * @passive_window: how many of the newest items stay readable for passive
 *                  cursors after every active cursor has passed them
 *                  (0: FO_DEFAULT_PASSIVE_WINDOW).  A passive cursor further
 *                  behind than this (rounded up to whole segments) is lapped.
 * @item_free:      optional destructor, called exactly once per accepted item.
 * @item_free_ctx:  passed to @item_free.
 * @single_producer: the caller promises that pushes never run concurrently
 *                  (one producer thread, or pushes serialised by the caller).
 *                  Pushes then skip their RCU read section (measured
 *                  cost: B3 in README.md) and, where membarrier() is
 *                  available (Linux >= 4.14, not under TSan), claim without
 *                  a locked instruction; the stream's first cursor (the one
 *                  created while none is open) and its close/fail then cost
 *                  one membarrier each, about 1 us.  Breaking the promise
 *                  is undefined.  Default false.  close/fail/cursor calls
 *                  stay free-threaded.
 */
typedef struct fo_stream_opts {
	size_t capacity;
	size_t passive_window;
	void (*item_free)(void *item, void *ctx);
	void *item_free_ctx;
	bool single_producer;
} fo_stream_opts;

/**
 * fo_stream_stats - a snapshot for tests and operators.
 * @live_segments:  segments in use: linked, or unlinked but still pinned
 *                  by a passive cursor or share-group member.
 * @cached_segments: segments kept for reuse (at most 32 per stream, or
 *                  for a bounded stream its capacity in segments plus 2,
 *                  i.e. capacity / 256 + 2, capped at 1024) or waiting
 *                  for an RCU grace period before reuse; the latter grows
 *                  with throughput times grace-period latency (liburcu's
 *                  call_rcu thread) and drains when it catches up.  A
 *                  stream whose segments return through grace periods
 *                  (several producers, share groups) also keeps in its
 *                  pool as many as its producers had to allocate while
 *                  others waited, so that they need no allocation during
 *                  the next wait: its pool holds at most that pool size
 *                  plus that shortfall, and never more than 4096 segments
 *                  (about 8.5 MiB); the shortfall shrinks again, by half of
 *                  what the pool never gave out every few grace periods,
 *                  once they keep up with the pushes (not while the stream
 *                  is idle).  Once the grace periods catch up, at most
 *                  that pool + 15.
 *                  Their items were already destroyed.
 * @retained_items: items accepted whose destructor has not run yet.
 * @live_bytes:     bytes held by the stream's own structures (live and
 *                  cached segments, cursors), items themselves excluded.
 * @pushed:         items accepted so far.
 * @cursors:        open cursors (all kinds).
 * Values are read without stopping producers: each is exact at some instant
 * during the call, not necessarily the same instant.
 */
typedef struct fo_stream_stats {
	size_t live_segments;
	size_t cached_segments;
	size_t retained_items;
	size_t live_bytes;
	uint64_t pushed;
	size_t cursors;
} fo_stream_stats;

/**
 * fo_stream_opts_init() - fill @o with the defaults (unbounded, default
 * passive window, no destructor).  @o NULL is a no-op.
 * Threads: any.
 */
FO_API void fo_stream_opts_init(fo_stream_opts *o);

/**
 * fo_stream_create() - make a new, open stream.
 * @s: out: the stream handle (the creator's handle).
 * @o: options, copied; NULL means defaults.
 * Returns: FO_OK; FO_EINVAL if @s is NULL; FO_ENOMEM (nothing allocated).
 * Ownership: the caller owns the handle; drop it with fo_stream_destroy().
 * Threads: any.
 */
FO_API int fo_stream_create(fo_stream **s, const fo_stream_opts *o);

/**
 * fo_stream_push() - append @item; waits while a bounded stream is full.
 * Returns: FO_OK (the stream owns @item; if no cursor exists it was freed
 * already); FO_EINVAL (@s or @item NULL); FO_ECLOSED (closed before or while
 * waiting); FO_ENOMEM (no segment could be allocated).  On any error the
 * caller keeps @item and nothing changed.
 * Threads: any number of producers at once.  Items of one thread keep that
 * thread's order.  Progress: lock-free unless it must wait for room.  Not
 * async-signal-safe (it may allocate a segment, and a thread's claim must not
 * be re-entered): never push from a signal handler.
 */
FO_API int fo_stream_push(fo_stream *s, void *item);

/**
 * fo_stream_try_push() - like fo_stream_push() but never waits.
 * Returns: as fo_stream_push(), plus FO_FULL when a bounded stream has no
 * room now (the caller keeps @item).
 */
FO_API int fo_stream_try_push(fo_stream *s, void *item);

/**
 * fo_stream_timed_push() - like fo_stream_push() but waits at most
 * @timeout_ns nanoseconds for room (status.h's timeout convention: 0 = do
 * not wait, negative = no limit).
 * Returns: as fo_stream_push(), plus FO_TIMEDOUT (the caller keeps @item).
 */
FO_API int fo_stream_timed_push(fo_stream *s, void *item, int64_t timeout_ns);

/**
 * fo_stream_push_many() - append @n items as one contiguous batch, in order:
 * no other producer's item lands between them.  Accepted whole or not at all.
 * Waits for room for the whole batch on a bounded stream.
 * Returns: FO_OK; FO_EINVAL (@s or @items NULL, @n 0, any item NULL, or @n
 * larger than a bounded stream's capacity); FO_ECLOSED; FO_ENOMEM.  On error
 * the caller keeps every item.
 * Threads: as fo_stream_push().
 */
FO_API int fo_stream_push_many(fo_stream *s, void *const *items, size_t n);

/**
 * fo_stream_wait_room() - wait until @n more items could be pushed without
 * waiting (always at once on an unbounded stream or with no active cursor).
 * For a producer that must not pull its next item before there is room for
 * it (a feed keeping exactly `ahead` items ahead): with a single producer
 * the room cannot disappear before its next push.
 * @timeout_ns: status.h's convention: 0 = do not wait; negative = no limit.
 * Returns: FO_OK; FO_TIMEDOUT (or FO_FULL for @timeout_ns 0); FO_ECLOSED;
 * FO_EINVAL (@s NULL, @n 0, or @n larger than the capacity).
 * Threads: any.  Blocking: spins briefly, then sleeps.
 */
FO_API int fo_stream_wait_room(fo_stream *s, size_t n, int64_t timeout_ns);

/**
 * fo_stream_close() - end the stream after everything already pushed.
 * Cursors read every accepted item, then FO_END.  Pushes that lose the race
 * with close return FO_ECLOSED.  Wakes every waiting reader and producer.
 * Returns: FO_OK, also when already closed (idempotent); FO_EINVAL (@s NULL).
 * Threads: any, concurrently with everything but fo_stream_destroy().
 */
FO_API int fo_stream_close(fo_stream *s);

/**
 * fo_stream_fail() - end the stream with an error instead of FO_END.
 * Cursors read every accepted item, then FO_FAILED, and fo_cursor_error()
 * gives {@code, 0, copy of @message}.
 * @code:    any non-zero int (FO_FAILED is used if 0 is given).
 * @message: copied; NULL gives the text of fo_strerror(@code) (no copy: with
 *           NULL this call cannot fail for lack of memory).
 * Returns: FO_OK; FO_ECLOSED if already closed or failed (the first end
 * wins); FO_EINVAL (@s NULL); FO_ENOMEM (@message could not be copied; the
 * stream stays open).
 * Threads: as fo_stream_close().
 */
FO_API int fo_stream_fail(fo_stream *s, int code, const char *message);

/**
 * fo_stream_is_closed() - true once close or fail was called (items may
 * still be pending for cursors; see fo_cursor_is_drained()).  NULL: true.
 * Threads: any.
 */
FO_API bool fo_stream_is_closed(const fo_stream *s);

/**
 * fo_stream_cursor() - open a cursor that sees every item pushed after this
 * call (and nothing pushed before it).
 * @flags: FO_ACTIVE, FO_PASSIVE or FO_SHARED (a new share group of one).
 * Returns: FO_OK; FO_EINVAL (@s/@c NULL, unknown flags, PASSIVE|SHARED);
 * FO_ENOMEM.  On a closed stream the cursor is created and its first read
 * returns FO_END, or FO_FAILED (with fo_cursor_error()) if the stream
 * failed.
 * Ownership: the caller owns *@c; fo_cursor_close() it.  It keeps the stream
 * alive after fo_stream_destroy().
 * Threads: any, concurrently with pushes and other cursors.
 */
FO_API int fo_stream_cursor(fo_stream *s, fo_cursor **c, unsigned flags);

/**
 * fo_stream_get_stats() - fill @out with a snapshot (see fo_stream_stats).
 * Returns: FO_OK; FO_EINVAL if either is NULL.  Threads: any.
 */
FO_API int fo_stream_get_stats(fo_stream *s, fo_stream_stats *out);

/**
 * fo_stream_destroy() - close the stream (as fo_stream_close(), unless it
 * is already closed or failed: the first end stays) and drop the creator's
 * handle.  Readers still get every item pushed before, then FO_END; a
 * reader blocked in a read wakes.  Memory goes once every cursor is closed
 * too; when this is the last handle, every item destructor has run when it
 * returns.  NULL is a no-op.
 * Threads: once, not concurrently with pushes on @s.
 */
FO_API void fo_stream_destroy(fo_stream *s);

/**
 * fo_cursor_next() - wait for the next item.
 * @item: out: the item (valid until this cursor's next read, fork or close).
 * Returns: FO_OK; FO_END (closed and everything read: sticky); FO_FAILED
 * (the stream failed: sticky, see fo_cursor_error()); FO_LAGGED (passive
 * only: items were skipped, see fo_cursor_lagged(); the next read continues
 * at the oldest retained item); FO_EINVAL (@c or @item NULL).
 * A closed cursor is freed: using it afterwards is undefined.
 * Threads: the cursor's one user thread.  Blocking: spins briefly, sleeps.
 */
FO_API int fo_cursor_next(fo_cursor *c, void **item);

/**
 * fo_cursor_try_next() - as fo_cursor_next() but FO_EMPTY when nothing is
 * ready now.  Never waits, except for a slot a producer is filling.
 */
FO_API int fo_cursor_try_next(fo_cursor *c, void **item);

/**
 * fo_cursor_timed_next() - as fo_cursor_next() but waits at most
 * @timeout_ns (status.h's convention: 0 = like try_next but FO_TIMEDOUT;
 * negative = no limit, as fo_cursor_next()).
 * Returns FO_TIMEDOUT when the deadline passes; the cursor, the stream and
 * every other cursor are unaffected (for a share group no item is lost).
 */
FO_API int fo_cursor_timed_next(fo_cursor *c, void **item, int64_t timeout_ns);

/**
 * fo_cursor_next_many() - take up to @max ready items without waiting.
 * @items: out array of at least @max slots.  @n: out: how many were taken.
 * Returns: FO_OK with *@n >= 1; otherwise *@n = 0 and FO_EMPTY, FO_END,
 * FO_FAILED or FO_LAGGED as for try_next; FO_EINVAL (NULL pointer or @max 0).
 * Items stay valid until the cursor's next read, fork or close.
 */
FO_API int fo_cursor_next_many(fo_cursor *c, void **items, size_t max, size_t *n);

/**
 * fo_cursor_available() - items this cursor could take now without waiting
 * (for a share group member: ready for the group).  Does not consume; the
 * count only grows while nothing is read.  O(available).  NULL: 0.
 * Threads: the cursor's user thread.
 */
FO_API size_t fo_cursor_available(const fo_cursor *c);

/**
 * fo_cursor_at_least() - fo_cursor_available(c) >= @n, scanning at most @n
 * items.  @n == 0 is true (also for NULL @c).
 * Threads: the cursor's user thread.
 */
FO_API bool fo_cursor_at_least(const fo_cursor *c, size_t n);

/**
 * fo_cursor_is_drained() - true once this cursor returned FO_END or
 * FO_FAILED (not merely "the stream was closed").  NULL: true.
 * Threads: the cursor's user thread.
 */
FO_API bool fo_cursor_is_drained(const fo_cursor *c);

/**
 * fo_cursor_fork() - a new cursor at @c's position, in O(1).
 * The fork returns every item @c has not yet returned, then all later ones.
 * @flags: FO_ACTIVE or FO_PASSIVE: an independent cursor; FO_SHARED: joins
 *   @c's share group (forming one if @c had none; @c must not be passive).
 *   A non-shared fork of a share-group member starts at the group's next
 *   unclaimed item.  An active fork of a lapped passive cursor starts at the
 *   oldest retained item.  A fork of a drained cursor is drained at once.
 * Returns: FO_OK; FO_EINVAL (NULL pointers, unknown flags, SHARED fork of a
 * passive cursor); FO_ENOMEM (nothing changed).
 * Threads: the user thread of @c; the fork may then move to another thread.
 */
FO_API int fo_cursor_fork(fo_cursor *c, fo_cursor **out, unsigned flags);

/**
 * fo_cursor_kind() - FO_ACTIVE, FO_PASSIVE or FO_SHARED (a share-group
 * member); FO_EINVAL for NULL.  A drained fork reports FO_ACTIVE.
 * Threads: any thread that may use @c.
 */
FO_API int fo_cursor_kind(const fo_cursor *c);

/**
 * fo_cursor_lagged() - total items this passive cursor skipped because it
 * was lapped (0 for other kinds and NULL).
 * Threads: the cursor's user thread.
 */
FO_API uint64_t fo_cursor_lagged(const fo_cursor *c);

/**
 * fo_cursor_error() - after FO_FAILED: the stream's error (owned by the
 * stream, valid while @c is open).  NULL before that, or for NULL @c.
 * Threads: the cursor's user thread.
 */
FO_API const fo_error *fo_cursor_error(const fo_cursor *c);

/**
 * fo_cursor_fd() - a descriptor for poll/epoll/select that is readable when
 * this cursor has something for a read (an item, FO_END, FO_FAILED or
 * FO_LAGGED) and fo_cursor_arm() was called since the last read.
 * Protocol: read with fo_cursor_try_next()/fo_cursor_next_many() until
 * FO_EMPTY, then call fo_cursor_arm(): 1 means something arrived meanwhile
 * (read again), 0 means it is safe to sleep until the fd polls readable.
 * The descriptor (an eventfd) is created on the first call, close-on-exec and
 * non-blocking, owned by the cursor and closed by fo_cursor_close(); never
 * read, write or close it yourself.
 * Returns: the descriptor (>= 0); FO_EINVAL (@c NULL, or a notify hook is
 * set); FO_ESYS (eventfd() failed, errno kept).
 * Threads: the cursor's user thread.  A producer pays a system call only on
 * an armed -> signalled transition; with no armed cursor a push costs one
 * load for all of this.
 */
FO_API int fo_cursor_fd(fo_cursor *c);

/**
 * fo_cursor_arm() - ask for one signal (fd readable, or the notify hook
 * called) when a read would return something; see fo_cursor_fd() and
 * status.h (values that are not status codes).
 * Returns: 1 if something is ready already (read it; nothing is armed);
 * 0 if armed (safe to sleep); FO_EINVAL if @c is NULL or has neither an fd
 * nor a notify hook.
 * Threads: the cursor's user thread.  One system call (a membarrier) when it
 * arms: the reader pays for the handshake, not the producer.
 */
FO_API int fo_cursor_arm(fo_cursor *c);

/**
 * fo_cursor_set_notify() - signal by calling @fn(@arg) instead of an fd:
 * for uv_async_send(), event_active() or a custom loop.  @fn runs on the
 * thread that published (a producer, or the thread closing the stream),
 * once per armed -> signalled transition, with no fanout lock held; keep it
 * short.  It may call fanout functions, except fo_cursor_close() on @c.
 * After fo_cursor_close(@c) returns, @fn is not running and never runs again.
 * @fn NULL removes the hook.
 * Returns: FO_OK; FO_EINVAL (@c NULL, or fo_cursor_fd() was already used).
 * Threads: the cursor's user thread.
 */
FO_API int fo_cursor_set_notify(fo_cursor *c, void (*fn)(void *arg), void *arg);

/**
 * fo_cursor_close() - release the cursor, its pins and its handle on the
 * stream.  Never affects the stream or other cursors, except that items only
 * it still needed are freed.  NULL is a no-op.  Threads: the cursor's user.
 */
FO_API void fo_cursor_close(fo_cursor *c);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_STREAM_H */

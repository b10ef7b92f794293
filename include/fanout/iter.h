/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/iter.h - fo_iter, the one pull interface every adapter reads and
 * returns: made from a cursor, an array or callbacks; read with a blocking,
 * try or timed next; closed once.
 *
 * THE OWNERSHIP RULE (it holds for every iterator and every adapter):
 *
 *   Items are owned by whoever holds them.  Each iterator has an item
 *   destructor (possibly NULL: its items need no freeing).  fo_iter_next()
 *   hands the caller ownership of the item it returns; the caller either
 *   passes it on (e.g. pushes it into a stream whose item_free matches, or
 *   returns it from a map callback) or drops it with fo_iter_release(it,
 *   item), which calls that iterator's destructor.  An adapter that drops
 *   or keeps an item calls the destructor exactly once for it.
 *
 *   Two explicit, checkable exceptions:
 *   - Borrowing iterators (fo_iter_borrows() is true): items stay valid
 *     only until the iterator's next read or close, and fo_iter_release() is
 *     a no-op.  fo_iter_from_cursor() without a copy function gives one.
 *     Adapters that must keep an item past their source's next read (zip,
 *     join, feed, and error items of FO_ERR_EMIT) refuse a borrowing source
 *     with FO_EINVAL at creation.  Adapters that hand an item on before
 *     reading again (map, filter, map_filter, flatten, gate) accept one and
 *     borrow in turn.
 *   - fo_iter_from_array(): the items stay owned by the caller's array (the
 *     destructor is NULL); they are valid as long as the caller keeps them.
 *
 *   Error items: an adapter in FO_ERR_EMIT mode (and a join in continue
 *   mode) returns FO_OK with an fo_error_item * instead of an output;
 *   fo_iter_is_error() tells which, right after the read.  An error item is
 *   self-describing: it owns the failed input and frees it with the
 *   source's destructor in fo_error_item_free().  Adapters that forward
 *   items (map, filter, map_filter, flatten, gate, join) forward error items
 *   untouched; zip and feed refuse a source that may emit them
 *   (fo_iter_emits_errors()).
 *
 * FO_END and FO_FAILED are sticky: every later read returns the same code.
 * A timeout (FO_EMPTY / FO_TIMEDOUT) loses nothing: the next read returns
 * what the timed-out one would have.
 *
 * Concurrency table (X = may run at the same time on different threads):
 *
 *                      next*(it)  close(it)  release(it)  getters(it)  any call on it2
 *   next*(it)             -          -           X            -             X
 *   release(it, item)     X          -           X            X             X
 *   (an iterator is used by one thread at a time; it may move between
 *    threads; different iterators are independent.  fo_iter_release only
 *    reads the destructor, so any thread holding an item may call it while
 *    the iterator is open.  Item destructors may run on adapter threads.)
 */
#ifndef FANOUT_ITER_H
#define FANOUT_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fanout/export.h>
#include <fanout/status.h>
#include <fanout/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_iter fo_iter;

/** An item destructor: frees @item; @ctx is the one given with it. */
typedef void (*fo_item_free_fn)(void *item, void *ctx);

/** Make an owned copy of a borrowed @item (NULL: out of memory). */
typedef void *(*fo_item_copy_fn)(const void *item, void *ctx);

/**
 * fo_iter_next_fn - the source callback of fo_iter_from_fn().
 * @ctx:      the context given to fo_iter_from_fn().
 * @item:     out: the next item (non-NULL), owned by the caller afterwards.
 * @deadline: absolute CLOCK_MONOTONIC time in ns: 0 = do not wait,
 *            UINT64_MAX = wait as long as it takes.  (An absolute time, not
 *            status.h's relative timeout: nested pulls share one deadline.)  A callback that cannot
 *            wait may ignore it and block (then try/timed reads block too).
 * Returns: FO_OK; FO_END (the source is exhausted); FO_EMPTY or FO_TIMEDOUT
 * (nothing before the deadline; never with UINT64_MAX); any other value is
 * an error: the iterator fails with that code (sticky), with errno as
 * sys_errno when the code is FO_ESYS, and the message given to fo_fail()
 * during this call (else fo_strerror(code)).  Joins, feeds and pipelines
 * pass the whole error on.
 */
typedef int (*fo_iter_next_fn)(void *ctx, void **item, uint64_t deadline);

/**
 * fo_error_policy - what an adapter does when its callback fails.
 * @FO_ERR_STOP: end with FO_FAILED carrying the callback's code (the input
 *               is released).  The default.
 * @FO_ERR_DROP: release the input and go on with the next one.
 * @FO_ERR_EMIT: return an fo_error_item carrying the error and the input,
 *               then go on (fo_iter_is_error() is true for that read).
 */
typedef enum fo_error_policy { FO_ERR_STOP = 0, FO_ERR_DROP = 1, FO_ERR_EMIT = 2 } fo_error_policy;

/**
 * fo_error_item - an error in band, as an item (FO_ERR_EMIT, join continue).
 * @err:        the failure; err.message is owned by the item, never NULL.
 * @input:      the input that failed, owned by the error item (NULL if none:
 *              e.g. a join source that failed between items).
 * @input_free: how fo_error_item_free() frees @input (the destructor of the
 *              iterator it came from; NULL = nothing to free).
 * @input_ctx:  passed to @input_free.
 * Free it with fo_error_item_free().  To keep the input, set @input to NULL
 * first (it is then yours, to be freed with @input_free).
 */
typedef struct fo_error_item {
	fo_error err;
	void *input;
	fo_item_free_fn input_free;
	void *input_ctx;
} fo_error_item;

/**
 * fo_error_item_free() - free @e, its message and its input (with
 * input_free, if both are non-NULL).  NULL is a no-op.
 * Threads: any (whoever holds the item).
 */
FO_API void fo_error_item_free(fo_error_item *e);

/**
 * fo_iter_from_cursor() - an iterator reading cursor @c.
 * @it:        out: the iterator.
 * @c:         the cursor; the iterator takes it (closes it on fo_iter_close).
 * @copy:      NULL: a borrowing iterator: items are valid until its next
 *             read or close, and its destructor does nothing.  Non-NULL:
 *             every item is copied with @copy and the copy is returned,
 *             owned by the caller (freed with @copy_free).
 * @copy_free: the destructor of the copies (may be NULL); must be NULL when
 *             @copy is NULL.
 * @ctx:       passed to @copy and @copy_free.
 * A passive cursor that is lapped does not surface FO_LAGGED: the iterator
 * goes on at the oldest retained item and adds the skip to fo_iter_lagged().
 * A stream failure gives FO_FAILED with the stream's error.  A failed @copy
 * ends the iterator with FO_FAILED / FO_ENOMEM.
 * Returns: FO_OK; FO_EINVAL (@it or @c NULL, or @copy_free without @copy);
 * FO_ENOMEM.
 * Ownership: on success the iterator owns @c; on failure the caller keeps it.
 * Threads: the cursor's user thread; afterwards the iterator's.
 */
FO_API int fo_iter_from_cursor(fo_iter **it, fo_cursor *c, fo_item_copy_fn copy,
                               fo_item_free_fn copy_free, void *ctx);

/**
 * fo_iter_from_array() - an iterator over @n pointers, in order, then FO_END.
 * @items: the items (non-NULL each); the pointer array is copied, the items
 *         are not: they stay owned by the caller (the destructor is NULL) and
 *         must outlive their use.  May be NULL when @n is 0.
 * Returns: FO_OK; FO_EINVAL (@it NULL, @items NULL with @n > 0, a NULL
 * item); FO_ENOMEM.
 * Threads: any.
 */
FO_API int fo_iter_from_array(fo_iter **it, void *const *items, size_t n);

/**
 * fo_iter_from_fn() - an iterator over a callback source.
 * @next:      produces items (see fo_iter_next_fn); required.
 * @close:     called once by fo_iter_close(), with @ctx (may be NULL).
 * @ctx:       passed to @next and @close.
 * @item_free: the destructor of the items @next returns (may be NULL).
 * @item_ctx:  passed to @item_free.  Separate from @ctx so that sources with
 *             their own state can share one destructor (flatten and join
 *             require every source to have the same destructor and context).
 *             It must stay valid as long as any of the items does.
 * Returns: FO_OK; FO_EINVAL (@it or @next NULL); FO_ENOMEM (@close is not
 * called).
 * Threads: the callbacks run on the thread reading the iterator (for an
 * adapter with threads - feed, join - on that adapter's thread).
 */
FO_API int fo_iter_from_fn(fo_iter **it, fo_iter_next_fn next, void (*close)(void *ctx), void *ctx,
                           fo_item_free_fn item_free, void *item_ctx);

/**
 * fo_iter_next() - wait for the next item.
 * @item: out: the item, owned by the caller per the ownership rule.
 * Returns: FO_OK; FO_END (sticky); FO_FAILED (sticky, see fo_iter_error());
 * FO_EINVAL (@it or @item NULL).
 * Threads: the iterator's one user.  Blocking: as long as the source takes
 * (spins briefly, then sleeps).
 */
FO_API int fo_iter_next(fo_iter *it, void **item);

/**
 * fo_iter_try_next() - as fo_iter_next() but never waits for an item:
 * FO_EMPTY when none is ready now.  (A callback source that blocks in
 * spite of its deadline blocks this call too.)
 */
FO_API int fo_iter_try_next(fo_iter *it, void **item);

/**
 * fo_iter_timed_next() - as fo_iter_next() but waits at most @timeout_ns:
 * FO_TIMEDOUT when it passes (status.h's convention: 0 = do not wait;
 * negative = no limit).
 * Nothing is lost by a timeout.
 */
FO_API int fo_iter_timed_next(fo_iter *it, void **item, int64_t timeout_ns);

/**
 * fo_iter_release() - drop an item that @it returned: calls @it's
 * destructor (nothing for borrowing iterators, arrays and NULL
 * destructors).  Not for error items: use fo_error_item_free().
 * @it or @item NULL: no-op.
 * Threads: any thread holding the item, while @it is open.
 */
FO_API void fo_iter_release(fo_iter *it, void *item);

/**
 * fo_iter_close() - release the iterator and everything it owns (its
 * sources, cursor, threads, buffered items).  Items already handed out stay
 * with their holders, except that a borrowing iterator's last item becomes
 * invalid.  NULL is a no-op.
 * Threads: the iterator's user, not during a read.  Blocking: adapters with
 * threads join them (a thread inside a blocking source callback is waited
 * for).
 */
FO_API void fo_iter_close(fo_iter *it);

/** fo_iter_borrows() - items are valid only until the next read.  NULL: false. */
FO_API bool fo_iter_borrows(const fo_iter *it);

/** fo_iter_emits_errors() - the iterator may return fo_error_item items.  NULL: false. */
FO_API bool fo_iter_emits_errors(const fo_iter *it);

/**
 * fo_iter_is_error() - true if the item the last FO_OK read returned is an
 * fo_error_item (free it with fo_error_item_free()).  NULL: false.
 */
FO_API bool fo_iter_is_error(const fo_iter *it);

/**
 * fo_iter_error() - after FO_FAILED: the error (owned by the iterator, valid
 * until it is closed).  NULL before that, or for NULL.
 */
FO_API const fo_error *fo_iter_error(const fo_iter *it);

/** fo_iter_lagged() - items a passive cursor source skipped (0 otherwise). */
FO_API uint64_t fo_iter_lagged(const fo_iter *it);

/**
 * fo_iter_item_free() - the destructor (and its context, if @ctx is not
 * NULL) of @it's items: what fo_iter_release() calls.  NULL @it: NULL.
 * Use it to create a stream whose item_free matches.
 */
FO_API fo_item_free_fn fo_iter_item_free(const fo_iter *it, void **ctx);

/**
 * fo_iter_close_item() - an item destructor for items that are iterators:
 * fo_iter_close(@item).  Give it as the item_free of a source of iterators
 * (flatten, join_iters) so every layer closes what it drops.
 */
FO_API void fo_iter_close_item(void *item, void *ctx);

/**
 * fo_iter_fd() / fo_iter_arm() - event-loop readiness, with exactly the
 * semantics of fo_cursor_fd() / fo_cursor_arm(), for every iterator that can
 * tell when it has something:
 *   - cursor iterators: the cursor's own fd and arm;
 *   - gate outputs (fo_gate_iter) and join outputs (fo_join_iter): an
 *     eventfd owned by the gate or join;
 *   - BACKGROUND feed iterators (fo_feed_iter): the feed cursor's;
 *   - pipeline stage outputs and pmap / pool round outputs: an eventfd
 *     owned by the stage or round (arming starts it, like a first read);
 *   - map, filter, map_filter over such a source: the source's fd; arm()
 *     answers 1 by itself while outputs are buffered (map_filter) or an
 *     error still has to be delivered, so they are readable without the
 *     source.
 * Not supported (FO_EINVAL): array and callback sources, flatten, zip,
 * ON_DEMAND feed iterators, and adapters over those.
 * Protocol: read with fo_iter_try_next() until FO_EMPTY, then call
 * fo_iter_arm(): 1 means something is ready (read again; nothing is armed),
 * 0 means it is safe to sleep until the fd polls readable.  The fd polls
 * readable when an item, FO_END or a failure is ready (a filter or
 * map_filter may also be woken by an input it then drops: the read returns
 * FO_EMPTY; arm again).  After FO_END / FO_FAILED arm() returns 1 for good.
 * A publisher (a push, a credit, a seal, ...) pays a system call only on an
 * armed -> signalled transition; no wake-up is lost.  The fd is created on
 * first use, close-on-exec and non-blocking, owned by the iterator (closed
 * with it); never read, write or close it yourself.  Register it once: the
 * same number is returned every time.
 * Returns: fo_iter_fd: the descriptor (>= 0); FO_EINVAL (@it NULL,
 * unsupported, or its source's readiness is already taken by a notify hook
 * or a different fd, e.g. fo_cursor_fd() called on the cursor of a source
 * given to a gate); FO_ESYS.  fo_iter_arm: 1, 0, FO_EINVAL (@it NULL,
 * unsupported, or fo_iter_fd() not called yet).
 * Threads: the iterator's user thread.
 */
FO_API int fo_iter_fd(fo_iter *it);

/**
 * fo_iter_arm() - ask for one signal on fo_iter_fd(): see fo_iter_fd() above
 * and status.h (values that are not status codes).
 * Returns: 1 (something is ready: read again; nothing armed); 0 (armed);
 * FO_EINVAL (@it NULL, unsupported, or fo_iter_fd() not called yet).
 * Threads: the iterator's user thread.
 */
FO_API int fo_iter_arm(fo_iter *it);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_ITER_H */

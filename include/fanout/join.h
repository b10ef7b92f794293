/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/join.h - a dynamic merge of many iterators into one.
 *
 * Sources may be added at any time until the join is sealed; the output
 * ends (FO_END) only once it is sealed and every source has ended.  Sealing
 * does not end live sources: their later items are still delivered.  The
 * order of each source's items is kept; across sources, arrival order.
 *
 * How sources are read:
 *   - a cursor iterator (fo_iter_from_cursor() with a copy function) is read
 *     by the output's reader itself: no thread per source.  The join hooks
 *     the cursor (fo_cursor_set_notify) so a push wakes a waiting reader.
 *     (A cursor whose fo_cursor_fd() was used gets a thread instead.)
 *   - any other iterator gets a helper thread that pulls it and queues the
 *     items in a bounded internal stream (opts.buffer).
 *
 * Errors (opts.on_error):
 *   FO_JOIN_FAIL_FAST (default): the first source failure reaches the
 *     reader as FO_FAILED with that source's error, after the items already
 *     queued; at that moment every helper is told to stop (a helper waiting
 *     for room is woken and drops its item) and no source is read again.
 *     Closing the output joins every helper thread and closes every source.
 *   FO_JOIN_CONTINUE: a failed source ends and the reader gets an
 *     fo_error_item (input NULL) with its error; the rest goes on.
 *
 * Event loops: fo_iter_fd() / fo_iter_arm() on the output iterator: an
 * eventfd owned by the join that polls readable when a read would return
 * something - an item of any source, an error item, FO_END (sealed and every
 * source ended) or the fail-fast failure.  Everything that wakes a blocking
 * reader signals it (cursor sources through their notify hooks, helper
 * threads through the internal queue's, add and seal); a signal costs a
 * system call only on an armed -> signalled transition.  A source added
 * meanwhile may make arm() return 1 once for a read that returns FO_EMPTY
 * (the reader adopts the source in that read).
 *
 * Items: every source must have the join's destructor (opts.item_free/ctx)
 * and must not borrow; the output has that destructor.  Error items from
 * sources pass through (only in CONTINUE mode, which may emit them).
 *
 * Concurrency table (X = may run at the same time):
 *
 *                   add   seal  threads  destroy  next*(iter)  close(iter)
 *   add              X     X      X        -          X            X
 *   seal             X     X      X        -          X            X
 *   next*(iter)      X     X      X        X          -            -
 *   fo_join_destroy: once, after every other call on the handle.
 */
#ifndef FANOUT_JOIN_H
#define FANOUT_JOIN_H

#include <stddef.h>

#include <fanout/export.h>
#include <fanout/iter.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_join fo_join;

/** Join error policies (see the file comment). */
typedef enum fo_join_policy { FO_JOIN_FAIL_FAST = 0, FO_JOIN_CONTINUE = 1 } fo_join_policy;

/**
 * fo_join_opts - fill with fo_join_opts_init() first.
 * @on_error:      FO_JOIN_FAIL_FAST (default) or FO_JOIN_CONTINUE.
 * @item_free:     the destructor every source (and the output) has.
 * @item_free_ctx: its context.
 * @buffer:        items the helper threads may queue ahead of the reader,
 *                 all sources together (0: 1024).
 */
typedef struct fo_join_opts {
	fo_join_policy on_error;
	fo_item_free_fn item_free;
	void *item_free_ctx;
	size_t buffer;
} fo_join_opts;

/** fo_join_opts_init() - fail fast, no destructor, buffer 1024.  NULL: no-op. */
FO_API void fo_join_opts_init(fo_join_opts *o);

/**
 * fo_join_create() - an open, empty join.
 * Returns: FO_OK; FO_EINVAL (@j NULL, a bad policy); FO_ENOMEM.
 * Ownership: the caller owns the handle (fo_join_destroy) and, once taken
 * with fo_join_iter(), the output iterator (fo_iter_close).
 */
FO_API int fo_join_create(fo_join **j, const fo_join_opts *o);

/**
 * fo_join_add() - merge @src in.
 * Returns: FO_OK (the join owns @src and closes it when done with it);
 * FO_EINVAL (NULL argument; @src borrows; its destructor differs from the
 * join's; it may emit error items and the join fails fast); FO_ECLOSED (the
 * join is sealed, or its output was closed); FO_ENOMEM; FO_ESYS (no helper
 * thread).  On failure the caller keeps @src.
 * Threads: any, concurrently with the reader and other adds.
 */
FO_API int fo_join_add(fo_join *j, fo_iter *src);

/**
 * fo_join_seal() - no more sources: the output ends once every source
 * has.  Returns: FO_OK (also when already sealed); FO_EINVAL (@j NULL).
 * Threads: any.
 */
FO_API int fo_join_seal(fo_join *j);

/**
 * fo_join_iter() - take the output iterator (once; NULL afterwards or for a
 * NULL join).  Reads: FO_OK, FO_END, FO_FAILED (fail fast), FO_EMPTY (try),
 * FO_TIMEDOUT (timed).  Closing it stops and joins every helper thread and
 * closes every source.
 */
FO_API fo_iter *fo_join_iter(fo_join *j);

/** fo_join_threads() - helper threads started so far (cursor sources need none).  NULL: 0. */
FO_API size_t fo_join_threads(const fo_join *j);

/**
 * fo_join_destroy() - drop the handle: seals the join (nobody can add any
 * more) and, if fo_join_iter() was never called, closes the output too.
 * NULL: no-op.
 */
FO_API void fo_join_destroy(fo_join *j);

/**
 * fo_join_iters() - merge the iterators that @srcs yields, as
 * they arrive; the output ends once @srcs and every one of them has ended.
 * Each element is an fo_iter * that must satisfy fo_join_add(); when the
 * join is done with it, it is released with @srcs's destructor (use
 * fo_iter_close_item() so they are closed; with a NULL destructor the caller
 * keeps them and closes them after the output).  An invalid element or a
 * failure of @srcs follows the policy (fail fast: the error; continue: an
 * error item, the element in it if any).  A helper thread reads @srcs.
 * Returns: FO_OK (@srcs taken); FO_EINVAL (NULL @out/@srcs, @srcs borrows or
 * emits error items); FO_ENOMEM; FO_ESYS.
 */
FO_API int fo_join_iters(fo_iter **out, fo_iter *srcs, const fo_join_opts *o);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_JOIN_H */

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/feed.h - turn any iterator into a forkable stream.
 *
 * A feed pulls a source iterator and pushes its items into a fresh stream;
 * readers get plain cursors of that stream, so every cursor feature works:
 * O(1) forks, passive taps, share groups (work sharing, below).  Two modes:
 *
 *   FO_FEED_BACKGROUND  a feed thread pulls.  With ahead = n > 0 the stream
 *       is bounded (capacity n): it holds at most n items the slowest active
 *       cursor (or share group) has not read.  The thread waits for room for
 *       one item before it pulls the next (fo_stream_wait_room; as the only
 *       producer it keeps that room until its push), so the source is read
 *       exactly n items past the slowest active cursor, never n + 1: no item
 *       waits in the thread's hand.  ahead = 0: drain the source eagerly
 *       into an unbounded stream.  Passive
 *       cursors never hold the thread back.  The thread stops when the
 *       source ends or fails, when the feed is destroyed, or when no cursor
 *       is left (it checks before each pull).  Reads: fo_cursor_*() or
 *       fo_feed_next(), same result.
 *
 *   FO_FEED_ON_DEMAND   no thread, no prefetch.  A reader that calls
 *       fo_feed_next() (or its try/timed forms) on an active cursor or share
 *       member that has nothing to read becomes the puller: in its own
 *       thread it pulls one item from the source and pushes it, so every
 *       cursor sees it.  One puller at a time; other readers at the end wait
 *       for that pull and then read.  Plain fo_cursor_*() reads never pull:
 *       that is how passive cursors read (fo_feed_next() refuses a passive
 *       cursor with FO_EINVAL).  A puller whose pull
 *       times out (try/timed) gives the role up and a waiting reader takes
 *       it; a pull that ends or fails ends the stream for everyone.  No
 *       reader ever waits on a puller that has gone.
 *
 * Either way a source error reaches every cursor after every item pulled
 * before it, as FO_FAILED with the source's code and message (sticky:
 * fo_stream_fail()), and FO_END likewise.
 *
 * Items: the stream's item_free is the source's destructor (and context),
 * called once per item when no cursor can return it (so that context must
 * outlive every cursor).  A borrowing source, or one that may emit error
 * items, is refused (FO_EINVAL): the stream keeps items past the source's
 * next read and has one destructor.
 *
 * Work sharing over any iterator (the recipe): create a feed, fork its
 * cursor with FO_SHARED once per extra worker (the first fork turns the
 * original into a member too), give each worker one member.  Every item
 * goes to exactly one worker; every worker sees FO_END.  In ON_DEMAND mode
 * each worker reads with fo_feed_next(), so the pulls happen in the
 * workers, one at a time.
 *
 * Handle: the feed object is an fo_feeder (fo_feed is the one-call
 * BACKGROUND form, which needs no handle).
 *
 * Lifetimes (who must outlive whom):
 *   - The source belongs to the feed until fo_feed_destroy() (fo_feed():
 *     until its thread stops).  Closing the cursors does not close it, so
 *     whatever the source runs - e.g. a pipeline stage whose thread reads
 *     another feed's iterator - keeps running until the destroy.
 *   - fo_feed_next*() calls use the handle: each returns before destroy.
 *   - Cursors and fo_feed_iter() iterators may outlive the handle.  An
 *     iterator keeps the feed's memory until it is closed, so destroy may
 *     come first, even while the iterator is being read on another thread
 *     (feeds nested through stages can be destroyed in any order; outer
 *     feeds first stops every reader of an inner feed before it goes).
 *     After destroy, reads return what was pushed, then the stream's end:
 *     FO_FAILED {FO_ECANCELED} if the source had not ended.
 *   - The source's item_free context outlives every cursor (Items, above).
 *
 * Concurrency table (X = may run at the same time):
 *
 *                       feed_next*(c1)  feed_next*(c2)  cursor calls  destroy
 *   feed_next*(c1)           -               X               X           -
 *   (c1 != c2; every cursor has one user thread at a time.  fo_feed_destroy
 *    runs once, after every fo_feed_next*() call has returned; reads of
 *    fo_feed_iter() iterators may run during and after it, and cursors stay
 *    readable with fo_cursor_*() after it.)
 */
#ifndef FANOUT_FEED_H
#define FANOUT_FEED_H

#include <stddef.h>
#include <stdint.h>

#include <fanout/export.h>
#include <fanout/iter.h>
#include <fanout/pmap.h> /* fo_backend */
#include <fanout/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_feeder fo_feeder;

/** Feed modes (see the file comment). */
typedef enum fo_feed_mode { FO_FEED_BACKGROUND = 0, FO_FEED_ON_DEMAND = 1 } fo_feed_mode;

/**
 * fo_feed_opts - fill with fo_feed_opts_init() first.
 * @mode:           FO_FEED_BACKGROUND (default) or FO_FEED_ON_DEMAND.
 * @ahead:          BACKGROUND: items kept ahead of the slowest active cursor
 *                  (0: unbounded, drain eagerly).  Ignored by ON_DEMAND
 *                  (which never prefetches).  Default 0.
 * @passive_window: the stream's passive window (0: the stream default).
 * @backend:        FO_THREADS (default: the source runs on the feed's
 *                  thread, or in ON_DEMAND on the pulling reader's), or
 *                  FO_PROCESSES (fanout/preload.h: the source runs
 *                  in a child process, items cross through @codec, at most
 *                  one item ahead of the feed's own pulls; see
 *                  fanout/preload.h for what the source may do there).
 * @codec:          required with FO_PROCESSES (encode and decode); copied.
 */
typedef struct fo_feed_opts {
	fo_feed_mode mode;
	size_t ahead;
	size_t passive_window;
	fo_backend backend;
	const fo_codec *codec;
} fo_feed_opts;

/** fo_feed_opts_init() - BACKGROUND, ahead 0, default window.  NULL: no-op. */
FO_API void fo_feed_opts_init(fo_feed_opts *o);

/**
 * fo_feed_create() - start feeding @src into a new stream.
 * @f:   out: the feed handle (for fo_feed_next and fo_feed_destroy).
 * @c:   out: an active cursor at the start of the stream; fork it for more.
 * @src: taken on success (closed when the feed goes).
 * @o:   options (NULL: defaults).
 * Returns: FO_OK; FO_EINVAL (NULL @f/@c/@src, a bad mode or backend, a
 * borrowing or error-emitting @src, FO_PROCESSES without a codec);
 * FO_ENOMEM; FO_ESYS (the feed thread or the child could not start).  On failure nothing was pulled
 * and the caller keeps @src. Ownership: the caller owns *@f and *@c (fo_feed_destroy,
 * fo_cursor_close). Threads: any.
 */
FO_API int fo_feed_create(fo_feeder **f, fo_cursor **c, fo_iter *src, const fo_feed_opts *o);

/**
 * fo_feed() - fo_feed_create() for BACKGROUND mode without a handle: the
 * feed thread owns the feed and frees it when the source ends or fails, or
 * when every cursor is closed (checked before each pull).  Read with
 * fo_cursor_*().
 * Returns: as fo_feed_create(); FO_EINVAL for ON_DEMAND (readers need the
 * handle to pull).
 */
FO_API int fo_feed(fo_cursor **c, fo_iter *src, const fo_feed_opts *o);

/**
 * fo_feed_next() - read @c (a cursor of @f's stream); in ON_DEMAND mode pull
 * the source when @c has nothing to read (see the file comment).
 * @c: an active cursor or share-group member of this feed (never passive).
 * Returns: as fo_cursor_next(): FO_OK, FO_END, FO_FAILED (fo_cursor_error()
 * has the source's error); FO_EINVAL (NULL argument, or @c is a passive
 * cursor: passive cursors never pull; read them with fo_cursor_*()).
 * Threads: @c's user thread; readers of different cursors concurrently.
 * Blocking: waits for an item, possibly running the source callback.
 */
FO_API int fo_feed_next(fo_feeder *f, fo_cursor *c, void **item);

/** fo_feed_try_next() - as fo_feed_next(), FO_EMPTY instead of waiting (a puller still runs one
 * non-waiting pull). */
FO_API int fo_feed_try_next(fo_feeder *f, fo_cursor *c, void **item);

/**
 * fo_feed_timed_next() - as fo_feed_next(), at most @timeout_ns:
 * FO_TIMEDOUT (status.h's convention: 0 = do not wait, negative = no
 * limit).  The deadline is passed to the pull.
 */
FO_API int fo_feed_timed_next(fo_feeder *f, fo_cursor *c, void **item, int64_t timeout_ns);

/**
 * fo_feed_iter() - an iterator reading @c through fo_feed_next() (so it
 * pulls in ON_DEMAND mode), e.g. to join or map a feed.
 * @copy, @copy_free, @ctx: as fo_iter_from_cursor() (NULL @copy: borrowing).
 * Returns: FO_OK (the iterator takes @c); FO_EINVAL (NULL argument, a
 * passive @c, @copy_free without @copy); FO_ENOMEM.
 * Event loops: in BACKGROUND mode fo_iter_fd()/fo_iter_arm() are @c's
 * fo_cursor_fd()/fo_cursor_arm() (a read is a read of @c).  In ON_DEMAND
 * mode they return FO_EINVAL: a read at the end runs the source in the
 * reader's thread, so nothing could signal the descriptor.
 * Ownership: the caller owns *@it (fo_iter_close()).  It holds a reference
 * to @f: fo_feed_destroy() may come first, even while *@it is read on
 * another thread; the feed's memory goes with the last of them.  Reads
 * after the destroy return what was pushed, then FO_FAILED {FO_ECANCELED}
 * (or the source's own end, if it came first); the source is not pulled.
 * Threads: one reader at a time (an fo_iter); any thread.
 */
FO_API int fo_feed_iter(fo_iter **it, fo_feeder *f, fo_cursor *c, fo_item_copy_fn copy,
                        fo_item_free_fn copy_free, void *ctx);

/** fo_feed_pulled() - items pulled from the source so far.  NULL: 0.  Threads: any. */
FO_API uint64_t fo_feed_pulled(const fo_feeder *f);

/**
 * fo_feed_destroy() - stop pulling and drop the handle.  If the source had
 * not ended, the stream fails with FO_ECANCELED after the items already
 * pushed.  Joins the feed thread, or in ON_DEMAND mode waits for a pull in
 * progress in a reader's thread, then closes the source.  Cursors stay
 * valid (read them with fo_cursor_*()); fo_feed_iter() iterators too (they
 * keep the feed's memory until closed).  NULL: no-op.
 * Threads: once, after every fo_feed_next*() call on @f returned (they use
 * the handle); fo_feed_iter() reads may be in progress.
 * Blocking: until a pull in progress returns (a source blocked for ever
 * blocks the destroy: it cannot be interrupted).
 */
FO_API void fo_feed_destroy(fo_feeder *f);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_FEED_H */

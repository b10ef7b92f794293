/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/pipeline.h - buffered pipelines: each stage runs its source on its
 * own thread, a fixed number of items ahead of its reader.
 *
 * fo_pipeline_buffer(p, &out, src, n) returns an iterator whose thread
 * pulls @src.  Nothing runs before the first read (or fo_iter_arm()) of
 * `out`: then the thread starts, and it always waits for room before it
 * pulls, so at most exactly n items have been pulled from @src and not yet
 * read from `out` (never n + 1, as with queue-based preloaders).  The
 * hand-off takes no lock; while the reader reads, the thread refills in
 * batches (it waits for half the buffer to be free), and when the reader
 * pauses the buffer is topped up to exactly n within about 10 ms.  A
 * reader that finds the buffer empty waits for half of it too, for about
 * 50 us at most (longer only while other threads hold its CPU), then takes
 * what is there or the next item; when the thread finds its source empty
 * (a try read of it), the reader gets what is buffered at once.  (A
 * callback source that blocks in spite of a try read can hold a partial
 * batch for up to 10 ms.)  The thread pulls @src with a try read first,
 * then, only when that finds nothing, with a blocking read.  Order is
 * kept.  Chain stages by giving
 * one stage's output (or an adapter over it) as the next stage's source;
 * all stages made from one fo_pipeline form a group, numbered in creation
 * order (0, 1, ...).
 *
 * Upstream: stage u is upstream of stage k when k's thread reads u's output
 * (directly or through adapters such as fo_map, fo_filter, fo_flatten), or
 * reads a stage that is upstream of k.  Stages read by other threads - the
 * application, a join's helper threads - are upstream of no stage: merged
 * branches (fo_join, fo_flatten) are independent of each other.
 *
 * Errors: when the source of stage k fails (a user source, or an adapter
 * such as fo_map whose callback failed), the failure is the root error.
 * Stage k stops the stages upstream of it (nothing they hold can reach the
 * reader any more), closes its source, which joins their threads, and
 * queues the root error after the items it had buffered.  Stages
 * downstream deliver those items, then pass the same error on (code,
 * sys_errno and message), joining their own threads.  So the final reader
 * gets every item that preceded the failure, then FO_FAILED with the root
 * error - never a generic cancellation - and by then every thread of the chain has
 * been joined.  FO_END travels the same way; a stage that ends normally
 * stops nothing.  Other branches of the group are never stopped by a
 * failure: a join or flatten over them decides (fail fast closes them).
 *
 * Closing a stage's output early stops it and every stage upstream of it,
 * releases their buffered items and joins every thread (a thread inside
 * a blocking user source is waited for: it cannot be interrupted).
 *
 * Lifetimes: a stage owns its source and closes it when its output is
 * closed (or the stage stops); until then its thread may read the source at
 * any time.  So whatever the source reads must outlive the stage's output:
 * a cursor, the context of an fo_iter_from_fn() callback.  (An
 * fo_feed_iter() source keeps its feed's memory itself: feed.h.)  Whoever
 * owns the output decides when that is: a stage that is a feed's source
 * (fo_feed_create()) is closed by fo_feed_destroy(), not by closing the
 * feed's cursors, so its thread runs until then.
 *
 * Items: a stage keeps items past its source's next read, so a borrowing
 * source is refused; error items pass through.  Buffered items are released
 * with the source's destructor.  The output has the source's destructor.
 *
 * Event loops: fo_iter_fd()/fo_iter_arm() work on every stage output (an
 * eventfd owned by the stage; arm starts the thread if needed).
 *
 * Concurrency table (X = may run at the same time):
 *
 *                     buffer(p)  destroy(p)  progress_get(p)  next*(out)  close(out)
 *   buffer(p)            -           -             X              X           X
 *   progress_get(p)      X           -             X              X           X
 *   next*(out)           X           X             X              -           -
 *   (each output is an fo_iter: one reader at a time; different outputs
 *    are independent.  The progress hook runs on stage threads and readers,
 *    possibly concurrently.)
 */
#ifndef FANOUT_PIPELINE_H
#define FANOUT_PIPELINE_H

#include <stddef.h>

#include <fanout/export.h>
#include <fanout/iter.h>
#include <fanout/pmap.h> /* fo_progress */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_pipeline fo_pipeline;

/**
 * fo_stage_progress_fn - called after a stage's thread queues an item and
 * after its reader takes one, and when it ends.  @stage is the stage
 * number (0, 1, ... in creation order).  @p: in = items pulled, out = items
 * read, failed = 1 once it failed, in_flight = items buffered.  Must be
 * thread-safe (stages call it concurrently).  Each call is a snapshot taken
 * by the calling thread (the stage's thread or its reader), so two calls
 * for the same stage from different threads may arrive out of order: keep
 * the largest counts if you need the latest.
 */
typedef void (*fo_stage_progress_fn)(void *ctx, size_t stage, const fo_progress *p);

/** fo_pipeline_opts - fo_pipeline_opts_init() first. */
typedef struct fo_pipeline_opts {
	fo_stage_progress_fn progress; /* may be NULL */
	void *progress_ctx;
} fo_pipeline_opts;

/** fo_pipeline_opts_init() - no hook.  NULL: no-op. */
FO_API void fo_pipeline_opts_init(fo_pipeline_opts *o);

/**
 * fo_pipeline_create() - an empty pipeline group (@o NULL: defaults, no
 * progress hook).
 * Returns: FO_OK; FO_EINVAL (@p NULL); FO_ENOMEM.
 * Ownership: the caller owns *@p until fo_pipeline_destroy().
 * Threads: any.
 */
FO_API int fo_pipeline_create(fo_pipeline **p, const fo_pipeline_opts *o);

/**
 * fo_pipeline_buffer() - a stage: @src run on its own thread, at most @n
 * items ahead of the reader of *@out, starting at the first read.
 * @src: taken on success (closed by the stage).
 * Returns: FO_OK; FO_EINVAL (NULL @p/@out/@src, @n 0, @src borrows);
 * FO_ENOMEM (the caller keeps @src).
 * Reads of *@out: FO_OK, FO_END, FO_FAILED (the root error),
 * FO_EMPTY/FO_TIMEDOUT (try/timed).  A thread that cannot be created ends
 * the output with FO_FAILED {FO_ESYS}.
 * Threads: any, not concurrently with fo_pipeline_destroy(@p).
 * Blocking: no.
 */
FO_API int fo_pipeline_buffer(fo_pipeline *p, fo_iter **out, fo_iter *src, size_t n);

/**
 * fo_pipeline_progress_get() - a snapshot of stage @stage's counters.
 * Returns: FO_OK; FO_EINVAL (NULL, or no open stage with that number).
 * Threads: any.
 */
FO_API int fo_pipeline_progress_get(fo_pipeline *p, size_t stage, fo_progress *out);

/**
 * fo_pipeline_destroy() - drop the group handle; open stages keep working
 * (the memory goes with the last of them).  NULL: no-op.
 * Threads: once, after the last fo_pipeline_buffer().
 */
FO_API void fo_pipeline_destroy(fo_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_PIPELINE_H */

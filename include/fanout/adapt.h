/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/adapt.h - iterator adapters: map, filter, map_filter (0..n outputs
 * per input), flatten (an iterator of iterators) and zip.
 *
 * Every adapter takes its source(s) on success (closing the adapter closes
 * them) and leaves them with the caller on failure.  Items follow the rule
 * of fanout/iter.h: an adapter that drops an input calls the source's
 * destructor once; a callback that returns FO_OK has taken the input over.
 *
 * Errors in callbacks follow the adapter's fo_error_policy (FO_ERR_STOP by
 * default, FO_ERR_DROP, FO_ERR_EMIT).  A source that fails ends the adapter
 * with the source's error (FO_FAILED, sticky), after every item before it.
 * Error items coming from a source pass through map, filter, map_filter and
 * flatten untouched (the callback never sees them).
 *
 * Event loops: fo_iter_fd() / fo_iter_arm() work on map, filter and
 * map_filter when their source supports them (they use the source's fd; a
 * map_filter with buffered outputs arms as ready without the source); not
 * on flatten and zip (FO_EINVAL).  See fanout/iter.h.
 *
 * Concurrency: an adapter is an fo_iter: one user thread at a time; its
 * callbacks run on that thread, inside its reads.  Nothing runs in between.
 *
 *                       next*(a)  close(a)  any call on another iterator
 *   next*(a)               -         -              X
 */
#ifndef FANOUT_ADAPT_H
#define FANOUT_ADAPT_H

#include <stdbool.h>
#include <stddef.h>

#include <fanout/export.h>
#include <fanout/iter.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * fo_adapt_opts - options shared by the adapters; fo_adapt_opts_init() first.
 * @on_error:      the fo_error_policy for callback failures (FO_ERR_STOP).
 * @item_free:     destructor of the adapter's outputs (map, map_filter:
 *                 what the callback returns/emits; flatten: the items of the
 *                 inner iterators, which must all have this destructor).
 *                 Ignored by filter (its outputs are its source's items).
 * @item_free_ctx: passed to @item_free.
 */
typedef struct fo_adapt_opts {
	fo_error_policy on_error;
	fo_item_free_fn item_free;
	void *item_free_ctx;
} fo_adapt_opts;

/** fo_adapt_opts_init() - FO_ERR_STOP, no destructor.  NULL: no-op. */
FO_API void fo_adapt_opts_init(fo_adapt_opts *o);

/**
 * fo_map_fn - @in is the caller's to consume: on FO_OK the callback owns
 * @in (it may return it as *@out, or free it with the source's destructor)
 * and sets *@out (non-NULL; owned by the adapter's reader, freed with
 * opts.item_free).  Any other return value is an error code: @in was not
 * consumed and the adapter applies its policy to it.  The error carries
 * errno as sys_errno for FO_ESYS, and the message given to fo_fail() during
 * the call (else "map callback failed"; likewise for filters).
 */
typedef int (*fo_map_fn)(void *ctx, void *in, void **out);

/**
 * fo_filter_fn - > 0: keep @in (it is passed on); 0: drop it (the adapter
 * releases it); < 0: an error code (the policy applies).  Must not free @in.
 */
typedef int (*fo_filter_fn)(void *ctx, const void *in);

/**
 * fo_emit_fn - hands one output (non-NULL) to a map_filter adapter, which
 * owns it on FO_OK.  Returns FO_OK; FO_EINVAL (@out NULL); FO_ENOMEM (the
 * output stays with the callback).
 */
typedef int (*fo_emit_fn)(void *emit_ctx, void *out);

/**
 * fo_map_filter_fn - emit 0..n outputs for @in through @emit.  On FO_OK the
 * callback owns @in (it may emit it, or free it with the source's
 * destructor).  Another return value is an error code: @in was not consumed;
 * outputs emitted before the error are still delivered, then the policy
 * applies to @in.
 */
typedef int (*fo_map_filter_fn)(void *ctx, void *in, fo_emit_fn emit, void *emit_ctx);

/**
 * fo_map() - an iterator of fn(item) for every item of @src.
 * @out: out: the adapter.   @src: taken on success.
 * @fn:  the callback (required).   @ctx: passed to @fn.
 * @o:   options (NULL: defaults).
 * The adapter borrows if @src borrows (an output may alias its input).
 * Returns: FO_OK; FO_EINVAL (NULL @out/@src/@fn, a bad policy, or
 * FO_ERR_EMIT over a borrowing @src: the error item would outlive the
 * input); FO_ENOMEM.
 * Errors: STOP releases the input and ends with FO_FAILED {the callback's
 * code}; DROP releases it and goes on; EMIT returns an fo_error_item that
 * owns the input.
 * Threads / Blocking: as the source; @fn runs on the reader's thread.
 */
FO_API int fo_map(fo_iter **out, fo_iter *src, fo_map_fn fn, void *ctx, const fo_adapt_opts *o);

/**
 * fo_filter() - the items of @src for which @pred returns > 0.  Dropped
 * items are released with @src's destructor.  Outputs have @src's
 * destructor and borrow if it does.  Errors (< 0) follow o->on_error.
 * Returns: as fo_map().  Threads / Blocking: as fo_map() (@pred runs on the
 * reader's thread).
 */
FO_API int fo_filter(fo_iter **out, fo_iter *src, fo_filter_fn pred, void *ctx,
                     const fo_adapt_opts *o);

/**
 * fo_map_filter() - 0..n outputs per input of @src, in emit order.
 * Returns: as fo_map().  FO_ENOMEM from emit (buffer growth) is returned to
 * the callback, which may treat it as an error.
 * Threads / Blocking: as fo_map() (@fn runs on the reader's thread).
 */
FO_API int fo_map_filter(fo_iter **out, fo_iter *src, fo_map_filter_fn fn, void *ctx,
                         const fo_adapt_opts *o);

/**
 * fo_flatten() - concatenate the iterators @src yields: every item of the
 * first, then of the second, ...  @src's items must be fo_iter *; when one
 * ends it is released with @src's destructor (fo_iter_close_item() closes
 * it; with a NULL destructor the caller keeps and closes it).
 * An invalid element - its destructor differs from o->item_free, it borrows,
 * or it may emit error items while this flatten is not in FO_ERR_EMIT mode -
 * is an error with code FO_EINVAL (never skipped silently):
 * STOP ends with it, DROP releases the element and goes on, EMIT returns an
 * error item owning the element.  An inner iterator that fails: STOP ends
 * with its error; DROP releases it and goes on; EMIT returns an error item
 * (input NULL) and goes on.  A failing @src ends the flatten.
 * Returns: as fo_map() (@fn/@ctx do not exist).  Threads / Blocking: as
 * fo_map().
 */
FO_API int fo_flatten(fo_iter **out, fo_iter *src, const fo_adapt_opts *o);

/**
 * fo_zip_tuple - one output of fo_zip(): @items[i] is from source i.
 * The tuple owns its items; fo_zip_tuple_free() frees each non-NULL one
 * with its source's destructor (set items[i] to NULL to keep one).
 */
typedef struct fo_zip_tuple {
	size_t n;
	FO__FLEX_BEGIN
	void *items[];
	FO__FLEX_END
} fo_zip_tuple;

/** fo_zip_tuple_free() - the zip's item destructor (@ctx unused).  NULL: no-op. */
FO_API void fo_zip_tuple_free(void *tuple, void *ctx);

/**
 * fo_zip() - tuples of one item from each of @n sources, read one after
 * another in argument order; FO_END at the first source that ends.  Items
 * already pulled for that incomplete tuple are released (each once, with its
 * source's destructor).  A source failure ends the zip with that error the
 * same way.  Zero sources: FO_END at once.  A timeout keeps the partial
 * tuple, so nothing is lost.
 * @srcs: taken (all of them) on success.
 * Returns: FO_OK; FO_EINVAL (@out NULL, @srcs NULL with @n > 0, a NULL,
 * borrowing or error-emitting source); FO_ENOMEM.  On failure the caller
 * keeps every source.
 * Threads / Blocking: as fo_map(); the sources are read on the reader's thread.
 */
FO_API int fo_zip(fo_iter **out, fo_iter *const *srcs, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_ADAPT_H */

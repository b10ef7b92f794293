/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/gate.h - release a source's items by credits.
 *
 * A gate wraps an iterator.  Its output iterator returns one source item per
 * credit: it waits for a credit, takes it, and only then pulls the source
 * (no read-ahead, so stopping never loses an item).  Credits are released from any thread.  Closing
 * the gate lets the items already credited flow, then the output returns FO_END.  If the source
 * ends first, the output ends; unused credits are ignored.
 *
 * Event loops: fo_iter_fd() / fo_iter_arm() on the output iterator work when
 * the source supports them (a cursor iterator, a BACKGROUND feed iterator, a
 * join or gate output, a map/filter over one).  The fd is the gate's own
 * eventfd; it polls readable when a read would return something: a credit
 * and a source item (or the source's END / failure), or the gate closed
 * with no credits left (FO_END).  An item without a credit does not wake
 * the reader; fo_gate_release() does once the source has one.  The gate
 * hangs a notify hook on its source, so do not call fo_cursor_fd() or
 * fo_cursor_set_notify() on a cursor you handed to it.
 *
 * Two handles: the gate (release, close, credits - any thread) and its output
 * iterator (one reader), taken once with fo_gate_iter().  Memory goes when
 * both are dropped (fo_gate_destroy() and fo_iter_close()), in any order.
 *
 * Concurrency table (X = may run at the same time):
 *
 *                     release  close  credits  destroy  next*(iter)  close(iter)
 *   release              X       X       X        -         X            X
 *   close                X       X       X        -         X            X
 *   credits              X       X       X        -         X            X
 *   next*(iter)          X       X       X        X         -            -
 *   fo_gate_destroy: once, not concurrently with the other gate calls.
 */
#ifndef FANOUT_GATE_H
#define FANOUT_GATE_H

#include <stdint.h>

#include <fanout/export.h>
#include <fanout/iter.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_gate fo_gate;

/**
 * fo_gate_create() - a closed gate (0 credits) over @src.
 * @g:   out: the gate handle.
 * @src: taken on success (closed when the output iterator is closed, or by
 *       fo_gate_destroy() if the iterator was never taken).
 * The output iterator has @src's destructor, borrows if @src does, and
 * passes error items through.
 * Returns: FO_OK; FO_EINVAL (@g or @src NULL); FO_ENOMEM (caller keeps @src).
 * Threads: any.
 */
FO_API int fo_gate_create(fo_gate **g, fo_iter *src);

/**
 * fo_gate_iter() - take the output iterator (once).
 * Returns: the iterator, now owned by the caller (fo_iter_close() it, or
 * hand it to an adapter that takes it); NULL for a NULL gate or on a second
 * call.
 * Reads: FO_OK (one credit used); FO_END once the gate is closed and its
 * credits are used, or when the source ended; FO_FAILED (the source's error);
 * try: FO_EMPTY (no credit, or a credit but the source had nothing: the
 * credit is kept); timed: FO_TIMEDOUT likewise.
 * Threads: any.
 */
FO_API fo_iter *fo_gate_iter(fo_gate *g);

/**
 * fo_gate_release() - add @n credits: @n more items may pass.
 * Returns: FO_OK; FO_EINVAL (@g NULL or @n <= 0); FO_ECLOSED (the gate was
 * closed, or its output iterator was closed: every time, nothing added).
 * Credits saturate at INT64_MAX.
 * Threads: any, concurrently.  Blocking: a short mutex section; wakes the
 * reader.
 */
FO_API int fo_gate_release(fo_gate *g, int64_t n);

/**
 * fo_gate_close() - no more credits.  Items already credited still flow,
 * then the output returns FO_END (at once if there are no credits left,
 * waking a waiting reader).
 * Returns: FO_OK, also when already closed (idempotent); FO_EINVAL (@g NULL).
 * Threads: any.
 */
FO_API int fo_gate_close(fo_gate *g);

/** fo_gate_credits() - credits not yet used (a snapshot).  NULL: 0.  Threads: any. */
FO_API int64_t fo_gate_credits(const fo_gate *g);

/**
 * fo_gate_destroy() - drop the gate handle (and, if fo_gate_iter() was
 * never called, the iterator and @src).  Closes the gate first (nobody can
 * release credits any more): a reader gets the items already credited, then
 * FO_END.  NULL: no-op.
 * Threads: once, after every other call on the handle.
 */
FO_API void fo_gate_destroy(fo_gate *g);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_GATE_H */

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/preload.h - run an iterator's source in a child process, a bounded
 * number of items ahead of the reader.
 *
 * fo_process_preload() forks a child that owns a copy of @src (memory as it
 * was at the call) and pulls it only while it holds credits: the reader
 * grants @ahead credits and one more per item it takes, so items pulled and
 * not yet returned never exceed @ahead.  Items cross as codec frames over a
 * socketpair and are decoded in the reader's thread; the parent validates
 * every frame, so a child that crashes or writes garbage ends the iterator
 * with FO_FAILED and a message naming the cause, never corrupts the parent.
 *
 * What runs in the child: @src's next() and the codec's encode, on a copy
 * of the parent's memory.  So @src must not depend on threads (a pipeline,
 * pmap, feed or join output, or a cursor of a stream that parent threads
 * push into, would wait forever in the child) or on locks other threads
 * hold.  glibc's malloc is fork-safe; the child keeps fds 0-2 and closes
 * every other inherited descriptor except its own socket, dies with its
 * parent (PR_SET_PDEATHSIG on a helper thread that lives as long as the
 * iterator) and leaves with _exit().  The same mechanism as the process
 * backend of pmap (docs/design.md, "Process backends").
 *
 * Errors: a source that ends gives FO_END after its items; a source error
 * reaches the reader as FO_FAILED with the source's fo_error (code, errno,
 * message: fo_fail() texts cross the boundary); an encode or decode error
 * as FO_FAILED with the codec's code; a child that dies as FO_FAILED
 * whose error has code FO_FAILED and a message such as "preload child
 * killed by signal 11 (SIGSEGV)" or "preload child exited with status 3".
 *
 * Readiness: fo_iter_fd()/fo_iter_arm() work (the socket is the fd).
 *
 * The same backend is offered by fo_feed() (fo_feed_opts.backend =
 * FO_PROCESSES) and by fo_pipeline_buffer_process() below.
 */
#ifndef FANOUT_PRELOAD_H
#define FANOUT_PRELOAD_H

#include <stddef.h>
#include <fanout/codec.h>
#include <fanout/iter.h>
#include <fanout/pipeline.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * fo_process_preload() - an iterator over @src's items, computed in a child.
 * @out:   out: the iterator; its items are decoded by @codec and owned by
 *         the reader (fo_iter_release() frees them with codec->item_free).
 * @src:   taken on success: the child reads its copy; the parent's copy is
 *         never read, and is closed when the iterator is closed.
 * @ahead: items the child may run ahead (>= 1).
 * @codec: encode (in the child) and decode (in the reader); copied.
 * Returns: FO_OK; FO_EINVAL (NULL argument, @ahead 0, a codec without
 * encode/decode, a borrowing or error-emitting @src); FO_ENOMEM; FO_ESYS
 * (fork, socketpair or the helper thread failed: errno is kept).  On
 * failure the caller keeps @src and nothing was pulled.
 * Ownership: fo_iter_close() kills the child if it still runs, reaps it and
 * drops undelivered items.
 * Threads: any thread may create it; one reader at a time, as for every
 * iterator.
 */
FO_API int fo_process_preload(fo_iter **out, fo_iter *src, size_t ahead, const fo_codec *codec);

/**
 * fo_pipeline_buffer_process() - fo_pipeline_buffer() whose source runs in a
 * child process: a stage of @p whose thread reads @src's items from the
 * child (one item ahead) and keeps at most @n of them buffered, so at most
 * @n + 1 are pulled ahead of the reader.  Errors, the first-error-stops-all
 * rule and early close behave as for fo_pipeline_buffer(); a child that dies
 * fails the stage as described above.
 * Returns: FO_OK; FO_EINVAL (as fo_pipeline_buffer(), or a codec without
 * encode/decode); FO_ENOMEM; FO_ESYS.  On failure the caller keeps @src.
 * Threads: as fo_pipeline_buffer().
 */
FO_API int fo_pipeline_buffer_process(fo_pipeline *p, fo_iter **out, fo_iter *src, size_t n,
                                      const fo_codec *codec);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_PRELOAD_H */

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/nats.h - a bridge to NATS JetStream (library fanout::nats,
 * pkg-config fanout-nats; built when the NATS C client is found; not
 * included by fanout.h).
 *
 * SINK: a thread drains a cursor into a JetStream subject with asynchronous
 * publishes, up to opts.batch outstanding acknowledgements at a time: the
 * thread waits for the batch's acks before it reads more, so a slow server
 * holds an active cursor back (backpressure through the stream's capacity);
 * a passive cursor is a lossy tap.  Every message carries a Nats-Msg-Id
 * "<sink>-<n>" (<sink>: random per sink, <n>: 1, 2, ...): a message re-sent
 * after a lost or failed acknowledgement is dropped by the server's
 * duplicate window, so it is stored once.
 *
 * SOURCE: an fo_iter over a durable pull consumer.  A reader thread sends
 * pull requests (each waits on the server up to opts.block_ms: no polling)
 * and keeps up to opts.prefetch decoded messages ahead.  The iterator
 * BORROWS: an item is valid until the next read or close, and that is when
 * it is released: freed and acknowledged.  A consumer that crashes loses
 * nothing: its unacknowledged messages are redelivered (to it or to another
 * reader of the same durable) once opts.ack_wait_ms has passed;
 * fo_iter_close() gives back (NAK) what was read ahead and not handed out,
 * redelivered at once.  Messages redelivered while held, or after an
 * acknowledgement lost with a connection, are recognised by stream sequence
 * and not handed out twice (the last 65536 acknowledged sequences are
 * remembered).  fo_iter_fd()/fo_iter_arm() work.
 *
 * FAULTS: the client reconnects by itself (capped exponential backoff);
 * each bridge gives up after opts.retry_timeout_ms without progress.
 * Errors: FO_EINVAL for bad arguments (NULL, empty names, a URL that is not
 * nats://); FO_ESYS for a refused or unreachable server or a timeout
 * (fo_nats_errno()); FO_FAILED for an error of the server (authorization,
 * missing stream, ...).  fo_nats_errmsg() gives the client's message.
 */
#ifndef FANOUT_NATS_H
#define FANOUT_NATS_H

#include <stddef.h>
#include <stdint.h>

#include <fanout/codec.h>
#include <fanout/iter.h>
#include <fanout/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_nats_sink fo_nats_sink;

/**
 * fo_nats_opts - options for sinks and sources; fo_nats_opts_init() first.
 * @connect_timeout_ms: per connection attempt (default 2000).
 * @io_timeout_ms:      for a JetStream reply or a batch of acks (default 5000).
 * @retry_timeout_ms:   give up after this long without progress (default 30000).
 * @backoff_min_ms, @backoff_max_ms: reconnect backoff (defaults 10, 1000).
 * @batch:              sink: messages per batch of outstanding acks; source:
 *                      messages per fetch (default 256).
 * @linger_us:          sink: how long a partial batch waits to fill (default 0).
 * @stream:             the JetStream stream name: the source reads it; a sink
 *                      checks at start that it exists (FO_FAILED if not) or,
 *                      with @create_stream, creates it over its subject.
 * @create_stream:      create @stream (file storage) over the sink's subject,
 *                      or the source's (when not NULL), if it does not exist.
 * @duplicate_window_ms: dedupe window of a created stream (default 120000).
 * @block_ms:           source: how long a fetch waits on the server (1000).
 * @prefetch:           source: decoded messages kept ready (default 1024).
 * @ack_wait_ms:        source: AckWait of the durable when it is created:
 *                      unacknowledged messages come again after it (30000).
 */
typedef struct fo_nats_opts {
	int connect_timeout_ms;
	int io_timeout_ms;
	int retry_timeout_ms;
	int backoff_min_ms;
	int backoff_max_ms;
	size_t batch;
	int linger_us;
	const char *stream;
	int create_stream;
	int64_t duplicate_window_ms;
	int block_ms;
	size_t prefetch;
	int64_t ack_wait_ms;
} fo_nats_opts;

/** fo_nats_opts_init() - fill @o with the defaults above.  NULL: no-op. */
FO_API void fo_nats_opts_init(fo_nats_opts *o);

/**
 * fo_nats_sink_stats - counters of a sink.
 * @sent:    messages JetStream acknowledged (stored, or found duplicate).
 * @batches: batches published.  @retries: messages published again.
 * @lagged:  items a passive cursor skipped.  @dropped: items the codec
 *           could not encode.  @failed: the sink stopped on an error.
 */
typedef struct fo_nats_sink_stats {
	uint64_t sent;
	uint64_t batches;
	uint64_t retries;
	uint64_t lagged;
	uint64_t dropped;
	int failed;
} fo_nats_sink_stats;

/**
 * fo_nats_sink_start() - start a thread publishing every item @c returns to
 * @subject (copied), which must belong to a JetStream stream (or set
 * opts.stream and opts.create_stream).
 * The connection (and the stream creation) is made before returning.
 * Returns: FO_OK; FO_EINVAL (NULL argument, empty @subject, bad URL or
 * options, codec without encode); FO_ESYS (no server: refused, unreachable,
 * timed out; thread creation); FO_FAILED (the server refused: authorization,
 * opts.stream missing, stream creation); FO_ENOMEM.  The message:
 * fo_nats_errmsg().  Without opts.stream, a subject no stream stores is
 * found by the first publish ("no responders"), retried up to
 * retry_timeout_ms, then reported by fo_nats_sink_stop() as FO_ESYS.
 * Ownership: on success the sink owns @c; on failure the caller keeps it.
 * Threads: any; afterwards @c is used only by the sink's thread.
 */
FO_API int fo_nats_sink_start(fo_nats_sink **s, fo_cursor *c, const char *url, const char *subject,
                              const fo_codec *codec, const fo_nats_opts *o);

/** fo_nats_sink_get_stats() - a snapshot.  FO_OK; FO_EINVAL (NULL).  Threads: any. */
FO_API int fo_nats_sink_get_stats(fo_nats_sink *s, fo_nats_sink_stats *out);

/**
 * fo_nats_sink_stop() - flush and free: the items the cursor has ready now
 * (all of them if the stream is closed) are published and acknowledged
 * (retrying up to retry_timeout_ms), the thread joined, the cursor closed.
 * Returns: FO_OK; the first error (FO_ESYS, FO_FAILED, a codec's code);
 * FO_EINVAL for NULL.  The sink is freed in every case.
 * Threads: any one thread, once.
 */
FO_API int fo_nats_sink_stop(fo_nats_sink *s);

/**
 * fo_nats_source() - an iterator over durable pull consumer @durable of
 * stream opts.stream (required; created over @subject if missing with
 * opts.create_stream), filtered on @subject (NULL: the whole stream).  The
 * durable is created if missing; an existing one must be a pull consumer
 * with the same filter (else FO_FAILED).
 * Items: borrowed until the next read or close, then acknowledged and freed.
 * After retry_timeout_ms without a server, or a server error, the iterator
 * fails (FO_FAILED; fo_iter_error(): FO_ESYS / FO_FAILED and the message)
 * after the messages already buffered.  A decode error fails it with the
 * codec's code (the message is not acknowledged).  Never FO_END.
 * Returns: FO_OK; FO_EINVAL (NULL or empty argument, a durable name with
 * '.', '*', '>' or a space, no opts.stream, bad URL, codec without decode);
 * FO_ESYS (no server); FO_FAILED (missing stream, authorization, a durable
 * of another kind or filter, ...); FO_ENOMEM.  The message: fo_nats_errmsg().
 * Threads: one reader at a time, like every iterator.
 */
FO_API int fo_nats_source(fo_iter **it, const char *url, const char *subject, const char *durable,
                          const fo_codec *codec, const fo_nats_opts *o);

/** fo_nats_errmsg() - the message of the last failed fo_nats_* call on this thread ("" if none). */
FO_API const char *fo_nats_errmsg(void);

/** fo_nats_errno() - errno of the last FO_ESYS of an fo_nats_* call on this thread, else 0. */
FO_API int fo_nats_errno(void);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_NATS_H */

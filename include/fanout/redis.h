/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/redis.h - a bridge to Redis Streams (library fanout::redis,
 * pkg-config fanout-redis; built when hiredis is found; not included by
 * fanout.h).
 *
 * SINK: a thread drains a cursor into a Redis stream with pipelined XADD
 * batches.  An active cursor makes Redis backpressure reach the producers
 * through the stream's capacity; a passive cursor is a lossy tap that never
 * slows anyone (fo_redis_sink_get_stats().lagged counts what it skipped).
 * Every entry gets an explicit id "<base>-<n>": <base> is a millisecond
 * value above the key's last generated id, chosen at start, <n> counts
 * this sink's items from 1.  A batch re-sent after a lost reply therefore
 * cannot be stored twice: Redis refuses an id at or below the top one,
 * and the sink reads that refusal as "already stored".  Consequence: a
 * sink must be the only writer of its key.
 *
 * SOURCE: an fo_iter over a consumer group.  A reader thread (XREADGROUP
 * BLOCK, no polling) keeps up to opts.prefetch decoded entries ready; an
 * acker thread sends XACK for every entry the reader has released.  The
 * iterator BORROWS (fo_iter_borrows() is true): an item is valid until the
 * next read or the close, and that is when it is released: freed with the
 * codec's item_free and acknowledged.  So a consumer that crashes loses
 * nothing: what it had not finished stays pending in Redis.  On start, and
 * after every reconnect, this consumer's own pending entries are delivered
 * first (those it handed out already are not repeated), then entries other
 * consumers left idle for opts.claim_idle_ms are claimed (XAUTOCLAIM), then
 * new ones; the claim is repeated periodically (see claim_idle_ms).  Several consumers in one group
 * share the entries: each goes to exactly one.  fo_iter_fd()/fo_iter_arm() work as for every
 * waitable iterator.
 *
 * FAULTS: connections have connect and I/O timeouts; a lost connection is
 * re-established with capped exponential backoff for up to
 * opts.retry_timeout_ms, then the object fails (a sink stops reading, a
 * source fails with FO_FAILED after its buffered items).  Delivery is
 * at-least-once on the wire and exactly-once downstream for a sink -> source
 * pair as long as readers do not crash: duplicates are removed by id.
 *
 * Errors: FO_EINVAL for bad arguments (NULL, empty names, an unparsable
 * URL, codec without encode/decode); FO_ESYS for a refused, unreachable or
 * timed-out connection (errno kept: fo_redis_errno()); FO_FAILED for an
 * error reply of the server (wrong password, missing stream or group,
 * WRONGTYPE, ...).  fo_redis_errmsg() gives the engine's message.
 *
 * URL: redis://[[user]:password@]host[:port][/db] (port 6379, db 0) or
 * unix:///path/to/socket[?db=N].
 *
 * Entries: one field, opts.field (default "d"), holding the codec's bytes.
 */
#ifndef FANOUT_REDIS_H
#define FANOUT_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <fanout/codec.h>
#include <fanout/iter.h>
#include <fanout/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_redis_sink fo_redis_sink;

/**
 * fo_redis_opts - options for sinks and sources; fo_redis_opts_init() first.
 * @connect_timeout_ms: per connection attempt (default 2000).
 * @io_timeout_ms:      for a reply (default 5000; a source's blocking read
 *                      waits block_ms more).
 * @retry_timeout_ms:   how long to keep reconnecting after a connection is
 *                      lost before failing (default 30000; 0: fail at once).
 * @backoff_min_ms, @backoff_max_ms: reconnect backoff, doubled from min up
 *                      to max (defaults 10, 1000).
 * @batch:              sink: items per pipelined batch; source: COUNT of a
 *                      read (default 256).
 * @linger_us:          sink: how long a partial batch waits to fill
 *                      (default 0: send what is ready).
 * @maxlen:             sink: XADD MAXLEN ~ @maxlen (0: no trimming).
 * @field:              the entry's field name (default "d"; copied).
 * @create_group:       source: create the group (and the stream,
 *                      MKSTREAM) if missing, starting at @group_start.
 * @group_start:        source: "0" (default: the whole stream) or "$".
 * @block_ms:           source: XREADGROUP BLOCK time before the reader
 *                      re-issues its read (default 1000).
 * @prefetch:           source: decoded entries kept ready (default 1024).
 * @claim_idle_ms:      source: claim other consumers' pending entries
 *                      idle at least this long (XAUTOCLAIM) on start, after
 *                      reconnects and then every max(claim_idle_ms, 1 s),
 *                      so the entries of a consumer that died are taken
 *                      over while this one runs; negative: never (default
 *                      -1).  It must exceed the longest time a live
 *                      consumer holds an entry (else both get it).
 */
typedef struct fo_redis_opts {
	int connect_timeout_ms;
	int io_timeout_ms;
	int retry_timeout_ms;
	int backoff_min_ms;
	int backoff_max_ms;
	size_t batch;
	int linger_us;
	size_t maxlen;
	const char *field;
	int create_group;
	const char *group_start;
	int block_ms;
	size_t prefetch;
	int64_t claim_idle_ms;
} fo_redis_opts;

/** fo_redis_opts_init() - fill @o with the defaults above.  NULL: no-op. */
FO_API void fo_redis_opts_init(fo_redis_opts *o);

/**
 * fo_redis_sink_stats - counters of a sink (read with fo_redis_sink_get_stats()).
 * @sent:     items Redis confirmed (stored now or by an earlier attempt).
 * @batches:  pipelined batches sent (attempts included).
 * @retries:  reconnects after a lost connection.
 * @lagged:   items a passive cursor skipped.
 * @dropped:  items the codec could not encode (not sent).
 * @failed:   the sink has stopped on an error (reported by stop).
 */
typedef struct fo_redis_sink_stats {
	uint64_t sent;
	uint64_t batches;
	uint64_t retries;
	uint64_t lagged;
	uint64_t dropped;
	int failed;
} fo_redis_sink_stats;

/**
 * fo_redis_sink_start() - start a thread that appends every item @c
 * returns to stream @key.
 * @s:     out: the sink.
 * @c:     the cursor (active: lossless, backpressure; passive: a tap).
 * @url:   see the file comment.  @key: the stream key (copied).
 * @codec: turns items into bytes (copied; encode required).
 * @o:     options (NULL: defaults).
 * The connection is made (and the key's last id read) before returning, so
 * a bad address or password is reported here, within the timeouts.
 * Returns: FO_OK; FO_EINVAL (NULL argument, empty @key, bad URL, codec
 * without encode); FO_ESYS (connection refused / unreachable / timed out;
 * thread creation failed); FO_FAILED (an error reply, e.g. WRONGPASS,
 * WRONGTYPE); FO_ENOMEM.  The message: fo_redis_errmsg().
 * Ownership: on success the sink owns @c (closes it when it ends); on
 * failure the caller keeps it.  Stop the sink with fo_redis_sink_stop().
 * Threads: any; afterwards @c is used only by the sink's thread.
 */
FO_API int fo_redis_sink_start(fo_redis_sink **s, fo_cursor *c, const char *url, const char *key,
                               const fo_codec *codec, const fo_redis_opts *o);

/**
 * fo_redis_sink_get_stats() - a snapshot of @s's counters.
 * Returns: FO_OK; FO_EINVAL (NULL argument).  Threads: any.
 */
FO_API int fo_redis_sink_get_stats(fo_redis_sink *s, fo_redis_sink_stats *out);

/**
 * fo_redis_sink_stop() - flush and free the sink: the items the cursor has
 * ready when this is called (all remaining ones if the stream is closed)
 * and those the thread holds are sent (retrying for up to
 * opts.retry_timeout_ms), then the thread is joined, the cursor closed and
 * everything freed.  NULL: FO_EINVAL.
 * Returns: FO_OK when everything was stored; otherwise the first error the
 * sink met: FO_ESYS (connection lost for longer than retry_timeout_ms),
 * FO_FAILED (an error reply; or the stream failed: its message), or the
 * codec's code for an item it could not encode (dropped).  The message:
 * fo_redis_errmsg().  The sink is freed in every case (never stop twice).
 * Threads: any one thread, once.  Blocking: for the flush.
 */
FO_API int fo_redis_sink_stop(fo_redis_sink *s);

/**
 * fo_redis_source() - an iterator over consumer group @group of stream
 * @key, reading as consumer @consumer (see the file comment).
 * @codec: turns bytes into items (copied; decode required; item_free frees
 *         them after release).
 * The connection, the group creation (opts.create_group) and the first read
 * of pending entries happen before returning, so a bad address, a wrong
 * password or a missing stream/group is reported here.
 * Items: borrowed: valid until the next read or fo_iter_close(); released
 * (freed and acknowledged) then.  A decode error ends the iterator with
 * FO_FAILED carrying the codec's code; the entry stays pending.  A
 * connection lost for longer than retry_timeout_ms, or an error reply,
 * ends it with FO_FAILED (fo_iter_error(): FO_ESYS or FO_FAILED, the
 * engine's message) after the items already buffered.  Never FO_END.
 * Returns: FO_OK; FO_EINVAL (NULL or empty argument, bad URL, codec without
 * decode); FO_ESYS (connection refused / unreachable / timed out; thread
 * creation); FO_FAILED (an error reply: WRONGPASS, NOGROUP when the stream
 * or group is missing and create_group is off, ...); FO_ENOMEM.  The
 * message: fo_redis_errmsg().
 * Ownership: the caller owns *@it (fo_iter_close() releases the last item,
 * sends the outstanding acknowledgements, joins the threads).
 * Threads: reads on one thread at a time, like every iterator.
 */
FO_API int fo_redis_source(fo_iter **it, const char *url, const char *key, const char *group,
                           const char *consumer, const fo_codec *codec, const fo_redis_opts *o);

/**
 * fo_redis_errmsg() - the message of the last failed fo_redis_* call on
 * this thread (the engine's text, or the reason for FO_EINVAL); "" if none.
 * Valid until the next fo_redis_* call on this thread.
 */
FO_API const char *fo_redis_errmsg(void);

/** fo_redis_errno() - errno of the last FO_ESYS of an fo_redis_* call on this thread, else 0. */
FO_API int fo_redis_errno(void);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_REDIS_H */

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * nats.c - the NATS JetStream bridge (fanout/nats.h): a sink thread that
 * drains a cursor into asynchronous JetStream publishes with per-message ids,
 * and a durable pull consumer read as an fo_iter.  Shared machinery in
 * ../common.h; protocols in docs/design.md §14.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include <fanout/nats.h>

#include "../common.h"
#include "iter_impl.h"

const char *fo_nats_errmsg(void)
{
	return tl_msg;
}

int fo_nats_errno(void)
{
	return tl_errno;
}

void fo_nats_opts_init(fo_nats_opts *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = 2000;
	o->io_timeout_ms = 5000;
	o->retry_timeout_ms = 30000;
	o->backoff_min_ms = 10;
	o->backoff_max_ms = 1000;
	o->batch = 256;
	o->duplicate_window_ms = 120000;
	o->block_ms = 1000;
	o->prefetch = 1024;
	o->ack_wait_ms = 30000;
}

static int opts_check(fo_nats_opts *dst, const fo_nats_opts *o, const char *url)
{
	if (o)
		*dst = *o;
	else
		fo_nats_opts_init(dst);
	if (dst->connect_timeout_ms <= 0 || dst->io_timeout_ms <= 0 || dst->retry_timeout_ms < 0 ||
	    dst->backoff_min_ms <= 0 || dst->backoff_max_ms < dst->backoff_min_ms ||
	    dst->batch == 0 || dst->batch > INT32_MAX || dst->linger_us < 0 || dst->block_ms <= 0 ||
	    dst->prefetch == 0 || dst->ack_wait_ms <= 0 || dst->duplicate_window_ms < 0)
		return fail_inval("bad fo_nats_opts: a timeout, batch or prefetch is out of range");
	if (strncmp(url, "nats://", 7) != 0 && strncmp(url, "tls://", 6) != 0)
		return fail_inval("bad URL: expected nats://[user:password@]host[:port]");
	return FO_OK;
}

/* A client status as an fo error: no server / timeouts are FO_ESYS. */
static int nats_err(struct rerr *e, natsStatus st, jsErrCode jerr, const char *what)
{
	const char *text = nats_GetLastError(NULL);
	if (!text || !*text)
		text = natsStatus_GetText(st);
	if (text[0] == '(' && strstr(text, "): ")) /* "(jsm.c:2867): stream not found" */
		text = strstr(text, "): ") + 3;
	if (st == NATS_NOT_FOUND && jerr == JSStreamNotFoundErr) /* the text is "Not Found" */
		text = "stream not found";
	switch (st) {
	case NATS_NO_SERVER:
		return rerr_set(e, FO_ESYS, ECONNREFUSED, "nats: %s: %s", what, text);
	case NATS_TIMEOUT:
		return rerr_set(e, FO_ESYS, ETIMEDOUT, "nats: %s: %s", what, text);
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_IO_ERROR:
	case NATS_STALE_CONNECTION:
	case NATS_NO_RESPONDERS:
		return rerr_set(e, FO_ESYS, st == NATS_IO_ERROR ? EIO : ECONNRESET, "nats: %s: %s",
		                what, text);
	case NATS_NO_MEMORY:
		return rerr_set(e, FO_ENOMEM, 0, "nats: %s: %s", what, text);
	default:
		if (jerr)
			return rerr_set(e, FO_FAILED, 0, "nats: %s: %s (JetStream error %d)", what,
			                text, (int)jerr);
		return rerr_set(e, FO_FAILED, 0, "nats: %s: %s", what, text);
	}
}

/* Reconnect delays: doubled from the minimum, capped. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
	(void)nc;
	const fo_nats_opts *o = closure;
	return backoff_ms(o->backoff_min_ms, o->backoff_max_ms,
	                  attempts > 0 ? (unsigned)attempts - 1 : 0);
}

/* Connect (the client reconnects by itself afterwards) and get a JetStream context. */
static int nconnect(const char *url, const fo_nats_opts *o, jsOptions *jo, natsConnection **nc,
                    jsCtx **js, struct rerr *e)
{
	natsOptions *opts = NULL;
	natsStatus st = natsOptions_Create(&opts);
	if (st == NATS_OK)
		st = natsOptions_SetURL(opts, url);
	if (st == NATS_OK)
		st = natsOptions_SetTimeout(opts, o->connect_timeout_ms);
	if (st == NATS_OK)
		st = natsOptions_SetMaxReconnect(opts, -1); /* forever: the bridges time out */
	if (st == NATS_OK)
		st = natsOptions_SetCustomReconnectDelay(opts, reconnect_delay, (void *)o);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectBufSize(opts, 64 * 1024 * 1024);
	if (st != NATS_OK) {
		natsOptions_Destroy(opts);
		return nats_err(e, st, 0, "options");
	}
	st = natsConnection_Connect(nc, opts);
	natsOptions_Destroy(opts);
	if (st != NATS_OK)
		return nats_err(e, st, 0, "connect");
	st = natsConnection_JetStream(js, *nc, jo);
	if (st != NATS_OK) {
		natsConnection_Destroy(*nc);
		*nc = NULL;
		return nats_err(e, st, 0, "JetStream context");
	}
	return FO_OK;
}

/* ------------------------------------------------------------------------ */
/* Sink                                                                      */

struct fo_nats_sink {
	fo_nats_opts o;
	char *url, *subject, *stream;
	fo_codec codec;
	struct drain d;
	natsConnection *nc;
	jsCtx *js;
	pthread_t thread;
	char sink_id[24]; /* the Nats-Msg-Id prefix */
	uint64_t seq;
	natsMsg **batch; /* built by take(), published by the thread */
	size_t n;
	fo_buf buf;
	pthread_mutex_t mu;     /* below: shared with the client's ack callbacks */
	pthread_cond_t cv_acks; /* outstanding reached 0 */
	size_t outstanding;     /* published, neither called back nor taken back */
	natsMsg **resend;       /* messages whose publish failed: sent again */
	size_t nresend, resend_cap;
	fo_nats_sink_stats st;
	struct rerr err;  /* the first error */
	struct rerr last; /* the last publish failure, for a timeout's report */
};

static void sink_record(fo_nats_sink *s, const struct rerr *e)
{
	pthread_mutex_lock(&s->mu);
	if (!s->err.code)
		s->err = *e;
	pthread_mutex_unlock(&s->mu);
}

/* With mu held: keep @m to publish again (ownership taken). */
static void sink_keep_locked(fo_nats_sink *s, natsMsg *m)
{
	if (s->nresend == s->resend_cap) {
		size_t ncap = s->resend_cap ? 2 * s->resend_cap : 256;
		natsMsg **nv = realloc(s->resend, ncap * sizeof(*nv));
		if (!nv) { /* cannot keep it: it is lost, say so */
			rerr_set(&s->err, FO_ENOMEM, 0, "nats sink: no memory to retry a publish");
			natsMsg_Destroy(m);
			return;
		}
		s->resend = nv;
		s->resend_cap = ncap;
	}
	s->resend[s->nresend++] = m;
}

/* The client's callback for every asynchronous publish (its thread). */
static void sink_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	fo_nats_sink *s = closure;
	pthread_mutex_lock(&s->mu);
	if (--s->outstanding == 0)
		pthread_cond_broadcast(&s->cv_acks);
	if (pa) {
		s->st.sent++;
		natsMsg_Destroy(msg);
	} else {
		/* No responders while JetStream restarts, a timeout, ...: the id
		 * makes a second publish safe. */
		nats_err(&s->last, pae ? pae->Err : NATS_ERR, pae ? pae->ErrCode : 0, "publish");
		if (pae && pae->ErrText)
			snprintf(s->last.msg, sizeof(s->last.msg), "nats: publish: %s",
			         pae->ErrText);
		sink_keep_locked(s, msg);
	}
	pthread_mutex_unlock(&s->mu);
}

static void sink_take(void *ctx, void **items, size_t k)
{
	fo_nats_sink *s = ctx;
	for (size_t i = 0; i < k; i++) {
		fo_buf_reset(&s->buf);
		int rc = s->codec.encode(s->codec.ctx, items[i], &s->buf);
		natsMsg *m = NULL;
		if (rc == FO_OK && natsMsg_Create(&m, s->subject, NULL, (const char *)s->buf.data,
		                                  (int)s->buf.len) != NATS_OK)
			rc = FO_ENOMEM;
		char id[48];
		snprintf(id, sizeof(id), "%s-%" PRIu64, s->sink_id, s->seq + 1);
		if (rc == FO_OK && natsMsgHeader_Set(m, "Nats-Msg-Id", id) != NATS_OK)
			rc = FO_ENOMEM;
		if (rc != FO_OK) {
			natsMsg_Destroy(m);
			struct rerr e;
			rerr_set(&e, rc, 0, "nats sink: encode failed: %s", fo_strerror(rc));
			sink_record(s, &e);
			pthread_mutex_lock(&s->mu);
			s->st.dropped++;
			pthread_mutex_unlock(&s->mu);
			continue;
		}
		s->seq++;
		s->batch[s->n++] = m;
	}
}

/*
 * Publish the batch and wait for every acknowledgement, publishing again what
 * failed or timed out, for up to retry_timeout_ms without progress.
 */
static int sink_send(fo_nats_sink *s)
{
	struct retry r =
	    retry_init(s->o.retry_timeout_ms, s->o.backoff_min_ms, s->o.backoff_max_ms);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = s->o.io_timeout_ms;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++)
		sink_keep_locked(s, s->batch[i]);
	s->st.batches++;
	pthread_mutex_unlock(&s->mu);
	s->n = 0;
	bool first = true;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		natsMsg **todo = s->resend;
		size_t n = s->nresend;
		s->resend = NULL;
		s->nresend = s->resend_cap = 0;
		if (!first)
			s->st.retries += n;
		pthread_mutex_unlock(&s->mu);
		first = false;
		/* counted before: a callback may run before its publish call returns */
		pthread_mutex_lock(&s->mu);
		s->outstanding += n;
		pthread_mutex_unlock(&s->mu);
		natsStatus st = NATS_OK;
		for (size_t i = 0; i < n; i++) {
			if (st == NATS_OK)
				st = js_PublishMsgAsync(s->js, &todo[i], &po);
			if (todo[i]) { /* not taken: keep it for the next round */
				pthread_mutex_lock(&s->mu);
				s->outstanding--;
				sink_keep_locked(s, todo[i]);
				pthread_mutex_unlock(&s->mu);
			}
		}
		free(todo);
		if (st == NATS_OK)
			st = js_PublishAsyncComplete(s->js, &po);
		if (st == NATS_TIMEOUT) {
			/* acks that did not come: take the messages back to resend (no
			 * callback comes for them any more) */
			natsMsgList pending = {0};
			if (js_PublishAsyncGetPendingList(&pending, s->js) == NATS_OK) {
				pthread_mutex_lock(&s->mu);
				for (int i = 0; i < pending.Count; i++) {
					sink_keep_locked(s, pending.Msgs[i]);
					pending.Msgs[i] = NULL;
				}
				s->outstanding -= (size_t)pending.Count;
				pthread_mutex_unlock(&s->mu);
				natsMsgList_Destroy(&pending);
			}
		}
		/* A message whose ack timed out leaves the client's pending set before
		 * its callback runs: wait for those callbacks (they are imminent). */
		pthread_mutex_lock(&s->mu);
		struct timespec until = ns_ts(now_ns() + (uint64_t)s->o.io_timeout_ms * 1000000u);
		while (s->outstanding > 0 && (st == NATS_OK || st == NATS_TIMEOUT))
			if (pthread_cond_timedwait(&s->cv_acks, &s->mu, &until) == ETIMEDOUT)
				break;
		bool done =
		    s->nresend == 0 && s->outstanding == 0 && (st == NATS_OK || st == NATS_TIMEOUT);
		struct rerr last = s->last;
		size_t left = s->nresend;
		pthread_mutex_unlock(&s->mu);
		if (done)
			return FO_OK;
		struct rerr e;
		if (st != NATS_OK && st != NATS_TIMEOUT)
			nats_err(&e, st, 0, "publish");
		else if (last.code)
			e = last;
		else
			rerr_set(&e, FO_ESYS, ETIMEDOUT, "nats: %zu publishes not acknowledged",
			         left);
		if (retry_failed(&r) || (e.code != FO_ESYS && e.code != FO_FAILED)) {
			sink_record(s, &e);
			return e.code;
		}
		drain_sleep(&s->d, retry_backoff(&r));
	}
}

static void *sink_main(void *arg)
{
	fo_nats_sink *s = arg;
	for (;;) {
		size_t got = drain_fill(&s->d, s->o.batch, s->o.linger_us, sink_take, s);
		pthread_mutex_lock(&s->mu);
		s->st.lagged = s->d.lagged;
		pthread_mutex_unlock(&s->mu);
		if (s->n > 0 && sink_send(s) != FO_OK)
			break;
		if (drain_done(&s->d, got))
			break;
	}
	struct rerr e;
	if (drain_finish(&s->d, "nats sink", &e))
		sink_record(s, &e);
	pthread_mutex_lock(&s->mu);
	s->st.failed = s->err.code != 0;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void sink_free(fo_nats_sink *s)
{
	if (s->js)
		jsCtx_Destroy(s->js);
	if (s->nc) {
		natsConnection_Close(s->nc);
		natsConnection_Destroy(s->nc);
	}
	for (size_t i = 0; i < s->n; i++)
		natsMsg_Destroy(s->batch[i]);
	for (size_t i = 0; i < s->nresend; i++)
		natsMsg_Destroy(s->resend[i]);
	free(s->resend);
	free(s->batch);
	fo_buf_fini(&s->buf);
	drain_fini(&s->d);
	free(s->url);
	free(s->subject);
	free(s->stream);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv_acks);
	free(s);
}

/* Check that opts.stream exists; with opts.create_stream, create it over @subject if not. */
static int ensure_stream(jsCtx *js, const char *stream, const char *subject, const fo_nats_opts *o,
                         struct rerr *e)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus st = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
	if (st == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return FO_OK;
	}
	if (st != NATS_NOT_FOUND || !o->create_stream)
		return nats_err(e, st, jerr, "stream info");
	jsStreamConfig cfg;
	jsStreamConfig_Init(&cfg);
	cfg.Name = stream;
	const char *subjects[1] = {subject};
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Duplicates = o->duplicate_window_ms * 1000000;
	st = js_AddStream(&si, js, &cfg, NULL, &jerr);
	if (st != NATS_OK)
		return nats_err(e, st, jerr, "create stream");
	jsStreamInfo_Destroy(si);
	return FO_OK;
}

int fo_nats_sink_start(fo_nats_sink **out, fo_cursor *c, const char *url, const char *subject,
                       const fo_codec *codec, const fo_nats_opts *o)
{
	if (!out || !c || !url || !subject || !codec)
		return fail_inval("fo_nats_sink_start: NULL argument");
	if (!*subject)
		return fail_inval("fo_nats_sink_start: empty subject");
	if (!codec->encode)
		return fail_inval("fo_nats_sink_start: the codec has no encode");
	fo_nats_sink *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	s->d.stop_efd = -1;
	pthread_mutex_init(&s->mu, NULL);
	if (fo__cond_init(&s->cv_acks) != FO_OK) {
		pthread_mutex_destroy(&s->mu);
		free(s);
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	fo_buf_init(&s->buf);
	int rc = opts_check(&s->o, o, url);
	if (rc == FO_OK && s->o.create_stream && (!s->o.stream || !*s->o.stream))
		rc = fail_inval("fo_nats_sink_start: create_stream without opts.stream");
	if (rc != FO_OK) {
		sink_free(s);
		return rc;
	}
	s->codec = *codec;
	s->url = strdup(url);
	s->subject = strdup(subject);
	s->stream = s->o.stream ? strdup(s->o.stream) : NULL;
	s->o.stream = s->stream;
	s->batch = calloc(s->o.batch, sizeof(*s->batch));
	if (!s->url || !s->subject || !s->batch || (s->o.stream && !s->stream)) {
		sink_free(s);
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	uint64_t r = now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
	r ^= r >> 31;
	r *= 0x9E3779B97F4A7C15ull;
	snprintf(s->sink_id, sizeof(s->sink_id), "%016" PRIx64, r);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = s->o.io_timeout_ms;
	jo.PublishAsync.AckHandler = sink_ack;
	jo.PublishAsync.AckHandlerClosure = s;
	jo.PublishAsync.MaxPending = (int64_t)s->o.batch;
	struct rerr e = {0};
	rc = nconnect(url, &s->o, &jo, &s->nc, &s->js, &e);
	if (rc == FO_OK && s->stream)
		rc = ensure_stream(s->js, s->stream, subject, &s->o, &e);
	if (rc == FO_OK) {
		rc = drain_init(&s->d, c, s->o.batch);
		if (rc != FO_OK)
			rerr_set(&e, rc, rc == FO_ESYS ? errno : 0,
			         rc == FO_EINVAL ? "fo_nats_sink_start: the cursor's fd is taken"
			                         : "fo_nats_sink_start: no resources");
	}
	if (rc != FO_OK) {
		s->d.cur = NULL; /* the caller keeps the cursor */
		sink_free(s);
		return rerr_publish(&e);
	}
	if (pthread_create(&s->thread, NULL, sink_main, s) != 0) {
		int err = errno;
		s->d.cur = NULL;
		sink_free(s);
		rerr_set(&e, FO_ESYS, err, "pthread_create failed");
		return rerr_publish(&e);
	}
	tl_msg[0] = '\0';
	*out = s;
	return FO_OK;
}

int fo_nats_sink_get_stats(fo_nats_sink *s, fo_nats_sink_stats *out)
{
	if (!s || !out)
		return FO_EINVAL;
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	pthread_mutex_unlock(&s->mu);
	return FO_OK;
}

int fo_nats_sink_stop(fo_nats_sink *s)
{
	if (!s)
		return fail_inval("fo_nats_sink_stop: NULL sink");
	drain_request_stop(&s->d);
	pthread_join(s->thread, NULL);
	struct rerr e; /* the thread is gone; the client's callbacks may still run */
	pthread_mutex_lock(&s->mu);
	e = s->err;
	pthread_mutex_unlock(&s->mu);
	sink_free(s);
	return rerr_publish(&e);
}

/* ------------------------------------------------------------------------ */
/* Source                                                                    */

/*
 * The source pulls by itself: a core subscription on "<inbox>.*" and pull
 * requests ("$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>", reply
 * "<inbox>.<n>", one at a time), not natsSubscription_Fetch.  libnats 3.4.1's
 * fetch counts the messages it finds already queued on the subscription
 * against a batch it then shrinks by that count, so with more than half a
 * batch queued (the replies to pull requests that waited in the reconnect
 * buffer, flushed together after a server restart) it writes past its
 * array.  Here every message that arrives is taken, whichever request it
 * answers (the consumer's MaxAckPending bounds them), and a request ends with
 * its batch, its own status (408 expired, 404, 409) or a timeout.
 */

#define SEEN_WINDOW 65536 /* acknowledged sequences remembered */
#define ACK_PREFIX  "$JS.ACK."

struct nsource {
	struct bsrc b; /* first: the iterator, the ring, the mutex */
	fo_nats_opts o;
	char *stream;
	fo_codec codec;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub; /* "<inbox>.*" */
	char *inbox;
	char *next_subj;   /* $JS.API.CONSUMER.MSG.NEXT.<stream>.<durable> */
	uint64_t req_no;   /* the reader's: the last pull request's number */
	uint64_t req_open; /* the reader's: that request's deadline while not over, else 0 */
	pthread_t reader;
	bool reader_started;
	/* under b.mu */
	struct idset inflight;  /* handed to the ring, not yet released */
	struct idset acked;     /* released recently (a window) */
	struct rid *acked_fifo; /* the window's order */
	size_t acked_head, acked_n;
};

/* With mu held: remember @id as acknowledged (the oldest leaves the window). */
static void src_remember_locked(struct nsource *s, struct rid id)
{
	if (s->acked_n == SEEN_WINDOW) {
		idset_del(&s->acked, s->acked_fifo[s->acked_head]);
		s->acked_head = (s->acked_head + 1) % SEEN_WINDOW;
		s->acked_n--;
	}
	if (idset_add(&s->acked, id) != FO_OK)
		return; /* no memory: only the duplicate filter gets weaker */
	s->acked_fifo[(s->acked_head + s->acked_n) % SEEN_WINDOW] = id;
	s->acked_n++;
}

/*
 * The stream sequence in a message's ack subject, without natsMsg_GetMetaData's
 * three allocations: "$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.
 * <time>.<pending>" (9 tokens) or, with a domain and an account hash, 2 tokens
 * more before <stream> (and possibly one after).  0: not such a subject.
 */
static uint64_t ack_stream_seq(const char *r)
{
	const char *tok[16];
	int n = 0;
	if (!r || strncmp(r, ACK_PREFIX, strlen(ACK_PREFIX)) != 0)
		return 0;
	for (const char *p = r; n < 16; p++) {
		tok[n++] = p;
		p = strchr(p, '.');
		if (!p)
			break;
	}
	int at = n == 9 ? 5 : n >= 11 ? 7 : -1;
	if (at < 0)
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(tok[at], &end, 10);
	return errno || *end != '.' ? 0 : (uint64_t)v;
}

/* Acknowledge a message (its reply subject is the consumer's ack subject). */
static void src_ack(struct nsource *s, natsMsg *m)
{
	/* lost with a connection: redelivered after AckWait, then skipped */
	natsConnection_PublishString(s->nc, natsMsg_GetReply(m), "+ACK");
}

/* Give a message back: redelivered at once (to any reader of the durable),
 * not after AckWait. */
static void src_nak(struct nsource *s, natsMsg *m)
{
	natsConnection_PublishString(s->nc, natsMsg_GetReply(m), "-NAK");
}

/*
 * Deliver one message (ownership taken): into the ring, or dropped if it is
 * held or was acknowledged already.  FO_OK, FO_ECANCELED (closing) or an
 * error in @e.
 */
static int src_deliver(struct nsource *s, natsMsg *m, struct rerr *e)
{
	uint64_t seq = ack_stream_seq(natsMsg_GetReply(m));
	if (!seq) {
		natsMsg_Destroy(m);
		return rerr_set(e, FO_FAILED, 0, "nats source: a message without metadata");
	}
	struct rid id = {seq, 1};
	pthread_mutex_lock(&s->b.mu);
	bool held = idset_has(&s->inflight, id), done = idset_has(&s->acked, id);
	pthread_mutex_unlock(&s->b.mu);
	if (done)
		src_ack(s, m); /* its earlier ack was lost: acknowledge again */
	if (held || done) {
		natsMsg_Destroy(m);
		return FO_OK;
	}
	void *item = NULL;
	int drc = s->codec.decode(s->codec.ctx, natsMsg_GetData(m),
	                          (size_t)natsMsg_GetDataLength(m), &item);
	if (drc != FO_OK || !item) {
		natsMsg_Destroy(m);
		return rerr_set(e, drc != FO_OK ? drc : FO_FAILED, 0,
		                "nats source: message %" PRIu64 ": decode failed: %s", id.ms,
		                fo_strerror(drc));
	}
	pthread_mutex_lock(&s->b.mu);
	int arc = idset_add(&s->inflight, id);
	if (arc == FO_OK && bsrc_push_locked(&s->b, (struct bentry){id, item, m})) {
		pthread_mutex_unlock(&s->b.mu);
		return FO_OK;
	}
	if (arc == FO_OK)
		idset_del(&s->inflight, id);
	pthread_mutex_unlock(&s->b.mu);
	if (s->codec.item_free)
		s->codec.item_free(item, s->codec.ctx);
	if (arc == FO_OK)
		src_nak(s, m); /* closing */
	natsMsg_Destroy(m);
	return arc == FO_OK ? FO_ECANCELED : rerr_set(e, FO_ENOMEM, 0, "nats source: no memory");
}

/* A status message (no ack subject) answering pull request @reply: has the
 * request ended?  false: keep waiting; true: ended (FO_OK) or an error in @e. */
static bool src_status(natsMsg *m, const char *reply, int *rc, struct rerr *e)
{
	const char *code = NULL, *desc = NULL;
	if (strcmp(natsMsg_GetSubject(m), reply) != 0 ||
	    natsMsgHeader_Get(m, "Status", &code) != NATS_OK || !code)
		return false; /* an earlier request's, or not a status: ignored */
	natsMsgHeader_Get(m, "Description", &desc);
	if (!desc)
		desc = "";
	if (!strcmp(code, "408") || !strcmp(code, "404") || !strcmp(code, "100"))
		return strcmp(code, "100") != 0; /* expired / no messages; 100: heartbeat */
	if (!strcmp(code, "409") && !strstr(desc, "Deleted"))
		return true;      /* too many waiting requests, a leader change: ask again */
	if (!strcmp(code, "503")) /* no responders: JetStream is (re)starting */
		*rc =
		    rerr_set(e, FO_ESYS, ECONNRESET, "nats source: pull: no responders (%s)", desc);
	else
		*rc = rerr_set(e, FO_FAILED, 0, "nats source: pull: %s %s", code, desc);
	return true;
}

static int src_pull_wait(struct nsource *s, const char *reply, size_t want, uint64_t deadline,
                         struct rerr *e);

/*
 * One pull request for @want messages, delivered as they come, until the
 * batch is full, the request's own status ends it, or block_ms plus a grace
 * passed without it.  FO_OK, FO_ECANCELED or an error in @e.
 */
static int src_pull(struct nsource *s, size_t want, struct rerr *e)
{
	char reply[128], body[96];
	snprintf(reply, sizeof(reply), "%s.%" PRIu64, s->inbox, ++s->req_no);
	/* the server expires the request a little before we stop waiting for it */
	int n = snprintf(body, sizeof(body), "{\"batch\":%zu,\"expires\":%" PRId64 "}", want,
	                 (int64_t)s->o.block_ms * 1000000);
	natsStatus st = natsConnection_PublishRequest(s->nc, s->next_subj, reply, body, n);
	if (st != NATS_OK)
		return nats_err(e, st, 0, "pull request");
	int grace = s->o.io_timeout_ms < 500 ? s->o.io_timeout_ms : 500;
	uint64_t deadline = now_ns() + (uint64_t)(s->o.block_ms + grace) * 1000000u;
	int rc = src_pull_wait(s, reply, want, deadline, e);
	/* closing mid-request: close drains the rest, until its status or deadline */
	s->req_open = rc == FO_ECANCELED ? deadline : 0;
	return rc;
}

/* src_pull()'s wait for the messages of request @reply. */
static int src_pull_wait(struct nsource *s, const char *reply, size_t want, uint64_t deadline,
                         struct rerr *e)
{
	natsStatus st;
	for (size_t got = 0; got < want;) {
		uint64_t now = now_ns();
		natsMsg *m = NULL;
		if (now < deadline)
			st = natsSubscription_NextMsg(
			    &m, s->sub, (int64_t)((deadline - now + 999999u) / 1000000u));
		else
			st = NATS_TIMEOUT;
		if (st == NATS_TIMEOUT) {
			/* the request or its status was lost: with the server gone? */
			if (natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED)
				return FO_OK;
			return rerr_set(e, FO_ESYS, ECONNRESET,
			                "nats source: disconnected from the server");
		}
		if (st != NATS_OK)
			return nats_err(e, st, 0, "next message");
		const char *r = natsMsg_GetReply(m);
		if (r && !strncmp(r, ACK_PREFIX, strlen(ACK_PREFIX))) {
			int rc = src_deliver(s, m, e); /* whichever request it answers */
			if (rc != FO_OK)
				return rc;
			got++;
			continue;
		}
		int rc = FO_OK;
		bool ended = src_status(m, reply, &rc, e);
		natsMsg_Destroy(m);
		if (ended)
			return rc;
		pthread_mutex_lock(&s->b.mu);
		bool stop = s->b.stop; /* close wakes us with a message */
		pthread_mutex_unlock(&s->b.mu);
		if (stop)
			return FO_ECANCELED;
	}
	return FO_OK;
}

static void *src_reader_main(void *arg)
{
	struct nsource *s = arg;
	struct retry r =
	    retry_init(s->o.retry_timeout_ms, s->o.backoff_min_ms, s->o.backoff_max_ms);
	for (;;) {
		size_t room = bsrc_room(&s->b);
		if (!room)
			break;
		struct rerr e = {0};
		int rc = src_pull(s, room < s->o.batch ? room : s->o.batch, &e);
		if (rc == FO_ECANCELED)
			break;
		pthread_mutex_lock(&s->b.mu);
		if (s->b.stop) {
			pthread_mutex_unlock(&s->b.mu);
			break;
		}
		if (rc == FO_OK) {
			pthread_mutex_unlock(&s->b.mu);
			retry_ok(&r);
			continue;
		}
		if (rc != FO_ESYS || retry_failed(&r)) {
			bsrc_fail_locked(&s->b, &e);
			pthread_mutex_unlock(&s->b.mu);
			break;
		}
		bool closing = bsrc_sleep_locked(&s->b, retry_backoff(&r));
		pthread_mutex_unlock(&s->b.mu);
		if (closing)
			break;
	}
	return NULL;
}

/* Release the message handed out last: acknowledge it, free it. */
static void src_release_cur(struct nsource *s)
{
	struct bentry *c = &s->b.cur;
	if (!c->item)
		return;
	src_ack(s, c->handle);
	natsMsg_Destroy(c->handle);
	if (s->codec.item_free)
		s->codec.item_free(c->item, s->codec.ctx);
	pthread_mutex_lock(&s->b.mu);
	idset_del(&s->inflight, c->id);
	src_remember_locked(s, c->id);
	pthread_mutex_unlock(&s->b.mu);
	c->item = NULL;
	c->handle = NULL;
}

static int src_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct nsource *s = (struct nsource *)it;
	src_release_cur(s);
	return bsrc_next(&s->b, item, deadline);
}

/* A message never handed out: freed, not acknowledged (redelivered later). */
static void src_drop(struct bsrc *b, struct bentry *e)
{
	struct nsource *s = (struct nsource *)b;
	natsMsg_Destroy(e->handle);
	if (s->codec.item_free)
		s->codec.item_free(e->item, s->codec.ctx);
}

static void src_free(struct nsource *s)
{
	if (s->sub)
		natsSubscription_Destroy(s->sub);
	if (s->js)
		jsCtx_Destroy(s->js);
	if (s->nc)
		natsConnection_Destroy(s->nc);
	free(s->inbox);
	free(s->next_subj);
	free(s->inflight.slot);
	free(s->acked.slot);
	free(s->acked_fifo);
	free(s->stream);
	bsrc_fini(&s->b, src_drop);
	free(s);
}

static void src_close(fo_iter *it)
{
	struct nsource *s = (struct nsource *)it;
	src_release_cur(s);
	pthread_mutex_lock(&s->b.mu);
	bsrc_stop_locked(&s->b);
	pthread_mutex_unlock(&s->b.mu);
	if (s->reader_started) {
		/* a message on our inbox ends the reader's wait (it sees the stop) */
		char wake[160];
		snprintf(wake, sizeof(wake), "%s.wake", s->inbox);
		if (natsConnection_PublishString(s->nc, wake, "") != NATS_OK)
			natsConnection_Close(s->nc); /* no connection: this cuts the wait short */
		pthread_join(s->reader, NULL);
	}
	/* What was read ahead and never handed out goes back to the server now. */
	pthread_mutex_lock(&s->b.mu);
	for (size_t i = 0; i < s->b.len; i++)
		src_nak(s, s->b.ring[(s->b.head + i) % s->b.cap].handle);
	pthread_mutex_unlock(&s->b.mu);
	/* and what arrives for a request still open (until its status or deadline) */
	char reply[128];
	snprintf(reply, sizeof(reply), "%s.%" PRIu64, s->inbox, s->req_no);
	for (;;) {
		uint64_t now = now_ns();
		int64_t wait_ms = s->req_open > now ? (int64_t)((s->req_open - now) / 1000000u) : 0;
		natsMsg *m = NULL;
		if (!s->sub ||
		    natsSubscription_NextMsg(&m, s->sub, wait_ms > 0 ? wait_ms : 1) != NATS_OK)
			break;
		const char *r = natsMsg_GetReply(m);
		bool over = false;
		if (r && !strncmp(r, ACK_PREFIX, strlen(ACK_PREFIX))) {
			src_nak(s, m);
		} else {
			int rc = FO_OK;
			struct rerr e;
			over = src_status(m, reply, &rc, &e);
		}
		natsMsg_Destroy(m);
		if (over)
			s->req_open = 0;
	}
	natsConnection_FlushTimeout(s->nc, s->o.io_timeout_ms); /* the last acks and naks */
	natsConnection_Close(s->nc);
	src_free(s);
}

static const struct fo__iter_vt src_vt = {
    .name = "nats_source",
    .next = src_next,
    .close = src_close,
    .fd = bsrc_fd,
    .arm = bsrc_arm,
};

/* Look the durable up, create it if missing; it must be a pull consumer with
 * our filter.  Then subscribe to the inbox the pull requests name. */
static int src_setup(struct nsource *s, const char *subject, const char *durable, struct rerr *e)
{
	if (s->o.create_stream && subject) {
		int rc = ensure_stream(s->js, s->stream, subject, &s->o, e);
		if (rc != FO_OK)
			return rc;
	}
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus st = js_GetConsumerInfo(&ci, s->js, s->stream, durable, NULL, &jerr);
	if (st == NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
		jsConsumerConfig cc;
		jsConsumerConfig_Init(&cc);
		cc.Durable = durable;
		cc.AckPolicy = js_AckExplicit;
		cc.AckWait = s->o.ack_wait_ms * 1000000;
		cc.MaxAckPending = (int64_t)(2 * s->o.prefetch + s->o.batch);
		cc.FilterSubject = subject;
		jerr = 0;
		st = js_AddConsumer(&ci, s->js, s->stream, &cc, NULL, &jerr);
	}
	if (st != NATS_OK)
		return nats_err(e, st, jerr, "consumer");
	const jsConsumerConfig *have = ci->Config;
	int rc = FO_OK;
	if (have->DeliverSubject && *have->DeliverSubject)
		rc = rerr_set(e, FO_FAILED, 0, "nats source: durable '%s' is a push consumer",
		              durable);
	else if (subject && strcmp(subject, have->FilterSubject ? have->FilterSubject : "") != 0)
		rc = rerr_set(e, FO_FAILED, 0, "nats source: durable '%s' filters '%s', not '%s'",
		              durable, have->FilterSubject ? have->FilterSubject : "", subject);
	jsConsumerInfo_Destroy(ci);
	if (rc != FO_OK)
		return rc;
	natsInbox *inbox = NULL;
	st = natsInbox_Create(&inbox);
	if (st == NATS_OK) {
		s->inbox = strdup(inbox);
		natsInbox_Destroy(inbox);
	}
	size_t len = strlen(s->stream) + strlen(durable) + 64;
	s->next_subj = malloc(len);
	char *wild = s->inbox ? malloc(strlen(s->inbox) + 3) : NULL;
	if (st != NATS_OK || !s->inbox || !s->next_subj || !wild) {
		free(wild);
		return rerr_set(e, FO_ENOMEM, 0, "nats source: no memory");
	}
	snprintf(s->next_subj, len, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", s->stream, durable);
	sprintf(wild, "%s.*", s->inbox);
	st = natsConnection_SubscribeSync(&s->sub, s->nc, wild);
	free(wild);
	if (st != NATS_OK)
		return nats_err(e, st, 0, "subscribe");
	return FO_OK;
}

int fo_nats_source(fo_iter **out, const char *url, const char *subject, const char *durable,
                   const fo_codec *codec, const fo_nats_opts *o)
{
	if (!out || !url || !durable || !codec)
		return fail_inval("fo_nats_source: NULL argument");
	if (!*durable || (subject && !*subject))
		return fail_inval("fo_nats_source: empty subject or durable name");
	if (strpbrk(durable, ".*> \t"))
		return fail_inval("fo_nats_source: a durable name has no '.', '*', '>' or space");
	if (!codec->decode)
		return fail_inval("fo_nats_source: the codec has no decode");
	if (!o || !o->stream || !*o->stream)
		return fail_inval("fo_nats_source: opts.stream is required");
	struct nsource *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	int rc = opts_check(&s->o, o, url);
	if (rc != FO_OK) {
		free(s);
		return rc;
	}
	if (bsrc_init(&s->b, &src_vt, s->o.prefetch) != FO_OK) {
		free(s);
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	s->codec = *codec;
	s->stream = strdup(o->stream);
	s->o.stream = s->stream;
	s->acked_fifo = calloc(SEEN_WINDOW, sizeof(*s->acked_fifo));
	if (!s->stream || !s->acked_fifo) {
		src_free(s);
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = s->o.io_timeout_ms;
	struct rerr e = {0};
	rc = nconnect(url, &s->o, &jo, &s->nc, &s->js, &e);
	if (rc == FO_OK)
		rc = src_setup(s, subject, durable, &e);
	if (rc != FO_OK) {
		if (s->nc)
			natsConnection_Close(s->nc);
		src_free(s);
		return rerr_publish(&e);
	}
	if (pthread_create(&s->reader, NULL, src_reader_main, s) != 0) {
		rerr_set(&e, FO_ESYS, errno, "nats source: pthread_create failed");
		src_close(&s->b.it);
		return rerr_publish(&e);
	}
	s->reader_started = true;
	tl_msg[0] = '\0';
	*out = &s->b.it;
	return FO_OK;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * redis.c - the Redis Streams bridge (fanout/redis.h): a sink thread that
 * drains a cursor into XADD batches and a consumer-group source read as an
 * fo_iter.  Protocols in docs/design.md §14.
 *
 * This file uses only the public API of libfanout, plus the layout of
 * struct fo_iter / fo__iter_vt from src/iter_impl.h (built from the same
 * tree, never installed) so that the source is an iterator with readiness
 * (fd/arm) and a close hook.  It calls no internal function.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <fanout/redis.h>

#include "iter_impl.h"
#include "../common.h"

const char *fo_redis_errmsg(void)
{
	return tl_msg;
}

int fo_redis_errno(void)
{
	return tl_errno;
}

/* ------------------------------------------------------------------------ */
/* Options, URL, connections                                                 */

void fo_redis_opts_init(fo_redis_opts *o)
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
	o->field = "d";
	o->group_start = "0";
	o->block_ms = 1000;
	o->prefetch = 1024;
	o->claim_idle_ms = -1;
}

/* Where to connect and how: parsed once, shared by every connection. */
struct rcfg {
	char host[256]; /* or a unix socket path */
	int port;       /* 0: unix socket */
	char user[128];
	char pass[256];
	int db;
	fo_redis_opts o;
	char field[64];
	char group_start[32];
};

static int parse_url(struct rcfg *cfg, const char *url)
{
	const char *p;
	if (strncmp(url, "unix://", 7) == 0) {
		p = url + 7;
		const char *q = strchr(p, '?');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n == 0 || n >= sizeof(cfg->host) || p[0] != '/')
			return fail_inval("bad unix:// URL: expected unix:///path");
		memcpy(cfg->host, p, n);
		cfg->host[n] = '\0';
		cfg->port = 0;
		if (q) {
			char *end;
			if (strncmp(q, "?db=", 4) != 0)
				return fail_inval("bad unix:// URL: only ?db=N is understood");
			long db = strtol(q + 4, &end, 10);
			if (*end || end == q + 4 || db < 0 || db > INT_MAX)
				return fail_inval("bad unix:// URL: db is not a number");
			cfg->db = (int)db;
		}
		return FO_OK;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return fail_inval("bad URL: expected redis://host[:port][/db] or unix:///path");
	p = url + 8;
	const char *at = strrchr(p, '@');
	const char *slash = strchr(p, '/');
	if (at && (!slash || at < slash)) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon)
			return fail_inval("bad URL: credentials must be [user]:password@");
		size_t ul = (size_t)(colon - p), pl = (size_t)(at - colon - 1);
		if (ul >= sizeof(cfg->user) || pl >= sizeof(cfg->pass))
			return fail_inval("bad URL: credentials too long");
		memcpy(cfg->user, p, ul);
		cfg->user[ul] = '\0';
		memcpy(cfg->pass, colon + 1, pl);
		cfg->pass[pl] = '\0';
		p = at + 1;
	}
	size_t hl = strcspn(p, ":/");
	if (hl == 0 || hl >= sizeof(cfg->host))
		return fail_inval("bad URL: no host");
	memcpy(cfg->host, p, hl);
	cfg->host[hl] = '\0';
	p += hl;
	cfg->port = 6379;
	if (*p == ':') {
		char *end;
		long port = strtol(p + 1, &end, 10);
		if (end == p + 1 || port <= 0 || port > 65535 || (*end && *end != '/'))
			return fail_inval("bad URL: bad port");
		cfg->port = (int)port;
		p = end;
	}
	if (*p == '/' && p[1]) {
		char *end;
		long db = strtol(p + 1, &end, 10);
		if (*end || db < 0 || db > INT_MAX)
			return fail_inval("bad URL: db is not a number");
		cfg->db = (int)db;
	}
	return FO_OK;
}

static int cfg_init(struct rcfg *cfg, const char *url, const fo_redis_opts *o)
{
	memset(cfg, 0, sizeof(*cfg));
	if (o)
		cfg->o = *o;
	else
		fo_redis_opts_init(&cfg->o);
	fo_redis_opts *x = &cfg->o;
	if (x->connect_timeout_ms <= 0 || x->io_timeout_ms <= 0 || x->retry_timeout_ms < 0 ||
	    x->backoff_min_ms <= 0 || x->backoff_max_ms < x->backoff_min_ms || x->batch == 0 ||
	    x->linger_us < 0 || x->block_ms <= 0 || x->prefetch == 0)
		return fail_inval(
		    "bad fo_redis_opts: a timeout, batch or prefetch is out of range");
	const char *field = x->field ? x->field : "d";
	const char *start = x->group_start ? x->group_start : "0";
	if (!*field || strlen(field) >= sizeof(cfg->field) || !*start ||
	    strlen(start) >= sizeof(cfg->group_start))
		return fail_inval("bad fo_redis_opts: field or group_start empty or too long");
	strcpy(cfg->field, field);
	strcpy(cfg->group_start, start);
	x->field = cfg->field;
	x->group_start = cfg->group_start;
	return parse_url(cfg, url);
}

/* Turn a failed reply (or a context error when @r is NULL) into @e. */
static int reply_err(struct rerr *e, redisContext *c, redisReply *r, const char *what)
{
	if (r && r->type == REDIS_REPLY_ERROR) {
		/* A server that is starting or busy answers with these: worth
		 * retrying like a lost connection. */
		static const char *const transient[] = {"LOADING", "BUSY ", "TRYAGAIN",
		                                        "MASTERDOWN"};
		for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
			if (strncmp(r->str, transient[i], strlen(transient[i])) == 0)
				return rerr_set(e, FO_ESYS, EAGAIN, "redis: %s: %s", what, r->str);
		return rerr_set(e, FO_FAILED, 0, "redis: %s: %s", what, r->str);
	}
	if (c && c->err == REDIS_ERR_IO)
		return rerr_set(e, FO_ESYS, errno ? errno : EIO, "redis: %s: %s", what, c->errstr);
	if (c && c->err == REDIS_ERR_EOF)
		return rerr_set(e, FO_ESYS, ECONNRESET, "redis: %s: %s", what, c->errstr);
	if (c && c->err)
		return rerr_set(e, FO_ESYS, EPROTO, "redis: %s: %s", what, c->errstr);
	return rerr_set(e, FO_FAILED, 0, "redis: %s: unexpected reply", what);
}

/* A command expecting a non-error reply; the reply is freed unless @out. */
static int command_ok(redisContext *c, struct rerr *e, const char *what, redisReply **out, int argc,
                      const char **argv)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		int rc = reply_err(e, c, r, what);
		if (r)
			freeReplyObject(r);
		return rc;
	}
	if (out)
		*out = r;
	else
		freeReplyObject(r);
	return FO_OK;
}

/*
 * Connect, authenticate, select the database.  @extra_ms is added to the
 * reply timeout (a source's blocking read).  Returns FO_OK (*out set),
 * FO_ESYS or FO_FAILED (in @e).
 */
static int rconnect(const struct rcfg *cfg, int extra_ms, redisContext **out, struct rerr *e)
{
	struct timeval ctv = ms_tv(cfg->o.connect_timeout_ms);
	errno = 0;
	redisContext *c = cfg->port ? redisConnectWithTimeout(cfg->host, cfg->port, ctv)
	                            : redisConnectUnixWithTimeout(cfg->host, ctv);
	if (!c)
		return rerr_set(e, FO_ENOMEM, 0, "redis: no memory for a connection");
	if (c->err) {
		int se = errno ? errno : (c->err == REDIS_ERR_IO ? EIO : EHOSTUNREACH);
		rerr_set(e, FO_ESYS, se, "redis: connect to %s:%d: %s", cfg->host, cfg->port,
		         c->errstr);
		redisFree(c);
		return FO_ESYS;
	}
	if (redisSetTimeout(c, ms_tv(cfg->o.io_timeout_ms + extra_ms)) != REDIS_OK) {
		rerr_set(e, FO_ESYS, errno ? errno : EIO, "redis: setting timeouts: %s", c->errstr);
		redisFree(c);
		return FO_ESYS;
	}
	int rc = FO_OK;
	if (cfg->user[0]) {
		const char *argv[3] = {"AUTH", cfg->user, cfg->pass};
		rc = command_ok(c, e, "AUTH", NULL, 3, argv);
	} else if (cfg->pass[0]) {
		const char *argv[2] = {"AUTH", cfg->pass};
		rc = command_ok(c, e, "AUTH", NULL, 2, argv);
	}
	if (rc == FO_OK && cfg->db) {
		char db[16];
		snprintf(db, sizeof(db), "%d", cfg->db);
		const char *argv[2] = {"SELECT", db};
		rc = command_ok(c, e, "SELECT", NULL, 2, argv);
	}
	if (rc != FO_OK) {
		redisFree(c);
		return rc;
	}
	*out = c;
	return FO_OK;
}

/* An error class: worth reconnecting (the connection broke) or not. */
static bool retryable(int code)
{
	return code == FO_ESYS;
}

static bool parse_id(const char *s, size_t len, struct rid *id)
{
	char buf[48];
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *end;
	errno = 0;
	id->ms = strtoull(buf, &end, 10);
	if (*end != '-' || errno)
		return false;
	char *e2;
	id->seq = strtoull(end + 1, &e2, 10);
	return !*e2 && e2 != end + 1 && !errno;
}

/* ------------------------------------------------------------------------ */
/* Sink                                                                      */

struct fo_redis_sink {
	struct rcfg cfg;
	char *key;
	fo_codec codec;
	struct drain d;  /* the cursor, read by the thread */
	redisContext *c; /* the sink thread's; NULL while disconnected */
	pthread_t thread;
	uint64_t base_ms; /* ids: base_ms-(seq) */
	uint64_t seq;     /* the last id given */
	/* the batch being sent: encoded payloads and their ids */
	fo_buf *bufs;
	uint64_t *ids;
	size_t n;
	/* counters: written by the thread, read by stats() under mu */
	pthread_mutex_t mu;
	fo_redis_sink_stats st;
	struct rerr err; /* the first error (code 0: none) */
};

static void sink_record(fo_redis_sink *s, const struct rerr *e)
{
	pthread_mutex_lock(&s->mu);
	if (!s->err.code)
		s->err = *e;
	pthread_mutex_unlock(&s->mu);
}

/* The key's last generated id (0-0 if the key does not exist yet). */
static int sink_top_id(redisContext *c, const char *key, struct rid *top, struct rerr *e)
{
	top->ms = top->seq = 0;
	const char *argv[3] = {"XINFO", "STREAM", key};
	redisReply *r = redisCommandArgv(c, 3, argv, NULL);
	if (!r)
		return reply_err(e, c, NULL, "XINFO STREAM");
	int rc = FO_OK;
	if (r->type == REDIS_REPLY_ERROR) {
		if (!strstr(r->str, "no such key"))
			rc = reply_err(e, c, r, "XINFO STREAM");
	} else if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			redisReply *k = r->element[i], *v = r->element[i + 1];
			if (k->type == REDIS_REPLY_STRING &&
			    strcmp(k->str, "last-generated-id") == 0 &&
			    (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS))
				parse_id(v->str, v->len, top);
		}
	}
	freeReplyObject(r);
	return rc;
}

/*
 * Send the batch until Redis confirmed every entry.  Reconnects with
 * backoff for up to retry_timeout_ms.  Returns FO_OK or the error (also
 * recorded).
 */
static int sink_send(fo_redis_sink *s)
{
	struct rerr e = {0};
	struct retry rt =
	    retry_init(s->cfg.o.retry_timeout_ms, s->cfg.o.backoff_min_ms, s->cfg.o.backoff_max_ms);
	char maxlen[24];
	snprintf(maxlen, sizeof(maxlen), "%zu", s->cfg.o.maxlen);
	for (;;) {
		int rc = FO_OK;
		if (!s->c)
			rc = rconnect(&s->cfg, 0, &s->c, &e);
		if (rc == FO_OK) {
			char idbuf[48];
			for (size_t i = 0; i < s->n; i++) {
				const char *argv[8];
				size_t lens[8];
				int argc = 0;
				snprintf(idbuf, sizeof(idbuf), "%llu-%llu",
				         (unsigned long long)s->base_ms,
				         (unsigned long long)s->ids[i]);
				argv[argc++] = "XADD";
				argv[argc++] = s->key;
				if (s->cfg.o.maxlen) {
					argv[argc++] = "MAXLEN";
					argv[argc++] = "~";
					argv[argc++] = maxlen;
				}
				argv[argc++] = idbuf;
				argv[argc++] = s->cfg.field;
				for (int k = 0; k < argc; k++)
					lens[k] = strlen(argv[k]);
				/* the payload: binary, not NUL-terminated */
				argv[argc] = s->bufs[i].data ? (const char *)s->bufs[i].data : "";
				lens[argc++] = s->bufs[i].len;
				if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK) {
					rc = reply_err(&e, s->c, NULL, "XADD");
					break;
				}
			}
			pthread_mutex_lock(&s->mu);
			s->st.batches++;
			pthread_mutex_unlock(&s->mu);
			size_t got = 0;
			for (; rc == FO_OK && got < s->n; got++) {
				redisReply *r = NULL;
				if (redisGetReply(s->c, (void **)&r) != REDIS_OK || !r) {
					rc = reply_err(&e, s->c, NULL, "XADD");
					break;
				}
				/* An id at or below the top one: stored by an earlier
				 * attempt whose reply was lost. */
				if (r->type == REDIS_REPLY_ERROR &&
				    !strstr(r->str, "equal or smaller"))
					rc = reply_err(&e, s->c, r, "XADD");
				freeReplyObject(r);
			}
			if (rc == FO_OK) {
				pthread_mutex_lock(&s->mu);
				s->st.sent += s->n;
				pthread_mutex_unlock(&s->mu);
				s->n = 0;
				return FO_OK;
			}
			if (got < s->n || retryable(rc)) { /* the connection is unusable now */
				redisFree(s->c);
				s->c = NULL;
			}
		}
		if (!retryable(rc)) {
			sink_record(s, &e);
			return rc;
		}
		if (retry_failed(&rt)) {
			sink_record(s, &e);
			return rc;
		}
		pthread_mutex_lock(&s->mu);
		s->st.retries++;
		pthread_mutex_unlock(&s->mu);
		/* Stopping does not cut the retries short: stop() flushes. */
		drain_sleep(&s->d, retry_backoff(&rt));
	}
}

/* Encode the @k items just read into the batch. */
static void sink_take(void *ctx, void **items, size_t k)
{
	fo_redis_sink *s = ctx;
	for (size_t i = 0; i < k; i++) {
		fo_buf *b = &s->bufs[s->n];
		fo_buf_reset(b);
		int rc = s->codec.encode(s->codec.ctx, items[i], b);
		if (rc != FO_OK) {
			struct rerr e;
			rerr_set(&e, rc, 0, "redis sink: encode failed: %s", fo_strerror(rc));
			sink_record(s, &e);
			pthread_mutex_lock(&s->mu);
			s->st.dropped++;
			pthread_mutex_unlock(&s->mu);
			continue;
		}
		s->ids[s->n++] = ++s->seq;
	}
}

static void *sink_main(void *arg)
{
	sigpipe_block_thread(); /* writes on a dropped connection: EPIPE only */
	fo_redis_sink *s = arg;
	for (;;) {
		size_t got = drain_fill(&s->d, s->cfg.o.batch, s->cfg.o.linger_us, sink_take, s);
		pthread_mutex_lock(&s->mu);
		s->st.lagged = s->d.lagged;
		pthread_mutex_unlock(&s->mu);
		if (s->n > 0 && sink_send(s) != FO_OK)
			break; /* failed: stop reading (the cursor is closed below) */
		if (drain_done(&s->d, got))
			break;
	}
	struct rerr e;
	if (drain_finish(&s->d, "redis sink", &e))
		sink_record(s, &e);
	pthread_mutex_lock(&s->mu);
	s->st.failed = s->err.code != 0;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void sink_free(fo_redis_sink *s)
{
	if (s->bufs)
		for (size_t i = 0; i < s->cfg.o.batch; i++)
			fo_buf_fini(&s->bufs[i]);
	free(s->bufs);
	free(s->ids);
	free(s->key);
	if (s->c)
		redisFree(s->c);
	drain_fini(&s->d);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static int sink_start(fo_redis_sink **out, fo_cursor *c, const char *url, const char *key,
                      const fo_codec *codec, const fo_redis_opts *o)
{
	if (!out || !c || !url || !key || !codec)
		return fail_inval("fo_redis_sink_start: NULL argument");
	if (!*key)
		return fail_inval("fo_redis_sink_start: empty stream key");
	if (!codec->encode)
		return fail_inval("fo_redis_sink_start: the codec has no encode");
	fo_redis_sink *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	s->d.stop_efd = -1;
	pthread_mutex_init(&s->mu, NULL);
	int rc = cfg_init(&s->cfg, url, o);
	if (rc != FO_OK) {
		sink_free(s);
		return rc;
	}
	size_t b = s->cfg.o.batch;
	s->key = strdup(key);
	s->bufs = calloc(b, sizeof(*s->bufs));
	s->ids = calloc(b, sizeof(*s->ids));
	s->codec = *codec;
	if (!s->key || !s->bufs || !s->ids) {
		sink_free(s);
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	for (size_t i = 0; i < b; i++)
		fo_buf_init(&s->bufs[i]);
	struct rerr e = {0};
	struct rid top;
	rc = rconnect(&s->cfg, 0, &s->c, &e);
	if (rc == FO_OK)
		rc = sink_top_id(s->c, s->key, &top, &e);
	if (rc != FO_OK) {
		sink_free(s);
		return rerr_publish(&e);
	}
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	uint64_t wall = (uint64_t)rt.tv_sec * 1000u + (uint64_t)rt.tv_nsec / 1000000u;
	s->base_ms = wall > top.ms ? wall : top.ms + 1;
	rc = drain_init(&s->d, c, b);
	if (rc != FO_OK) {
		int err = errno;
		s->d.cur = NULL; /* the caller keeps the cursor */
		sink_free(s);
		if (rc == FO_EINVAL)
			return fail_inval(
			    "fo_redis_sink_start: the cursor's fd is taken (notify hook?)");
		rerr_set(&e, rc, rc == FO_ESYS ? err : 0, "fo_redis_sink_start: %s", strerror(err));
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

int fo_redis_sink_start(fo_redis_sink **out, fo_cursor *c, const char *url, const char *key,
                        const fo_codec *codec, const fo_redis_opts *o)
{
	struct sigpipe_guard g; /* the connection's first commands run here; the thread
	                         * inherits the blocked mask */
	sigpipe_enter(&g);
	int rc = sink_start(out, c, url, key, codec, o);
	sigpipe_leave(&g);
	return rc;
}

int fo_redis_sink_get_stats(fo_redis_sink *s, fo_redis_sink_stats *out)
{
	if (!s || !out)
		return FO_EINVAL;
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	pthread_mutex_unlock(&s->mu);
	return FO_OK;
}

int fo_redis_sink_stop(fo_redis_sink *s)
{
	if (!s)
		return fail_inval("fo_redis_sink_stop: NULL sink");
	drain_request_stop(&s->d);
	pthread_join(s->thread, NULL);
	struct rerr e = s->err; /* the thread is gone: no lock needed */
	sink_free(s);
	return rerr_publish(&e);
}

/* ------------------------------------------------------------------------ */
/* Source                                                                    */

struct rsource {
	struct bsrc b; /* first: the iterator, the ring, the mutex */
	struct rcfg cfg;
	char *key, *group, *consumer;
	fo_codec codec;

	/* under b.mu */
	pthread_cond_t cv_ack;
	struct idset inflight; /* handed to the ring, not yet acknowledged */
	struct rid *acks;      /* released, to acknowledge */
	size_t nacks, acks_cap;
	struct rid *acked; /* acknowledged; leave inflight at the reader's next read */
	size_t nacked, acked_cap;
	int reader_fd;     /* the reader thread's socket, for shutdown() at close */
	uint64_t claim_at; /* the reader's: when the next claim pass is due */
	bool reader_started, acker_started;

	/* the reader's own (read-only for the iterator) */
	redisContext *rc, *ac; /* reader and acker connections */
	pthread_t reader, acker;
};

/* Released entries acknowledged together (one XACK) while the reader keeps reading. */
#define ACK_BATCH 64

/* With mu held: queue @id for XACK. */
static int src_queue_ack_locked(struct rsource *s, struct rid id)
{
	if (s->nacks == s->acks_cap) {
		size_t ncap = s->acks_cap ? 2 * s->acks_cap : 256;
		struct rid *na = realloc(s->acks, ncap * sizeof(*na));
		if (!na)
			return FO_ENOMEM;
		s->acks = na;
		s->acks_cap = ncap;
	}
	s->acks[s->nacks++] = id;
	/* Wake the acker for a batch, or when nothing is buffered (the reader
	 * may be about to wait, so what it released is acknowledged now). The
	 * acker re-checks nacks before it sleeps, so no ack is stranded. */
	if (s->nacks >= ACK_BATCH || s->b.len == 0)
		pthread_cond_signal(&s->cv_ack);
	return FO_OK;
}

/* Which entries the reader asks for next. */
enum rphase { PH_PENDING, PH_CLAIM, PH_NEW };

/*
 * Deliver the entries of one reply (an array of [id, [field, value...]]).
 * @last: out: the last id seen (for paging).  Returns FO_OK, or an error
 * (decode failure, protocol) in @e.
 */
static int src_deliver(struct rsource *s, redisReply *entries, struct rid *last, struct rerr *e)
{
	for (size_t i = 0; i < entries->elements; i++) {
		redisReply *en = entries->element[i];
		struct rid id;
		if (en->type != REDIS_REPLY_ARRAY || en->elements < 2 ||
		    en->element[0]->type != REDIS_REPLY_STRING ||
		    !parse_id(en->element[0]->str, en->element[0]->len, &id))
			return rerr_set(e, FO_FAILED, 0,
			                "redis source: unexpected entry in a reply");
		*last = id;
		redisReply *fields = en->element[1];
		pthread_mutex_lock(&s->b.mu);
		bool dup = idset_has(&s->inflight, id);
		if (!dup && fields->type != REDIS_REPLY_ARRAY) {
			/* Pending but deleted (trimmed) meanwhile: nothing to deliver;
			 * acknowledge it so it leaves the pending list. */
			src_queue_ack_locked(s, id);
			dup = true;
		}
		pthread_mutex_unlock(&s->b.mu);
		if (dup)
			continue;
		redisReply *val = NULL;
		for (size_t f = 0; f + 1 < fields->elements; f += 2)
			if (fields->element[f]->type == REDIS_REPLY_STRING &&
			    strcmp(fields->element[f]->str, s->cfg.field) == 0)
				val = fields->element[f + 1];
		if (!val || val->type != REDIS_REPLY_STRING)
			return rerr_set(
			    e, FO_FAILED, 0, "redis source: entry %llu-%llu has no field '%s'",
			    (unsigned long long)id.ms, (unsigned long long)id.seq, s->cfg.field);
		void *item = NULL;
		int rc = s->codec.decode(s->codec.ctx, val->str, val->len, &item);
		if (rc != FO_OK || !item)
			return rerr_set(e, rc != FO_OK ? rc : FO_FAILED, 0,
			                "redis source: entry %llu-%llu: decode failed: %s",
			                (unsigned long long)id.ms, (unsigned long long)id.seq,
			                fo_strerror(rc));
		pthread_mutex_lock(&s->b.mu);
		int rc2 = idset_add(&s->inflight, id);
		if (rc2 != FO_OK || !bsrc_push_locked(&s->b, (struct bentry){id, item, NULL})) {
			if (rc2 == FO_OK)
				idset_del(&s->inflight, id);
			pthread_mutex_unlock(&s->b.mu);
			if (s->codec.item_free)
				s->codec.item_free(item, s->codec.ctx);
			if (rc2 == FO_OK)
				return FO_ECANCELED; /* closing */
			return rerr_set(e, FO_ENOMEM, 0, "redis source: no memory");
		}
		pthread_mutex_unlock(&s->b.mu);
	}
	return FO_OK;
}

/*
 * One read of the reader loop.  Returns FO_OK (go on), FO_ECANCELED
 * (closing) or an error in @e.
 */
static int src_read_once(struct rsource *s, enum rphase *ph, struct rid *from, struct rerr *e)
{
	size_t room = bsrc_room(&s->b);
	if (!room)
		return FO_ECANCELED;
	/* Entries acknowledged before this read is sent cannot be in its reply
	 * (the server ran their XACK first): forget them now, not earlier. */
	pthread_mutex_lock(&s->b.mu);
	for (size_t i = 0; i < s->nacked; i++)
		idset_del(&s->inflight, s->acked[i]);
	s->nacked = 0;
	pthread_mutex_unlock(&s->b.mu);
	if (room > s->cfg.o.batch)
		room = s->cfg.o.batch;
	if (*ph == PH_NEW && s->cfg.o.claim_idle_ms >= 0 && now_ns() >= s->claim_at) {
		*ph = PH_CLAIM; /* a periodic pass: entries of consumers that died since */
		*from = (struct rid){0, 0};
	}
	char count[24], block[24], idle[24], fromb[48];
	snprintf(count, sizeof(count), "%zu", room);
	snprintf(block, sizeof(block), "%d", s->cfg.o.block_ms);
	snprintf(fromb, sizeof(fromb), "%llu-%llu", (unsigned long long)from->ms,
	         (unsigned long long)from->seq);
	const char *argv[12];
	int argc = 0;
	if (*ph == PH_CLAIM) {
		snprintf(idle, sizeof(idle), "%lld", (long long)s->cfg.o.claim_idle_ms);
		const char *a[] = {"XAUTOCLAIM", s->key, s->group, s->consumer,
		                   idle,         fromb,  "COUNT",  count};
		argc = 8;
		memcpy(argv, a, sizeof(a));
	} else {
		const char *a[] = {"XREADGROUP", "GROUP", s->group,  s->consumer, "COUNT", count,
		                   "BLOCK",      block,   "STREAMS", s->key,      ">"};
		memcpy(argv, a, sizeof(a));
		argc = 11;
		if (*ph == PH_PENDING) { /* no BLOCK: the history answers at once */
			argv[6] = "STREAMS";
			argv[7] = s->key;
			argv[8] = fromb;
			argc = 9;
		}
	}
	redisReply *r = redisCommandArgv(s->rc, argc, argv, NULL);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		int rc = reply_err(e, s->rc, r, argv[0]);
		if (r)
			freeReplyObject(r);
		return rc;
	}
	int rc = FO_OK;
	struct rid last = *from;
	if (*ph == PH_CLAIM) {
		/* [next-cursor, [entries], [deleted ids]] */
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			rc = rerr_set(e, FO_FAILED, 0, "redis source: unexpected XAUTOCLAIM reply");
		} else {
			rc = src_deliver(s, r->element[1], &last, e);
			struct rid next = {0, 0};
			if (r->element[0]->type == REDIS_REPLY_STRING)
				parse_id(r->element[0]->str, r->element[0]->len, &next);
			if (id_zero(next)) {
				*ph = PH_NEW; /* the next pass after claim_idle_ms, at least 1 s */
				int64_t every =
				    s->cfg.o.claim_idle_ms > 1000 ? s->cfg.o.claim_idle_ms : 1000;
				s->claim_at = now_ns() + (uint64_t)every * 1000000u;
			} else {
				*from = next;
			}
		}
	} else if (r->type == REDIS_REPLY_NIL) {
		/* BLOCK ran out: read again */
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	           r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements < 2 ||
	           r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
		rc = rerr_set(e, FO_FAILED, 0, "redis source: unexpected XREADGROUP reply");
	} else {
		redisReply *entries = r->element[0]->element[1];
		rc = src_deliver(s, entries, &last, e);
		if (*ph == PH_PENDING) { /* page through the history, then move on */
			if (entries->elements == 0) {
				*ph = s->cfg.o.claim_idle_ms >= 0 ? PH_CLAIM : PH_NEW;
				*from = (struct rid){0, 0};
			} else {
				*from = last;
			}
		}
	}
	freeReplyObject(r);
	return rc;
}

/* Publish the reader's socket (-1: none) for close()'s shutdown. */
static bool src_set_fd(struct rsource *s, int fd)
{
	pthread_mutex_lock(&s->b.mu);
	s->reader_fd = fd;
	bool stop = s->b.stop;
	pthread_mutex_unlock(&s->b.mu);
	return stop;
}

static void *src_reader_main(void *arg)
{
	sigpipe_block_thread(); /* writes on a dropped connection: EPIPE only */
	struct rsource *s = arg;
	enum rphase ph = PH_PENDING;
	struct rid from = {0, 0};
	struct retry r =
	    retry_init(s->cfg.o.retry_timeout_ms, s->cfg.o.backoff_min_ms, s->cfg.o.backoff_max_ms);
	struct rerr e = {0};
	for (;;) {
		int rc = FO_OK;
		if (!s->rc) {
			rc = rconnect(&s->cfg, s->cfg.o.block_ms, &s->rc, &e);
			if (rc == FO_OK && src_set_fd(s, s->rc->fd))
				break;
			ph = PH_PENDING; /* what a lost reply gave us is pending */
			from = (struct rid){0, 0};
		}
		if (rc == FO_OK)
			rc = src_read_once(s, &ph, &from, &e);
		if (rc == FO_ECANCELED)
			break;
		if (rc == FO_OK) {
			retry_ok(&r);
			continue;
		}
		pthread_mutex_lock(&s->b.mu);
		bool stop = s->b.stop;
		pthread_mutex_unlock(&s->b.mu);
		if (stop)
			break;
		if (retryable(rc) && s->rc) {
			src_set_fd(s, -1);
			redisFree(s->rc);
			s->rc = NULL;
		}
		bool give_up = retry_failed(&r);
		pthread_mutex_lock(&s->b.mu);
		if (!retryable(rc) || give_up) {
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

/* Send XACK for @n ids.  FO_OK or an error in @e (the connection is
 * dropped on a retryable one). */
static int src_send_acks(struct rsource *s, const struct rid *ids, size_t n, struct rerr *e)
{
	if (!s->ac) {
		int rc = rconnect(&s->cfg, 0, &s->ac, e);
		if (rc != FO_OK)
			return rc;
	}
	const char **argv = malloc((n + 3) * sizeof(*argv));
	char *buf = malloc(n * 48);
	if (!argv || !buf) {
		free(argv);
		free(buf);
		return rerr_set(e, FO_ENOMEM, 0, "redis source: no memory for acks");
	}
	argv[0] = "XACK";
	argv[1] = s->key;
	argv[2] = s->group;
	for (size_t i = 0; i < n; i++) {
		snprintf(buf + 48 * i, 48, "%llu-%llu", (unsigned long long)ids[i].ms,
		         (unsigned long long)ids[i].seq);
		argv[3 + i] = buf + 48 * i;
	}
	int rc = command_ok(s->ac, e, "XACK", NULL, (int)(n + 3), argv);
	free(argv);
	free(buf);
	if (rc != FO_OK && retryable(rc)) {
		redisFree(s->ac);
		s->ac = NULL;
	}
	return rc;
}

static void *src_acker_main(void *arg)
{
	sigpipe_block_thread(); /* writes on a dropped connection: EPIPE only */
	struct rsource *s = arg;
	size_t max = s->cfg.o.batch > 1024 ? s->cfg.o.batch : 1024;
	struct rid *batch = malloc(max * sizeof(*batch));
	struct retry r =
	    retry_init(s->cfg.o.retry_timeout_ms, s->cfg.o.backoff_min_ms, s->cfg.o.backoff_max_ms);
	pthread_mutex_lock(&s->b.mu);
	while (batch) {
		while (!s->nacks && !s->b.stop)
			pthread_cond_wait(&s->cv_ack, &s->b.mu);
		if (!s->nacks)
			break; /* closing, nothing left */
		size_t n = s->nacks < max ? s->nacks : max;
		memcpy(batch, s->acks, n * sizeof(*batch));
		pthread_mutex_unlock(&s->b.mu);
		struct rerr e = {0};
		int rc = src_send_acks(s, batch, n, &e);
		pthread_mutex_lock(&s->b.mu);
		if (rc == FO_OK) {
			memmove(s->acks, s->acks + n, (s->nacks - n) * sizeof(*batch));
			s->nacks -= n;
			/* Not out of inflight yet: a read the reader has in flight may
			 * have been executed before this XACK and still return them.
			 * The reader drops them before its next read (src_read_once). */
			if (s->nacked + n > s->acked_cap) {
				size_t ncap = (s->nacked + n) * 2;
				struct rid *na = realloc(s->acked, ncap * sizeof(*na));
				if (na) {
					s->acked = na;
					s->acked_cap = ncap;
				}
			}
			if (s->nacked + n <= s->acked_cap) {
				memcpy(s->acked + s->nacked, batch, n * sizeof(*batch));
				s->nacked += n;
			} /* else (ENOMEM): they stay in inflight: skipped if seen again */
			retry_ok(&r);
			continue;
		}
		/* Unacknowledged entries stay pending in Redis: they are
		 * redelivered, never lost.  Give up after retry_timeout (or at
		 * once when closing with the server gone). */
		if (!retryable(rc) || retry_failed(&r) || s->b.stop) {
			bsrc_fail_locked(&s->b, &e);
			break;
		}
		bsrc_sleep_locked(&s->b, retry_backoff(&r));
	}
	pthread_mutex_unlock(&s->b.mu);
	free(batch);
	return NULL;
}

/* The iterator: next / close / fd / arm. */

/* Release the item handed out last: free it, acknowledge it. */
static void src_release_cur(struct rsource *s)
{
	if (!s->b.cur.item)
		return;
	if (s->codec.item_free)
		s->codec.item_free(s->b.cur.item, s->codec.ctx);
	s->b.cur.item = NULL;
	pthread_mutex_lock(&s->b.mu);
	src_queue_ack_locked(s, s->b.cur.id); /* ENOMEM: stays pending, redelivered */
	pthread_mutex_unlock(&s->b.mu);
}

static int src_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct rsource *s = (struct rsource *)it;
	src_release_cur(s);
	return bsrc_next(&s->b, item, deadline);
}

/* An entry never handed out: freed, not acknowledged (it stays pending). */
static void src_drop(struct bsrc *b, struct bentry *e)
{
	struct rsource *s = (struct rsource *)b;
	if (s->codec.item_free)
		s->codec.item_free(e->item, s->codec.ctx);
}

static void src_free(struct rsource *s)
{
	if (s->rc)
		redisFree(s->rc);
	if (s->ac)
		redisFree(s->ac);
	free(s->acks);
	free(s->acked);
	free(s->inflight.slot);
	free(s->key);
	free(s->group);
	free(s->consumer);
	pthread_cond_destroy(&s->cv_ack);
	bsrc_fini(&s->b, src_drop);
	free(s);
}

static void src_close(fo_iter *it)
{
	struct rsource *s = (struct rsource *)it;
	src_release_cur(s);
	pthread_mutex_lock(&s->b.mu);
	bsrc_stop_locked(&s->b);
	if (s->reader_fd >= 0) /* cut a blocking XREADGROUP short */
		shutdown(s->reader_fd, SHUT_RDWR);
	pthread_cond_broadcast(&s->cv_ack);
	pthread_mutex_unlock(&s->b.mu);
	if (s->reader_started)
		pthread_join(s->reader, NULL);
	if (s->acker_started) /* sends the outstanding acks first */
		pthread_join(s->acker, NULL);
	src_free(s);
}

static const struct fo__iter_vt src_vt = {
    .name = "redis_source",
    .next = src_next,
    .close = src_close,
    .fd = bsrc_fd,
    .arm = bsrc_arm,
};

static int source_open(fo_iter **out, const char *url, const char *key, const char *group,
                       const char *consumer, const fo_codec *codec, const fo_redis_opts *o)
{
	if (!out || !url || !key || !group || !consumer || !codec)
		return fail_inval("fo_redis_source: NULL argument");
	if (!*key || !*group || !*consumer)
		return fail_inval("fo_redis_source: empty key, group or consumer");
	if (!codec->decode)
		return fail_inval("fo_redis_source: the codec has no decode");
	struct rsource *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	s->reader_fd = -1;
	s->codec = *codec;
	int rc = cfg_init(&s->cfg, url, o);
	if (rc != FO_OK) {
		free(s);
		return rc;
	}
	/* The common part, as fo__iter_init() fills it: borrowing, items freed
	 * by the source itself at the next read. */
	if (bsrc_init(&s->b, &src_vt, s->cfg.o.prefetch) != FO_OK) {
		free(s);
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	s->key = strdup(key);
	s->group = strdup(group);
	s->consumer = strdup(consumer);
	if (fo__cond_init(&s->cv_ack) != FO_OK || !s->key || !s->group || !s->consumer) {
		src_free(s);
		snprintf(tl_msg, sizeof(tl_msg), "no memory");
		return FO_ENOMEM;
	}
	struct rerr e = {0};
	rc = rconnect(&s->cfg, s->cfg.o.block_ms, &s->rc, &e);
	if (rc == FO_OK && s->cfg.o.create_group) {
		const char *argv[] = {"XGROUP", "CREATE",           key,
		                      group,    s->cfg.group_start, "MKSTREAM"};
		redisReply *r = redisCommandArgv(s->rc, 6, argv, NULL);
		if (!r || (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0))
			rc = reply_err(&e, s->rc, r, "XGROUP CREATE");
		if (r)
			freeReplyObject(r);
	}
	/* One read of the pending entries now: a missing stream or group
	 * (NOGROUP) is reported here rather than by the first read. */
	enum rphase ph = PH_PENDING;
	struct rid from = {0, 0};
	if (rc == FO_OK)
		rc = src_read_once(s, &ph, &from, &e);
	if (rc == FO_OK)
		rc = rconnect(&s->cfg, 0, &s->ac, &e);
	if (rc != FO_OK) {
		src_free(s);
		return rerr_publish(&e);
	}
	s->reader_fd = s->rc->fd;
	/* The reader thread starts over with the pending entries: those the
	 * first read delivered are in the inflight set and are skipped. */
	if (pthread_create(&s->acker, NULL, src_acker_main, s) == 0)
		s->acker_started = true;
	if (!s->acker_started || pthread_create(&s->reader, NULL, src_reader_main, s) != 0) {
		rerr_set(&e, FO_ESYS, errno, "redis source: pthread_create failed");
		src_close(&s->b.it);
		return rerr_publish(&e);
	}
	s->reader_started = true;
	tl_msg[0] = '\0';
	*out = &s->b.it;
	return FO_OK;
}

int fo_redis_source(fo_iter **out, const char *url, const char *key, const char *group,
                    const char *consumer, const fo_codec *codec, const fo_redis_opts *o)
{
	struct sigpipe_guard g; /* the connection's first commands run here */
	sigpipe_enter(&g);
	int rc = source_open(out, url, key, group, consumer, codec, o);
	sigpipe_leave(&g);
	return rc;
}

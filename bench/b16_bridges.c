/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b16_bridges.c - B16: items/s through Redis Streams and NATS JetStream on
 * loopback, 64-byte items, producer -> engine -> consumer, against a plain
 * client loop with the same batching, in the same run.
 *
 * Redis
 *   fanout: a stream (capacity 8192) -> fo_redis_sink (pipelined XADD
 *           batches of --batch) -> Redis -> fo_redis_source (XREADGROUP
 *           COUNT --batch, XACK after release) read on the main thread.
 *   hiredis: a producer thread pipelining --batch XADDs per round trip; the
 *           main thread reading XREADGROUP COUNT --batch and acknowledging
 *           each batch with one XACK.
 * NATS JetStream (a file-storage stream per run)
 *   fanout_nats: a stream -> fo_nats_sink (--batch async publishes with
 *           message ids, then their acks) -> JetStream -> fo_nats_source
 *           (durable pull consumer, pull requests of --batch, ack at release).
 *   libnats: a producer thread publishing --batch messages with
 *           js_PublishMsgAsync (the same message ids) then
 *           js_PublishAsyncComplete; the main thread fetching --batch with
 *           natsSubscription_Fetch from a durable pull subscription and
 *           acknowledging every message (natsMsg_Ack).
 * All: the consumer checks seq 0..n-1 in order (the program exits 1
 * otherwise).  The ratios fanout / hiredis and fanout_nats / libnats are the
 * B16 figures (target >= 0.8).
 *
 * Servers: with FO_REDIS_URL and FO_NATS_URL unset the program runs itself
 * again under tests/bridges/servers.sh, which starts redis-server (without
 * the append-only file unless FO_REDIS_AOF=yes: the figure is about the
 * clients, not fsync) and nats-server -js on free ports and stops them.
 *
 *   b16_bridges [--items N] [--runs R] [--quick] [--batch N]
 *               [--impl fanout,hiredis,fanout_nats,libnats]
 */
#include "common.h"

#include <pthread.h>

#include <fanout/fanout.h>

#ifndef FANOUT_SOURCE_DIR
#define FANOUT_SOURCE_DIR "."
#endif

static uint64_t g_batch = 256;

/* ---- what the fanout runs share ---------------------------------------------------------------
 */

struct producer {
	fo_stream *s;
	bench_item *items;
	uint64_t n;
};

static void *fo_producer(void *arg)
{
	struct producer *p = arg;
	for (uint64_t i = 0; i < p->n; i++)
		if (fo_stream_push(p->s, &p->items[i]) != FO_OK) {
			fprintf(stderr, "b16: push failed\n");
			exit(1);
		}
	fo_stream_close(p->s);
	return NULL;
}

/* A stream of capacity 8192 with one active cursor. */
static fo_stream *fo_bench_stream(fo_cursor **c)
{
	fo_stream_opts so;
	fo_stream_opts_init(&so);
	so.capacity = 8192;
	so.single_producer = true;
	fo_stream *s;
	if (fo_stream_create(&s, &so) != FO_OK || fo_stream_cursor(s, c, FO_ACTIVE) != FO_OK) {
		fprintf(stderr, "b16: stream\n");
		exit(2);
	}
	return s;
}

/* Start the producer of @items into @s, read @n items from @it checking seq
 * 0..n-1 in order; the wall and CPU time until the last item into @wall/@cpu. */
static bool fo_flow(fo_stream *s, fo_iter *it, bench_item *items, uint64_t n, const char *impl,
                    uint64_t *wall, uint64_t *cpu)
{
	struct producer p = {s, items, n};
	pthread_t t;
	uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns();
	pthread_create(&t, NULL, fo_producer, &p);
	bool ok = true;
	for (uint64_t i = 0; i < n && ok; i++) {
		void *item;
		int rc = fo_iter_next(it, &item);
		if (rc != FO_OK || ((bench_item *)item)->seq != i) {
			fprintf(stderr, "b16: %s: item %" PRIu64 ": %s\n", impl, i,
			        fo_status_name(rc));
			ok = false;
		}
	}
	*wall = bench_now_ns() - t0;
	*cpu = bench_cpu_ns() - c0;
	pthread_join(t, NULL);
	return ok;
}

/* ================================================================================================
 */
#ifdef FO_B16_REDIS
#include <hiredis/hiredis.h>

#include <fanout/redis.h>

static const char *g_url;
static int g_port;

static redisContext *connect_plain(void)
{
	struct timeval tv = {5, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", g_port, tv);
	if (!c || c->err) {
		fprintf(stderr, "b16: connect: %s\n", c ? c->errstr : "no memory");
		exit(2);
	}
	redisSetTimeout(c, tv);
	return c;
}

static void plain_cmd(redisContext *c, const char *fmt, const char *key)
{
	redisReply *r = redisCommand(c, fmt, key);
	if (!r) {
		fprintf(stderr, "b16: %s: %s\n", fmt, c->errstr);
		exit(2);
	}
	freeReplyObject(r);
}

/* ---- fanout: stream -> sink -> Redis -> source ---------------------------------------------- */

static bool run_fanout(const char *key, bench_item *items, uint64_t n, uint64_t *wall,
                       uint64_t *cpu)
{
	fo_redis_opts o;
	fo_redis_opts_init(&o);
	o.batch = g_batch;
	o.prefetch = 4096;
	o.create_group = 1;
	fo_codec codec = fo_codec_pod(sizeof(bench_item));
	fo_iter *it;
	if (fo_redis_source(&it, g_url, key, "g", "c", &codec, &o) != FO_OK) {
		fprintf(stderr, "b16: source: %s\n", fo_redis_errmsg());
		return false;
	}
	fo_cursor *c;
	fo_stream *s = fo_bench_stream(&c);
	fo_redis_sink *sink;
	if (fo_redis_sink_start(&sink, c, g_url, key, &codec, &o) != FO_OK) {
		fprintf(stderr, "b16: sink: %s\n", fo_redis_errmsg());
		return false;
	}
	bool ok = fo_flow(s, it, items, n, "fanout", wall, cpu);
	if (fo_redis_sink_stop(sink) != FO_OK) {
		fprintf(stderr, "b16: sink stop: %s\n", fo_redis_errmsg());
		ok = false;
	}
	fo_iter_close(it);
	fo_stream_destroy(s);
	return ok;
}

/* ---- plain hiredis: pipelined XADD + XREADGROUP/XACK ---------------------------------------- */

struct plain_producer {
	const char *key;
	bench_item *items;
	uint64_t n;
};

static void *plain_producer(void *arg)
{
	struct plain_producer *p = arg;
	redisContext *c = connect_plain();
	for (uint64_t i = 0; i < p->n;) {
		uint64_t k = p->n - i < g_batch ? p->n - i : g_batch;
		for (uint64_t j = 0; j < k; j++)
			redisAppendCommand(c, "XADD %s * d %b", p->key, &p->items[i + j],
			                   sizeof(bench_item));
		for (uint64_t j = 0; j < k; j++) {
			redisReply *r;
			if (redisGetReply(c, (void **)&r) != REDIS_OK ||
			    r->type == REDIS_REPLY_ERROR) {
				fprintf(stderr, "b16: plain XADD failed\n");
				exit(1);
			}
			freeReplyObject(r);
		}
		i += k;
	}
	redisFree(c);
	return NULL;
}

static bool run_plain(const char *key, bench_item *items, uint64_t n, uint64_t *wall, uint64_t *cpu)
{
	redisContext *c = connect_plain();
	plain_cmd(c, "XGROUP CREATE %s g 0 MKSTREAM", key);
	struct plain_producer p = {key, items, n};
	pthread_t t;
	char count[24];
	snprintf(count, sizeof(count), "%" PRIu64, g_batch);
	const char **ackv = malloc((g_batch + 3) * sizeof(*ackv));
	size_t *ackl = malloc((g_batch + 3) * sizeof(*ackl));
	char(*ids)[48] = malloc(g_batch * sizeof(*ids));
	uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns();
	pthread_create(&t, NULL, plain_producer, &p);
	bool ok = true;
	uint64_t got = 0;
	bench_item x;
	size_t na = 3; /* the XACK of the previous batch rides with the next read */
	ackv[0] = "XACK", ackv[1] = key, ackv[2] = "g";
	while (got < n && ok) {
		if (na > 3) {
			for (size_t i = 0; i < na; i++)
				ackl[i] = strlen(ackv[i]);
			redisAppendCommandArgv(c, (int)na, ackv, ackl);
		}
		redisAppendCommand(c, "XREADGROUP GROUP g c COUNT %s BLOCK 1000 STREAMS %s >",
		                   count, key);
		redisReply *r = NULL;
		if (na > 3) {
			if (redisGetReply(c, (void **)&r) != REDIS_OK) {
				ok = false;
				break;
			}
			freeReplyObject(r);
			na = 3;
		}
		if (redisGetReply(c, (void **)&r) != REDIS_OK || r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "b16: plain XREADGROUP failed\n");
			ok = false;
			break;
		}
		if (r->type == REDIS_REPLY_ARRAY) {
			redisReply *entries = r->element[0]->element[1];
			for (size_t i = 0; i < entries->elements; i++) {
				redisReply *e = entries->element[i];
				redisReply *v = e->element[1]->element[1];
				memcpy(&x, v->str, sizeof(x));
				if (v->len != sizeof(x) || x.seq != got) {
					fprintf(stderr, "b16: plain: item %" PRIu64 " wrong\n",
					        got);
					ok = false;
				}
				got++;
				size_t idx = na - 3;
				snprintf(ids[idx], sizeof(ids[0]), "%s", e->element[0]->str);
				ackv[na++] = ids[idx];
			}
		}
		freeReplyObject(r);
	}
	if (na > 3) {
		for (size_t i = 0; i < na; i++)
			ackl[i] = strlen(ackv[i]);
		redisReply *a = redisCommandArgv(c, (int)na, ackv, ackl);
		if (a)
			freeReplyObject(a);
	}
	*wall = bench_now_ns() - t0;
	*cpu = bench_cpu_ns() - c0;
	pthread_join(t, NULL);
	free(ackv);
	free(ackl);
	free(ids);
	redisFree(c);
	return ok;
}

static bool redis_runs(bench_item *items, const bench_opts *o, const char *impls)
{
	g_url = getenv("FO_REDIS_URL");
	g_port = atoi(getenv("FO_REDIS_PORT") ? getenv("FO_REDIS_PORT") : "6379");
	bench_results res;
	bench_results_init(&res, "B16", "batch", o->cpus);
	printf("# B16 redis %s, %" PRIu64 " items of 64 bytes, batch %" PRIu64 "\n", g_url,
	       o->items, g_batch);
	bool ok = true;
	redisContext *admin = connect_plain();
	for (int run = 1; run <= o->runs && ok; run++) {
		for (int which = 0; which < 2 && ok; which++) {
			const char *impl = which == 0 ? "fanout" : "hiredis";
			if (!bench_in_list(impls, impl))
				continue;
			char key[64];
			snprintf(key, sizeof(key), "b16:%s:%d", impl, run);
			uint64_t wall = 0, cpu = 0;
			ok = which == 0 ? run_fanout(key, items, o->items, &wall, &cpu)
			                : run_plain(key, items, o->items, &wall, &cpu);
			if (ok)
				bench_record(&res, impl, (int)g_batch, 2, run, o->items, wall, cpu);
			plain_cmd(admin, "DEL %s", key);
		}
	}
	redisFree(admin);
	if (ok)
		bench_summary(&res, "fanout");
	bench_results_fini(&res);
	return ok;
}
#endif /* FO_B16_REDIS */

/* ================================================================================================
 */
#ifdef FO_B16_NATS
#include <nats/nats.h>

#include <fanout/nats.h>

static const char *g_nats_url;

static void nats_check(natsStatus st, const char *what)
{
	if (st != NATS_OK) {
		fprintf(stderr, "b16: %s: %s\n", what, nats_GetLastError(NULL));
		exit(2);
	}
}

/* A connection and its JetStream context (async publish window: one batch). */
static void nats_plain_connect(natsConnection **nc, jsCtx **js)
{
	nats_check(natsConnection_ConnectTo(nc, g_nats_url), "connect");
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = (int64_t)g_batch;
	nats_check(natsConnection_JetStream(js, *nc, &jo), "JetStream");
}

/* ---- fanout: stream -> sink -> JetStream -> source ------------------------------------------ */

static bool run_fanout_nats(const char *stream, const char *subject, bench_item *items, uint64_t n,
                            uint64_t *wall, uint64_t *cpu)
{
	fo_nats_opts o;
	fo_nats_opts_init(&o);
	o.batch = g_batch;
	o.prefetch = 4096;
	o.stream = stream;
	o.create_stream = 1;
	fo_codec codec = fo_codec_pod(sizeof(bench_item));
	fo_cursor *c;
	fo_stream *s = fo_bench_stream(&c);
	fo_nats_sink *sink;
	if (fo_nats_sink_start(&sink, c, g_nats_url, subject, &codec, &o) != FO_OK) {
		fprintf(stderr, "b16: nats sink: %s\n", fo_nats_errmsg());
		return false;
	}
	fo_iter *it;
	if (fo_nats_source(&it, g_nats_url, subject, "d", &codec, &o) != FO_OK) {
		fprintf(stderr, "b16: nats source: %s\n", fo_nats_errmsg());
		return false;
	}
	bool ok = fo_flow(s, it, items, n, "fanout_nats", wall, cpu);
	if (fo_nats_sink_stop(sink) != FO_OK) {
		fprintf(stderr, "b16: nats sink stop: %s\n", fo_nats_errmsg());
		ok = false;
	}
	fo_iter_close(it);
	fo_stream_destroy(s);
	return ok;
}

/* ---- plain libnats: async publish + pull fetch ---------------------------------------------- */

struct nats_producer {
	const char *subject;
	bench_item *items;
	uint64_t n;
};

static void *nats_plain_producer(void *arg)
{
	struct nats_producer *p = arg;
	natsConnection *nc;
	jsCtx *js;
	nats_plain_connect(&nc, &js);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 10000;
	for (uint64_t i = 0; i < p->n;) {
		uint64_t k = p->n - i < g_batch ? p->n - i : g_batch;
		for (uint64_t j = 0; j < k; j++) {
			natsMsg *m;
			char id[32];
			snprintf(id, sizeof(id), "p-%" PRIu64, i + j);
			nats_check(natsMsg_Create(&m, p->subject, NULL,
			                          (const char *)&p->items[i + j],
			                          sizeof(bench_item)),
			           "message");
			nats_check(natsMsgHeader_Set(m, "Nats-Msg-Id", id), "header");
			nats_check(js_PublishMsgAsync(js, &m, &po), "publish");
		}
		nats_check(js_PublishAsyncComplete(js, &po), "publish acks");
		i += k;
	}
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return NULL;
}

static bool run_libnats(const char *stream, const char *subject, bench_item *items, uint64_t n,
                        uint64_t *wall, uint64_t *cpu)
{
	natsConnection *nc;
	jsCtx *js;
	nats_plain_connect(&nc, &js);
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	sc.Name = stream;
	const char *subjects[1] = {subject};
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	nats_check(js_AddStream(NULL, js, &sc, NULL, NULL), "add stream");
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Config.AckPolicy = js_AckExplicit;
	so.Config.MaxAckPending = 4096 * 2 + (int64_t)g_batch;
	natsSubscription *sub;
	nats_check(js_PullSubscribe(&sub, js, subject, "d", NULL, &so, NULL), "pull subscribe");
	struct nats_producer p = {subject, items, n};
	pthread_t t;
	uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns();
	pthread_create(&t, NULL, nats_plain_producer, &p);
	bool ok = true;
	for (uint64_t got = 0; got < n && ok;) {
		natsMsgList list = {0};
		natsStatus st = natsSubscription_Fetch(&list, sub, (int)g_batch, 1000, NULL);
		if (st == NATS_TIMEOUT)
			continue;
		nats_check(st, "fetch");
		for (int i = 0; i < list.Count; i++) {
			bench_item x;
			memcpy(&x, natsMsg_GetData(list.Msgs[i]), sizeof(x));
			if (natsMsg_GetDataLength(list.Msgs[i]) != sizeof(x) || x.seq != got) {
				fprintf(stderr, "b16: libnats: item %" PRIu64 " wrong\n", got);
				ok = false;
			}
			natsMsg_Ack(list.Msgs[i], NULL);
			got++;
		}
		natsMsgList_Destroy(&list);
	}
	*wall = bench_now_ns() - t0;
	*cpu = bench_cpu_ns() - c0;
	pthread_join(t, NULL);
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return ok;
}

static bool nats_runs(bench_item *items, const bench_opts *o, const char *impls)
{
	g_nats_url = getenv("FO_NATS_URL");
	bench_results res;
	bench_results_init(&res, "B16", "batch", o->cpus);
	printf("# B16 nats %s, %" PRIu64 " items of 64 bytes, batch %" PRIu64 "\n", g_nats_url,
	       o->items, g_batch);
	natsConnection *admin;
	jsCtx *js;
	nats_plain_connect(&admin, &js);
	bool ok = true;
	for (int run = 1; run <= o->runs && ok; run++) {
		for (int which = 0; which < 2 && ok; which++) {
			const char *impl = which == 0 ? "fanout_nats" : "libnats";
			if (!bench_in_list(impls, impl))
				continue;
			char stream[64], subject[64];
			snprintf(stream, sizeof(stream), "B16_%s_%d", impl, run);
			snprintf(subject, sizeof(subject), "b16.%s.%d", impl, run);
			uint64_t wall = 0, cpu = 0;
			ok = which == 0
			         ? run_fanout_nats(stream, subject, items, o->items, &wall, &cpu)
			         : run_libnats(stream, subject, items, o->items, &wall, &cpu);
			if (ok)
				bench_record(&res, impl, (int)g_batch, 2, run, o->items, wall, cpu);
			js_DeleteStream(js, stream, NULL, NULL);
		}
	}
	jsCtx_Destroy(js);
	natsConnection_Destroy(admin);
	if (ok)
		bench_summary(&res, "fanout_nats");
	bench_results_fini(&res);
	return ok;
}
#endif /* FO_B16_NATS */

/* Run this program again under tests/bridges/servers.sh with the servers it needs. */
static int rerun_under_servers(int argc, char **argv)
{
	char script[4096];
	snprintf(script, sizeof(script), "%s/tests/bridges/servers.sh", FANOUT_SOURCE_DIR);
	char **av = calloc((size_t)argc + 8, sizeof(*av));
	int k = 0;
	av[k++] = "bash";
	av[k++] = script;
	av[k++] = "run";
#ifdef FO_B16_REDIS
	av[k++] = "redis";
#endif
#ifdef FO_B16_NATS
	av[k++] = "nats";
#endif
	av[k++] = "--";
	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[len > 0 ? len : 0] = '\0';
	av[k++] = len > 0 ? self : "/proc/self/exe";
	for (int i = 1; i < argc; i++)
		av[k++] = argv[i];
	/* no append-only file: measure the clients, not the disk's fsync */
	setenv("FO_REDIS_AOF", "no", 0);
	execvp("bash", av);
	perror("b16: exec servers.sh");
	return 2;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 500000, .runs = 5};
	const char *impls = NULL;
	bench_flag flags[] = {
	    {"batch", BENCH_FLAG_U64, &g_batch, "items per pipelined batch / read (default 256)"},
	    {"impl", BENCH_FLAG_STR, &impls, "comma-separated: fanout,hiredis,fanout_nats,libnats"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
#if !defined(FO_B16_REDIS) && !defined(FO_B16_NATS)
	(void)impls;
	printf("# B16 skipped: built without hiredis (fanout::redis) and libnats (fanout::nats)\n");
	return 0;
#else
	if (o.quick && o.items == 200000)
		o.items = 50000; /* a real server: keep CI short */
	if (!getenv("FO_REDIS_URL") && !getenv("FO_NATS_URL"))
		return rerun_under_servers(argc, argv);
	if (g_batch == 0)
		g_batch = 1;
	printf("# B16, load %s", "");
	FILE *la = fopen("/proc/loadavg", "r");
	char lbuf[128] = "";
	if (la && fgets(lbuf, sizeof(lbuf), la))
		printf("%s", lbuf);
	else
		printf("\n");
	if (la)
		fclose(la);
	bench_item *items = bench_items_create(o.items);
	bool ok = true;
#ifdef FO_B16_REDIS
	if (getenv("FO_REDIS_URL"))
		ok = redis_runs(items, &o, impls) && ok;
#endif
#ifdef FO_B16_NATS
	if (getenv("FO_NATS_URL"))
		ok = nats_runs(items, &o, impls) && ok;
#endif
	free(items);
	return ok ? 0 : 1;
#endif
}

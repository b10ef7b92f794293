/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * cli/bridge.c - `fanout pub` / `fanout sub`: stdin lines to a Redis stream
 * or a NATS JetStream subject and back, on the bridges (fanout/redis.h,
 * fanout/nats.h).  Built with whichever of them is built; the URL's scheme
 * picks the engine.
 *
 * pub: lines become fo_bytes items pushed into a bounded fo_stream whose
 * one active cursor feeds the engine's sink (its backpressure reaches the
 * stdin reader through the stream's capacity).  sub: the engine's source
 * (a Redis consumer group, a JetStream durable pull consumer); each entry is
 * written as one line, and released (acknowledged) by the next read, after
 * its line was written.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fanout/codec.h>
#include <fanout/stream.h>
#ifdef FANOUT_CLI_REDIS
#include <fanout/redis.h>
#endif
#ifdef FANOUT_CLI_NATS
#include <fanout/nats.h>
#endif

#define PUB_CAPACITY 4096

static const char pub_usage[] =
    "usage: fanout pub [-0] [--stream S] URL KEY\n"
    "\n"
    "Send every line of stdin (without its newline; NUL-terminated records with -0)\n"
    "as one entry: to the Redis stream KEY (field \"d\"), or to the NATS JetStream\n"
    "subject KEY.  Returns once the engine stored every entry.\n"
    "URL: redis://[[user]:pass@]host[:port][/db], unix:///path, nats://[user:pass@]host[:port]\n"
    "\n"
    "  --stream S     NATS: the JetStream stream (created over KEY if missing;\n"
    "                 default fanout_KEY with every character other than letters,\n"
    "                 digits, '-' and '_' as '_')\n"
    "  -0, --null     NUL-terminated records\n"
    "Exit status: 0; 1 if the engine refused or could not be reached; 2: bad usage.\n";

static const char sub_usage[] =
    "usage: fanout sub [--group G] [--consumer C] [--stream S] [--count N] [-0] URL KEY\n"
    "\n"
    "Write the entries of the Redis stream KEY, or of the NATS JetStream subject\n"
    "KEY, to stdout, one line each, as a member of group G (default \"fanout\";\n"
    "Redis: a consumer group, created at the start of the stream if missing; NATS:\n"
    "a durable pull consumer, created if missing).  Members of one group share\n"
    "the entries; each entry is acknowledged after its line was written.  Runs\n"
    "until killed, or N entries.\n"
    "\n"
    "  --group G      the group (default fanout)\n"
    "  --consumer C   Redis: this consumer's name (default fanout-HOST-PID)\n"
    "  --stream S     NATS: the JetStream stream (as for pub)\n"
    "  --count N      stop after N entries\n"
    "  -0, --null     end each record with NUL instead of newline\n"
    "Exit status: 0; 1 if the engine refused or could not be reached; 2: bad usage.\n";

enum engine { ENGINE_REDIS, ENGINE_NATS };

/* The engine of @url, or exit 2 if this fanout is built without it. */
static enum engine engine_of(const char *cmd, const char *url)
{
	bool nats = !strncmp(url, "nats://", 7) || !strncmp(url, "tls://", 6);
#ifndef FANOUT_CLI_NATS
	if (nats)
		cli_usage_error(cmd,
		                "NATS is not built into this fanout (rebuild with libnats-dev)");
#endif
#ifndef FANOUT_CLI_REDIS
	if (!nats)
		cli_usage_error(cmd,
		                "only nats:// URLs: Redis is not built into this fanout (rebuild "
		                "with libhiredis-dev)");
#endif
	(void)cmd;
	return nats ? ENGINE_NATS : ENGINE_REDIS;
}

static const char *engine_errmsg(enum engine e)
{
#ifdef FANOUT_CLI_REDIS
	if (e == ENGINE_REDIS)
		return fo_redis_errmsg();
#endif
#ifdef FANOUT_CLI_NATS
	if (e == ENGINE_NATS)
		return fo_nats_errmsg();
#endif
	(void)e;
	return "";
}

static void bridge_error(const char *sub, enum engine e, int rc)
{
	const char *m = engine_errmsg(e);
	fprintf(stderr, "fanout %s: %s\n", sub, m && *m ? m : fo_strerror(rc));
}

/* NATS: the default stream name for subject @key. */
static void default_stream(char *buf, size_t n, const char *key)
{
	snprintf(buf, n, "fanout_%s", key);
	for (char *p = buf; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			*p = '_';
}

#ifdef FANOUT_CLI_NATS
/* The defaults, on JetStream stream @stream, created if missing. */
static fo_nats_opts nats_opts(const char *stream)
{
	fo_nats_opts o;
	fo_nats_opts_init(&o);
	o.stream = stream;
	o.create_stream = 1;
	return o;
}
#endif

/* A sink of either engine. */
struct any_sink {
	enum engine e;
	void *h;
};

static int sink_open(struct any_sink *k, fo_cursor *c, const char *url, const char *key,
                     const char *stream, const fo_codec *codec)
{
	switch (k->e) {
#ifdef FANOUT_CLI_REDIS
	case ENGINE_REDIS:
		return fo_redis_sink_start((fo_redis_sink **)&k->h, c, url, key, codec, NULL);
#endif
#ifdef FANOUT_CLI_NATS
	case ENGINE_NATS: {
		fo_nats_opts o = nats_opts(stream);
		return fo_nats_sink_start((fo_nats_sink **)&k->h, c, url, key, codec, &o);
	}
#endif
	default:
		(void)c, (void)url, (void)key, (void)stream, (void)codec;
		return FO_EINVAL;
	}
}

static int sink_close(struct any_sink *k)
{
#ifdef FANOUT_CLI_REDIS
	if (k->e == ENGINE_REDIS)
		return fo_redis_sink_stop(k->h);
#endif
#ifdef FANOUT_CLI_NATS
	if (k->e == ENGINE_NATS)
		return fo_nats_sink_stop(k->h);
#endif
	return FO_EINVAL;
}

int cli_pub(int argc, char **argv)
{
	enum { O_STREAM = 256 };
	static const struct option longs[] = {{"null", no_argument, NULL, '0'},
	                                      {"stream", required_argument, NULL, O_STREAM},
	                                      {"help", no_argument, NULL, 'h'},
	                                      {NULL, 0, NULL, 0}};
	int delim = '\n', opt;
	const char *stream = NULL;
	char stream_buf[256];

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+0h", longs, NULL)) != -1) {
		switch (opt) {
		case '0':
			delim = '\0';
			break;
		case O_STREAM:
			stream = optarg;
			break;
		case 'h':
			fputs(pub_usage, stdout);
			return 0;
		case ':':
			cli_usage_error("pub", "option '%s' needs a value", argv[optind - 1]);
		default:
			cli_usage_error("pub", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		cli_usage_error("pub", "wants URL KEY");
	const char *url = argv[optind], *key = argv[optind + 1];
	struct any_sink sink = {.e = engine_of("pub", url)};
	if (stream && sink.e != ENGINE_NATS)
		cli_usage_error("pub", "--stream is for nats:// URLs");
	if (sink.e == ENGINE_NATS && !stream) {
		default_stream(stream_buf, sizeof(stream_buf), key);
		stream = stream_buf;
	}

	fo_stream_opts so;
	fo_stream *s = NULL;
	fo_cursor *c = NULL;
	fo_codec codec = fo_codec_bytes();
	int rc;

	fo_stream_opts_init(&so);
	so.capacity = PUB_CAPACITY;
	so.item_free = codec.item_free;
	so.item_free_ctx = codec.ctx;
	so.single_producer = true;
	if ((rc = fo_stream_create(&s, &so)) || (rc = fo_stream_cursor(s, &c, FO_ACTIVE))) {
		cli_warn(ENOMEM, "pub");
		fo_stream_destroy(s);
		return 1;
	}
	if ((rc = sink_open(&sink, c, url, key, stream, &codec)) != FO_OK) {
		bridge_error("pub", sink.e, rc);
		fo_cursor_close(c);
		fo_stream_destroy(s);
		return rc == FO_EINVAL ? CLI_EXIT_USAGE : 1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int status = 0;
	while ((n = getdelim(&line, &cap, delim, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == (char)delim)
			n--;
		fo_bytes *b;
		if (fo_bytes_new(&b, line, (size_t)n) != FO_OK) {
			cli_warn(ENOMEM, "pub");
			status = 1;
			break;
		}
		if (fo_stream_push(s, b) != FO_OK) { /* the sink failed and closed its cursor? */
			fo_bytes_free(b);
			status = 1;
			break;
		}
	}
	free(line);
	fo_stream_close(s);
	if ((rc = sink_close(&sink)) != FO_OK) {
		bridge_error("pub", sink.e, rc);
		status = 1;
	}
	fo_stream_destroy(s);
	return status;
}

/* With --count N: read ahead no more than N entries. */
static void bound_read_ahead(size_t *prefetch, size_t *batch, long long count)
{
	if (count > 0 && (unsigned long long)count < *prefetch) {
		*prefetch = (size_t)count;
		if (*batch > *prefetch)
			*batch = *prefetch;
	}
}

/* The source of either engine; @count > 0 bounds the read-ahead. */
static int source_open(enum engine e, fo_iter **it, const char *url, const char *key,
                       const char *group, const char *consumer, const char *stream, long long count,
                       const fo_codec *codec)
{
	switch (e) {
#ifdef FANOUT_CLI_REDIS
	case ENGINE_REDIS: {
		fo_redis_opts o;
		fo_redis_opts_init(&o);
		o.create_group = 1;
		bound_read_ahead(&o.prefetch, &o.batch, count);
		return fo_redis_source(it, url, key, group, consumer, codec, &o);
	}
#endif
#ifdef FANOUT_CLI_NATS
	case ENGINE_NATS: {
		fo_nats_opts o = nats_opts(stream);
		bound_read_ahead(&o.prefetch, &o.batch, count);
		return fo_nats_source(it, url, key, group, codec, &o);
	}
#endif
	default:
		(void)it, (void)url, (void)key, (void)group, (void)consumer, (void)stream;
		(void)count, (void)codec;
		return FO_EINVAL;
	}
}

int cli_sub(int argc, char **argv)
{
	enum { O_GROUP = 256, O_CONSUMER, O_COUNT, O_STREAM };
	static const struct option longs[] = {{"group", required_argument, NULL, O_GROUP},
	                                      {"consumer", required_argument, NULL, O_CONSUMER},
	                                      {"count", required_argument, NULL, O_COUNT},
	                                      {"stream", required_argument, NULL, O_STREAM},
	                                      {"null", no_argument, NULL, '0'},
	                                      {"help", no_argument, NULL, 'h'},
	                                      {NULL, 0, NULL, 0}};
	const char *group = "fanout", *consumer = NULL, *stream = NULL;
	long long count = -1;
	char delim = '\n', name[300], stream_buf[256];
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+0h", longs, NULL)) != -1) {
		switch (opt) {
		case O_GROUP:
			group = optarg;
			break;
		case O_CONSUMER:
			consumer = optarg;
			break;
		case O_COUNT:
			count = cli_parse_int("sub", "--count", optarg, 0, (long long)1 << 62);
			break;
		case O_STREAM:
			stream = optarg;
			break;
		case '0':
			delim = '\0';
			break;
		case 'h':
			fputs(sub_usage, stdout);
			return 0;
		case ':':
			cli_usage_error("sub", "option '%s' needs a value", argv[optind - 1]);
		default:
			cli_usage_error("sub", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		cli_usage_error("sub", "wants URL KEY");
	const char *url = argv[optind], *key = argv[optind + 1];
	enum engine e = engine_of("sub", url);
	if (!*group)
		cli_usage_error("sub", "--group wants a name");
	if (e == ENGINE_NATS) {
		if (consumer)
			cli_usage_error("sub", "--consumer is for redis:// URLs (a NATS group is "
			                       "one durable consumer)");
		if (!stream) {
			default_stream(stream_buf, sizeof(stream_buf), key);
			stream = stream_buf;
		}
	} else {
		if (stream)
			cli_usage_error("sub", "--stream is for nats:// URLs");
		if (!consumer) {
			char host[256] = "host";
			gethostname(host, sizeof(host) - 1);
			snprintf(name, sizeof(name), "fanout-%s-%ld", host, (long)getpid());
			consumer = name;
		}
	}
	if (count == 0)
		return 0;

	fo_codec codec = fo_codec_bytes();
	fo_iter *it = NULL;
	int rc = source_open(e, &it, url, key, group, consumer, stream, count, &codec);
	if (rc != FO_OK) {
		bridge_error("sub", e, rc);
		return rc == FO_EINVAL ? CLI_EXIT_USAGE : 1;
	}
	int status = 0;
	void *item;
	long long got = 0;
	while ((rc = fo_iter_next(it, &item)) == FO_OK) {
		fo_bytes *b = item;
		struct iovec iov[2] = {{b->data, b->len}, {&delim, 1}};
		/* The line is written before the next read releases (acknowledges) the entry. */
		if (cli_writev_all(1, iov, 2) != 0)
			break; /* stdout gone: the entry stays pending for the group */
		if (count > 0 && ++got == count)
			break;
	}
	if (rc == FO_FAILED) {
		const fo_error *fe = fo_iter_error(it);
		fprintf(stderr, "fanout sub: %s\n", fe ? fe->message : "failed");
		status = 1;
	}
	fo_iter_close(it);
	return status;
}

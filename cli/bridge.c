/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * cli/bridge.c - `fanout pub` / `fanout sub`: stdin lines to a Redis stream
 * and back, on the Redis bridge (fanout/redis.h).  Built only with it.
 *
 * pub: lines become fo_bytes items pushed into a bounded fo_stream whose
 * one active cursor feeds fo_redis_sink_start() (Redis backpressure reaches
 * the stdin reader through the stream's capacity).  sub: fo_redis_source()
 * over a consumer group; each entry is written as one line, and released
 * (acknowledged) by the next read, after its line was written.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fanout/codec.h>
#include <fanout/redis.h>
#include <fanout/stream.h>

#define PUB_CAPACITY 4096

static const char pub_usage[] =
    "usage: fanout pub [-0] URL KEY\n"
    "\n"
    "Append every line of stdin (without its newline; NUL-terminated records with -0)\n"
    "to the Redis stream KEY as one entry (field \"d\").  URL: redis://[[user]:pass@]\n"
    "host[:port][/db] or unix:///path.  Returns once Redis stored every entry.\n"
    "Exit status: 0; 1 if Redis refused or could not be reached; 2: bad usage.\n";

static const char sub_usage[] =
    "usage: fanout sub [--group G] [--consumer C] [--count N] [-0] URL KEY\n"
    "\n"
    "Write the entries of the Redis stream KEY to stdout, one line each, as a\n"
    "member of consumer group G (default \"fanout\"; created at the start of the\n"
    "stream if missing).  Consumers of one group share the entries; each entry is\n"
    "acknowledged after its line was written.  Runs until killed, or N entries.\n"
    "\n"
    "  --group G      the consumer group (default fanout)\n"
    "  --consumer C   this consumer's name (default fanout-HOST-PID)\n"
    "  --count N      stop after N entries\n"
    "  -0, --null     end each record with NUL instead of newline\n"
    "Exit status: 0; 1 if Redis refused or could not be reached; 2: bad usage.\n";

static bool is_nats(const char *url)
{
	return strncmp(url, "nats://", 7) == 0;
}

static void bridge_error(const char *sub, int rc)
{
	const char *m = fo_redis_errmsg();
	fprintf(stderr, "fanout %s: %s\n", sub, m && *m ? m : fo_strerror(rc));
}

int cli_pub(int argc, char **argv)
{
	static const struct option longs[] = {
	    {"null", no_argument, NULL, '0'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int delim = '\n', opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+0h", longs, NULL)) != -1) {
		switch (opt) {
		case '0':
			delim = '\0';
			break;
		case 'h':
			fputs(pub_usage, stdout);
			return 0;
		default:
			cli_usage_error("pub", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		cli_usage_error("pub", "wants URL KEY");
	const char *url = argv[optind], *key = argv[optind + 1];
	if (is_nats(url))
		cli_usage_error("pub",
		                "NATS is not built into this fanout (only redis://, unix://)");

	fo_stream_opts so;
	fo_stream *s = NULL;
	fo_cursor *c = NULL;
	fo_redis_sink *sink = NULL;
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
	if ((rc = fo_redis_sink_start(&sink, c, url, key, &codec, NULL)) != FO_OK) {
		bridge_error("pub", rc);
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
	if ((rc = fo_redis_sink_stop(sink)) != FO_OK) {
		bridge_error("pub", rc);
		status = 1;
	}
	fo_stream_destroy(s);
	return status;
}

int cli_sub(int argc, char **argv)
{
	enum { O_GROUP = 256, O_CONSUMER, O_COUNT };
	static const struct option longs[] = {{"group", required_argument, NULL, O_GROUP},
	                                      {"consumer", required_argument, NULL, O_CONSUMER},
	                                      {"count", required_argument, NULL, O_COUNT},
	                                      {"null", no_argument, NULL, '0'},
	                                      {"help", no_argument, NULL, 'h'},
	                                      {NULL, 0, NULL, 0}};
	const char *group = "fanout", *consumer = NULL;
	long long count = -1;
	char delim = '\n', name[300];
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
	if (is_nats(url))
		cli_usage_error("sub",
		                "NATS is not built into this fanout (only redis://, unix://)");
	if (!*group)
		cli_usage_error("sub", "--group wants a name");
	if (!consumer) {
		char host[256] = "host";
		gethostname(host, sizeof(host) - 1);
		snprintf(name, sizeof(name), "fanout-%s-%ld", host, (long)getpid());
		consumer = name;
	}
	if (count == 0)
		return 0;

	fo_redis_opts o;
	fo_codec codec = fo_codec_bytes();
	fo_iter *it = NULL;
	int rc;

	fo_redis_opts_init(&o);
	o.create_group = 1;
	if (count > 0 &&
	    (unsigned long long)count < o.prefetch) { /* read ahead no more than asked */
		o.prefetch = (size_t)count;
		if (o.batch > o.prefetch)
			o.batch = o.prefetch;
	}
	if ((rc = fo_redis_source(&it, url, key, group, consumer, &codec, &o)) != FO_OK) {
		bridge_error("sub", rc);
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
		const fo_error *e = fo_iter_error(it);
		fprintf(stderr, "fanout sub: %s\n", e ? e->message : "failed");
		status = 1;
	}
	fo_iter_close(it);
	return status;
}
